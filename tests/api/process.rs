//! The real binary: the README's first command, and SIGTERM during a backup.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use config_backup_proto::v1 as pb;
use config_backup_proto::v1::config_backup_client::ConfigBackupClient;
use config_backup_server::auth::Role;
use config_backup_tests::{Backend, TestEnv, log_subjects, wait_for, wait_for_blocking, with_token};

const BIN: &str = env!("CARGO_BIN_EXE_config-backup-server");

/// Starts the binary with exactly `vars` (plus PATH) and returns it with the address
/// it reports listening on.
pub(crate) fn start(vars: &[(String, String)], args: &[&str]) -> (Child, std::net::SocketAddr) {
    let (child, addr, _) = start_logged(vars, args);
    (child, addr)
}

/// [`start`], also collecting every log line (JSON).
pub(crate) fn start_logged(
    vars: &[(String, String)],
    args: &[&str],
) -> (
    Child,
    std::net::SocketAddr,
    std::sync::Arc<std::sync::Mutex<Vec<String>>>,
) {
    start_wrapped(&[], vars, args)
}

/// The binary with exactly `vars` (plus PATH), run through `wrapper` (e.g. `setpriv` with
/// its options) when one is given.
pub(crate) fn command(wrapper: &[&str], vars: &[(String, String)], args: &[&str]) -> Command {
    let mut cmd = match wrapper.split_first() {
        Some((program, options)) => {
            let mut c = Command::new(program);
            c.args(options).arg(BIN);
            c
        }
        None => Command::new(BIN),
    };
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .env("LOG_FORMAT", "json");
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd
}

/// [`start_logged`] through `wrapper`.
pub(crate) fn start_wrapped(
    wrapper: &[&str],
    vars: &[(String, String)],
    args: &[&str],
) -> (
    Child,
    std::net::SocketAddr,
    std::sync::Arc<std::sync::Mutex<Vec<String>>>,
) {
    let mut cmd = command(wrapper, vars, args);
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = logs.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if std::env::var_os("CB_TEST_SERVER_LOG").is_some() {
                eprintln!("server: {line}");
            }
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                && let Some(addr) = v["fields"]["addr"].as_str()
            {
                let _ = tx.send(addr.parse::<std::net::SocketAddr>().unwrap());
            }
            sink.lock().unwrap().push(line);
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the server did not report its address");
    (child, addr, logs)
}

/// Waits until the thread reading a server's log has read its last line (the server
/// has exited).
pub(crate) fn wait_log_end(logs: &std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    wait_for_blocking("the server's log to end", Duration::from_secs(10), || {
        std::sync::Arc::strong_count(logs) == 1
    })
}

/// The REST address a server started with [`start_logged`] logged.
pub(crate) fn http_addr(logs: &std::sync::Mutex<Vec<String>>) -> String {
    wait_for_blocking("the server to log its REST address", Duration::from_secs(10), || {
        logs.lock().unwrap().iter().find_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            v["fields"]["http"].as_str().map(str::to_owned)
        })
    })
}

pub(crate) fn sigterm(child: &Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -TERM failed");
}

pub(crate) fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    wait_for_blocking("the server to exit", Duration::from_secs(60), || {
        child.try_wait().unwrap()
    })
}

/// Waits until the backup the server makes at its first start has finished.
pub(crate) async fn wait_first_backup(client: &mut ConfigBackupClient<tonic::transport::Channel>) -> pb::RunSummary {
    wait_for("the first backup to finish", Duration::from_secs(60), || {
        let mut client = client.clone();
        async move {
            let st = client
                .status(with_token(pb::StatusRequest::default(), Role::Noc))
                .await
                .unwrap()
                .into_inner();
            st.last_run
                .filter(|run| run.outcome != pb::RunOutcome::Running as i32 && st.running.is_empty())
        }
    })
    .await
}

