//! The two backends: SQLite (the embedded default: one file, WAL, full sync) and
//! PostgreSQL (production: many sites and replicas, monthly partitions). Each concern's
//! SQL (`runs.rs`, `locks.rs`, `audit/`...) is one text for both, instantiated for each
//! store; what differs between the two is said once, in their [`Dialect`]. Both accept
//! `$N` placeholders (each used once, in order), every time is bound from Rust (no
//! `now()`), and rows are read by column name.

use std::str::FromStr;
use std::time::Duration;

use super::*;

/// Stored times are truncated to microseconds, the precision both backends keep.
pub(super) fn micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

/// The few places where the SQL of the two backends differs.
pub(super) trait Dialect {
    /// The backend's name (Status, logs).
    const BACKEND: &'static str;
    /// The SQL of a carried (unchanged) row's id from `c.seq` and `v.file_key`; it must
    /// match the `config_git_backups` view's.
    const DERIVED_ID: &'static str;
    /// The SQL around one bound text of comma-separated seqs that matches `seq` against
    /// them (one statement, prepared once, whatever the number of seqs).
    const SEQ_LIST: (&'static str, &'static str);
    /// Whether to bound the commits a History page reads by time too (partitions).
    const HEADS_BY_TIME: bool;
    /// How the versions live across a commit are bounded to those it does not add: the
    /// column SQL keeps to a filter on SQLite, whose planner otherwise ranges over
    /// `(site, commit_seq)` and sorts the whole trail before the commit (18.8 ms against
    /// 0.23 ms for the newest commit on the 730-day M trail, SQLite 3.40), instead of
    /// reading `(site, domain, config_file, commit_seq)` in the order asked.
    const OLDER_THAN: &'static str;
    /// Whether a per-row probe is written as a LATERAL join (PostgreSQL; given
    /// `r.id = (subquery)` it hashes the whole table instead) or by id (SQLite has no
    /// LATERAL).
    const LATERAL: bool;
}

impl Dialect for SqliteStore {
    const BACKEND: &'static str = "sqlite";
    const DERIVED_ID: &'static str = "unhex(printf('%012x80008%015x', c.seq, v.file_key))";
    const SEQ_LIST: (&'static str, &'static str) = ("seq IN (SELECT value FROM json_each('[' || ", " || ']'))");
    const HEADS_BY_TIME: bool = false;
    const OLDER_THAN: &'static str = "+commit_seq";
    const LATERAL: bool = false;
}

impl Dialect for PostgresStore {
    const BACKEND: &'static str = "postgres";
    const DERIVED_ID: &'static str =
        "(lpad(to_hex(c.seq), 12, '0') || '80008' || lpad(to_hex(v.file_key), 15, '0'))::uuid";
    const SEQ_LIST: (&'static str, &'static str) = ("seq = ANY(string_to_array(", ", ',')::bigint[])");
    const HEADS_BY_TIME: bool = true;
    const OLDER_THAN: &'static str = "commit_seq";
    const LATERAL: bool = true;
}

macro_rules! store {
    ($store:ident, $db:ty, $pool:ty) => {
        /// The audit trail on this backend, as one site sees it.
        #[derive(Debug, Clone)]
        pub struct $store {
            pub(in crate::store) pool: $pool,
            pub(in crate::store) site: String,
            writes: std::sync::Arc<std::sync::atomic::AtomicU64>,
            /// The writes among them that changed the audit trail's commits and files.
            trail_writes: std::sync::Arc<std::sync::atomic::AtomicU64>,
            /// Months whose partitions exist (PostgreSQL).
            pub(in crate::store) months: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<chrono::NaiveDate>>>,
        }

        impl $store {
            pub(in crate::store) fn new(pool: $pool, site: &str) -> Self {
                $store {
                    pool,
                    site: site.to_owned(),
                    writes: Default::default(),
                    trail_writes: Default::default(),
                    months: Default::default(),
                }
            }
            /// Counts a committed write (see [`Store::write_generation`]).
            pub(in crate::store) fn wrote(&self) {
                self.writes.fetch_add(1, std::sync::atomic::Ordering::Release);
            }
            /// Counts a committed write that changed the trail's commits or files (see
            /// [`Store::trail_generation`]); it is a write too.
            pub(in crate::store) fn wrote_trail(&self) {
                self.trail_writes
                    .fetch_add(1, std::sync::atomic::Ordering::Release);
                self.wrote();
            }
            /// The pool, for tests and maintenance.
            pub fn pool(&self) -> &$pool {
                &self.pool
            }
        }

        #[async_trait]
        impl Store for $store {
            fn backend(&self) -> &'static str {
                Self::BACKEND
            }
            fn site(&self) -> &str {
                &self.site
            }
            fn for_site(&self, site: &str) -> Arc<dyn Store> {
                Arc::new($store {
                    site: site.to_owned(),
                    writes: Default::default(),
                    trail_writes: Default::default(),
                    ..self.clone()
                })
            }
            fn write_generation(&self) -> u64 {
                self.writes.load(std::sync::atomic::Ordering::Acquire)
            }
            fn trail_generation(&self) -> u64 {
                self.trail_writes.load(std::sync::atomic::Ordering::Acquire)
            }
            async fn ping(&self) -> Result<(), StoreError> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }
        }
    };
}

