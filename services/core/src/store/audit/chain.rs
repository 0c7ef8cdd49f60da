//! The hash chain over the audit trail (`config_audit_chain`, one chain per site): every
//! recorded commit appends a link whose hash covers the previous link's hash and the
//! commit as stored (its row and its added, modified and deleted file rows), so an audit
//! row changed or deleted afterwards no longer matches its link, and a link removed
//! leaves a gap. A rebase that moves recorded commits appends a `rewrite` link (the old
//! and new hash), and retention turns the last link of the pruned prefix into a
//! `checkpoint` that keeps its hash, so neither breaks the chain.
//!
//! Invariants:
//! - links are appended in the transaction that stores what they cover, numbered 1, 2, …
//!   per site (the primary key refuses a fork);
//! - a link's content is rebuilt from the rows as stored, by the same function when it is
//!   written and when it is checked;
//! - not covered: the "unchanged" anchors (derived rows that retention adds) and
//!   `next_seq` and `file_key` (set after the row).

use sha2::{Digest, Sha256};

use super::*;

/// The trailer in each commit message that names the chain head when its run started:
/// the remote (signed) then holds anchors of the database's chain.
pub const TRAILER_AUDIT_CHAIN: &str = "Config-Backup-Audit-Chain";

/// The previous hash of a site's first link.
pub(in crate::store) const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What checking a site's chain found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChainReport {
    /// Links checked.
    pub links: u64,
    /// The last link's hash (the chain head), if any.
    pub head: Option<String>,
    /// The position of the checkpoint the chain starts from, after retention.
    pub checkpoint: Option<i64>,
    /// What does not hold, each naming the link, the commit and what differs; empty when
    /// the trail is as recorded.
    pub problems: Vec<String>,
    /// Every commit row of the site: its hash now, its subject as stored, and the
    /// position of the link that covers it (none: recorded before the chain, or its link
    /// is gone), for the comparison with the repository, whose messages carry anchors.
    pub commits: Vec<ChainCommit>,
    /// Each link's position and hash, in order.
    pub hashes: Vec<(i64, String)>,
    /// What holds but is not proven (an unsigned checkpoint).
    pub notes: Vec<String>,
}

/// What a checkpoint's signature covers: its site, position, hash and detail.
fn checkpoint_content(site: &str, position: i64, hash: &str, detail: &str) -> String {
    format!("config-backup audit checkpoint v1\nsite {site}\nposition {position}\nhash {hash}\ndetail {detail}\n")
}

/// A commit row, for [`ChainReport::commits`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainCommit {
    /// Its hash now (after any rebase).
    pub hash: String,
    /// Its subject as stored.
    pub subject: String,
    /// The link that covers it.
    pub position: Option<i64>,
    /// Its domain as stored (`None`: a value this version does not know).
    pub domain: Option<Domain>,
}

/// Appends `value` as `len:value;` (unambiguous whatever it holds).
fn field(out: &mut String, value: &str) {
    out.push_str(&value.len().to_string());
    out.push(':');
    out.push_str(value);
    out.push(';');
}

fn opt(out: &mut String, value: Option<&str>) {
    match value {
        Some(v) => field(out, v),
        None => out.push_str("-;"),
    }
}

/// A commit row as the chain covers it.
#[derive(Debug, Clone)]
pub(in crate::store) struct CommitFields {
    pub commit_hash: String,
    pub previous_hash: Option<String>,
    pub domain: String,
    pub run_id: Option<Uuid>,
    pub backup_date: NaiveDate,
    pub commit_message: String,
    pub backed_up_at: DateTime<Utc>,
    pub backed_up_by: String,
    pub manifest: Option<String>,
}

/// A stored file row as the chain covers it.
#[derive(Debug, Clone)]
pub(in crate::store) struct FileFields {
    pub config_file: String,
    pub id: Uuid,
    pub change_type: String,
    pub file_sha256: Option<String>,
    pub previous_file_sha256: Option<String>,
    pub file_meta: Option<String>,
    pub previous_file_meta: Option<String>,
    pub change_summary: Option<String>,
    pub change_detail: Option<String>,
}

