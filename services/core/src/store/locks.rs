//! The engine lock: one row per site, held by a backup or a rollback, renewed by a
//! heartbeat; and whether a holder is still alive.

use std::time::Duration;

use super::*;

/// What holds the engine lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockKind {
    /// A backup run.
    Backup,
    /// A rollback task.
    Rollback,
    /// A restore drill, while it clones the remote and reads the audit trail (so the two
    /// are seen between runs, never halfway through one).
    Drill,
}

text_enum!(LockKind { Backup => "backup", Rollback => "rollback", Drill => "drill" });

/// The holder of the engine lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockHolder {
    /// Backup or rollback.
    pub kind: LockKind,
    /// The run or task id.
    pub id: Uuid,
    /// The host it runs on.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// The process's random instance id (tells apart a restarted process with the same pid).
    pub instance: String,
    /// Since when.
    pub acquired_at: DateTime<Utc>,
}

impl std::fmt::Display for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self.kind {
            LockKind::Backup => "backup run",
            LockKind::Rollback => "rollback task",
            LockKind::Drill => "restore drill",
        };
        write!(
            f,
            "{what} {} (started {} on {} pid {})",
            self.id,
            self.acquired_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            self.host,
            self.pid
        )
    }
}

/// The result of trying to take the lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockAttempt {
    /// Taken; `replaced` is the dead holder it replaced, if any.
    Acquired {
        /// A holder that had died without releasing.
        replaced: Option<LockHolder>,
    },
    /// Held by someone alive.
    Held(LockHolder),
}

/// Whether a process with this pid runs on this host.
/// Whether a lock holder is alive, as `me` (another holder, or this process) sees it: it
/// renewed the lock within `ttl`, and, on `me`'s host, its process exists and is not an
/// earlier instance under `me`'s pid (a restarted container is PID 1 again).
pub fn holder_alive(
    holder: &LockHolder,
    heartbeat: DateTime<Utc>,
    ttl: std::time::Duration,
    now: DateTime<Utc>,
    me: &LockHolder,
) -> bool {
    let expired = now.signed_duration_since(heartbeat).to_std().unwrap_or_default() > ttl;
    let dead = holder.host == me.host
        && holder.instance != me.instance
        && (holder.pid == me.pid || !process_alive(holder.pid));
    !(expired || dead)
}

fn process_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// This process's instance id, random per start.
pub fn instance() -> &'static str {
    static INSTANCE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    INSTANCE.get_or_init(|| Uuid::new_v4().simple().to_string())
}

/// This host's name.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// The site's engine lock.
#[async_trait]
pub trait Locks: Send + Sync {
    /// Tries to take the engine lock. A holder whose heartbeat is older than `ttl`, or
    /// whose process on this host is gone, is replaced.
    async fn try_lock(&self, holder: &LockHolder, ttl: std::time::Duration) -> Result<LockAttempt, StoreError>;
    /// Renews the heartbeat; false if the lock is no longer ours.
    async fn renew_lock(&self, id: Uuid, at: DateTime<Utc>) -> Result<bool, StoreError>;
    /// Releases the lock if ours.
    async fn release_lock(&self, id: Uuid) -> Result<(), StoreError>;
    /// The current holder, if any, and when it last renewed the lock.
    async fn lock_holder(&self) -> Result<Option<(LockHolder, DateTime<Utc>)>, StoreError>;
}

