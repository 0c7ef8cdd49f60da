//! What the site told or showed people: the mails sent to the NOC (for Status), and
//! every Diff that revealed secrets in clear.

use super::*;

/// A mail to the NOC, as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct MailRecord {
    /// When it was sent (or tried).
    pub sent_at: DateTime<Utc>,
    /// backup, alert, rollback.
    pub kind: String,
    /// Its subject.
    pub subject: String,
    /// Whether the SMTP server took it.
    pub ok: bool,
    /// Why not.
    pub error: Option<String>,
}

/// A Diff that showed secrets in clear: who, when, which commits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretReveal {
    /// Row id.
    pub id: Uuid,
    /// When.
    pub revealed_at: DateTime<Utc>,
    /// Who (the token's subject).
    pub revealed_by: String,
    /// The older commit.
    pub commit1: String,
    /// The newer commit.
    pub commit2: String,
    /// The domain filter, if any.
    pub domain: Option<Domain>,
    /// The path filter, if any.
    pub path: Option<String>,
}

/// Mails and secret reveals of the store's site.
#[async_trait]
pub trait Notices: Send + Sync {
    /// Records a mail attempt.
    async fn record_mail(&self, mail: &MailRecord) -> Result<(), StoreError>;
    /// The latest mail attempt.
    async fn last_mail(&self) -> Result<Option<MailRecord>, StoreError>;
    /// Records a Diff that revealed secrets.
    async fn record_secret_reveal(&self, reveal: &SecretReveal) -> Result<(), StoreError>;
    /// The latest reveals, newest first.
    async fn secret_reveals(&self, limit: i64) -> Result<Vec<SecretReveal>, StoreError>;
}

macro_rules! notices_sql {
    ($store:ident, $db:ty) => {
        #[async_trait]
        impl Notices for $store {
            async fn record_mail(&self, mail: &MailRecord) -> Result<(), StoreError> {
                sqlx::query("INSERT INTO config_backup_mail (id, sent_at, kind, subject, ok, error, site) VALUES ($1, $2, $3, $4, $5, $6, $7)")
                    .bind(Uuid::new_v4())
                    .bind(micros(mail.sent_at))
                    .bind(&mail.kind)
                    .bind(&mail.subject)
                    .bind(mail.ok)
                    .bind(&mail.error)
                    .bind(&self.site)
                    .execute(&self.pool)
                    .await?;
                self.wrote();
                Ok(())
            }
            async fn last_mail(&self) -> Result<Option<MailRecord>, StoreError> {
                let row = sqlx::query("SELECT sent_at, kind, subject, ok, error FROM config_backup_mail WHERE site = $1 ORDER BY sent_at DESC LIMIT 1")
                    .bind(&self.site)
                    .fetch_optional(&self.pool)
                    .await?;
                let Some(r) = row else { return Ok(None) };
                Ok(Some(MailRecord {
                    sent_at: r.try_get("sent_at")?,
                    kind: r.try_get("kind")?,
                    subject: r.try_get("subject")?,
                    ok: r.try_get("ok")?,
                    error: r.try_get("error")?,
                }))
            }
            async fn record_secret_reveal(&self, r: &SecretReveal) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO config_secret_reveals (id, revealed_at, revealed_by, commit1, commit2, domain, path, site) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(r.id)
                .bind(micros(r.revealed_at))
                .bind(&r.revealed_by)
                .bind(&r.commit1)
                .bind(&r.commit2)
                .bind(r.domain.map(|d| d.as_str()))
                .bind(&r.path)
                .bind(&self.site)
                .execute(&self.pool)
                .await?;
                self.wrote();
                Ok(())
            }
            async fn secret_reveals(&self, limit: i64) -> Result<Vec<SecretReveal>, StoreError> {
                let rows = sqlx::query(
                    "SELECT id, revealed_at, revealed_by, commit1, commit2, domain, path FROM config_secret_reveals \
                     WHERE site = $1 ORDER BY revealed_at DESC LIMIT $2",
                )
                .bind(&self.site)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| {
                        let domain: Option<String> = r.try_get("domain")?;
                        Ok(SecretReveal {
                            id: r.try_get("id")?,
                            revealed_at: r.try_get("revealed_at")?,
                            revealed_by: r.try_get("revealed_by")?,
                            commit1: r.try_get("commit1")?,
                            commit2: r.try_get("commit2")?,
                            domain: domain
                                .map(|d| d.parse().map_err(|e: crate::domain::UnknownDomain| StoreError::Corrupt(e.to_string())))
                                .transpose()?,
                            path: r.try_get("path")?,
                        })
                    })
                    .collect()
            }
        }
    };
}

notices_sql!(SqliteStore, sqlx::Sqlite);
notices_sql!(PostgresStore, sqlx::Postgres);