/// The content of a commit link: the commit row, then its file rows in path order.
pub(in crate::store) fn commit_content(c: &CommitFields, files: &[FileFields]) -> String {
    let mut out = String::new();
    field(&mut out, &c.commit_hash);
    opt(&mut out, c.previous_hash.as_deref());
    field(&mut out, &c.domain);
    opt(&mut out, c.run_id.map(|r| r.to_string()).as_deref());
    field(&mut out, &c.backup_date.to_string());
    field(&mut out, &c.commit_message);
    field(&mut out, &c.backed_up_at.timestamp_micros().to_string());
    field(&mut out, &c.backed_up_by);
    opt(&mut out, c.manifest.as_deref());
    let mut files: Vec<&FileFields> = files.iter().collect();
    files.sort_by(|a, b| (&a.config_file, a.id).cmp(&(&b.config_file, b.id)));
    field(&mut out, &files.len().to_string());
    for f in files {
        field(&mut out, &f.config_file);
        field(&mut out, &f.id.to_string());
        field(&mut out, &f.change_type);
        opt(&mut out, f.file_sha256.as_deref());
        opt(&mut out, f.previous_file_sha256.as_deref());
        opt(&mut out, f.file_meta.as_deref());
        opt(&mut out, f.previous_file_meta.as_deref());
        opt(&mut out, f.change_summary.as_deref());
        opt(&mut out, f.change_detail.as_deref());
    }
    out
}

/// A link's hash: SHA-256 over the previous hash, the kind and the content.
pub(in crate::store) fn link_hash(prev: &str, kind: &str, content: &str) -> String {
    let mut h = Sha256::new();
    for part in [prev, kind, content] {
        h.update(part.len().to_string().as_bytes());
        h.update(b":");
        h.update(part.as_bytes());
    }
    hex::encode(h.finalize())
}

/// A rewrite link's detail: the commit's seq, its old hash and parent, its new ones.
pub(in crate::store) fn rewrite_detail(
    seq: i64,
    old: &str,
    old_parent: Option<&str>,
    new: &str,
    new_parent: &str,
) -> String {
    let mut out = String::new();
    field(&mut out, &seq.to_string());
    field(&mut out, old);
    opt(&mut out, old_parent);
    field(&mut out, new);
    field(&mut out, new_parent);
    out
}

/// The fields of a rewrite link's detail.
pub(in crate::store) fn parse_rewrite(detail: &str) -> Option<(i64, String, Option<String>, String, String)> {
    let mut rest = detail;
    let mut next = || -> Option<Option<String>> {
        if let Some(r) = rest.strip_prefix("-;") {
            rest = r;
            return Some(None);
        }
        let (len, r) = rest.split_once(':')?;
        let len: usize = len.parse().ok()?;
        let value = r.get(..len)?.to_owned();
        rest = r.get(len..)?.strip_prefix(';')?;
        Some(Some(value))
    };
    let seq = next()??.parse().ok()?;
    let old = next()??;
    let old_parent = next()?;
    let new = next()??;
    let new_parent = next()??;
    Some((seq, old, old_parent, new, new_parent))
}

