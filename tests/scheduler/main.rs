//! The scheduler binary against a real server: `--once`, catch-up at start, retries and
//! the alert when the server is down, no alert when a backup is already running, and the
//! next fire time in UTC whatever TZ says.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use config_backup_core::store::{LockHolder, LockKind};
use config_backup_proto::v1 as pb;
use config_backup_server::auth::Role;
use config_backup_tests::smtp::SmtpServer;
use config_backup_tests::{Backend, KillOnDrop, SECRET, TestApp, TestEnv, wait_for, with_token};

mod settings;

const BIN: &str = env!("CARGO_BIN_EXE_config-backup-scheduler");

fn scheduler(addr: &str, extra: &[(String, String)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .env("CONFIG_BACKUP_SERVER_ADDR", format!("http://{addr}"))
        .env("AUTH_JWT_SECRET", SECRET)
        .env("CONFIG_BACKUP_RETRY_DELAY_SECONDS", "1")
        .stdin(Stdio::null());
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd
}

/// The scheduler as a daemon, its log (stderr) in `log`.
fn daemon(addr: &str, extra: &[(String, String)], log: &Path) -> KillOnDrop {
    KillOnDrop(
        scheduler(addr, extra)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap(),
    )
}

/// Sends SIGTERM to the scheduler.
fn sigterm(child: &std::process::Child) {
    assert!(
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
}

/// Waits until the scheduler's log (its stderr) says `needle`.
async fn logged(log: &Path, needle: &str) {
    wait_for(
        &format!("the scheduler to log {needle:?}"),
        Duration::from_secs(30),
        || {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            std::future::ready(if text.contains(needle) { Ok(()) } else { Err(text) })
        },
    )
    .await
}

fn output(cmd: &mut Command) -> (Output, String) {
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, text)
}

async fn status(app: &TestApp) -> pb::StatusResponse {
    app.client()
        .status(with_token(pb::StatusRequest::default(), Role::Noc))
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_makes_a_backup_and_prints_a_readable_report() {
    let env = TestEnv::new(Backend::Sqlite).await;
    let app = env.spawn().await;
    let addr = app.addr.to_string();
    let (out, text) = tokio::task::spawn_blocking(move || output(scheduler(&addr, &[]).arg("--once")))
        .await
        .unwrap();
    assert!(out.status.success(), "{text}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("backup run ") && stdout.contains(": SUCCESS in "),
        "{stdout}"
    );
    assert!(
        stdout.contains("  gateway ") && stdout.contains("+3 ~0 -0 =0"),
        "{stdout}"
    );
    assert!(stdout.contains("push: pushed"), "{stdout}");
    let last = status(&app).await.last_run.unwrap();
    assert_eq!(last.trigger, pb::RunTrigger::Scheduled as i32);
    assert_eq!(last.requested_by, "system");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_the_catch_up_waits_for_the_server_stops_the_scheduler_cleanly() {
    // A server that takes the connection and never answers: the catch-up's call waits.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("scheduler.log");
    let mut child = daemon(&addr, &[], &log);
    logged(&log, "scheduler started").await;
    let (_held, _) = tokio::time::timeout(Duration::from_secs(30), silent.accept())
        .await
        .expect("the catch-up to call the server")
        .unwrap();
    sigterm(&child.0);
    let began = Instant::now();
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "the scheduler did not stop within 10 s of SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        status.success(),
        "stopped by SIGTERM during the catch-up: {status} (killed by the signal, not stopped)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_start_a_missed_backup_is_caught_up_and_a_recent_one_is_not() {
    let env = TestEnv::new(Backend::Sqlite).await;
    let app = env.spawn().await;
    let addr = app.addr.to_string();
    // The schedule's last time was hours ago and no backup ever succeeded: catch up.
    let mut child = KillOnDrop(
        scheduler(&addr, &[])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let first = wait_for("the catch-up backup", Duration::from_secs(30), || async {
        status(&app).await.last_successful_run
    })
    .await;
    assert_eq!(first.trigger, pb::RunTrigger::Scheduled as i32);
    sigterm(&child.0);
    assert!(child.0.wait().unwrap().success());

    // Now the last success is after the last scheduled time: a new start runs nothing.
    let log = env.dir.path().join("scheduler.log");
    let mut child = daemon(&addr, &[], &log);
    logged(&log, "no catch-up needed").await;
    assert_eq!(
        status(&app).await.last_run.unwrap().run_id,
        first.run_id,
        "no second backup"
    );
    sigterm(&child.0);
    assert!(child.0.wait().unwrap().success());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_is_down_gets_three_attempts_then_an_alert_mail() {
    let dir = tempfile::tempdir().unwrap();
    let smtp = SmtpServer::start(&dir.path().join("maildir"), false);
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let vars = smtp.vars();
    let started = Instant::now();
    let (out, text) = tokio::task::spawn_blocking(move || output(scheduler(&closed, &vars).arg("--once")))
        .await
        .unwrap();
    assert!(!out.status.success(), "{text}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("FAILED after 3 attempt(s)"),
        "{text}"
    );
    assert!(started.elapsed() >= Duration::from_secs(2), "two retry delays of 1 s");
    assert_eq!(text.matches("scheduled backup attempt failed").count(), 3, "{text}");
    let mails = smtp.wait_for(1);
    let m = mail_parser::MessageParser::default().parse(&mails[0]).unwrap();
    assert_eq!(m.subject(), Some("ALERT: Config Backup FAILED"));
    let body = m.body_text(0).unwrap();
    assert!(body.contains("could not be reached after 3 attempts"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_already_running_is_not_a_failure_and_sends_no_alert() {
    let env = TestEnv::new(Backend::Sqlite).await;
    let app = env.spawn().await;
    let other = LockHolder {
        kind: LockKind::Backup,
        id: uuid::Uuid::new_v4(),
        host: "replica-2".into(),
        pid: 7,
        instance: "x".into(),
        acquired_at: chrono::Utc::now(),
    };
    app.engine
        .store()
        .try_lock(&other, Duration::from_secs(60))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let smtp = SmtpServer::start(&dir.path().join("maildir"), false);
    let (addr, vars) = (app.addr.to_string(), smtp.vars());
    let (out, text) = tokio::task::spawn_blocking(move || output(scheduler(&addr, &vars).arg("--once")))
        .await
        .unwrap();
    assert!(out.status.success(), "{text}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("backup not started"),
        "{text}"
    );
    assert!(text.contains(&other.id.to_string()), "{text}");
    // The scheduler has exited: any alert it sent has been accepted by now.
    assert!(smtp.messages().is_empty(), "no alert");
    app.stop().await;
}

#[test]
fn the_next_fire_time_is_the_configured_utc_time_whatever_tz_says() {
    let now = chrono::Utc::now();
    for tz in ["America/New_York", "Asia/Tokyo", "UTC"] {
        let (out, text) = output(scheduler("127.0.0.1:1", &[]).env("TZ", tz).arg("--print-next"));
        assert!(out.status.success(), "{text}");
        let printed = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        assert!(printed.ends_with("T04:00:00Z"), "TZ={tz}: {printed}");
        let next = chrono::DateTime::parse_from_rfc3339(&printed).unwrap();
        assert!(
            next > now && next <= now + chrono::Duration::days(1),
            "TZ={tz}: {printed}"
        );
    }
    let (out, _) = output(
        scheduler(
            "127.0.0.1:1",
            &[
                ("CONFIG_BACKUP_HOUR_UTC".into(), "23".into()),
                ("CONFIG_BACKUP_MINUTE_UTC".into(), "45".into()),
            ],
        )
        .arg("--print-next"),
    );
    assert!(String::from_utf8_lossy(&out.stdout).trim().ends_with("T23:45:00Z"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_schedule_idles_and_says_so() {
    let env = TestEnv::new(Backend::Sqlite).await;
    let app = env.spawn().await;
    let log = env.dir.path().join("scheduler.log");
    let mut child = daemon(
        &app.addr.to_string(),
        &[
            ("CONFIG_BACKUP_ENABLED".into(), "false".into()),
            ("CONFIG_BACKUP_DRILL_SCHEDULE".into(), "off".into()),
        ],
        &log,
    );
    logged(&log, "idling until stopped").await;
    assert!(child.0.try_wait().unwrap().is_none(), "it stays up");
    assert!(status(&app).await.last_run.is_none(), "and runs nothing");
    sigterm(&child.0);
    assert!(child.0.wait().unwrap().success());
    assert!(
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("CONFIG_BACKUP_ENABLED=false")
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_restore_drill_runs_on_its_schedule_and_drill_once_prints_it() {
    let env = TestEnv::new(Backend::Sqlite).await;
    let app = env.spawn().await;
    app.backup().await;
    // --drill-once: one drill now, each domain's verdict printed, exit 0 when proven.
    let (out, text) = output(scheduler(&app.addr.to_string(), &[]).arg("--drill-once"));
    assert!(out.status.success(), "{text}");
    assert!(text.contains(": PROVEN\n"), "{text}");
    for d in ["gateway", "dns", "radius", "kea"] {
        assert!(
            text.lines()
                .any(|l| l.trim_start().starts_with(d) && l.contains("PROVEN")),
            "{d}: {text}"
        );
    }
    let drills = app.engine.drills(10).await.unwrap();
    assert_eq!(drills.len(), 1);
    assert_eq!(drills[0].trigger, config_backup_core::store::Trigger::Scheduled);
    assert_eq!(drills[0].requested_by, "system");

    // The daemon runs it on CONFIG_BACKUP_DRILL_SCHEDULE, backups off.
    let log = env.dir.path().join("scheduler.log");
    let _child = daemon(
        &app.addr.to_string(),
        &[
            ("CONFIG_BACKUP_ENABLED".into(), "false".into()),
            ("CONFIG_BACKUP_DRILL_SCHEDULE".into(), "*/2 * * * * *".into()),
        ],
        &log,
    );
    logged(&log, "the restore drill stays on").await;
    logged(&log, "scheduled restore drill done").await;
    let drills = app.engine.drills(10).await.unwrap();
    assert!(drills.len() >= 2, "{drills:?}");
    assert!(drills[0].proven(), "{drills:?}");
    assert!(
        status(&app)
            .await
            .last_run
            .as_ref()
            .is_some_and(|r| r.trigger == pb::RunTrigger::Manual as i32)
    );
    app.stop().await;
}
