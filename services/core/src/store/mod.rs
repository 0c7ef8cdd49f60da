//! The audit trail behind one trait, with SQLite (the embedded default) and PostgreSQL
//! (production, shared by replicas) implementations. The backend is chosen from the
//! URL scheme; migrations are embedded and applied at connect.
//!
//! [`Store`] is the sum of a trait per concern, each in its own file with its records and
//! its SQL: [`Runs`], [`Locks`], [`RollbackTasks`], [`AuditTrail`], [`Sites`],
//! [`Notices`], [`Metrics`], [`Drills`]. `backend.rs` holds the two stores and their [`Dialect`]s.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::Row;
use uuid::Uuid;

use crate::domain::{ChangeKind, Domain};

macro_rules! text_enum {
    ($t:ty { $($v:ident => $s:literal),* $(,)? }) => {
        impl $t {
            /// The name stored in the database.
            pub fn as_str(self) -> &'static str {
                match self { $(<$t>::$v => $s),* }
            }
            /// Parses a stored name.
            pub fn parse(s: &str) -> Result<Self, StoreError> {
                match s {
                    $($s => Ok(<$t>::$v),)*
                    other => Err(StoreError::Corrupt(format!("unknown {} {other:?}", stringify!($t)))),
                }
            }
        }
    };
}

mod audit;
mod backend;
mod drills;
mod locks;
mod metrics;
mod notices;
mod rollbacks;
mod runs;
mod sites;

pub use audit::{
    AuditCommit, AuditRow, AuditTrail, ChainCommit, ChainReport, DomainSummary, HistoryCursor, HistoryQuery, LiveFile,
    TRAILER_AUDIT_CHAIN,
};
use backend::{Dialect, micros};
pub use backend::{PostgresStore, SqliteStore};
pub use drills::{DomainDrill, DomainProof, DrillRecord, Drills};
pub use locks::{LockAttempt, LockHolder, LockKind, Locks, holder_alive, hostname, instance};
pub use metrics::{Metrics, MetricsSnapshot};
pub use notices::{MailRecord, Notices, SecretReveal};
pub use rollbacks::{RollbackStage, RollbackTask, RollbackTasks, StageRecord};
use runs::RUN_COLUMNS;
pub use runs::{PushOutcome, RunOutcome, RunRecord, Runs, Trigger};
pub use sites::{SiteAnnouncement, SiteRecord, Sites};

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or could not be reached.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// Migrations failed.
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A row holds a value this version does not know.
    #[error("database row: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Why the database failed, in words a NOC can act on and without internals: full,
    /// unreachable, read-only, refusing connections... with the database's own short
    /// reason. `None` for errors that are not about the database's state (a bug, a
    /// constraint), which are logged, not shown.
    pub fn cause(&self) -> Option<String> {
        let short = |s: &str| crate::domain::bounded(s, 200);
        match self {
            StoreError::Database(sqlx::Error::Database(db)) => {
                let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
                // SQLite: FULL 13, IOERR 10, READONLY 8, BUSY 5, LOCKED 6, CANTOPEN 14;
                // PostgreSQL: classes 53 (insufficient resources), 57 (operator
                // intervention), 08 (connection), 58 (system error).
                let known = matches!(code.as_str(), "13" | "10" | "8" | "5" | "6" | "14")
                    || ["53", "57", "08", "58"].iter().any(|c| code.starts_with(c))
                    || code.starts_with("13")
                    || code.starts_with("10");
                known.then(|| short(db.message()))
            }
            StoreError::Database(sqlx::Error::Io(e)) => Some(format!("cannot be reached: {}", short(&e.to_string()))),
            StoreError::Database(sqlx::Error::PoolTimedOut) => {
                Some("no connection within the pool's timeout: the database is unreachable or overloaded".to_owned())
            }
            StoreError::Database(sqlx::Error::PoolClosed) => Some("the connection pool is closed".to_owned()),
            StoreError::Database(sqlx::Error::Tls(e)) => Some(format!("TLS: {}", short(&e.to_string()))),
            _ => None,
        }
    }
}

/// The audit trail of one site (the store's own), in a database that may hold many.
/// Every write and every read is the site's, except [`Sites::list_sites`], retention
/// (database-wide) and History of an explicit [`HistoryQuery::site`].
#[async_trait]
pub trait Store:
    Runs + Locks + RollbackTasks + AuditTrail + Sites + Notices + Metrics + Drills + Send + Sync + std::fmt::Debug
{
    /// The backend's name ("sqlite", "postgres").
    fn backend(&self) -> &'static str;
    /// The site this store reads and writes.
    fn site(&self) -> &str;
    /// The same database, seen as another site's store (for reading its trail).
    fn for_site(&self, site: &str) -> Arc<dyn Store>;
    /// Grows with every write this process committed: what it read before is stale when
    /// this has moved (writes by other processes sharing the database are not counted).
    fn write_generation(&self) -> u64;
    /// Grows with every write this process committed to the audit trail's commits and
    /// files (recording, retention, rewritten hashes): what History read before is stale
    /// when this has moved. Like [`Store::write_generation`], other processes' writes are
    /// not counted.
    fn trail_generation(&self) -> u64;
    /// Whether the database answers.
    async fn ping(&self) -> Result<(), StoreError>;
}

pub use crate::domain::DEFAULT_SITE;

/// Connects to `url` (`sqlite:` or `postgres://`) as `site`'s store, and applies
/// migrations.
pub async fn connect(url: &str, site: &str) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PostgresStore::connect(url, site).await?))
    } else {
        Ok(Arc::new(SqliteStore::connect(url, site).await?))
    }
}