macro_rules! locks_sql {
    ($store:ident, $db:ty) => {
        impl $store {
            pub(in crate::store) fn lock_from_row(row: &<$db as sqlx::Database>::Row) -> Result<(LockHolder, DateTime<Utc>), StoreError> {
                let holder = LockHolder {
                    kind: LockKind::parse(row.try_get::<String, _>("holder_kind")?.as_str())?,
                    id: row.try_get("holder_id")?,
                    host: row.try_get("host")?,
                    pid: u32::try_from(row.try_get::<i64, _>("pid")?).unwrap_or(0),
                    instance: row.try_get("instance")?,
                    acquired_at: row.try_get("acquired_at")?,
                };
                Ok((holder, row.try_get("heartbeat_at")?))
            }
            /// Commits a transaction that records a lock holder's end, releasing the lock
            /// held under `release` (if this site's lock is still its) in it: whoever sees
            /// the end can take the lock at once.
            pub(in crate::store) async fn commit_releasing(
                &self,
                mut tx: sqlx::Transaction<'static, $db>,
                release: Option<Uuid>,
            ) -> Result<(), StoreError> {
                if let Some(id) = release {
                    sqlx::query("DELETE FROM engine_lock WHERE name = $1 AND holder_id = $2")
                        .bind(&self.site)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                self.wrote();
                Ok(())
            }
            pub(in crate::store) async fn current_lock(&self) -> Result<Option<(LockHolder, DateTime<Utc>)>, StoreError> {
                let row = sqlx::query(
                    "SELECT holder_kind, holder_id, host, pid, instance, acquired_at, heartbeat_at FROM engine_lock WHERE name = $1",
                )
                .bind(&self.site)
                .fetch_optional(&self.pool)
                .await?;
                row.as_ref().map(Self::lock_from_row).transpose()
            }
            pub(in crate::store) async fn insert_lock(&self, holder: &LockHolder) -> Result<bool, StoreError> {
                let taken = self.insert_lock_with(&self.pool, holder).await?;
                self.wrote();
                Ok(taken)
            }
            /// Takes the free lock for `holder` through `executor` (a transaction that
            /// records more with it, or the pool); false when someone holds it.
            pub(in crate::store) async fn insert_lock_with<'e, E>(&self, executor: E, holder: &LockHolder) -> Result<bool, StoreError>
            where
                E: sqlx::Executor<'e, Database = $db>,
            {
                let now = micros(Utc::now());
                let done = sqlx::query(
                    "INSERT INTO engine_lock (name, holder_kind, holder_id, host, pid, instance, acquired_at, heartbeat_at, site) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (name) DO NOTHING",
                )
                .bind(&self.site)
                .bind(holder.kind.as_str())
                .bind(holder.id)
                .bind(&holder.host)
                .bind(i64::from(holder.pid))
                .bind(&holder.instance)
                .bind(micros(holder.acquired_at))
                .bind(now)
                .bind(&self.site)
                .execute(executor)
                .await?;
                Ok(done.rows_affected() == 1)
            }
        }

        #[async_trait]
        impl Locks for $store {
            async fn try_lock(&self, holder: &LockHolder, ttl: Duration) -> Result<LockAttempt, StoreError> {
                if self.insert_lock(holder).await? {
                    return Ok(LockAttempt::Acquired { replaced: None });
                }
                let Some((current, heartbeat)) = self.current_lock().await? else {
                    // Released between our insert and our read: try once more.
                    return Ok(if self.insert_lock(holder).await? {
                        LockAttempt::Acquired { replaced: None }
                    } else {
                        match self.current_lock().await? {
                            Some((c, _)) => LockAttempt::Held(c),
                            None => LockAttempt::Held(holder.clone()),
                        }
                    });
                };
                if holder_alive(&current, heartbeat, ttl, Utc::now(), holder) {
                    return Ok(LockAttempt::Held(current));
                }
                // Remove exactly the dead holder (someone else may have replaced it already).
                sqlx::query("DELETE FROM engine_lock WHERE name = $1 AND holder_id = $2")
                    .bind(&self.site)
                    .bind(current.id)
                    .execute(&self.pool)
                    .await?;
                if self.insert_lock(holder).await? {
                    Ok(LockAttempt::Acquired { replaced: Some(current) })
                } else {
                    Ok(match self.current_lock().await? {
                        Some((c, _)) => LockAttempt::Held(c),
                        None => LockAttempt::Held(current),
                    })
                }
            }
            async fn renew_lock(&self, id: Uuid, at: DateTime<Utc>) -> Result<bool, StoreError> {
                let done = sqlx::query("UPDATE engine_lock SET heartbeat_at = $1 WHERE name = $2 AND holder_id = $3")
                    .bind(micros(at))
                    .bind(&self.site)
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }
            async fn release_lock(&self, id: Uuid) -> Result<(), StoreError> {
                sqlx::query("DELETE FROM engine_lock WHERE name = $1 AND holder_id = $2")
                    .bind(&self.site)
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                self.wrote();
                Ok(())
            }
            async fn lock_holder(&self) -> Result<Option<(LockHolder, DateTime<Utc>)>, StoreError> {
                self.current_lock().await
            }
        }
    };
}

locks_sql!(SqliteStore, sqlx::Sqlite);
locks_sql!(PostgresStore, sqlx::Postgres);
