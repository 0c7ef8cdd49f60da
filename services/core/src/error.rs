//! The engine's errors, by kind. The server maps each kind to one gRPC code in one
//! place; the REST shim maps gRPC codes to HTTP statuses in one place.

use crate::repo::RepoError;
use crate::store::{LockHolder, StoreError};

/// An engine failure.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A request field is invalid.
    #[error("{field}: {message}")]
    InvalidArgument {
        /// The field, as named in the API.
        field: &'static str,
        /// What is wrong and what is allowed.
        message: String,
    },
    /// Something named does not exist.
    #[error("{0}")]
    NotFound(String),
    /// Another backup or rollback holds the engine lock.
    #[error("another operation is running: {0}")]
    Busy(LockHolder),
    /// The working copy cannot be used as it is (foreign remote, damaged): a human must look.
    #[error("{0}")]
    Repository(#[source] RepoError),
    /// The request cannot be carried out in the server's present state (it lacks a
    /// privilege the request needs); nothing was changed.
    #[error("{0}")]
    FailedPrecondition(String),
    /// The database failed.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// Anything else.
    #[error("{0}")]
    Internal(String),
}

impl From<RepoError> for EngineError {
    fn from(e: RepoError) -> Self {
        match e {
            RepoError::ForeignRemote { .. }
            | RepoError::Damaged { .. }
            | RepoError::NotARepository(_)
            | RepoError::Clone { .. } => EngineError::Repository(e),
            other => EngineError::Internal(other.to_string()),
        }
    }
}

/// Runs blocking work (git2, file I/O) off the async runtime, inside the caller's span
/// (its log lines keep the request id and the run).
pub async fn blocking<T, F>(f: F) -> Result<T, EngineError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(f))
        .await
        .map_err(|e| EngineError::Internal(format!("blocking task failed: {e}")))
}
