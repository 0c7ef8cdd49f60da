//! The config-backup server: the `configbackup.v1.ConfigBackup` gRPC service over the
//! backup engine, bearer-JWT auth, health and reflection. The only crate that knows tonic.

pub mod allocator;
pub mod answers;
pub mod auth;
pub mod config;
pub mod convert;
pub mod errors;
pub mod metrics;
pub mod params;
pub mod refusals;
pub mod service;
pub mod startup;
pub mod telemetry;

pub use config::ServerSettings;
pub use startup::Application;

/// An API error: a gRPC status built in [`errors`], the one place that maps errors to codes.
#[derive(Debug)]
pub struct ApiError(pub tonic::Status);
