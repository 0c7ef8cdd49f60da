//! The configuration, read once from the environment (`Env`), documented once
//! (`catalog`). Every problem is reported with the variable's name, the value it got and
//! what is allowed, so a bad deployment stops at start with a message an operator can act
//! on. This file holds the engine's settings; the server, the mailer and the scheduler
//! read theirs from the same `Env`.

pub mod catalog;
mod env;

use std::path::PathBuf;
use std::time::Duration;

pub use env::{Env, Got, SettingsError};

use crate::domain::{Domain, Site};

/// Default glob patterns per domain (the product's standard site layout).
pub fn default_patterns(domain: Domain) -> Option<&'static str> {
    match domain {
        Domain::Gateway => Some("scripts/gateway/*.nft,scripts/gateway/watch_config.sh"),
        Domain::Dns => Some("config/unbound/unbound.conf,config/unbound/unbound.conf.d/*"),
        Domain::Radius => Some("config/radius/**"),
        Domain::Kea => Some("config/kea/kea-dhcp4.conf"),
        Domain::Ospf => None,
    }
}

/// One domain's sources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainSpec {
    /// The domain.
    pub domain: Domain,
    /// Glob patterns relative to the source root.
    pub patterns: Vec<String>,
}

/// The daily schedule (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// `CONFIG_BACKUP_ENABLED`.
    pub enabled: bool,
    /// `CONFIG_BACKUP_HOUR_UTC`, 0–23.
    pub hour: u32,
    /// `CONFIG_BACKUP_MINUTE_UTC`, 0–59.
    pub minute: u32,
}

impl Schedule {
    /// `CONFIG_BACKUP_ENABLED`, `CONFIG_BACKUP_HOUR_UTC`, `CONFIG_BACKUP_MINUTE_UTC`.
    pub fn from_env(env: &Env) -> Result<Schedule, SettingsError> {
        Ok(Schedule {
            enabled: env.flag("CONFIG_BACKUP_ENABLED", true)?,
            hour: env.number("CONFIG_BACKUP_HOUR_UTC", 4, 0..=23)?,
            minute: env.number("CONFIG_BACKUP_MINUTE_UTC", 0, 0..=59)?,
        })
    }

    /// The cron expression (with seconds) of the daily run: `0 M H * * *`, in UTC.
    pub fn cron(&self) -> String {
        format!("0 {} {} * * *", self.minute, self.hour)
    }

    /// The first scheduled time strictly after `now`.
    pub fn next_after(&self, now: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
        use chrono::{Duration as D, TimeZone};
        let today = now
            .date_naive()
            .and_hms_opt(self.hour, self.minute, 0)
            .expect("validated hour/minute");
        let today = chrono::Utc.from_utc_datetime(&today);
        if today > now { today } else { today + D::days(1) }
    }

    /// The last scheduled time at or before `now`.
    pub fn last_at_or_before(&self, now: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
        self.next_after(now) - chrono::Duration::days(1)
    }
}

/// The git side: where the working copy is and where it pushes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitSettings {
    /// `GIT_BACKUP_REPO`: a local path, `file://`, `ssh://` or scp-like `user@host:path`.
    pub remote: String,
    /// Whether the remote is the embedded default (a bare repository this service creates).
    pub remote_is_embedded: bool,
    /// `GIT_BACKUP_BRANCH`.
    pub branch: String,
    /// `GIT_WORKING_DIR`.
    pub working_dir: PathBuf,
    /// `GIT_USER_NAME`.
    pub user_name: String,
    /// `GIT_USER_EMAIL`.
    pub user_email: String,
    /// `GIT_SSH_KEY_PATH`.
    pub ssh_key_path: Option<PathBuf>,
    /// `GIT_SSH_KNOWN_HOSTS`.
    pub ssh_known_hosts: Option<PathBuf>,
    /// `GIT_SSH_KEY_PASSPHRASE_FILE`.
    pub ssh_key_passphrase_file: Option<PathBuf>,
    /// `GIT_CONNECT_TIMEOUT_SECONDS`: bound on connecting to the remote.
    pub connect_timeout: Duration,
    /// `GIT_TRANSFER_TIMEOUT_SECONDS`: bound on any read or write to the remote that makes no progress.
    pub transfer_timeout: Duration,
    /// `CONFIG_BACKUP_SIGNING_KEY`: the ed25519 key every commit is signed with; none, unsigned.
    pub signing_key: Option<PathBuf>,
    /// `CONFIG_BACKUP_SIGNING_TRUST_START`: the last commit a restore drill does not
    /// require to be signed (history from before signing); none: every commit.
    pub signing_trust_start: Option<String>,
}

