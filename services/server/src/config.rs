//! The server's settings: the engine's, plus where to listen and how to check tokens.

use std::net::SocketAddr;

use config_backup_core::Settings;
use config_backup_core::settings::SettingsError;

use crate::auth::{Secret, SecretSource};

/// Everything the server needs.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// The engine's settings.
    pub engine: Settings,
    /// `GRPC_LISTEN_ADDR` (default 127.0.0.1:50051); port 0 picks a free port.
    pub grpc_listen: SocketAddr,
    /// `HTTP_LISTEN_ADDR` (default 127.0.0.1:8080): the REST shim; port 0 picks a free port.
    pub http_listen: SocketAddr,
    /// `METRICS_LISTEN_ADDR` (default 127.0.0.1:9187): Prometheus `/metrics`.
    pub metrics_listen: SocketAddr,
    /// The JWT secret.
    pub secret: Secret,
    /// Where the secret came from.
    pub secret_source: SecretSource,
    /// Make the first backup at start when the repository has no commit yet.
    pub initial_backup: bool,
    /// Mail to the NOC (`SMTP_HOST` set).
    pub mail: Option<config_backup_notify::MailSettings>,
    /// `HTTP_CORS_ALLOWED_ORIGINS`: exact origins whose pages may call the REST API.
    pub cors_origins: Vec<axum::http::HeaderValue>,
}

impl ServerSettings {
    /// Reads the settings through `get` (normally the environment).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<ServerSettings, SettingsError> {
        let engine = Settings::from_lookup(&get)?;
        let grpc_listen = address(&get, "GRPC_LISTEN_ADDR", "127.0.0.1:50051")?;
        let http_listen = address(&get, "HTTP_LISTEN_ADDR", "127.0.0.1:8080")?;
        let metrics_listen = address(&get, "METRICS_LISTEN_ADDR", "127.0.0.1:9187")?;
        let mail = config_backup_notify::MailSettings::from_lookup(&get)?;
        let (secret, secret_source) = Secret::load(&get, &engine.data_dir)?;
        let cors_origins = config_backup_gateway::parse_cors_origins(
            &get("HTTP_CORS_ALLOWED_ORIGINS").unwrap_or_default(),
        )
        .map_err(|message| SettingsError {
            var: "HTTP_CORS_ALLOWED_ORIGINS".to_owned(),
            message,
        })?;
        Ok(ServerSettings {
            engine,
            grpc_listen,
            http_listen,
            metrics_listen,
            secret,
            secret_source,
            initial_backup: true,
            mail,
            cors_origins,
        })
    }
}

fn address(get: &impl Fn(&str) -> Option<String>, var: &str, default: &str) -> Result<SocketAddr, SettingsError> {
    let listen = get(var)
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| default.to_owned());
    listen.trim().parse().map_err(|_| SettingsError {
        var: var.to_owned(),
        message: format!("{listen:?} is not an address: expected host:port, e.g. {default}"),
    })
}
