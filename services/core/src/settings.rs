//! The engine's configuration, read from environment variables. Every problem is
//! reported with the variable's name, so a bad deployment stops at start with a
//! message an operator can act on.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

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

/// A configuration problem, naming the variable.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{var}: {message}")]
pub struct SettingsError {
    /// The environment variable at fault.
    pub var: String,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl SettingsError {
    /// The error of `var`.
    pub fn new(var: &str, message: impl Into<String>) -> SettingsError {
        SettingsError {
            var: var.to_owned(),
            message: message.into(),
        }
    }
}

fn err(var: &str, message: impl Into<String>) -> SettingsError {
    SettingsError::new(var, message)
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
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Schedule, SettingsError> {
        let get = |k: &str| get(k).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        Ok(Schedule {
            enabled: parse_bool(&get, "CONFIG_BACKUP_ENABLED", true)?,
            hour: parse_num(&get, "CONFIG_BACKUP_HOUR_UTC", 4, 0..=23)?,
            minute: parse_num(&get, "CONFIG_BACKUP_MINUTE_UTC", 0, 0..=59)?,
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
    /// `CONFIG_BACKUP_NOTIFY_ON_CHANGES`.
    pub notify_on_changes: bool,
    /// `CONFIG_BACKUP_NOTIFY_RECIPIENTS`.
    pub notify_recipients: Vec<String>,
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
    /// Reads the settings through `get` (normally `std::env::var`).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Settings, SettingsError> {
        let get = |k: &str| get(k).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());

        let data_dir = match get("CONFIG_BACKUP_DATA_DIR") {
            Some(d) => PathBuf::from(d),
            None => default_data_dir().ok_or_else(|| {
                err(
                    "CONFIG_BACKUP_DATA_DIR",
                    "not set, and there is no HOME or XDG_DATA_HOME to default to",
                )
            })?,
        };

        let source_root = get("CONFIG_BACKUP_SOURCE_ROOT").ok_or_else(|| {
            err(
                "CONFIG_BACKUP_SOURCE_ROOT",
                "not set: name the directory the CONFIG_BACKUP_PATHS__<domain> globs are relative to \
                 (or start the server with --sample-site)",
            )
        })?;
        let source_root = PathBuf::from(source_root);
        if !source_root.is_dir() {
            return Err(err(
                "CONFIG_BACKUP_SOURCE_ROOT",
                format!("{} is not a directory", source_root.display()),
            ));
        }

        let domains_var = get("CONFIG_BACKUP_DOMAINS").unwrap_or_else(|| "gateway,dns,radius,kea".to_owned());
        let mut domains: Vec<DomainSpec> = Vec::new();
        for name in domains_var.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let domain: Domain = name
                .parse()
                .map_err(|e: crate::domain::UnknownDomain| err("CONFIG_BACKUP_DOMAINS", e.to_string()))?;
            if domains.iter().any(|d| d.domain == domain) {
                return Err(err("CONFIG_BACKUP_DOMAINS", format!("domain {domain} is listed twice")));
            }
            let var = format!("CONFIG_BACKUP_PATHS__{domain}");
            let raw = get(&var)
                .or_else(|| default_patterns(domain).map(str::to_owned))
                .ok_or_else(|| err(&var, format!("domain {domain} has no paths: set comma-separated globs")))?;
            let patterns: Vec<String> = raw
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            if patterns.is_empty() {
                return Err(err(
                    &var,
                    format!("domain {domain} has no paths: set comma-separated globs"),
                ));
            }
            for p in &patterns {
                check_pattern(p).map_err(|m| {
                    err(
                        &var,
                        crate::domain::bounded(&format!("pattern {} {m}", crate::domain::quote_input(p)), 400),
                    )
                })?;
            }
            domains.push(DomainSpec { domain, patterns });
        }
        if domains.is_empty() {
            return Err(err(
                "CONFIG_BACKUP_DOMAINS",
                format!("no domain given: allowed values are {}", Domain::allowed()),
            ));
        }

        let (remote, remote_is_embedded) = match get("GIT_BACKUP_REPO") {
            Some(r) => (r, false),
            None => (data_dir.join("remote.git").display().to_string(), true),
        };
        let branch = get("GIT_BACKUP_BRANCH").unwrap_or_else(|| "main".to_owned());
        if git2::Branch::name_is_valid(&branch).map(|ok| !ok).unwrap_or(true) {
            return Err(err(
                "GIT_BACKUP_BRANCH",
                format!("{branch:?} is not a valid branch name"),
            ));
        }
        let git = GitSettings {
            remote,
            remote_is_embedded,
            branch,
            working_dir: get("GIT_WORKING_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| data_dir.join("working-copy")),
            user_name: get("GIT_USER_NAME").unwrap_or_else(|| "config-backup".to_owned()),
            user_email: get("GIT_USER_EMAIL").unwrap_or_else(|| "config-backup@localhost".to_owned()),
            ssh_key_path: get("GIT_SSH_KEY_PATH").map(PathBuf::from),
            ssh_known_hosts: get("GIT_SSH_KNOWN_HOSTS").map(PathBuf::from),
            ssh_key_passphrase_file: get("GIT_SSH_KEY_PASSPHRASE_FILE").map(PathBuf::from),
            connect_timeout: Duration::from_secs(parse_num(&get, "GIT_CONNECT_TIMEOUT_SECONDS", 10u64, 1..=600)?),
            transfer_timeout: Duration::from_secs(parse_num(&get, "GIT_TRANSFER_TIMEOUT_SECONDS", 60u64, 1..=3600)?),
        };
        crate::remote::RemoteUrl::parse(&git.remote).map_err(|m| err("GIT_BACKUP_REPO", m))?;

        let schedule = Schedule::from_lookup(get)?;

        let database_url = get("DATABASE_URL")
            .unwrap_or_else(|| format!("sqlite://{}?mode=rwc", data_dir.join("config-backup.db").display()));
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            return Err(err(
                "DATABASE_URL",
                "unsupported scheme: use sqlite:<path> or postgres://...",
            ));
        }

        let mut commands = std::collections::BTreeMap::new();
        for d in Domain::ALL {
            let c = DomainCommands {
                validate: get(&format!("CONFIG_ROLLBACK_VALIDATE__{d}")),
                reload: get(&format!("CONFIG_ROLLBACK_RELOAD__{d}")),
                verify: get(&format!("CONFIG_ROLLBACK_VERIFY__{d}")),
                service_paths: match get(&format!("CONFIG_ROLLBACK_SERVICE_PATHS__{d}")) {
                    Some(v) => crate::service_paths::parse(&v)
                        .map_err(|m| err(&format!("CONFIG_ROLLBACK_SERVICE_PATHS__{d}"), m))?,
                    None => Vec::new(),
                },
            };
            if c != DomainCommands::default() {
                commands.insert(d, c);
            }
        }
        let rollback = RollbackSettings {
            commands,
            command_timeout: Duration::from_secs(parse_num(
                &get,
                "CONFIG_ROLLBACK_COMMAND_TIMEOUT_SECONDS",
                60u64,
                1..=3600,
            )?),
            deadline: Duration::from_secs(parse_num(&get, "CONFIG_ROLLBACK_DEADLINE_SECONDS", 300u64, 5..=86400)?),
        };
        let mut rules = std::collections::BTreeMap::new();
        for d in Domain::ALL {
            let var = format!("CONFIG_BACKUP_SECRETS__{d}");
            let text = get(&var).unwrap_or_default();
            let r = crate::secrets::Rules::parse(d, &text).map_err(|e| err(&var, e.to_string()))?;
            rules.insert(d, r);
        }
        let secrets = match get("CONFIG_BACKUP_SECRETS_KEY_FILE") {
            Some(f) => SecretsSettings {
                key_file: PathBuf::from(f),
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
            schedule,
            retention_months: parse_num(&get, "CONFIG_BACKUP_GIT_RETENTION_MONTHS", 24, 1..=1200)?,
            site: match get("CONFIG_BACKUP_SITE") {
                Some(s) => Site::parse(&s).map_err(|m| err("CONFIG_BACKUP_SITE", m))?,
                None => Site::default(),
            },
            notify_on_changes: parse_bool(&get, "CONFIG_BACKUP_NOTIFY_ON_CHANGES", false)?,
            notify_recipients: get("CONFIG_BACKUP_NOTIFY_RECIPIENTS")
                .map(|r| {
                    r.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            database_url,
            lock_ttl: Duration::from_secs(parse_num(&get, "CONFIG_BACKUP_LOCK_TTL_SECONDS", 30u64, 5..=3600)?),
            full_rehash_interval: Duration::from_secs(
                3600 * parse_num(&get, "CONFIG_BACKUP_FULL_REHASH_HOURS", 168u64, 0..=8760)?,
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
                .map_err(|e| err(var, format!("cannot create the key file: {e}")))?
        } else {
            crate::secrets::Keyring::load(&s.key_file).map_err(|e| {
                err(
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

/// `$XDG_DATA_HOME/config-backup`, else `$HOME/.local/share/config-backup`.
pub fn default_data_dir() -> Option<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return Some(Path::new(&x).join("config-backup"));
    }
    std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .map(|h| Path::new(&h).join(".local/share/config-backup"))
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

/// The one reading of a boolean setting, for every crate: `true`/`false`, `yes`/`no`,
/// `on`/`off` or `1`/`0`, in any case; unset is `default`. The error names the variable,
/// the value and the spellings allowed.
pub fn parse_bool(get: &impl Fn(&str) -> Option<String>, var: &str, default: bool) -> Result<bool, SettingsError> {
    match get(var).as_deref().map(str::to_ascii_lowercase).as_deref() {
        None => Ok(default),
        Some("true" | "1" | "yes" | "on") => Ok(true),
        Some("false" | "0" | "no" | "off") => Ok(false),
        Some(_) => Err(err(
            var,
            format!(
                "{} is not a boolean: use true or false (also yes/no, on/off, 1/0)",
                crate::domain::quote_input(&get(var).unwrap_or_default())
            ),
        )),
    }
}

fn parse_num<T>(
    get: &impl Fn(&str) -> Option<String>,
    var: &str,
    default: T,
    range: std::ops::RangeInclusive<T>,
) -> Result<T, SettingsError>
where
    T: FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let Some(raw) = get(var) else {
        return Ok(default);
    };
    let value: T = raw.parse().map_err(|_| {
        err(
            var,
            format!("{raw:?} is not a number: expected {} to {}", range.start(), range.end()),
        )
    })?;
    if !range.contains(&value) {
        return Err(err(
            var,
            format!("{value} is out of range: expected {} to {}", range.start(), range.end()),
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let dir = std::env::temp_dir();
        let mut map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        map.entry("CONFIG_BACKUP_SOURCE_ROOT".into())
            .or_insert(dir.display().to_string());
        map.entry("CONFIG_BACKUP_DATA_DIR".into())
            .or_insert(dir.join("cb").display().to_string());
        Settings::from_lookup(|k| map.get(k).cloned())
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