/// The binary serving `env` after its first backup, with enough new files on the site
/// (3,000 zone files) that the next backup takes a while.
async fn serving_with_a_slow_backup_ahead(
    env: &TestEnv,
    vars: &[(String, String)],
) -> (Child, ConfigBackupClient<tonic::transport::Channel>) {
    let (child, addr) = start(vars, &["serve"]);
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_lazy();
    config_backup_tests::wait_serving(&channel).await;
    let mut client = ConfigBackupClient::new(channel);
    wait_first_backup(&mut client).await;
    env.add_zone_files(3000);
    (child, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_command_backs_up_the_sample_site_into_a_local_bare_repository() {
    // A fresh machine: only HOME (and an ephemeral port, so tests can run side by side).
    let home = tempfile::tempdir().unwrap();
    let vars = vec![
        ("HOME".to_owned(), home.path().display().to_string()),
        ("GRPC_LISTEN_ADDR".to_owned(), "127.0.0.1:0".to_owned()),
        ("HTTP_LISTEN_ADDR".to_owned(), "127.0.0.1:0".to_owned()),
        ("METRICS_LISTEN_ADDR".to_owned(), "127.0.0.1:0".to_owned()),
    ];
    let (mut child, _addr) = start(&vars, &["serve", "--sample-site"]);
    let remote = home.path().join(".local/share/config-backup/remote.git");
    wait_for(
        "the first backup in the default remote",
        Duration::from_secs(60),
        || std::future::ready(remote.join("HEAD").exists() && log_subjects(&remote, "main").len() >= 4),
    )
    .await;
    let subjects = log_subjects(&remote, "main");
    assert_eq!(subjects.len(), 4, "{subjects:?}");
    assert!(subjects[3].contains("gateway: 3 files changed"), "{subjects:?}");
    assert!(subjects[0].contains("config/kea/kea-dhcp4.conf"), "{subjects:?}");
    // The generated secret is private.
    let secret = home.path().join(".local/share/config-backup/jwt-secret");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&secret).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    sigterm(&child);
    assert!(wait_exit(&mut child).success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_a_running_backup_finish_and_exits_zero() {
    let env = TestEnv::new(Backend::Sqlite).await;
    let vars: Vec<(String, String)> = env.lookup().into_iter().collect();
    let (mut child, mut client) = serving_with_a_slow_backup_ahead(&env, &vars).await;
    let call = tokio::spawn(async move {
        client
            .backup(with_token(pb::BackupRequest::default(), Role::Admin))
            .await
    });

    // Wait until the backup holds the engine lock, then ask the server to stop.
    let pool = sqlx::SqlitePool::connect(&env.db.url).await.unwrap();
    wait_for(
        "the backup to hold the engine lock",
        Duration::from_secs(30),
        || async {
            let held: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM engine_lock")
                .fetch_one(&pool)
                .await
                .unwrap_or(0);
            held == 1
        },
    )
    .await;
    sigterm(&child);

    let report = call
        .await
        .unwrap()
        .expect("the running backup finishes")
        .into_inner()
        .report
        .unwrap();
    assert_eq!(report.outcome, pb::RunOutcome::Success as i32, "{report:?}");
    assert_eq!(report.domains[1].files_added, 3000);
    let status = tokio::task::spawn_blocking(move || wait_exit(&mut child))
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
    assert_eq!(log_subjects(&env.remote(), "main").len(), 8);
    let outcomes: Vec<String> = sqlx::query_scalar("SELECT outcome FROM config_backup_runs")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(outcomes, ["success", "success"]);
}

/// kill -9 during a backup, once it writes into the work tree; restart without starting
/// another run: Status says the run was interrupted (where and when), not that it is
/// running. The next run puts the work tree back to HEAD.
async fn a_killed_run_is_reported_interrupted_after_a_restart_and_its_work_tree_put_back(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let vars: Vec<(String, String)> = env.lookup().into_iter().collect();
    let (mut child, client) = serving_with_a_slow_backup_ahead(&env, &vars).await;
    let mut caller = client.clone();
    tokio::spawn(async move {
        let _ = caller
            .backup(with_token(pb::BackupRequest::default(), Role::Admin))
            .await;
    });
    let running = wait_for("the backup to start", Duration::from_secs(30), || {
        let mut client = client.clone();
        async move {
            let st = client
                .status(with_token(pb::StatusRequest::default(), Role::Noc))
                .await
                .unwrap()
                .into_inner();
            // Running, and its run recorded (with its lock, in one transaction).
            let recorded = st
                .last_run
                .as_ref()
                .is_some_and(|r| r.outcome == pb::RunOutcome::Running as i32);
            Some(st.running).filter(|r| !r.is_empty() && recorded)
        }
    })
    .await;
    // Killed once it writes the new files into the work tree.
    let zones = env.working_dir().join("config/unbound/unbound.conf.d");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !std::fs::read_dir(&zones)
        .is_ok_and(|mut d| d.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with("zone-"))))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the backup wrote nothing into the work tree"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let pid = child.id();
    let killed = Command::new("kill").args(["-KILL", &pid.to_string()]).status().unwrap();
    assert!(killed.success());
    let _ = child.wait();

    // Restart; no run is started (the repository has commits). Well within the lock's TTL.
    let (mut child, addr, logs) = start_logged(&vars, &["serve"]);
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_lazy();
    config_backup_tests::wait_serving(&channel).await;
    let mut client = ConfigBackupClient::new(channel);
    let st = client
        .status(with_token(pb::StatusRequest::default(), Role::Noc))
        .await
        .unwrap()
        .into_inner();
    assert!(st.running.is_empty(), "a dead run reported as running: {}", st.running);
    assert!(
        st.interrupted.contains(&format!("pid {pid}")) && st.interrupted.contains("last heartbeat"),
        "was {running:?}; now {:?}",
        st.interrupted
    );
    let last = st.last_run.unwrap();
    assert_eq!(last.outcome, pb::RunOutcome::Interrupted as i32, "{last:?}");
    // The metrics say the same.
    let metrics_addr = logs
        .lock()
        .unwrap()
        .iter()
        .find_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            v["fields"]["metrics"].as_str().map(str::to_owned)
        })
        .expect("the server logs its metrics address");
    let text = reqwest::get(format!("http://{metrics_addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("\nconfig_backup_running 0\n"), "{text}");
    assert!(text.contains("\nconfig_backup_interrupted 1\n"), "{text}");
    // The killed run may have written some of the new files into the work tree (in
    // place: one perhaps cut short) without committing them. They leave the site now, so
    // no later run writes them again: only the repair of the work tree removes them.
    let written = std::fs::read_dir(&zones)
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("zone-"))
                .count()
        })
        .unwrap_or(0);
    for i in 0..3000 {
        std::fs::remove_file(
            env.site()
                .join(format!("config/unbound/unbound.conf.d/zone-{i:05}.conf")),
        )
        .unwrap();
    }
    // The next backup takes the lock over, records the run as interrupted, and succeeds.
    let report = client
        .backup(with_token(pb::BackupRequest::default(), Role::Admin))
        .await
        .unwrap()
        .into_inner()
        .report
        .unwrap();
    assert_eq!(report.outcome, pb::RunOutcome::Success as i32, "{report:?}");
    let st = client
        .status(with_token(pb::StatusRequest::default(), Role::Noc))
        .await
        .unwrap()
        .into_inner();
    assert!(st.interrupted.is_empty() && st.running.is_empty(), "{st:?}");
    // The work tree is HEAD's again: nothing the killed run wrote is left in it.
    let status = Command::new("git")
        .env("GIT_OPTIONAL_LOCKS", "0")
        .arg("-C")
        .arg(env.working_dir())
        .args(["status", "--porcelain", "--untracked-files=all"])
        .output()
        .unwrap();
    assert!(
        status.status.success() && status.stdout.is_empty(),
        "the killed run had written {written} zone files into the work tree; git status: {}",
        String::from_utf8_lossy(&status.stdout)
    );
    sigterm(&child);
    assert!(wait_exit(&mut child).success());
}