macro_rules! audit_chain_sql {
    ($store:ident, $db:ty) => {
        impl $store {
            /// The commit row and its covered file rows, as stored; `None` when the row is gone.
            async fn chain_fields(
                &self,
                conn: &mut <$db as sqlx::Database>::Connection,
                seq: i64,
            ) -> Result<Option<(CommitFields, Vec<FileFields>)>, StoreError> {
                let Some(c) = sqlx::query(
                    "SELECT commit_hash, previous_hash, domain, run_id, backup_date, commit_message, backed_up_at, \
                     backed_up_by, manifest FROM config_commits WHERE seq = $1 AND site = $2",
                )
                .bind(seq)
                .bind(&self.site)
                .fetch_optional(&mut *conn)
                .await?
                else {
                    return Ok(None);
                };
                let commit = CommitFields {
                    commit_hash: c.try_get("commit_hash")?,
                    previous_hash: c.try_get("previous_hash")?,
                    domain: c.try_get("domain")?,
                    run_id: c.try_get("run_id")?,
                    backup_date: c.try_get("backup_date")?,
                    commit_message: c.try_get("commit_message")?,
                    backed_up_at: c.try_get("backed_up_at")?,
                    backed_up_by: c.try_get("backed_up_by")?,
                    manifest: c.try_get("manifest")?,
                };
                let rows = sqlx::query(
                    "SELECT config_file, id, change_type, file_sha256, previous_file_sha256, file_meta, \
                     previous_file_meta, change_summary, change_detail FROM config_file_changes \
                     WHERE commit_seq = $1 AND site = $2 AND change_type <> 'unchanged'",
                )
                .bind(seq)
                .bind(&self.site)
                .fetch_all(&mut *conn)
                .await?;
                let mut files = Vec::with_capacity(rows.len());
                for r in &rows {
                    files.push(FileFields {
                        config_file: r.try_get("config_file")?,
                        id: r.try_get("id")?,
                        change_type: r.try_get("change_type")?,
                        file_sha256: r.try_get("file_sha256")?,
                        previous_file_sha256: r.try_get("previous_file_sha256")?,
                        file_meta: r.try_get("file_meta")?,
                        previous_file_meta: r.try_get("previous_file_meta")?,
                        change_summary: r.try_get("change_summary")?,
                        change_detail: r.try_get("change_detail")?,
                    });
                }
                Ok(Some((commit, files)))
            }

            /// Appends a link after the site's head.
            async fn chain_append(
                &self,
                conn: &mut <$db as sqlx::Database>::Connection,
                kind: &str,
                commit_seq: Option<i64>,
                detail: &str,
                content: &str,
            ) -> Result<(), StoreError> {
                let head = sqlx::query(
                    "SELECT position, hash FROM config_audit_chain WHERE site = $1 ORDER BY position DESC LIMIT 1",
                )
                .bind(&self.site)
                .fetch_optional(&mut *conn)
                .await?;
                let (position, prev) = match head {
                    Some(h) => (h.try_get::<i64, _>("position")? + 1, h.try_get::<String, _>("hash")?),
                    None => (1, GENESIS.to_owned()),
                };
                let hash = link_hash(&prev, kind, content);
                sqlx::query(
                    "INSERT INTO config_audit_chain (site, position, kind, commit_seq, detail, prev_hash, hash, recorded_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(&self.site)
                .bind(position)
                .bind(kind)
                .bind(commit_seq)
                .bind(detail)
                .bind(&prev)
                .bind(&hash)
                .bind(micros(Utc::now()))
                .execute(&mut *conn)
                .await?;
                Ok(())
            }

            /// Appends the link of the commit just stored as `seq`.
            pub(in crate::store) async fn chain_commit(
                &self,
                conn: &mut <$db as sqlx::Database>::Connection,
                seq: i64,
            ) -> Result<(), StoreError> {
                let (commit, files) = self
                    .chain_fields(&mut *conn, seq)
                    .await?
                    .ok_or_else(|| StoreError::Corrupt(format!("commit row {seq} vanished while it was recorded")))?;
                let content = commit_content(&commit, &files);
                self.chain_append(&mut *conn, "commit", Some(seq), &commit.commit_hash, &content)
                    .await
            }

            /// Appends the link of a recorded commit moved by a rebase.
            pub(in crate::store) async fn chain_rewrite(
                &self,
                conn: &mut <$db as sqlx::Database>::Connection,
                seq: i64,
                old: &str,
                old_parent: Option<&str>,
                new: &str,
                new_parent: &str,
            ) -> Result<(), StoreError> {
                let detail = rewrite_detail(seq, old, old_parent, new, new_parent);
                self.chain_append(&mut *conn, "rewrite", Some(seq), &detail, &detail)
                    .await
            }

            /// After retention: in every site's chain, the links before the first commit
            /// still stored go, and the last of them becomes the checkpoint the chain
            /// starts from (its hash kept).
            pub(in crate::store) async fn chain_prune(
                &self,
                conn: &mut <$db as sqlx::Database>::Connection,
                signer: Option<&crate::signing::Signer>,
            ) -> Result<(), StoreError> {
                let sites = sqlx::query("SELECT DISTINCT site FROM config_audit_chain")
                    .fetch_all(&mut *conn)
                    .await?;
                for s in &sites {
                    let site: String = s.try_get("site")?;
                    let first = sqlx::query(
                        "SELECT MIN(a.position) AS p FROM config_audit_chain a \
                         JOIN config_commits c ON c.seq = a.commit_seq AND c.site = a.site \
                         WHERE a.site = $1 AND a.kind = 'commit'",
                    )
                    .bind(&site)
                    .fetch_one(&mut *conn)
                    .await?
                    .try_get::<Option<i64>, _>("p")?;
                    let last = sqlx::query("SELECT MAX(position) AS p FROM config_audit_chain WHERE site = $1")
                        .bind(&site)
                        .fetch_one(&mut *conn)
                        .await?
                        .try_get::<Option<i64>, _>("p")?
                        .unwrap_or(0);
                    let checkpoint = first.unwrap_or(last + 1) - 1;
                    if checkpoint < 1 {
                        continue;
                    }
                    sqlx::query("DELETE FROM config_audit_chain WHERE site = $1 AND position < $2")
                        .bind(&site)
                        .bind(checkpoint)
                        .execute(&mut *conn)
                        .await?;
                    let detail = format!("links 1 to {checkpoint} pruned by retention");
                    sqlx::query(
                        "UPDATE config_audit_chain SET kind = 'checkpoint', commit_seq = NULL, \
                         detail = $1, signature = NULL WHERE site = $2 AND position = $3 AND kind <> 'checkpoint'",
                    )
                    .bind(&detail)
                    .bind(&site)
                    .bind(checkpoint)
                    .execute(&mut *conn)
                    .await?;
                }
                // This server signs its own site's checkpoint: the one it just made, or
                // one another site's retention made unsigned (retention is
                // database-wide), once it checked that the checkpoint is what retention
                // writes, that the chain goes on from its hash, and that no commit row of
                // the site older than the first covered one is left (what it stands for
                // was pruned, not cut out of the chain).
                if let Some(signer) = signer {
                    let row = sqlx::query(
                        "SELECT position, hash, detail FROM config_audit_chain \
                         WHERE site = $1 AND kind = 'checkpoint' AND signature IS NULL",
                    )
                    .bind(&self.site)
                    .fetch_optional(&mut *conn)
                    .await?;
                    if let Some(r) = row {
                        let (position, hash, detail): (i64, String, String) =
                            (r.try_get("position")?, r.try_get("hash")?, r.try_get("detail")?);
                        let next: Option<String> = sqlx::query(
                            "SELECT prev_hash FROM config_audit_chain WHERE site = $1 AND position = $2",
                        )
                        .bind(&self.site)
                        .bind(position + 1)
                        .fetch_optional(&mut *conn)
                        .await?
                        .map(|r| r.try_get("prev_hash"))
                        .transpose()?;
                        let uncovered: i64 = sqlx::query(
                            "SELECT COUNT(*) AS n FROM config_commits WHERE site = $1 AND seq < \
                             (SELECT COALESCE(MIN(commit_seq), 0) FROM config_audit_chain WHERE site = $1 AND kind = 'commit')",
                        )
                        .bind(&self.site)
                        .fetch_one(&mut *conn)
                        .await?
                        .try_get("n")?;
                        let expected = format!("links 1 to {position} pruned by retention");
                        if detail == expected && next.as_ref().is_none_or(|p| *p == hash) && uncovered == 0 {
                            let signature = signer
                                .sign(checkpoint_content(&self.site, position, &hash, &detail).as_bytes())
                                .map_err(StoreError::Corrupt)?;
                            sqlx::query("UPDATE config_audit_chain SET signature = $1 WHERE site = $2 AND position = $3")
                                .bind(signature)
                                .bind(&self.site)
                                .bind(position)
                                .execute(&mut *conn)
                                .await?;
                        }
                    }
                }
                Ok(())
            }

            /// The hash of the site's last link, if any.
            pub(in crate::store) async fn chain_head(&self) -> Result<Option<String>, StoreError> {
                Ok(sqlx::query(
                    "SELECT hash FROM config_audit_chain WHERE site = $1 ORDER BY position DESC LIMIT 1",
                )
                .bind(&self.site)
                .fetch_optional(&self.pool)
                .await?
                .map(|r| r.try_get::<String, _>("hash"))
                .transpose()?)
            }

            /// Checks the site's chain against the trail as stored.
            pub(in crate::store) async fn verify_chain(
                &self,
                signer: Option<&crate::signing::Signer>,
            ) -> Result<ChainReport, StoreError> {
                let mut conn = self.pool.acquire().await?;
                let links = sqlx::query(
                    "SELECT position, kind, commit_seq, detail, prev_hash, hash, signature FROM config_audit_chain \
                     WHERE site = $1 ORDER BY position",
                )
                .bind(&self.site)
                .fetch_all(&mut *conn)
                .await?;
                let mut report = ChainReport::default();
                // The rebases of each commit, in order: (old, old parent, new, new parent).
                let mut moves: std::collections::HashMap<i64, Vec<(String, Option<String>, String, String)>> =
                    Default::default();
                for l in &links {
                    if l.try_get::<String, _>("kind")? == "rewrite" {
                        let detail: String = l.try_get("detail")?;
                        if let Some((seq, old, old_parent, new, new_parent)) = parse_rewrite(&detail) {
                            moves.entry(seq).or_default().push((old, old_parent, new, new_parent));
                        }
                    }
                }
                let mut expected: Option<(i64, String)> = None;
                let mut covered: std::collections::HashMap<i64, i64> = Default::default();
                for l in &links {
                    let position: i64 = l.try_get("position")?;
                    let kind: String = l.try_get("kind")?;
                    let prev: String = l.try_get("prev_hash")?;
                    let hash: String = l.try_get("hash")?;
                    let detail: String = l.try_get("detail")?;
                    report.links += 1;
                    match &expected {
                        None if kind == "checkpoint" => report.checkpoint = Some(position),
                        None if position != 1 || prev != GENESIS => report.problems.push(format!(
                            "link {position}: the chain starts there, not at link 1 or a checkpoint: the links before it were deleted"
                        )),
                        None => {}
                        Some((p, h)) => {
                            if position != p + 1 {
                                report.problems.push(format!(
                                    "links {} to {}: missing (deleted from the chain)",
                                    p + 1,
                                    position - 1
                                ));
                            } else if &prev != h {
                                report.problems.push(format!(
                                    "link {position}: does not follow link {p} (its previous hash differs)"
                                ));
                            }
                        }
                    }
                    match kind.as_str() {
                        "commit" => {
                            let seq: i64 = l.try_get::<Option<i64>, _>("commit_seq")?.unwrap_or_default();
                            covered.insert(seq, position);
                            match self.chain_fields(&mut conn, seq).await? {
                                None => report.problems.push(format!(
                                    "link {position}, commit {detail}: its audit row was deleted"
                                )),
                                Some((mut commit, files)) => {
                                    if let Some(m) = moves.get(&seq) {
                                        let (first, last) = (&m[0], &m[m.len() - 1]);
                                        if commit.commit_hash != last.2 || commit.previous_hash.as_deref() != Some(&last.3) {
                                            report.problems.push(format!(
                                                "link {position}, commit {detail}: its row's commit hash or parent was changed"
                                            ));
                                        }
                                        commit.commit_hash = first.0.clone();
                                        commit.previous_hash = first.1.clone();
                                    }
                                    if link_hash(&prev, &kind, &commit_content(&commit, &files)) != hash {
                                        report.problems.push(format!(
                                            "link {position}, commit {detail}: its audit rows were changed or deleted \
                                             since they were recorded ({} file rows of it now)",
                                            files.len()
                                        ));
                                    }
                                }
                            }
                        }
                        "rewrite" => {
                            if link_hash(&prev, &kind, &detail) != hash {
                                report.problems.push(format!("link {position}: its record of a rebase was changed"));
                            }
                        }
                        "checkpoint" if expected.is_some() => report.problems.push(format!(
                            "link {position}: a checkpoint in the middle of the chain"
                        )),
                        "checkpoint" => {
                            let signature: Option<String> = l.try_get("signature")?;
                            let content = checkpoint_content(&self.site, position, &hash, &detail);
                            match (signature, signer) {
                                (Some(sig), Some(signer)) => {
                                    if let Err(why) = signer.verify(content.as_bytes(), sig.as_bytes()) {
                                        report.problems.push(format!(
                                            "link {position}: the checkpoint's signature does not hold ({why}): \
                                             the checkpoint was changed since retention made it"
                                        ));
                                    }
                                }
                                (Some(_), None) => report.notes.push(format!(
                                    "link {position}: the checkpoint is signed, but no signing key is set to check it"
                                )),
                                (None, _) => report.notes.push(format!(
                                    "link {position}: the checkpoint is not signed (made without a signing key, or by \
                                     another site's retention in a shared database)"
                                )),
                            }
                        }
                        other => report.problems.push(format!("link {position}: unknown kind {other:?}")),
                    }
                    report.hashes.push((position, hash.clone()));
                    expected = Some((position, hash.clone()));
                    report.head = Some(hash);
                }
                let rows = sqlx::query("SELECT seq, commit_hash, commit_message, domain FROM config_commits WHERE site = $1 ORDER BY seq")
                    .bind(&self.site)
                    .fetch_all(&mut *conn)
                    .await?;
                for r in &rows {
                    let seq: i64 = r.try_get("seq")?;
                    report.commits.push(ChainCommit {
                        hash: r.try_get("commit_hash")?,
                        subject: r.try_get("commit_message")?,
                        position: covered.get(&seq).copied(),
                        domain: r.try_get::<String, _>("domain")?.parse().ok(),
                    });
                }
                Ok(report)
            }
        }
    };
}

audit_chain_sql!(SqliteStore, sqlx::Sqlite);
audit_chain_sql!(PostgresStore, sqlx::Postgres);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rewrite_detail_reads_back() {
        let d = rewrite_detail(7, "aa", None, "bb", "cc");
        assert_eq!(
            parse_rewrite(&d),
            Some((7, "aa".into(), None, "bb".into(), "cc".into()))
        );
        let d = rewrite_detail(8, "a;b", Some("p:q"), "n", "m");
        assert_eq!(
            parse_rewrite(&d),
            Some((8, "a;b".into(), Some("p:q".into()), "n".into(), "m".into()))
        );
    }

    #[test]
    fn every_field_changes_the_hash() {
        let c = CommitFields {
            commit_hash: "h".into(),
            previous_hash: None,
            domain: "dns".into(),
            run_id: None,
            backup_date: NaiveDate::default(),
            commit_message: "m".into(),
            backed_up_at: DateTime::default(),
            backed_up_by: "system".into(),
            manifest: None,
        };
        let base = link_hash(GENESIS, "commit", &commit_content(&c, &[]));
        let mut d = c.clone();
        d.commit_message = "m2".into();
        assert_ne!(base, link_hash(GENESIS, "commit", &commit_content(&d, &[])));
        assert_ne!(base, link_hash(&"1".repeat(64), "commit", &commit_content(&c, &[])));
    }
}