store!(SqliteStore, sqlx::Sqlite, sqlx::SqlitePool);
store!(PostgresStore, sqlx::Postgres, sqlx::PgPool);

impl SqliteStore {
    /// Opens (creating if needed) the SQLite file, in WAL mode with full sync, and migrates.
    pub async fn connect(url: &str, site: &str) -> Result<Self, StoreError> {
        use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
        let opts = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            // A run inserts a row per file into several indexes: a page cache of 8 MiB per
            // connection (the default is 2 MiB; pages are allocated as used, so a server
            // holds up to that per busy connection) keeps their hot pages instead of
            // spilling mid-transaction, and the statement journals of those multi-row
            // inserts stay in memory.
            .pragma("cache_size", "-8192")
            .pragma("temp_store", "memory")
            // SQLite runs on a worker thread per connection that hands rows over through a
            // channel; one of a History page's size (and more) lets the worker step a
            // whole page without waiting for the reader to catch up.
            .row_buffer_size(1024);
        if let Some(parent) = opts.get_filename().parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(sqlx::Error::Io)?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            // A connection given back while sqlx still counts a transaction open is closed,
            // not reused. A `COMMIT` that fails (a full disk: SQLite has rolled the
            // transaction back already) leaves the count at one, the `ROLLBACK` sent when
            // the transaction is dropped fails too ("no transaction is active"), and every
            // later `BEGIN IMMEDIATE` on that connection was refused as a savepoint
            // statement: the audit trail stayed unavailable after the disk had room again.
            // A dropped transaction whose `ROLLBACK` is still queued is closed as well (a
            // failed request's); the `ROLLBACK` runs before the connection closes.
            .after_release(|conn, _| Box::pin(async move { Ok(!sqlx::Connection::is_in_transaction(conn)) }))
            .connect_with(opts)
            .await?;
        sqlx::migrate!("../../migrations/sqlite").run(&pool).await?;
        Ok(SqliteStore::new(pool, site))
    }

    /// A write transaction: `BEGIN IMMEDIATE`, which takes SQLite's write lock at once and
    /// waits for it (the busy timeout). A deferred `BEGIN` whose first statement reads
    /// holds a snapshot, and if another connection writes before its first write, SQLite
    /// fails that write with `SQLITE_BUSY` at once, without waiting: a run's audit
    /// records were lost that way when a mail or drill record landed in between.
    pub(super) async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, StoreError> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// SQLite keeps one table: nothing to create.
    pub(super) async fn ensure_month(&self, _month: chrono::NaiveDate) -> Result<(), StoreError> {
        let _ = &self.months;
        Ok(())
    }

    /// Deletes the rows before `cutoff`.
    pub(super) async fn drop_before(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
        cutoff: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        self.delete_rows_before(tx, cutoff).await
    }
}

impl PostgresStore {
    /// A write transaction: PostgreSQL's row locks need no more than `BEGIN`.
    pub(super) async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, StoreError> {
        Ok(self.pool.begin().await?)
    }