/// Commands run during a rollback of one domain (from the operator's configuration).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DomainCommands {
    /// `CONFIG_ROLLBACK_VALIDATE__<domain>`: checks the staged target files; `{dir}` is the staging directory.
    pub validate: Option<String>,
    /// `CONFIG_ROLLBACK_RELOAD__<domain>`: makes the service load its files.
    pub reload: Option<String>,
    /// `CONFIG_ROLLBACK_VERIFY__<domain>`: a health probe after the reload.
    pub verify: Option<String>,
    /// `CONFIG_ROLLBACK_SERVICE_PATHS__<domain>`: where the service reads the domain's
    /// files; validation sees the target there, in a private mount namespace.
    pub service_paths: Vec<crate::service_paths::ServicePath>,
}

/// Rollback settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollbackSettings {
    /// Per domain.
    pub commands: std::collections::BTreeMap<Domain, DomainCommands>,
    /// `CONFIG_ROLLBACK_COMMAND_TIMEOUT_SECONDS` (60).
    pub command_timeout: Duration,
    /// `CONFIG_ROLLBACK_DEADLINE_SECONDS` (300): a rollback still running then fails and reverts.
    pub deadline: Duration,
}

impl RollbackSettings {
    /// A domain's commands.
    pub fn commands(&self, domain: Domain) -> DomainCommands {
        self.commands.get(&domain).cloned().unwrap_or_default()
    }
}

/// Secret sealing: where the key is and which values are secrets.
#[derive(Debug, Clone)]
pub struct SecretsSettings {
    /// `CONFIG_BACKUP_SECRETS_KEY_FILE`, or `<data dir>/secrets.key`.
    pub key_file: PathBuf,
    /// Whether the key file is the default one, which is generated when missing. A key
    /// file named in the environment is never generated: missing, it stops the server.
    pub key_file_is_default: bool,
    /// `CONFIG_BACKUP_SECRETS__<domain>`: the built-in rules and the operator's additions.
    pub rules: std::collections::BTreeMap<Domain, crate::secrets::Rules>,
}

/// Everything the engine needs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `CONFIG_BACKUP_DATA_DIR`: the SQLite file, the default remote and working copy, the generated secret.
    pub data_dir: PathBuf,
    /// `CONFIG_BACKUP_SOURCE_ROOT`: the directory the globs are relative to.
    pub source_root: PathBuf,
    /// `CONFIG_BACKUP_DOMAINS` and `CONFIG_BACKUP_PATHS__<domain>`, in order.
    pub domains: Vec<DomainSpec>,
    /// The git side.
    pub git: GitSettings,
    /// The daily schedule.
    pub schedule: Schedule,
    /// `CONFIG_BACKUP_GIT_RETENTION_MONTHS`: audit rows older than this are deleted.
    pub retention_months: u32,
    /// `CONFIG_BACKUP_SITE` ("default"): the site this server backs up; every row it
    /// writes carries it, and its lock excludes only the site's other replicas.
    pub site: Site,
    /// `DATABASE_URL`: `sqlite:` or `postgres://`.
    pub database_url: String,
    /// `CONFIG_BACKUP_LOCK_TTL_SECONDS`: a lock whose holder stopped renewing it is free after this.
    pub lock_ttl: Duration,
    /// `CONFIG_BACKUP_FULL_REHASH_HOURS` (168): between full re-hashes, files whose metadata
    /// did not change are not read again (the stat cache); 0 reads every file at every run.
    pub full_rehash_interval: Duration,
    /// Rollback commands and bounds.
    pub rollback: RollbackSettings,
    /// Secret sealing.
    pub secrets: SecretsSettings,
}

