//! Recording commits: the rows the engine gives, cut into commits, each reconciled
//! against the live versions of its domain (what to store, what it closes), in one
//! transaction per batch; a commit that follows the trail is recorded from its changed
//! files alone.

use std::collections::HashMap;

use super::*;

/// The rows the engine gives, cut into commits: consecutive rows of one (commit, domain,
/// time, run).
pub(in crate::store) fn commits_of(rows: &[AuditRow]) -> Vec<&[AuditRow]> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=rows.len() {
        let same = i < rows.len() && {
            let (a, b) = (&rows[start], &rows[i]);
            a.commit_hash == b.commit_hash
                && a.domain == b.domain
                && a.backed_up_at == b.backed_up_at
                && a.run_id == b.run_id
        };
        if !same {
            if start < i {
                out.push(&rows[start..i]);
            }
            start = i;
        }
    }
    out
}

/// A file's current stored row in its site and domain.
#[derive(Debug, Clone)]
pub(in crate::store) struct LiveVersion {
    pub seq: i64,
    pub file_key: i64,
    pub sha256: Option<String>,
    pub deleted: bool,
}

/// What recording one commit stores and closes, given the live versions of its domain.
#[derive(Debug, Default)]
pub(in crate::store) struct Reconciled<'a> {
    /// Rows to store, with the file key they continue (None: a new file, keyed by its own seq).
    pub store: Vec<(&'a AuditRow, Option<i64>)>,
    /// Stored rows the commit supersedes or ends.
    pub close: Vec<i64>,
}

pub(in crate::store) fn reconcile<'a>(rows: &'a [AuditRow], mut live: HashMap<String, LiveVersion>) -> Reconciled<'a> {
    let mut out = Reconciled::default();
    for r in rows {
        let prev = live.remove(&r.config_file);
        let carried = r.change_type == ChangeKind::Unchanged
            && prev.as_ref().is_some_and(|p| !p.deleted && p.sha256 == r.file_sha256);
        if carried {
            continue;
        }
        if let Some(p) = &prev {
            out.close.push(p.seq);
        }
        out.store.push((r, prev.map(|p| p.file_key)));
    }
    // Files the trail holds as present that this commit does not list: gone without a
    // recorded deletion (a gap in the trail). They end here.
    out.close
        .extend(live.into_values().filter(|p| !p.deleted).map(|p| p.seq));
    out
}