    /// Connects to PostgreSQL and migrates (sqlx serialises concurrent migrators).
    pub async fn connect(url: &str, site: &str) -> Result<Self, StoreError> {
        // Generic plans: every statement is prepared once per connection and planned once.
        // Left to choose, PostgreSQL plans most of them anew on every call (a custom plan
        // looks cheaper for the bound values), and planning over the monthly partitions
        // costs more than running: 0.25 ms against 0.12 for History's page, more with
        // every month kept. Our statements filter on indexed keys (site, domain, path,
        // seq) and time ranges the partitions prune at run time, so one plan fits every
        // value; and it is the same plan whatever the other sites hold, which a custom
        // plan is not (measured in docs/benchmarks.md, "A fleet on one PostgreSQL").
        // Set once a connection opens rather than as a startup option, which a pooler
        // in front of PostgreSQL (PgBouncer) may refuse.
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(|conn, _| {
                Box::pin(async move {
                    sqlx::Executor::execute(&mut *conn, "SET plan_cache_mode = force_generic_plan").await?;
                    Ok(())
                })
            })
            .connect(url)
            .await?;
        sqlx::migrate!("../../migrations/postgres").run(&pool).await?;
        let store = PostgresStore::new(pool, site);
        let now = Utc::now();
        for ahead in 0..3 {
            if let Some(m) = now.checked_add_months(chrono::Months::new(ahead)) {
                store.ensure_month(audit::month_of(m)).await?;
            }
        }
        Ok(store)
    }

    /// Creates the month's partitions if they do not exist (once per process and month).
    pub(super) async fn ensure_month(&self, month: chrono::NaiveDate) -> Result<(), StoreError> {
        if self.months.lock().map(|m| m.contains(&month)).unwrap_or(false) {
            return Ok(());
        }
        sqlx::query("SELECT config_backup_ensure_month($1)")
            .bind(month)
            .execute(&self.pool)
            .await?;
        if let Ok(mut m) = self.months.lock() {
            m.insert(month);
        }
        Ok(())
    }

    /// Drops the monthly partitions that end at or before `cutoff`, and deletes the rows
    /// before it from the month it falls in: the cost follows what is removed, not the
    /// table.
    pub(super) async fn drop_before(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
        cutoff: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let boundary = audit::month_of(cutoff);
        let parts = sqlx::query(
            "SELECT c.relname AS part, p.relname AS parent FROM pg_inherits i \
             JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent \
             WHERE p.relname IN ('config_commits', 'config_file_changes')",
        )
        .fetch_all(&mut **tx)
        .await?;
        let mut removed = 0u64;
        for r in &parts {
            let (part, parent): (String, String) = (r.try_get("part")?, r.try_get("parent")?);
            let Some(month) = audit::partition_month(&part, &parent) else {
                continue;
            };
            if month >= boundary {
                continue;
            }
            if parent == "config_commits" {
                let n: i64 = sqlx::query(&format!("SELECT COUNT(*) AS n FROM \"{part}\""))
                    .fetch_one(&mut **tx)
                    .await?
                    .try_get("n")?;
                removed += n as u64;
            }
            sqlx::query(&format!("DROP TABLE \"{part}\""))
                .execute(&mut **tx)
                .await?;
            if let Ok(mut m) = self.months.lock() {
                m.remove(&month);
            }
        }
        Ok(removed + self.delete_rows_before(tx, cutoff).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A write transaction that read first is not failed by a write another connection
    /// tries in the meantime: that write waits for it (as a run's audit records and a
    /// mail or drill record do).
    #[tokio::test]
    async fn a_write_transaction_that_read_first_is_not_failed_by_another_writer() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("audit.db").display());
        let store = SqliteStore::connect(&url, "default").await.unwrap();
        sqlx::query("CREATE TABLE t (x INTEGER)")
            .execute(&store.pool)
            .await
            .unwrap();

        let mut tx = store.begin_write().await.unwrap();
        sqlx::query("SELECT count(*) FROM t").fetch_one(&mut *tx).await.unwrap();
        let (done, mut other_done) = tokio::sync::oneshot::channel();
        let pool = store.pool.clone();
        let other = tokio::spawn(async move {
            let r = sqlx::query("INSERT INTO t VALUES (2)").execute(&pool).await;
            let _ = done.send(());
            r
        });
        // Time for the other write to land, were it let through (a deferred BEGIN lets
        // it, and the transaction's own write then fails with SQLITE_BUSY at once).
        let landed = tokio::time::timeout(Duration::from_millis(300), &mut other_done)
            .await
            .is_ok();
        assert!(!landed, "another connection wrote inside the write transaction");
        sqlx::query("INSERT INTO t VALUES (1)").execute(&mut *tx).await.unwrap();
        tx.commit().await.unwrap();
        other.await.unwrap().unwrap();
        let rows: Vec<i64> = sqlx::query_scalar("SELECT x FROM t ORDER BY rowid")
            .fetch_all(&store.pool)
            .await
            .unwrap();
        assert_eq!(rows, [1, 2], "the transaction's write first, then the other's");
    }
}
