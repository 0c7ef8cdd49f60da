//! The server's settings: the engine's, plus where to listen and how to check tokens.

use std::net::SocketAddr;

use config_backup_core::Settings;
use config_backup_core::settings::{Env, SettingsError};

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
    /// The server's settings, from the one snapshot of the environment.
    pub fn from_env(env: &Env) -> Result<ServerSettings, SettingsError> {
        let engine = Settings::from_env(env)?;
        let grpc_listen = env.address("GRPC_LISTEN_ADDR", "127.0.0.1:50051")?;
        let http_listen = env.address("HTTP_LISTEN_ADDR", "127.0.0.1:8080")?;
        let metrics_listen = env.address("METRICS_LISTEN_ADDR", "127.0.0.1:9187")?;
        let mail = config_backup_notify::MailSettings::from_env(env)?;
        let (secret, secret_source) = Secret::load(env, &engine.data_dir)?;
        let cors_origins = env
            .parsed("HTTP_CORS_ALLOWED_ORIGINS", config_backup_gateway::parse_cors_origins)?
            .unwrap_or_default();
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

impl ServerSettings {
    /// The effective configuration, one `(variable, value)` per setting in force (defaults
    /// included), for `config-backup-server config`. Secrets never appear: a URL's password
    /// is `***`, the JWT secret is named by where it comes from, key and password files by
    /// their path.
    pub fn effective(&self) -> Vec<(String, String)> {
        use config_backup_core::remote::redact_url;
        let e = &self.engine;
        let path = |p: &std::path::Path| p.display().to_string();
        let opt = |p: &Option<std::path::PathBuf>| p.as_deref().map(path).unwrap_or_default();
        let secs = |d: std::time::Duration| d.as_secs().to_string();
        let mut out: Vec<(String, String)> = vec![
            ("CONFIG_BACKUP_SITE".into(), e.site.to_string()),
            ("CONFIG_BACKUP_DATA_DIR".into(), path(&e.data_dir)),
            ("CONFIG_BACKUP_SOURCE_ROOT".into(), path(&e.source_root)),
            (
                "CONFIG_BACKUP_DOMAINS".into(),
                e.configured_domains().replace(", ", ","),
            ),
        ];
        for d in &e.domains {
            out.push((
                format!("CONFIG_BACKUP_PATHS__{}", d.domain.as_str()),
                d.patterns.join(","),
            ));
        }
        out.extend([
            ("DATABASE_URL".into(), redact_url(&e.database_url)),
            ("GIT_BACKUP_REPO".into(), redact_url(&e.git.remote)),
            ("GIT_BACKUP_BRANCH".into(), e.git.branch.clone()),
            ("GIT_WORKING_DIR".into(), path(&e.git.working_dir)),
            ("GIT_USER_NAME".into(), e.git.user_name.clone()),
            ("GIT_USER_EMAIL".into(), e.git.user_email.clone()),
            ("GIT_SSH_KEY_PATH".into(), opt(&e.git.ssh_key_path)),
            (
                "GIT_SSH_KEY_PASSPHRASE_FILE".into(),
                opt(&e.git.ssh_key_passphrase_file),
            ),
            ("GIT_SSH_KNOWN_HOSTS".into(), opt(&e.git.ssh_known_hosts)),
            ("GIT_CONNECT_TIMEOUT_SECONDS".into(), secs(e.git.connect_timeout)),
            ("GIT_TRANSFER_TIMEOUT_SECONDS".into(), secs(e.git.transfer_timeout)),
            ("CONFIG_BACKUP_ENABLED".into(), e.schedule.enabled.to_string()),
            ("CONFIG_BACKUP_HOUR_UTC".into(), e.schedule.hour.to_string()),
            ("CONFIG_BACKUP_MINUTE_UTC".into(), e.schedule.minute.to_string()),
            (
                "CONFIG_BACKUP_GIT_RETENTION_MONTHS".into(),
                e.retention_months.to_string(),
            ),
            ("CONFIG_BACKUP_LOCK_TTL_SECONDS".into(), secs(e.lock_ttl)),
            (
                "CONFIG_BACKUP_FULL_REHASH_HOURS".into(),
                (e.full_rehash_interval.as_secs() / 3600).to_string(),
            ),
            (
                "CONFIG_ROLLBACK_COMMAND_TIMEOUT_SECONDS".into(),
                secs(e.rollback.command_timeout),
            ),
            ("CONFIG_ROLLBACK_DEADLINE_SECONDS".into(), secs(e.rollback.deadline)),
            ("CONFIG_BACKUP_SECRETS_KEY_FILE".into(), path(&e.secrets.key_file)),
            ("GRPC_LISTEN_ADDR".into(), self.grpc_listen.to_string()),
            ("HTTP_LISTEN_ADDR".into(), self.http_listen.to_string()),
            ("METRICS_LISTEN_ADDR".into(), self.metrics_listen.to_string()),
            (
                "HTTP_CORS_ALLOWED_ORIGINS".into(),
                self.cors_origins
                    .iter()
                    .filter_map(|o| o.to_str().ok())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            (
                "AUTH_JWT_SECRET".into(),
                match &self.secret_source {
                    SecretSource::Env => "*** (from AUTH_JWT_SECRET)".to_owned(),
                    SecretSource::File(p) => format!("*** (from AUTH_JWT_SECRET_FILE {})", p.display()),
                    SecretSource::Generated(p) | SecretSource::DataDir(p) => {
                        format!("*** (generated, in {})", p.display())
                    }
                },
            ),
        ]);
        for (d, c) in &e.rollback.commands {
            for (kind, cmd) in [("VALIDATE", &c.validate), ("RELOAD", &c.reload), ("VERIFY", &c.verify)] {
                if let Some(cmd) = cmd {
                    out.push((format!("CONFIG_ROLLBACK_{kind}__{}", d.as_str()), cmd.clone()));
                }
            }
        }
        match &self.mail {
            None => out.push(("SMTP_HOST".into(), String::new())),
            Some(m) => out.extend([
                ("SMTP_HOST".into(), m.host.clone()),
                ("SMTP_PORT".into(), m.port.to_string()),
                ("SMTP_SECURITY".into(), format!("{:?}", m.security).to_ascii_lowercase()),
                ("SMTP_USERNAME".into(), m.username.clone().unwrap_or_default()),
                ("SMTP_PASSWORD_FILE".into(), opt(&m.password_file)),
                ("SMTP_FROM".into(), m.from.to_string()),
                (
                    "CONFIG_BACKUP_NOTIFY_RECIPIENTS".into(),
                    m.recipients.iter().map(|r| r.to_string()).collect::<Vec<_>>().join(","),
                ),
                ("CONFIG_BACKUP_NOTIFY_ON_CHANGES".into(), m.only_on_changes.to_string()),
                ("CONFIG_BACKUP_NOTIFY_INCLUDE_DIFF".into(), m.include_diff.to_string()),
            ]),
        }
        out
    }
}
