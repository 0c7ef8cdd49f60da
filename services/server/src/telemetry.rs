//! Logging: human-readable by default, JSON with `LOG_FORMAT=json`; `RUST_LOG` filters.

use config_backup_core::settings::{Env, SettingsError};
use tracing_subscriber::EnvFilter;

/// How to log, from `LOG_FORMAT` and `RUST_LOG`.
#[derive(Debug)]
pub struct Logging {
    filter: EnvFilter,
    json: bool,
}

impl Logging {
    /// Reads `LOG_FORMAT` (text or json) and `RUST_LOG` (info when unset); a bad value
    /// stops start-up like any other bad setting.
    pub fn from_env(env: &Env) -> Result<Logging, SettingsError> {
        let json = env.choice("LOG_FORMAT", "text", &["text", "json"])? == "json";
        let filter = env
            .parsed("RUST_LOG", |f| {
                EnvFilter::builder()
                    .parse(f)
                    .map_err(|e| format!("is not a filter ({e})"))
            })?
            .unwrap_or_else(|| EnvFilter::new("info"));
        Ok(Logging { filter, json })
    }

    /// Installs the global subscriber (once; later calls are ignored).
    pub fn install(self) {
        let builder = tracing_subscriber::fmt()
            .with_env_filter(self.filter)
            .with_writer(std::io::stderr);
        let _ = if self.json {
            builder.json().try_init()
        } else {
            builder.try_init()
        };
    }
}

/// Reads the logging settings and installs the subscriber.
pub fn init(env: &Env) -> Result<(), SettingsError> {
    Logging::from_env(env)?.install();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filter_with_an_unknown_level_is_refused() {
        for bad in ["config_backup=loud", "info,[", "=debug"] {
            let env: Env = [("RUST_LOG", bad)].into_iter().collect();
            assert!(Logging::from_env(&env).is_err(), "{bad}");
        }
        let env: Env = [("RUST_LOG", "info,config_backup_core=debug")].into_iter().collect();
        assert!(Logging::from_env(&env).is_ok());
    }
}
