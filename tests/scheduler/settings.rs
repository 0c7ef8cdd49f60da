//! Every setting in the catalog, each with its good and its bad value, read the way the
//! binaries read them: one `Env`, then the logging, the server's and the scheduler's
//! settings. A bad value fails with one message naming the variable, the value (hidden for
//! a secret) and the catalog's "allowed". The names the readers ask for are exactly the
//! catalog's, and the README documents each. The scheduler binary stops at start for
//! each of its bad values (the server binary's are in tests/api/process.rs).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use config_backup_core::domain::quote_input;
use config_backup_core::settings::catalog::{self, Reader, Shown, Variable};
use config_backup_core::settings::{Env, SettingsError};
use config_backup_scheduler::SchedulerSettings;
use config_backup_server::ServerSettings;
use config_backup_server::telemetry::Logging;

use super::BIN;

/// A scratch directory with what the catalog's values name: `site/` and `jwt-secret`.
fn scratch() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("site")).unwrap();
    std::fs::write(dir.path().join("jwt-secret"), "s".repeat(40)).unwrap();
    dir
}

/// The variable's name for the dns domain, and its value with `{tmp}` filled in.
fn instance(v: &Variable, value: &str, tmp: &Path) -> (String, String) {
    (
        v.name.replace("<domain>", "dns"),
        value.replace("{tmp}", &tmp.display().to_string()),
    )
}

/// Settings every reader accepts, mail included (so the mail settings are read).
fn base(tmp: &Path) -> Vec<(String, String)> {
    let t = tmp.display();
    [
        ("HOME", format!("{t}")),
        ("CONFIG_BACKUP_SOURCE_ROOT", format!("{t}/site")),
        ("CONFIG_BACKUP_DATA_DIR", format!("{t}/data")),
        ("SMTP_HOST", "mail.example.net".to_owned()),
        ("CONFIG_BACKUP_NOTIFY_RECIPIENTS", "noc@example.net".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Reads everything both binaries read, in their order.
fn read_all(env: &Env) -> Result<(), SettingsError> {
    Logging::from_env(env)?;
    ServerSettings::from_env(env)?;
    SchedulerSettings::from_env(env)?;
    Ok(())
}

fn generic(name: &str) -> String {
    match name.split_once("__") {
        Some((prefix, _)) => format!("{prefix}__<domain>"),
        None => name.to_owned(),
    }
}

#[test]
fn every_setting_accepts_its_good_value_and_refuses_its_bad_one_naming_it() {
    let dir = scratch();
    let tmp = dir.path();
    let mut read = BTreeSet::new();
    let env: Env = base(tmp).into_iter().collect();
    read_all(&env).unwrap_or_else(|e| panic!("the base settings: {e}"));
    read.extend(env.names_read());
    for v in catalog::VARIABLES {
        let (name, good) = instance(v, v.good, tmp);
        let env: Env = base(tmp).into_iter().chain([(name.clone(), good.clone())]).collect();
        if let Err(e) = read_all(&env) {
            panic!("{name}={good:?} must be accepted: {e}");
        }
        read.extend(env.names_read());

        let (_, bad) = instance(v, v.bad, tmp);
        let env: Env = base(tmp).into_iter().chain([(name.clone(), bad.clone())]).collect();
        let e = match read_all(&env) {
            Ok(()) => panic!("{name}={bad:?} must be refused"),
            Err(e) => e,
        };
        let text = e.to_string();
        assert_eq!(e.var, name, "{text}");
        assert!(text.contains(&format!("allowed: {}", v.allowed)), "{text}");
        match v.shown {
            Shown::Hidden => assert!(text.contains("(hidden)") && !text.contains(&bad), "{text}"),
            Shown::Plain | Shown::Url => assert!(text.contains(&quote_input(bad.trim())), "{text}"),
        }
    }
    let read: BTreeSet<String> = read
        .iter()
        .filter(|n| !catalog::SYSTEM.contains(&n.as_str()))
        .map(|n| generic(n))
        .collect();
    let documented: BTreeSet<String> = catalog::VARIABLES.iter().map(|v| v.name.to_owned()).collect();
    assert_eq!(
        read.difference(&documented).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "read but not in the catalog"
    );
    assert_eq!(
        documented.difference(&read).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "in the catalog but never read"
    );
}

#[test]
fn the_readme_documents_every_setting_of_the_catalog() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md")).unwrap();
    let missing: Vec<&str> = catalog::VARIABLES
        .iter()
        .map(|v| v.name)
        .filter(|n| !readme.contains(&format!("`{n}`")))
        .collect();
    assert!(missing.is_empty(), "README.md does not document {missing:?}");
}

#[tokio::test]
async fn the_scheduler_stops_at_start_for_each_bad_setting_naming_it() {
    let dir = scratch();
    let tmp = dir.path();
    for v in catalog::VARIABLES.iter().filter(|v| v.reader != Reader::Server) {
        let (name, bad) = instance(v, v.bad, tmp);
        let mut cmd = tokio::process::Command::new(BIN);
        cmd.arg("--print-next")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap())
            .envs(base(tmp))
            .env(&name, &bad)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let out = tokio::time::timeout(Duration::from_secs(30), cmd.output())
            .await
            .unwrap_or_else(|_| panic!("{name}={bad:?}: the scheduler did not stop within 30 s"))
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name}={bad:?} must stop the scheduler");
        assert!(
            err.contains(&format!("config-backup-scheduler: {name}"))
                && err.contains(&format!("allowed: {}", v.allowed)),
            "{name}={bad:?}: {err}"
        );
    }
}