macro_rules! audit_record_sql {
    ($store:ident, $db:ty) => {
        impl $store {
            /// Inserts a commit's row; returns its seq.
            pub(in crate::store) async fn insert_commit(
                &self,
                tx: &mut sqlx::Transaction<'_, $db>,
                c: &AuditCommit,
            ) -> Result<i64, StoreError> {
                Ok(sqlx::query(
                    "INSERT INTO config_commits (site, run_id, commit_hash, domain, backup_date, commit_message, \
                     previous_hash, backed_up_at, backed_up_by, manifest) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING seq",
                )
                .bind(&self.site)
                .bind(c.run_id)
                .bind(&c.commit_hash)
                .bind(c.domain.as_str())
                .bind(c.backup_date)
                .bind(&c.commit_message)
                .bind(&c.previous_hash)
                .bind(micros(c.backed_up_at))
                .bind(&c.backed_up_by)
                .bind(&c.manifest)
                .fetch_one(&mut **tx)
                .await?
                .try_get("seq")?)
            }
            /// Records commits with every file: a row per commit, a row per changed (or
            /// unanchored) file, the versions the commit ends closed.
            pub(in crate::store) async fn record_commits(&self, commits: &[AuditCommit]) -> Result<(), StoreError> {
                let months: std::collections::BTreeSet<NaiveDate> =
                    commits.iter().map(|c| super::month_of(c.backed_up_at)).collect();
                for m in months {
                    self.ensure_month(m).await?;
                }
                let mut tx = self.begin_write().await?;
                for c in commits {
                    let seq = self.insert_commit(&mut tx, c).await?;
                    let files = &c.files[..];
                    let live_rows = sqlx::query(
                        "SELECT seq, config_file, file_key, file_sha256, change_type FROM config_file_changes \
                         WHERE site = $1 AND domain = $2 AND next_seq IS NULL",
                    )
                    .bind(&self.site)
                    .bind(c.domain.as_str())
                    .fetch_all(&mut *tx)
                    .await?;
                    let mut live = std::collections::HashMap::with_capacity(live_rows.len());
                    for r in &live_rows {
                        let change: String = r.try_get("change_type")?;
                        live.insert(
                            r.try_get::<String, _>("config_file")?,
                            LiveVersion {
                                seq: r.try_get("seq")?,
                                file_key: r.try_get("file_key")?,
                                sha256: r.try_get("file_sha256")?,
                                deleted: change == "deleted",
                            },
                        );
                    }
                    let plan = reconcile(files, live);
                    for chunk in plan.close.chunks(500) {
                        let mut qb = sqlx::QueryBuilder::<$db>::new("UPDATE config_file_changes SET next_seq = ");
                        qb.push_bind(seq).push(" WHERE seq IN (");
                        let mut list = qb.separated(", ");
                        for s in chunk {
                            list.push_bind(*s);
                        }
                        qb.push(")");
                        qb.build().execute(&mut *tx).await?;
                    }
                    self.insert_file_rows(&mut tx, seq, &plan.store).await?;
                    self.chain_commit(&mut tx, seq).await?;
                }
                tx.commit().await?;
                self.wrote_trail();
                Ok(())
            }
            /// Whether a commit follows the trail: the domain's last recorded commit holds
            /// the manifest the commit's parent holds (or neither exists). The live
            /// versions are that commit's files (the invariant), so they are the parent's.
            pub(in crate::store) async fn follows(
                &self,
                tx: &mut sqlx::Transaction<'_, $db>,
                c: &AuditCommit,
            ) -> Result<bool, StoreError> {
                let last = sqlx::query(
                    "SELECT manifest FROM config_commits WHERE site = $1 AND domain = $2 ORDER BY seq DESC LIMIT 1",
                )
                .bind(&self.site)
                .bind(c.domain.as_str())
                .fetch_optional(&mut **tx)
                .await?;
                Ok(match last {
                    None => c.parent_manifest.is_none(),
                    Some(r) => {
                        let m: Option<String> = r.try_get("manifest")?;
                        m.is_some() && m == c.parent_manifest
                    }
                })
            }
            /// See [`Store::record_following`].
            pub(in crate::store) async fn record_following_commits(
                &self,
                commits: &[AuditCommit],
            ) -> Result<usize, StoreError> {
                let months: std::collections::BTreeSet<NaiveDate> =
                    commits.iter().map(|c| super::month_of(c.backed_up_at)).collect();
                for m in months {
                    self.ensure_month(m).await?;
                }
                let mut tx = self.begin_write().await?;
                let mut recorded = 0;
                for c in commits {
                    if !self.follows(&mut tx, c).await? {
                        break;
                    }
                    let seq = self.insert_commit(&mut tx, c).await?;
                    self.record_changes(&mut tx, seq, &c.files).await?;
                    self.chain_commit(&mut tx, seq).await?;
                    recorded += 1;
                }
                if recorded > 0 {
                    tx.commit().await?;
                    self.wrote_trail();
                }
                Ok(recorded)
            }
            /// Records the changed files of a commit that follows the trail: each closes the file's live version (taking its key) and is
            /// stored; unchanged files stay carried.
            pub(in crate::store) async fn record_changes(
                &self,
                tx: &mut sqlx::Transaction<'_, $db>,
                seq: i64,
                files: &[AuditRow],
            ) -> Result<(), StoreError> {
                let changed: Vec<&AuditRow> = files
                    .iter()
                    .filter(|r| r.change_type != ChangeKind::Unchanged)
                    .collect();
                if changed.is_empty() {
                    return Ok(());
                }
                let mut keys = std::collections::HashMap::new();
                for chunk in changed.chunks(500) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new("UPDATE config_file_changes SET next_seq = ");
                    qb.push_bind(seq)
                        .push(" WHERE site = ")
                        .push_bind(self.site.clone())
                        .push(" AND domain = ")
                        .push_bind(chunk[0].domain.as_str())
                        .push(" AND next_seq IS NULL AND config_file IN (");
                    let mut list = qb.separated(", ");
                    for r in chunk {
                        list.push_bind(r.config_file.clone());
                    }
                    qb.push(") RETURNING config_file, file_key");
                    for r in qb.build().fetch_all(&mut **tx).await? {
                        keys.insert(
                            r.try_get::<String, _>("config_file")?,
                            r.try_get::<i64, _>("file_key")?,
                        );
                    }
                }
                let plan: Vec<(&AuditRow, Option<i64>)> = changed
                    .iter()
                    .map(|r| (*r, keys.get(&r.config_file).copied()))
                    .collect();
                self.insert_file_rows(tx, seq, &plan).await
            }
            /// Inserts a commit's stored file rows; a new file is keyed by its first row.
            pub(in crate::store) async fn insert_file_rows(
                &self,
                tx: &mut sqlx::Transaction<'_, $db>,
                seq: i64,
                rows: &[(&AuditRow, Option<i64>)],
            ) -> Result<(), StoreError> {
                // 15 parameters a row stays far below both backends' limits.
                for chunk in rows.chunks(500) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO config_file_changes (commit_seq, site, domain, config_file, file_key, id, \
                         change_type, file_sha256, previous_file_sha256, file_meta, previous_file_meta, \
                         change_summary, change_detail, next_seq, backed_up_at) ",
                    );
                    qb.push_values(chunk, |mut b, (r, key)| {
                        b.push_bind(seq)
                            .push_bind(self.site.clone())
                            .push_bind(r.domain.as_str())
                            .push_bind(r.config_file.clone())
                            .push_bind(key.unwrap_or(0))
                            .push_bind(r.id)
                            .push_bind(r.change_type.as_str())
                            .push_bind(r.file_sha256.clone())
                            .push_bind(r.previous_file_sha256.clone())
                            .push_bind(r.file_meta.clone())
                            .push_bind(r.previous_file_meta.clone())
                            .push_bind(r.change_summary.clone())
                            .push_bind(r.change_detail.clone())
                            .push_bind(None::<i64>)
                            .push_bind(micros(r.backed_up_at));
                    });
                    qb.build().execute(&mut **tx).await?;
                }
                if rows.iter().any(|(_, key)| key.is_none()) {
                    sqlx::query("UPDATE config_file_changes SET file_key = seq WHERE commit_seq = $1 AND file_key = 0")
                        .bind(seq)
                        .execute(&mut **tx)
                        .await?;
                }
                Ok(())
            }
        }
    };
}

