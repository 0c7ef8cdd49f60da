//! Retention: before the commits older than the cutoff go, each version still live at
//! the first kept commit of its domain is anchored there (with the id it had), so no row
//! younger than the cutoff changes; PostgreSQL's monthly partitions are named by month.

use super::*;

/// The first day of `t`'s month (the PostgreSQL partition it lands in).
pub(in crate::store) fn month_of(t: DateTime<Utc>) -> NaiveDate {
    use chrono::Datelike;
    NaiveDate::from_ymd_opt(t.year(), t.month(), 1).unwrap_or_default()
}

/// Parses a partition's `YYYYMM` suffix.
pub(in crate::store) fn partition_month(name: &str, table: &str) -> Option<NaiveDate> {
    let suffix = name.strip_prefix(table)?.strip_prefix('_')?;
    if suffix.len() != 6 || !suffix.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    NaiveDate::from_ymd_opt(suffix[..4].parse().ok()?, suffix[4..].parse().ok()?, 1)
}

macro_rules! audit_retention_sql {
    ($store:ident, $db:ty) => {
        impl $store {
            /// Deletes the commits, file rows and legacy ids before `cutoff`; returns how
            /// many commits went.
            pub(in crate::store) async fn delete_rows_before(
                &self,
                tx: &mut sqlx::Transaction<'_, $db>,
                cutoff: DateTime<Utc>,
            ) -> Result<u64, StoreError> {
                let removed = sqlx::query("DELETE FROM config_commits WHERE backed_up_at < $1")
                    .bind(cutoff)
                    .execute(&mut **tx)
                    .await?
                    .rows_affected();
                for table in ["config_file_changes", "config_git_backups_legacy_ids"] {
                    sqlx::query(&format!("DELETE FROM {table} WHERE backed_up_at < $1"))
                        .bind(cutoff)
                        .execute(&mut **tx)
                        .await?;
                }
                Ok(removed)
            }
            /// Whether retention has anything to do: a commit of any site older than
            /// `cutoff` (file rows and legacy ids are never older than their commit), or,
            /// when this server signs, its site's checkpoint left unsigned by another
            /// site's retention (the checkpoint is the site's first link). Two reads
            /// along indexes; on a day with nothing to prune, a run takes no write
            /// transaction for retention and leaves the pages kept for History valid.
            async fn retention_due(&self, cutoff: DateTime<Utc>, signing: bool) -> Result<bool, StoreError> {
                let old = sqlx::query("SELECT 1 AS one FROM config_commits WHERE backed_up_at < $1 LIMIT 1")
                    .bind(cutoff)
                    .fetch_optional(&self.pool)
                    .await?;
                if old.is_some() {
                    return Ok(true);
                }
                if !signing {
                    return Ok(false);
                }
                let first = sqlx::query(
                    "SELECT kind, signature FROM config_audit_chain WHERE site = $1 ORDER BY position LIMIT 1",
                )
                .bind(&self.site)
                .fetch_optional(&self.pool)
                .await?;
                Ok(match first {
                    Some(r) => {
                        r.try_get::<String, _>("kind")? == "checkpoint" && r.try_get::<Option<String>, _>("signature")?.is_none()
                    }
                    None => false,
                })
            }
            /// Retention: anchors the versions still live at the first kept commit of
            /// their domain, then removes everything older than `cutoff`.
            pub(in crate::store) async fn remove_before(
                &self,
                cutoff: DateTime<Utc>,
                signer: Option<&crate::signing::Signer>,
            ) -> Result<u64, StoreError> {
                let cutoff = micros(cutoff);
                if !self.retention_due(cutoff, signer.is_some()).await? {
                    return Ok(0);
                }
                let mut tx = self.begin_write().await?;
                let live = sqlx::query(&format!(
                    "SELECT v.seq AS vseq, v.site AS site, v.domain AS domain, v.config_file AS config_file, \
                     v.file_key AS file_key, v.file_sha256 AS file_sha256, v.file_meta AS file_meta, v.next_seq AS next_seq, \
                     c.seq AS kseq, c.backed_up_at AS kat, COALESCE(l.id, {}) AS id \
                     FROM config_file_changes v \
                     JOIN config_commits c ON c.seq = (SELECT MIN(k.seq) FROM config_commits k \
                          WHERE k.site = v.site AND k.domain = v.domain AND k.seq > v.commit_seq AND k.backed_up_at >= $1) \
                     LEFT JOIN config_git_backups_legacy_ids l ON l.commit_seq = c.seq AND l.file_key = v.file_key \
                     WHERE v.backed_up_at < $2 AND v.change_type <> 'deleted' \
                     AND (v.next_seq IS NULL OR v.next_seq > c.seq)",
                    Self::DERIVED_ID
                ))
                .bind(cutoff)
                .bind(cutoff)
                .fetch_all(&mut *tx)
                .await?;
                for chunk in live.chunks(400) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO config_file_changes (commit_seq, site, domain, config_file, file_key, id, \
                         change_type, file_sha256, previous_file_sha256, file_meta, previous_file_meta, next_seq, \
                         backed_up_at) ",
                    );
                    let mut bad = None;
                    qb.push_values(chunk, |mut b, r| {
                        let get = || -> Result<_, sqlx::Error> {
                            Ok((
                                r.try_get::<i64, _>("kseq")?,
                                r.try_get::<String, _>("site")?,
                                r.try_get::<String, _>("domain")?,
                                r.try_get::<String, _>("config_file")?,
                                r.try_get::<i64, _>("file_key")?,
                                r.try_get::<uuid::Uuid, _>("id")?,
                                r.try_get::<Option<String>, _>("file_sha256")?,
                                r.try_get::<Option<String>, _>("file_meta")?,
                                r.try_get::<Option<i64>, _>("next_seq")?,
                                r.try_get::<DateTime<Utc>, _>("kat")?,
                            ))
                        };
                        match get() {
                            Ok((k, site, domain, file, key, id, sha, meta, next, at)) => {
                                b.push_bind(k)
                                    .push_bind(site)
                                    .push_bind(domain)
                                    .push_bind(file)
                                    .push_bind(key)
                                    .push_bind(id)
                                    .push_bind("unchanged")
                                    .push_bind(sha.clone())
                                    .push_bind(sha)
                                    .push_bind(meta.clone())
                                    .push_bind(meta)
                                    .push_bind(next)
                                    .push_bind(at);
                            }
                            Err(e) => bad = Some(e),
                        }
                    });
                    if let Some(e) = bad {
                        return Err(e.into());
                    }
                    qb.build().execute(&mut *tx).await?;
                }
                let removed = self.drop_before(&mut tx, cutoff).await?;
                self.chain_prune(&mut tx, signer).await?;
                tx.commit().await?;
                self.wrote_trail();
                Ok(removed)
            }
        }
    };
}

audit_retention_sql!(SqliteStore, sqlx::Sqlite);
audit_retention_sql!(PostgresStore, sqlx::Postgres);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_names_parse_to_their_month() {
        assert_eq!(
            partition_month("config_commits_202412", "config_commits"),
            NaiveDate::from_ymd_opt(2024, 12, 1)
        );
        assert_eq!(partition_month("config_commits_2024", "config_commits"), None);
        assert_eq!(partition_month("config_file_changes_202401", "config_commits"), None);
    }
}
