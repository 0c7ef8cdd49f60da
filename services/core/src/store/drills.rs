//! Restore drills as recorded: each drill and what it found per domain, and each
//! domain's "last proven restorable" time (its newest proven row).

use super::*;

/// What one drill found for one domain: proven when nothing failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainDrill {
    /// The domain.
    pub domain: Domain,
    /// The domain's newest commit on the remote, the one a restore would apply.
    pub commit: Option<String>,
    /// Files of the domain checked at that commit.
    pub files: u64,
    /// What did not hold, each naming the commit, the file and what; empty: proven.
    pub causes: Vec<String>,
}

impl DomainDrill {
    /// Whether every check held.
    pub fn proven(&self) -> bool {
        self.causes.is_empty()
    }
}

/// One restore drill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrillRecord {
    /// Its id.
    pub id: Uuid,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: DateTime<Utc>,
    /// The schedule or a person (never a rollback).
    pub trigger: Trigger,
    /// Who asked ("system" for the schedule).
    pub requested_by: String,
    /// The request id of the call that asked for it.
    pub request_id: Option<String>,
    /// The remote's branch head the drill cloned, if the clone succeeded.
    pub remote_head: Option<String>,
    /// Why the drill could not check the domains at all (the remote could not be cloned).
    pub error: Option<String>,
    /// Per configured domain, in configured order.
    pub domains: Vec<DomainDrill>,
    /// What was not checked, and why (no signing key: signatures not checked).
    pub notes: Vec<String>,
}

impl DrillRecord {
    /// Proven: the drill ran and every domain was proven.
    pub fn proven(&self) -> bool {
        self.error.is_none() && !self.domains.is_empty() && self.domains.iter().all(DomainDrill::proven)
    }
}

/// A domain's proof as the drills recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainProof {
    /// The site.
    pub site: String,
    /// The domain.
    pub domain: Domain,
    /// When a drill last proved it restorable.
    pub last_proven_at: Option<DateTime<Utc>>,
    /// When a drill last checked it.
    pub last_drill_at: DateTime<Utc>,
    /// Whether that drill proved it.
    pub last_proven: bool,
    /// What that drill found, when it failed.
    pub last_causes: Vec<String>,
}

/// The separator of stored causes and notes (each is one line).
const CAUSE_SEPARATOR: char = '\n';

fn causes_text(causes: &[String]) -> String {
    causes
        .iter()
        .map(|c| c.replace(CAUSE_SEPARATOR, " "))
        .collect::<Vec<_>>()
        .join("\n")
}

fn causes_of(text: &str) -> Vec<String> {
    text.split(CAUSE_SEPARATOR)
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect()
}

fn domain_of(text: &str) -> Result<Domain, StoreError> {
    text.parse()
        .map_err(|e: crate::domain::UnknownDomain| StoreError::Corrupt(e.to_string()))
}

/// Restore drills of the store's site.
#[async_trait]
pub trait Drills: Send + Sync {
    /// Records a drill and its domains, in one transaction.
    async fn record_drill(&self, drill: &DrillRecord) -> Result<(), StoreError>;
    /// The latest drills, newest first, with their domains.
    async fn drills(&self, limit: i64) -> Result<Vec<DrillRecord>, StoreError>;
    /// Per domain drilled: its last drill and its last proof; this site's, or with `all`
    /// every site's (ListSites).
    async fn domain_proofs(&self, all: bool) -> Result<Vec<DomainProof>, StoreError>;
}