impl Settings {
    /// The engine's settings, from the one snapshot of the environment.
    pub fn from_env(env: &Env) -> Result<Settings, SettingsError> {
        let data_dir = env.data_dir()?;
        let source_root = env.path("CONFIG_BACKUP_SOURCE_ROOT")?.ok_or_else(|| {
            env.invalid(
                "CONFIG_BACKUP_SOURCE_ROOT",
                "is required (or start the server with --sample-site)",
            )
        })?;
        if !source_root.is_dir() {
            return Err(env.invalid("CONFIG_BACKUP_SOURCE_ROOT", "is not a directory"));
        }
        let domains = domains(env)?;

        let remote_is_embedded = env.get("GIT_BACKUP_REPO").is_none();
        let remote = env
            .parsed("GIT_BACKUP_REPO", |r| {
                crate::remote::RemoteUrl::parse(r)?;
                if r.starts_with('.') {
                    return Err("is a relative path".to_owned());
                }
                Ok(r.to_owned())
            })?
            .unwrap_or_else(|| data_dir.join("remote.git").display().to_string());
        let branch = env
            .parsed("GIT_BACKUP_BRANCH", |b| match git2::Branch::name_is_valid(b) {
                Ok(true) => Ok(b.to_owned()),
                _ => Err("is not a valid branch name".to_owned()),
            })?
            .unwrap_or_else(|| "main".to_owned());
        let git = GitSettings {
            remote,
            remote_is_embedded,
            branch,
            working_dir: env
                .path("GIT_WORKING_DIR")?
                .unwrap_or_else(|| data_dir.join("working-copy")),
            user_name: env
                .parsed("GIT_USER_NAME", |n| {
                    if n.contains(['<', '>']) || n.chars().any(char::is_control) {
                        Err("is not a name git accepts".to_owned())
                    } else {
                        Ok(n.to_owned())
                    }
                })?
                .unwrap_or_else(|| "config-backup".to_owned()),
            user_email: env
                .parsed("GIT_USER_EMAIL", |m| {
                    let bad = m.contains(['<', '>']) || m.chars().any(|c| c.is_whitespace() || c.is_control());
                    match m.split_once('@') {
                        Some((user, host)) if !bad && !user.is_empty() && !host.is_empty() => Ok(m.to_owned()),
                        _ => Err("is not an address user@host".to_owned()),
                    }
                })?
                .unwrap_or_else(|| "config-backup@localhost".to_owned()),
            ssh_key_path: env.path("GIT_SSH_KEY_PATH")?,
            ssh_known_hosts: env.path("GIT_SSH_KNOWN_HOSTS")?,
            ssh_key_passphrase_file: env.path("GIT_SSH_KEY_PASSPHRASE_FILE")?,
            connect_timeout: Duration::from_secs(env.number("GIT_CONNECT_TIMEOUT_SECONDS", 10u64, 1..=600)?),
            transfer_timeout: Duration::from_secs(env.number("GIT_TRANSFER_TIMEOUT_SECONDS", 60u64, 1..=3600)?),
            signing_key: env.path("CONFIG_BACKUP_SIGNING_KEY")?,
            signing_trust_start: env.parsed("CONFIG_BACKUP_SIGNING_TRUST_START", |v| {
                if v.len() == 40 && v.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
                    Ok(v.to_owned())
                } else {
                    Err("is not a full commit hash".to_owned())
                }
            })?,
        };

