//! End-to-end tests of the config-backup server: the real server on port 0, real git
//! repositories, SQLite and PostgreSQL.

/// Instantiates `async fn name(backend: Backend)` tests once per database backend.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(config_backup_tests::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(config_backup_tests::Backend::Postgres).await
                }
            )*
        }
    };
}

mod alerting;
mod audit;
mod auth;
mod backup;
mod chain;
mod console;
mod cors;
mod diff;
mod diskfull;
mod drill;
mod fuzz;
mod grpcurl;
mod history;
mod hostile;
mod mail;
mod metadata;
mod ops;
mod process;
mod recovery;
mod rest;
mod retention;
mod rollback;
mod secrets;
mod services;
mod signing;
mod sites;
mod ssh;
mod status;
mod summaries;
