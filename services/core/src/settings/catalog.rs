//! Every setting, documented once: its name, who reads it, its default, what is allowed,
//! and a good and a bad value for the table test. A bad value's error quotes `allowed`
//! from here, so the message and the documentation cannot drift apart.
//!
//! Invariant: every variable a reader asks `Env` for is in `VARIABLES` (the test in
//! `tests/api/settings.rs` reads every setting and compares the names read with this list).

/// Which binary reads a setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader {
    /// `config-backup-server`.
    Server,
    /// `config-backup-scheduler`.
    Scheduler,
    /// Both.
    Both,
}

/// How a bad value is shown in its error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shown {
    /// As given.
    Plain,
    /// Never: a secret.
    Hidden,
    /// As a URL with its password replaced by `***`.
    Url,
}

/// One setting. A name ending in `__<domain>` stands for one variable per domain.
#[derive(Debug, Clone, Copy)]
pub struct Variable {
    /// The variable.
    pub name: &'static str,
    /// Who reads it.
    pub reader: Reader,
    /// The default, in words.
    pub default: &'static str,
    /// What is allowed.
    pub allowed: &'static str,
    /// A value that is accepted (`{tmp}` is a scratch directory holding `site/`, a
    /// directory, and `jwt-secret`, a 40-character secret).
    pub good: &'static str,
    /// A value that is refused.
    pub bad: &'static str,
    /// How a bad value is shown.
    pub shown: Shown,
}

const fn var(
    name: &'static str,
    reader: Reader,
    default: &'static str,
    allowed: &'static str,
    good: &'static str,
    bad: &'static str,
) -> Variable {
    Variable {
        name,
        reader,
        default,
        allowed,
        good,
        bad,
        shown: Shown::Plain,
    }
}

const fn shown(mut v: Variable, shown: Shown) -> Variable {
    v.shown = shown;
    v
}

use Reader::{Both, Scheduler, Server};

const PATH: &str = "an absolute path";
const SHELL: &str = "a shell command (checked with sh -n)";