audit_record_sql!(SqliteStore, sqlx::Sqlite);
audit_record_sql!(PostgresStore, sqlx::Postgres);

#[cfg(test)]
pub(in crate::store) mod tests {
    use super::*;

    pub(crate) fn row(file: &str, kind: ChangeKind, sha: &str) -> AuditRow {
        AuditRow {
            id: Uuid::nil(),
            seq: 0,
            run_id: None,
            backup_date: NaiveDate::default(),
            domain: Domain::Kea,
            config_file: file.into(),
            commit_hash: "c".into(),
            commit_message: String::new(),
            changes_made: kind != ChangeKind::Unchanged,
            change_type: kind,
            previous_hash: None,
            file_sha256: Some(sha.into()),
            previous_file_sha256: None,
            file_meta: None,
            previous_file_meta: None,
            change_summary: None,
            change_detail: None,
            backed_up_at: DateTime::default(),
            backed_up_by: "system".into(),
        }
    }

    fn live(seq: i64, sha: &str, deleted: bool) -> LiveVersion {
        LiveVersion {
            seq,
            file_key: seq,
            sha256: Some(sha.into()),
            deleted,
        }
    }

    #[test]
    fn a_no_change_commit_stores_nothing_and_closes_nothing() {
        let rows = [
            row("a", ChangeKind::Unchanged, "1"),
            row("b", ChangeKind::Unchanged, "2"),
        ];
        let plan = reconcile(
            &rows,
            HashMap::from([("a".into(), live(1, "1", false)), ("b".into(), live(2, "2", false))]),
        );
        assert!(plan.store.is_empty() && plan.close.is_empty(), "{plan:?}");
    }

    #[test]
    fn changes_supersede_and_unlisted_files_end_and_unknown_files_are_anchored() {
        let rows = [
            row("a", ChangeKind::Modified, "9"),
            row("n", ChangeKind::Unchanged, "3"),
            row("s", ChangeKind::Unchanged, "other"),
            row("r", ChangeKind::Added, "4"),
        ];
        let plan = reconcile(
            &rows,
            HashMap::from([
                ("a".into(), live(1, "1", false)),
                ("s".into(), live(5, "5", false)),
                ("gone".into(), live(2, "2", false)),
                ("r".into(), live(7, "x", true)),
                ("dead".into(), live(8, "x", true)),
            ]),
        );
        let stored: Vec<(&str, Option<i64>)> = plan.store.iter().map(|(r, k)| (r.config_file.as_str(), *k)).collect();
        assert_eq!(stored, [("a", Some(1)), ("n", None), ("s", Some(5)), ("r", Some(7))]);
        let mut closed = plan.close.clone();
        closed.sort();
        assert_eq!(closed, [1, 2, 5, 7]);
    }

    #[test]
    fn rows_are_cut_into_commits_by_hash_domain_time_and_run() {
        let mut rows = vec![row("a", ChangeKind::Added, "1"), row("b", ChangeKind::Added, "1")];
        let mut other = row("c", ChangeKind::Added, "1");
        other.backed_up_at = DateTime::from_timestamp(5, 0).unwrap();
        rows.push(other);
        let mut dns = row("d", ChangeKind::Added, "1");
        dns.domain = Domain::Dns;
        rows.push(dns);
        let sizes: Vec<usize> = commits_of(&rows).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, [2, 1, 1]);
        assert!(commits_of(&[]).is_empty());
    }
}