macro_rules! drills_sql {
    ($store:ident, $db:ty) => {
        #[async_trait]
        impl Drills for $store {
            async fn record_drill(&self, d: &DrillRecord) -> Result<(), StoreError> {
                let mut tx = self.begin_write().await?;
                let finished = micros(d.finished_at);
                sqlx::query(
                    "INSERT INTO config_restore_drills (id, site, started_at, finished_at, trigger_kind, requested_by, \
                     request_id, remote_head, proven, error, notes) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                )
                .bind(d.id)
                .bind(&self.site)
                .bind(micros(d.started_at))
                .bind(finished)
                .bind(d.trigger.as_str())
                .bind(&d.requested_by)
                .bind(&d.request_id)
                .bind(&d.remote_head)
                .bind(d.proven())
                .bind(&d.error)
                .bind(causes_text(&d.notes))
                .execute(&mut *tx)
                .await?;
                for x in &d.domains {
                    sqlx::query(
                        "INSERT INTO config_restore_drill_domains (drill_id, site, domain, proven, commit_hash, files, \
                         causes, finished_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    )
                    .bind(d.id)
                    .bind(&self.site)
                    .bind(x.domain.as_str())
                    .bind(x.proven())
                    .bind(&x.commit)
                    .bind(i64::try_from(x.files).unwrap_or(i64::MAX))
                    .bind(causes_text(&x.causes))
                    .bind(finished)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                self.wrote();
                Ok(())
            }

            async fn drills(&self, limit: i64) -> Result<Vec<DrillRecord>, StoreError> {
                let rows = sqlx::query(
                    "SELECT id, started_at, finished_at, trigger_kind, requested_by, request_id, remote_head, error, notes \
                     FROM config_restore_drills WHERE site = $1 ORDER BY finished_at DESC LIMIT $2",
                )
                .bind(&self.site)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                let mut out = Vec::with_capacity(rows.len());
                for r in &rows {
                    let id: Uuid = r.try_get("id")?;
                    let domains = sqlx::query(
                        "SELECT domain, commit_hash, files, causes FROM config_restore_drill_domains \
                         WHERE drill_id = $1",
                    )
                    .bind(id)
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(|d| {
                        Ok(DomainDrill {
                            domain: domain_of(&d.try_get::<String, _>("domain")?)?,
                            commit: d.try_get("commit_hash")?,
                            files: u64::try_from(d.try_get::<i64, _>("files")?).unwrap_or(0),
                            causes: causes_of(&d.try_get::<String, _>("causes")?),
                        })
                    })
                    .collect::<Result<Vec<_>, StoreError>>()?;
                    out.push(DrillRecord {
                        id,
                        started_at: r.try_get("started_at")?,
                        finished_at: r.try_get("finished_at")?,
                        trigger: Trigger::parse(&r.try_get::<String, _>("trigger_kind")?)?,
                        requested_by: r.try_get("requested_by")?,
                        request_id: r.try_get("request_id")?,
                        remote_head: r.try_get("remote_head")?,
                        error: r.try_get("error")?,
                        domains,
                        notes: causes_of(&r.try_get::<String, _>("notes")?),
                    });
                }
                Ok(out)
            }

            async fn domain_proofs(&self, all: bool) -> Result<Vec<DomainProof>, StoreError> {
                // Per (site, domain): the newest row, and the newest proven row's time. The
                // table grows by one row per domain per drill (weekly by default).
                let filter = if all { "" } else { "WHERE site = $1" };
                let sql = format!(
                    "SELECT d.site AS site, d.domain AS domain, d.proven AS proven, d.finished_at AS finished_at, \
                     d.causes AS causes, \
                     (SELECT MAX(p.finished_at) FROM config_restore_drill_domains p \
                      WHERE p.site = d.site AND p.domain = d.domain AND p.proven) AS proven_at \
                     FROM config_restore_drill_domains d \
                     JOIN (SELECT site, domain, MAX(finished_at) AS last_at FROM config_restore_drill_domains {filter} \
                           GROUP BY site, domain) l \
                     ON d.site = l.site AND d.domain = l.domain AND d.finished_at = l.last_at \
                     ORDER BY d.site, d.domain"
                );
                let mut q = sqlx::query(&sql);
                if !all {
                    q = q.bind(&self.site);
                }
                let rows = q.fetch_all(&self.pool).await?;
                let mut out: Vec<DomainProof> = Vec::with_capacity(rows.len());
                for r in &rows {
                    let proof = DomainProof {
                        site: r.try_get("site")?,
                        domain: domain_of(&r.try_get::<String, _>("domain")?)?,
                        last_proven_at: r.try_get("proven_at")?,
                        last_drill_at: r.try_get("finished_at")?,
                        last_proven: r.try_get("proven")?,
                        last_causes: causes_of(&r.try_get::<String, _>("causes")?),
                    };
                    // Two drills that ended in the same microsecond: keep one row.
                    if !out.iter().any(|o| o.site == proof.site && o.domain == proof.domain) {
                        out.push(proof);
                    }
                }
                Ok(out)
            }
        }
    };
}

drills_sql!(SqliteStore, sqlx::Sqlite);
drills_sql!(PostgresStore, sqlx::Postgres);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_survive_their_stored_text() {
        let causes = vec!["commit abc: a\nb".to_owned(), "file x: y".to_owned()];
        assert_eq!(
            causes_of(&causes_text(&causes)),
            vec!["commit abc: a b".to_owned(), "file x: y".to_owned()]
        );
    }
}