        let database_url = env
            .parsed("DATABASE_URL", |u| {
                if ["sqlite:", "postgres://", "postgresql://"]
                    .iter()
                    .any(|s| u.starts_with(s))
                {
                    Ok(u.to_owned())
                } else {
                    Err("has an unsupported scheme".to_owned())
                }
            })?
            .unwrap_or_else(|| format!("sqlite://{}?mode=rwc", data_dir.join("config-backup.db").display()));

        let mut commands = std::collections::BTreeMap::new();
        for d in Domain::ALL {
            let shell = |kind: &str| env.parsed(&format!("CONFIG_ROLLBACK_{kind}__{d}"), check_shell);
            let c = DomainCommands {
                validate: shell("VALIDATE")?,
                reload: shell("RELOAD")?,
                verify: shell("VERIFY")?,
                service_paths: env
                    .parsed(
                        &format!("CONFIG_ROLLBACK_SERVICE_PATHS__{d}"),
                        crate::service_paths::parse,
                    )?
                    .unwrap_or_default(),
            };
            if c != DomainCommands::default() {
                commands.insert(d, c);
            }
        }
        let rollback = RollbackSettings {
            commands,
            command_timeout: Duration::from_secs(env.number(
                "CONFIG_ROLLBACK_COMMAND_TIMEOUT_SECONDS",
                60u64,
                1..=3600,
            )?),
            deadline: Duration::from_secs(env.number("CONFIG_ROLLBACK_DEADLINE_SECONDS", 300u64, 5..=86400)?),
        };
        let mut rules = std::collections::BTreeMap::new();
        for d in Domain::ALL {
            let var = format!("CONFIG_BACKUP_SECRETS__{d}");
            let text = env.get(&var).unwrap_or_default();
            let r = crate::secrets::Rules::parse(d, text).map_err(|e| env.invalid(&var, e.to_string()))?;
            rules.insert(d, r);
        }
        let secrets = match env.path("CONFIG_BACKUP_SECRETS_KEY_FILE")? {
            Some(key_file) => SecretsSettings {
                key_file,
                key_file_is_default: false,
                rules,
            },
            None => SecretsSettings {
                key_file: data_dir.join("secrets.key"),
                key_file_is_default: true,
                rules,
            },
        };
        Ok(Settings {
            rollback,
            secrets,
            data_dir,
            source_root,
            domains,
            git,
            schedule: Schedule::from_env(env)?,
            retention_months: env.number("CONFIG_BACKUP_GIT_RETENTION_MONTHS", 24, 1..=1200)?,
            site: env.parsed("CONFIG_BACKUP_SITE", Site::parse)?.unwrap_or_default(),
            database_url,
            lock_ttl: Duration::from_secs(env.number("CONFIG_BACKUP_LOCK_TTL_SECONDS", 30u64, 5..=3600)?),
            full_rehash_interval: Duration::from_secs(
                3600 * env.number("CONFIG_BACKUP_FULL_REHASH_HOURS", 168u64, 0..=8760)?,
            ),
        })
    }

    /// The sealer: reads the secrets key file, or generates the default one when it is
    /// missing. A key file named in `CONFIG_BACKUP_SECRETS_KEY_FILE` is never generated.
    pub fn sealer(&self) -> Result<crate::secrets::Sealer, SettingsError> {
        let s = &self.secrets;
        let var = "CONFIG_BACKUP_SECRETS_KEY_FILE";
        let keys = if s.key_file_is_default && !s.key_file.exists() {
            tracing::warn!(
                file = %s.key_file.display(),
                "generated a new secrets key: back it up apart from the backup repository (docs/operations.md)"
            );
            crate::secrets::Keyring::generate(&s.key_file)
                .map_err(|e| SettingsError::new(var, format!("cannot create the key file: {e}")))?
        } else {
            crate::secrets::Keyring::load(&s.key_file).map_err(|e| {
                SettingsError::new(
                    var,
                    format!(
                        "{e}; without the key the sealed secrets cannot be restored: \
                         restore the key file from its backup (docs/operations.md, \"The secrets key\")"
                    ),
                )
            })?
        };
        Ok(crate::secrets::Sealer::new(keys, s.rules.clone()))
    }

    /// The commit signer, if `CONFIG_BACKUP_SIGNING_KEY` is set: read now, so a key that
    /// cannot be used stops the server at start.
    pub fn signer(&self) -> Result<Option<crate::signing::Signer>, SettingsError> {
        self.git
            .signing_key
            .as_deref()
            .map(crate::signing::Signer::load)
            .transpose()
            .map_err(|e| SettingsError::new("CONFIG_BACKUP_SIGNING_KEY", e))
    }

    /// The settings of one domain, if configured.
    pub fn domain(&self, domain: Domain) -> Option<&DomainSpec> {
        self.domains.iter().find(|d| d.domain == domain)
    }

    /// The configured domain names, for error messages.
    pub fn configured_domains(&self) -> String {
        self.domains
            .iter()
            .map(|d| d.domain.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// `CONFIG_BACKUP_DOMAINS` and each domain's `CONFIG_BACKUP_PATHS__<domain>`, in order.
fn domains(env: &Env) -> Result<Vec<DomainSpec>, SettingsError> {
    const DOMAINS: &str = "CONFIG_BACKUP_DOMAINS";
    let listed = env.get(DOMAINS).is_some();
    let names = if listed {
        env.list(DOMAINS)
    } else {
        ["gateway", "dns", "radius", "kea"].map(str::to_owned).to_vec()
    };
    let mut domains: Vec<DomainSpec> = Vec::new();
    for name in names {
        let domain: Domain = name
            .parse()
            .map_err(|e: crate::domain::UnknownDomain| env.invalid(DOMAINS, e.to_string()))?;
        if domains.iter().any(|d| d.domain == domain) {
            return Err(env.invalid(DOMAINS, format!("lists {domain} twice")));
        }
        let var = format!("CONFIG_BACKUP_PATHS__{domain}");
        let patterns = match env.get(&var) {
            Some(_) => env.list(&var),
            None => default_patterns(domain)
                .map(|p| p.split(',').map(str::to_owned).collect())
                .unwrap_or_default(),
        };
        if patterns.is_empty() {
            return Err(env.invalid(&var, format!("gives domain {domain} no paths")));
        }
        for p in &patterns {
            check_pattern(p).map_err(|m| {
                env.invalid(
                    &var,
                    crate::domain::bounded(&format!("pattern {} {m}", crate::domain::quote_input(p)), 400),
                )
            })?;
        }
        domains.push(DomainSpec { domain, patterns });
    }
    if domains.is_empty() {
        return Err(env.invalid(DOMAINS, "gives no domain"));
    }
    Ok(domains)
}

/// A command must parse as shell (`sh -n`: read, not run), so a typo stops the server at
/// start rather than fail the rollback that needs it.
fn check_shell(command: &str) -> Result<String, String> {
    let out = std::process::Command::new("sh")
        .args(["-n", "-c", command])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run sh -n to check it: {e}"))?;
    if out.status.success() {
        Ok(command.to_owned())
    } else {
        let why = String::from_utf8_lossy(&out.stderr);
        Err(format!(
            "is not a valid shell command ({})",
            crate::domain::bounded(why.trim(), 200)
        ))
    }
}

/// A glob must stay inside the source root and compile.
fn check_pattern(p: &str) -> Result<(), String> {
    if p.starts_with('/') || p.starts_with('~') {
        return Err("is absolute: patterns are relative to CONFIG_BACKUP_SOURCE_ROOT".to_owned());
    }
    if p.split('/').any(|c| c == "..") {
        return Err("escapes the source root with '..'".to_owned());
    }
    if p.contains('\\') {
        return Err("contains a backslash: use '/' as the separator".to_owned());
    }
    crate::sources::compile_glob(p)
        .map(|_| ())
        .map_err(|e| format!("is not a valid glob: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let dir = std::env::temp_dir();
        let env: Env = [
            ("CONFIG_BACKUP_SOURCE_ROOT".to_owned(), dir.display().to_string()),
            (
                "CONFIG_BACKUP_DATA_DIR".to_owned(),
                dir.join("cb").display().to_string(),
            ),
        ]
        .into_iter()
        .chain(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
        .collect();
        Settings::from_env(&env)
    }

    #[test]
    fn defaults_cover_the_four_standard_domains() {
        let s = settings(&[]).unwrap();
        let names: Vec<_> = s.domains.iter().map(|d| d.domain.as_str()).collect();
        assert_eq!(names, ["gateway", "dns", "radius", "kea"]);
        assert_eq!((s.schedule.hour, s.schedule.minute, s.retention_months), (4, 0, 24));
        assert!(s.git.remote_is_embedded);
    }

    #[test]
    fn bad_settings_name_their_variable() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("CONFIG_BACKUP_DOMAINS", "gateway,dhcp")], "CONFIG_BACKUP_DOMAINS"),
            (&[("CONFIG_BACKUP_DOMAINS", "ospf")], "CONFIG_BACKUP_PATHS__ospf"),
            (&[("CONFIG_BACKUP_PATHS__dns", "../etc/*")], "CONFIG_BACKUP_PATHS__dns"),
            (
                &[("CONFIG_ROLLBACK_SERVICE_PATHS__dns", "etc/unbound=config/unbound")],
                "CONFIG_ROLLBACK_SERVICE_PATHS__dns",
            ),
            (
                &[("CONFIG_ROLLBACK_SERVICE_PATHS__radius", "/etc/freeradius=../radius")],
                "CONFIG_ROLLBACK_SERVICE_PATHS__radius",
            ),
            (
                &[("CONFIG_BACKUP_PATHS__dns", "/etc/unbound/*")],
                "CONFIG_BACKUP_PATHS__dns",
            ),
            (&[("CONFIG_BACKUP_PATHS__kea", " , ")], "CONFIG_BACKUP_PATHS__kea"),
            (&[("CONFIG_BACKUP_HOUR_UTC", "four")], "CONFIG_BACKUP_HOUR_UTC"),
            (&[("CONFIG_BACKUP_MINUTE_UTC", "60")], "CONFIG_BACKUP_MINUTE_UTC"),
            (&[("CONFIG_BACKUP_ENABLED", "maybe")], "CONFIG_BACKUP_ENABLED"),
            (
                &[("CONFIG_BACKUP_SOURCE_ROOT", "/nonexistent/x")],
                "CONFIG_BACKUP_SOURCE_ROOT",
            ),
            (&[("DATABASE_URL", "mysql://x")], "DATABASE_URL"),
        ];
        for (vars, var) in cases {
            let e = settings(vars).unwrap_err();
            assert_eq!(&e.var, var, "{vars:?}: {e}");
        }
    }

    #[test]
    fn schedule_is_utc_and_strictly_after_now() {
        use chrono::TimeZone;
        let s = Schedule {
            enabled: true,
            hour: 4,
            minute: 0,
        };
        let at = |h, m| chrono::Utc.with_ymd_and_hms(2026, 11, 26, h, m, 0).unwrap();
        assert_eq!(s.next_after(at(3, 59)), at(4, 0));
        assert_eq!(s.next_after(at(4, 0)), at(4, 0) + chrono::Duration::days(1));
        assert_eq!(s.last_at_or_before(at(4, 0)), at(4, 0));
        assert_eq!(s.last_at_or_before(at(3, 0)), at(4, 0) - chrono::Duration::days(1));
    }
}
