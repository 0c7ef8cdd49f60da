//! The fleet: what each server announces about its site when it starts, and the one
//! fleet-wide read (ListSites).

use super::*;

/// What a server tells the shared database about its site when it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteAnnouncement {
    /// The host the server runs on.
    pub host: String,
    /// Whether the daily run is enabled.
    pub schedule_enabled: bool,
    /// Its hour (UTC).
    pub schedule_hour: u32,
    /// Its minute.
    pub schedule_minute: u32,
    /// When.
    pub seen_at: DateTime<Utc>,
}

/// One site of the fleet, as the shared database knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteRecord {
    /// The site's name.
    pub site: String,
    /// What its server announced last.
    pub announced: SiteAnnouncement,
    /// Its last backup run (not a rollback snapshot).
    pub last_run: Option<RunRecord>,
    /// The holder of its engine lock, if any, and its last heartbeat.
    pub lock: Option<(LockHolder, DateTime<Utc>)>,
}

/// The sites sharing the database.
#[async_trait]
pub trait Sites: Send + Sync {
    /// Records (or refreshes) this site's announcement.
    async fn announce_site(&self, site: &SiteAnnouncement) -> Result<(), StoreError>;
    /// Every announced site with its last run and lock, by name.
    async fn list_sites(&self) -> Result<Vec<SiteRecord>, StoreError>;
    /// What `site`'s server announced, if any did.
    async fn announcement(&self, site: &str) -> Result<Option<SiteAnnouncement>, StoreError>;
}

macro_rules! sites_sql {
    ($store:ident, $db:ty) => {
        impl $store {
            pub(in crate::store) fn announcement_from_row(r: &<$db as sqlx::Database>::Row) -> Result<SiteAnnouncement, StoreError> {
                Ok(SiteAnnouncement {
                    host: r.try_get("announced_host")?,
                    schedule_enabled: r.try_get("schedule_enabled")?,
                    schedule_hour: u32::try_from(r.try_get::<i32, _>("schedule_hour")?).unwrap_or(0).min(23),
                    schedule_minute: u32::try_from(r.try_get::<i32, _>("schedule_minute")?).unwrap_or(0).min(59),
                    seen_at: r.try_get("seen_at")?,
                })
            }
        }

        #[async_trait]
        impl Sites for $store {
            async fn announce_site(&self, a: &SiteAnnouncement) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO config_backup_sites (site, host, schedule_enabled, schedule_hour, schedule_minute, seen_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (site) DO UPDATE SET host = excluded.host, \
                     schedule_enabled = excluded.schedule_enabled, schedule_hour = excluded.schedule_hour, \
                     schedule_minute = excluded.schedule_minute, seen_at = excluded.seen_at",
                )
                .bind(&self.site)
                .bind(&a.host)
                .bind(a.schedule_enabled)
                .bind(a.schedule_hour as i32)
                .bind(a.schedule_minute as i32)
                .bind(micros(a.seen_at))
                .execute(&self.pool)
                .await?;
                self.wrote();
                Ok(())
            }
            async fn list_sites(&self) -> Result<Vec<SiteRecord>, StoreError> {
                // One query: each site with its last backup run, an index probe per site
                // (never a pass over every run the fleet has made). PostgreSQL takes the
                // probe as a lateral join; given `r.id = (subquery)` it hashes the whole
                // runs table instead. SQLite has no LATERAL and probes by id.
                let run_columns: Vec<String> = RUN_COLUMNS.split(", ").map(|c| format!("r.{c} AS {c}")).collect();
                let last = "FROM config_backup_runs x WHERE x.site = s.site AND x.trigger <> 'rollback' \
                            ORDER BY x.started_at DESC LIMIT 1";
                let join = if Self::LATERAL {
                    format!("LEFT JOIN LATERAL (SELECT x.* {last}) r ON true")
                } else {
                    format!("LEFT JOIN config_backup_runs r ON r.id = (SELECT x.id {last})")
                };
                let rows = sqlx::query(&format!(
                    "SELECT s.site AS site_name, s.host AS announced_host, s.schedule_enabled AS schedule_enabled, \
                     s.schedule_hour AS schedule_hour, s.schedule_minute AS schedule_minute, s.seen_at AS seen_at, {} \
                     FROM config_backup_sites s {join} ORDER BY s.site",
                    run_columns.join(", ")
                ))
                .fetch_all(&self.pool)
                .await?;
                let locks = sqlx::query(
                    "SELECT name, holder_kind, holder_id, host, pid, instance, acquired_at, heartbeat_at FROM engine_lock",
                )
                .fetch_all(&self.pool)
                .await?;
                let mut held = std::collections::HashMap::new();
                for l in &locks {
                    held.insert(l.try_get::<String, _>("name")?, Self::lock_from_row(l)?);
                }
                let mut out = Vec::with_capacity(rows.len());
                for r in &rows {
                    let site: String = r.try_get("site_name")?;
                    let last_run = match r.try_get::<Option<Uuid>, _>("id")? {
                        Some(_) => Some(Self::run_from_row(r)?),
                        None => None,
                    };
                    out.push(SiteRecord {
                        lock: held.remove(&site),
                        announced: Self::announcement_from_row(r)?,
                        site,
                        last_run,
                    });
                }
                Ok(out)
            }
            async fn announcement(&self, site: &str) -> Result<Option<SiteAnnouncement>, StoreError> {
                let row = sqlx::query(
                    "SELECT host AS announced_host, schedule_enabled, schedule_hour, schedule_minute, seen_at \
                     FROM config_backup_sites WHERE site = $1",
                )
                .bind(site)
                .fetch_optional(&self.pool)
                .await?;
                row.as_ref().map(Self::announcement_from_row).transpose()
            }
        }
    };
}

sites_sql!(SqliteStore, sqlx::Sqlite);
sites_sql!(PostgresStore, sqlx::Postgres);