/// Every setting of the service and the scheduler.
pub const VARIABLES: &[Variable] = &[
    var(
        "CONFIG_BACKUP_SOURCE_ROOT",
        Server,
        "required (--sample-site: examples/site)",
        "an existing directory, as an absolute path",
        "{tmp}/site",
        "{tmp}/no-such-dir",
    ),
    var(
        "CONFIG_BACKUP_DATA_DIR",
        Both,
        "$XDG_DATA_HOME/config-backup or ~/.local/share/config-backup",
        PATH,
        "{tmp}/data",
        "data",
    ),
    var(
        "CONFIG_BACKUP_DOMAINS",
        Server,
        "gateway,dns,radius,kea",
        "comma-separated domains, each once: gateway, dns, radius, kea, ospf",
        "dns,kea",
        "dns,dhcp",
    ),
    var(
        "CONFIG_BACKUP_PATHS__<domain>",
        Server,
        "the domain's standard globs (ospf has none)",
        "comma-separated globs relative to CONFIG_BACKUP_SOURCE_ROOT (no '..', no leading '/')",
        "config/unbound/*.conf",
        "../etc/*",
    ),
    shown(
        var(
            "DATABASE_URL",
            Server,
            "sqlite://<data dir>/config-backup.db?mode=rwc",
            "sqlite:<path> or postgres://user@host/db",
            "postgres://cb@db.example.net/config_backup",
            "mysql://db.example.net/cb",
        ),
        Shown::Url,
    ),
    shown(
        var(
            "GIT_BACKUP_REPO",
            Server,
            "<data dir>/remote.git (created bare)",
            "an absolute local path, file:///path, ssh://user@host[:port]/path or user@host:path",
            "ssh://git@backup.example.net/configs.git",
            "ftp://backup.example.net/configs",
        ),
        Shown::Url,
    ),
    var(
        "GIT_BACKUP_BRANCH",
        Server,
        "main",
        "a valid git branch name",
        "site-a",
        "a..b",
    ),
    var(
        "GIT_WORKING_DIR",
        Server,
        "<data dir>/working-copy",
        PATH,
        "/var/lib/config-backup/wc",
        "wc",
    ),
    var(
        "GIT_USER_NAME",
        Server,
        "config-backup",
        "a name without '<', '>' or control characters",
        "NOC backup",
        "NOC <backup>",
    ),
    var(
        "GIT_USER_EMAIL",
        Server,
        "config-backup@localhost",
        "an address user@host without spaces, '<', '>' or control characters",
        "noc@example.net",
        "noc example.net",
    ),
    var(
        "GIT_SSH_KEY_PATH",
        Server,
        "none",
        PATH,
        "/etc/config-backup/id_ed25519",
        "id_ed25519",
    ),
    var(
        "GIT_SSH_KNOWN_HOSTS",
        Server,
        "none",
        PATH,
        "/etc/config-backup/known_hosts",
        "known_hosts",
    ),
    var(
        "GIT_SSH_KEY_PASSPHRASE_FILE",
        Server,
        "none",
        PATH,
        "/etc/config-backup/passphrase",
        "passphrase",
    ),
    var(
        "CONFIG_BACKUP_SIGNING_KEY",
        Server,
        "none (commits unsigned)",
        "an absolute path to an unencrypted ed25519 OpenSSH private key, mode 0600 or stricter",
        "/etc/config-backup/signing_ed25519",
        "signing_ed25519",
    ),
    var(
        "CONFIG_BACKUP_SIGNING_TRUST_START",
        Server,
        "none (a restore drill requires every commit to be signed)",
        "a full commit hash (40 lower-case hex digits): the newest commit made before signing was on",
        "0123456789abcdef0123456789abcdef01234567",
        "0123456",
    ),
    var(
        "GIT_CONNECT_TIMEOUT_SECONDS",
        Server,
        "10",
        "a whole number 1 to 600",
        "30",
        "0",
    ),
    var(
        "GIT_TRANSFER_TIMEOUT_SECONDS",
        Server,
        "60",
        "a whole number 1 to 3600",
        "120",
        "1m",
    ),
    var(
        "CONFIG_BACKUP_ENABLED",
        Both,
        "true",
        "true or false (also yes/no, on/off, 1/0, any case)",
        "off",
        "maybe",
    ),
    var("CONFIG_BACKUP_HOUR_UTC", Both, "4", "a whole number 0 to 23", "3", "24"),
    var(
        "CONFIG_BACKUP_MINUTE_UTC",
        Both,
        "0",
        "a whole number 0 to 59",
        "30",
        "60",
    ),
    var(
        "CONFIG_BACKUP_GIT_RETENTION_MONTHS",
        Server,
        "24",
        "a whole number 1 to 1200",
        "36",
        "0",
    ),
    var(
        "CONFIG_BACKUP_SITE",
        Server,
        "default",
        "1 to 63 of a-z 0-9 - _ . starting with a letter or digit",
        "campus-north",
        "Campus North",
    ),
    var(
        "CONFIG_BACKUP_LOCK_TTL_SECONDS",
        Server,
        "30",
        "a whole number 5 to 3600",
        "60",
        "1",
    ),
    var(
        "CONFIG_BACKUP_FULL_REHASH_HOURS",
        Server,
        "168",
        "a whole number 0 to 8760 (0: every run)",
        "24",
        "-1",
    ),
    var(
        "CONFIG_BACKUP_SECRETS_KEY_FILE",
        Server,
        "<data dir>/secrets.key (generated)",
        PATH,
        "/etc/config-backup/secrets.key",
        "secrets.key",
    ),
    var(
        "CONFIG_BACKUP_SECRETS__<domain>",
        Server,
        "the built-in rules only",
        "';'-separated rules key:NAME, json:NAME, regex:RE (one capture group), file:GLOB",
        "key:psk",
        "regex:(",
    ),
    var(
        "CONFIG_ROLLBACK_VALIDATE__<domain>",
        Server,
        "none",
        SHELL,
        "unbound-checkconf {dir}/unbound.conf",
        "unbound-checkconf '{dir}",
    ),
    var(
        "CONFIG_ROLLBACK_RELOAD__<domain>",
        Server,
        "none",
        SHELL,
        "unbound-control reload",
        "unbound-control reload \"x",
    ),
    var(
        "CONFIG_ROLLBACK_VERIFY__<domain>",
        Server,
        "none",
        SHELL,
        "dig @127.0.0.1 example.net",
        "dig @127.0.0.1 ( example.net",
    ),
    var(
        "CONFIG_ROLLBACK_SERVICE_PATHS__<domain>",
        Server,
        "none",
        "SERVICE_PATH=REPO_PREFIX[,...], an absolute service path and a relative repository prefix",
        "/etc/unbound=config/unbound",
        "etc/unbound=config/unbound",
    ),
    var(
        "CONFIG_ROLLBACK_COMMAND_TIMEOUT_SECONDS",
        Server,
        "60",
        "a whole number 1 to 3600",
        "120",
        "0",
    ),
    var(
        "CONFIG_ROLLBACK_DEADLINE_SECONDS",
        Server,
        "300",
        "a whole number 5 to 86400",
        "600",
        "1",
    ),
    var(
        "GRPC_LISTEN_ADDR",
        Server,
        "127.0.0.1:50051",
        "host:port with an IP address (port 0: any free port)",
        "0.0.0.0:50051",
        "localhost",
    ),
    var(
        "HTTP_LISTEN_ADDR",
        Server,
        "127.0.0.1:8080",
        "host:port with an IP address (port 0: any free port)",
        "[::1]:8080",
        "8080",
    ),
    var(
        "METRICS_LISTEN_ADDR",
        Server,
        "127.0.0.1:9187",
        "host:port with an IP address (port 0: any free port)",
        "127.0.0.1:0",
        "127.0.0.1:99999",
    ),
    var(
        "HTTP_CORS_ALLOWED_ORIGINS",
        Server,
        "none (no CORS)",
        "comma-separated exact origins http(s)://host[:port], no path or wildcard",
        "https://noc.example.net",
        "https://*.example.net",
    ),
    shown(
        var(
            "AUTH_JWT_SECRET",
            Both,
            "AUTH_JWT_SECRET_FILE, else generated into the data directory",
            "at least 32 characters",
            "0123456789abcdef0123456789abcdef01234567",
            "tooshort",
        ),
        Shown::Hidden,
    ),
    var(
        "AUTH_JWT_SECRET_FILE",
        Both,
        "<data dir>/jwt-secret (generated)",
        "an absolute path to a readable file holding at least 32 characters",
        "{tmp}/jwt-secret",
        "{tmp}/no-such-secret",
    ),
    var(
        "SMTP_HOST",
        Both,
        "none (no mail)",
        "a host name or IP address",
        "mail.example.net",
        "mail example.net",
    ),
    var(
        "SMTP_PORT",
        Both,
        "25, 587 or 465 by SMTP_SECURITY",
        "a whole number 1 to 65535",
        "2525",
        "0",
    ),
    var("SMTP_SECURITY", Both, "starttls", "none, starttls or tls", "tls", "ssl"),
    var(
        "SMTP_USERNAME",
        Both,
        "none",
        "a user name without control characters",
        "noc-mailer",
        "noc\nRCPT TO:<x@example.net>",
    ),
    var(
        "SMTP_PASSWORD_FILE",
        Both,
        "none",
        PATH,
        "/etc/config-backup/smtp-password",
        "smtp-password",
    ),
    var(
        "SMTP_FROM",
        Both,
        "config-backup@localhost",
        "a mail address",
        "Config Backup <backup@example.net>",
        "not an address",
    ),
    var(
        "CONFIG_BACKUP_NOTIFY_RECIPIENTS",
        Both,
        "none (required with SMTP_HOST)",
        "comma-separated mail addresses",
        "noc@example.net,ops@example.net",
        "noc@example.net,ops at example",
    ),
    var(
        "CONFIG_BACKUP_NOTIFY_ON_CHANGES",
        Both,
        "false",
        "true or false (also yes/no, on/off, 1/0, any case)",
        "on",
        "sometimes",
    ),
    var(
        "CONFIG_BACKUP_NOTIFY_INCLUDE_DIFF",
        Both,
        "false",
        "true or false (also yes/no, on/off, 1/0, any case)",
        "yes",
        "partly",
    ),
    var(
        "CONFIG_BACKUP_SERVER_ADDR",
        Scheduler,
        "http://127.0.0.1:50051",
        "http://host:port or https://host:port",
        "http://10.0.0.5:50051",
        "10.0.0.5:50051",
    ),
    var(
        "CONFIG_BACKUP_SCHEDULER_TOKEN_FILE",
        Scheduler,
        "none (mint from the JWT secret)",
        PATH,
        "/run/secrets/config-backup-token",
        "token",
    ),
    var(
        "CONFIG_BACKUP_TIMEOUT_SECONDS",
        Scheduler,
        "300",
        "a whole number 1 to 86400",
        "600",
        "0",
    ),
    var(
        "CONFIG_BACKUP_RETRIES",
        Scheduler,
        "2",
        "a whole number 0 to 100",
        "3",
        "two",
    ),
    var(
        "CONFIG_BACKUP_RETRY_DELAY_SECONDS",
        Scheduler,
        "300",
        "a whole number 0 to 86400",
        "60",
        "5m",
    ),
    var(
        "CONFIG_BACKUP_DRILL_SCHEDULE",
        Scheduler,
        "0 30 5 * * Sun (weekly, Sunday 05:30 UTC)",
        "a cron expression with seconds (sec min hour day-of-month month day-of-week, UTC), or off",
        "0 0 3 * * Sat",
        "every sunday",
    ),
    var("LOG_FORMAT", Both, "text", "text or json", "json", "yaml"),
    var(
        "RUST_LOG",
        Both,
        "info",
        "a tracing filter: level or target=level, comma-separated",
        "info,config_backup_core=debug",
        "config_backup=loud",
    ),
];

/// Variables read from the system, not settings of ours.
pub const SYSTEM: &[&str] = &["HOME", "XDG_DATA_HOME"];

/// The catalog's entry of `var` (`X__dns` finds `X__<domain>`).
pub fn lookup(var: &str) -> Option<&'static Variable> {
    let generic = match var.split_once("__") {
        Some((prefix, _)) => format!("{prefix}__<domain>"),
        None => var.to_owned(),
    };
    VARIABLES.iter().find(|v| v.name == generic)
}

/// What is allowed for `var`, or "" when it is not in the catalog.
pub fn allowed(var: &str) -> &'static str {
    lookup(var).map_or("", |v| v.allowed)
}

/// How `var`'s value is shown in an error.
pub fn shown_as(var: &str) -> Shown {
    lookup(var).map_or(Shown::Plain, |v| v.shown)
}
