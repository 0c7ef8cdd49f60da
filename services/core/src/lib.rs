//! The config-backup engine: reads each domain's configuration files, detects changes
//! by SHA-256, commits them to a git working copy (one commit per domain), pushes to
//! the backup remote and keeps an SQL audit trail. It knows nothing of gRPC, HTTP or
//! JSON: the server crate adapts it to the API.

pub mod command;
pub mod diff;
pub mod domain;
pub mod drill;
pub mod engine;
pub mod error;
pub mod fs;
pub mod known_hosts;
pub mod maintenance;
pub mod metadata;
pub mod parallel;
pub mod remote;
pub mod repo;
pub mod rollback;
pub mod secrets;
pub mod service_paths;
pub mod settings;
pub mod signing;
pub mod sources;
pub mod statcache;
pub mod store;
pub mod summary;
pub mod transport;

pub use domain::{Actor, CommitHash, CommitPrefix, Domain, RepoPath};
pub use engine::{BackupParams, BackupReport, DomainReport, Engine, EngineStatus, PushReport};
pub use error::EngineError;
pub use settings::Settings;