on_both_backends!(a_killed_run_is_reported_interrupted_after_a_restart_and_its_work_tree_put_back);

/// `config-backup-server config`: the effective configuration, defaults included, for the
/// runbook; no secret in it; a bad setting stops it naming the variable.
#[test]
fn config_prints_the_effective_settings_without_secrets_and_names_a_bad_one() {
    let home = tempfile::tempdir().unwrap();
    let mut vars = vec![
        ("HOME".to_owned(), home.path().display().to_string()),
        (
            "CONFIG_BACKUP_SOURCE_ROOT".to_owned(),
            home.path().display().to_string(),
        ),
        (
            "DATABASE_URL".to_owned(),
            "postgres://cb:pg-s3cret-77@127.0.0.1:5432/configs".to_owned(),
        ),
        (
            "AUTH_JWT_SECRET".to_owned(),
            "jwt-s3cret-0123456789abcdef0123456789".to_owned(),
        ),
        ("CONFIG_BACKUP_SITE".to_owned(), "campus-north".to_owned()),
        ("CONFIG_BACKUP_NOTIFY_ON_CHANGES".to_owned(), "On".to_owned()),
    ];
    let out = command(&[], &vars, &["config"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    for line in [
        "CONFIG_BACKUP_SITE=campus-north",
        "DATABASE_URL=postgres://cb:***@127.0.0.1:5432/configs",
        "AUTH_JWT_SECRET=*** (from AUTH_JWT_SECRET)",
        "GRPC_LISTEN_ADDR=127.0.0.1:50051",
        "CONFIG_BACKUP_HOUR_UTC=4",
        "CONFIG_BACKUP_PATHS__radius=config/radius/**",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing in:\n{text}");
    }
    assert!(!text.contains("pg-s3cret-77") && !text.contains("jwt-s3cret"), "{text}");
    vars.push(("CONFIG_BACKUP_HOUR_UTC".to_owned(), "25".to_owned()));
    let bad = command(&[], &vars, &["config"]).output().unwrap();
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("CONFIG_BACKUP_HOUR_UTC") && err.contains("25"), "{err}");
}

/// Each setting the server reads, given its catalog's bad value, stops `serve` at start
/// with one message naming the variable and what is allowed (the catalog's table test in
/// tests/scheduler/settings.rs checks the good values and the value in the message).
#[test]
fn the_server_stops_at_start_for_each_bad_setting_naming_it() {
    use config_backup_core::settings::catalog::{self, Reader};
    let home = tempfile::tempdir().unwrap();
    let t = home.path().display().to_string();
    std::fs::create_dir(home.path().join("site")).unwrap();
    std::fs::write(home.path().join("jwt-secret"), "s".repeat(40)).unwrap();
    let base = [
        ("HOME", t.clone()),
        ("CONFIG_BACKUP_SOURCE_ROOT", format!("{t}/site")),
        ("GRPC_LISTEN_ADDR", "127.0.0.1:0".to_owned()),
        ("HTTP_LISTEN_ADDR", "127.0.0.1:0".to_owned()),
        ("METRICS_LISTEN_ADDR", "127.0.0.1:0".to_owned()),
        ("SMTP_HOST", "mail.example.net".to_owned()),
        ("CONFIG_BACKUP_NOTIFY_RECIPIENTS", "noc@example.net".to_owned()),
    ];
    for v in catalog::VARIABLES.iter().filter(|v| v.reader != Reader::Scheduler) {
        let name = v.name.replace("<domain>", "dns");
        let bad = v.bad.replace("{tmp}", &t);
        let mut vars: Vec<(String, String)> = base.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        vars.push((name.clone(), bad.clone()));
        let mut child = config_backup_tests::KillOnDrop(
            command(&[], &vars, &["serve"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let status = wait_for_blocking(
            &format!("the server to stop for {name}={bad:?}"),
            Duration::from_secs(30),
            || child.0.try_wait().unwrap(),
        );
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.0.stderr.take().unwrap(), &mut err).unwrap();
        assert!(!status.success(), "{name}={bad:?} must stop the server");
        assert!(
            err.contains(&format!("config-backup-server: {name}")) && err.contains(&format!("allowed: {}", v.allowed)),
            "{name}={bad:?}: {err}"
        );
    }
}
