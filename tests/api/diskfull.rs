//! A full disk: the working copy on an 8 MB tmpfs and a 7 MB file to back up. The run
//! report, Status and the alert mail say "no space left on device" and where; nothing on
//! the remote is lost; both repositories pass `git fsck`; the next run after space is
//! freed succeeds without a manual step.

use std::path::{Path, PathBuf};
use std::process::Command;

use config_backup_proto::v1 as pb;
use config_backup_tests::smtp::SmtpServer;
use config_backup_tests::{Backend, TestEnv, log_subjects};

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("mount(8) runs");
        assert!(
            out.status.success(),
            "the disk-full test mounts an 8 MB tmpfs and needs root for it (the test command runs as \
             root in CI): mount said {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Tmpfs(dir.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn fsck(git_dir: &Path) {
    let out = Command::new("git")
        .arg("--git-dir")
        .arg(git_dir)
        .args(["fsck", "--full", "--no-dangling"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git fsck {}: {}{}",
        git_dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Incompressible bytes (a deflated object is as large as the file).
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x1234_5678_9abc_def1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

async fn a_full_disk_is_named_in_the_report_status_and_mail_and_the_next_run_recovers(backend: Backend) {
    let mut env = TestEnv::new(backend).await;
    let full = env.dir.path().join("full");
    let _tmpfs = Tmpfs::mount(&full, "8m");
    let smtp = SmtpServer::start(&env.dir.path().join("maildir"), false);
    env.vars.extend(smtp.vars());
    let wc = full.join("working-copy");
    env.vars.insert("GIT_WORKING_DIR".into(), wc.display().to_string());
    let app = env.spawn().await;
    let first = app.backup().await;
    assert_eq!(first.outcome, pb::RunOutcome::Success as i32, "{first:?}");
    let before = log_subjects(&env.remote(), "main");

    let huge = env.site().join("config/unbound/unbound.conf.d/huge.conf");
    std::fs::write(&huge, noise(7 << 20)).unwrap();
    let report = app.backup().await;
    assert_ne!(report.outcome, pb::RunOutcome::Success as i32, "{report:?}");
    let dns = report.domains.iter().find(|d| d.domain == "dns").unwrap();
    let says = |text: &str| text.to_lowercase().contains("no space left on device");
    assert!(says(&dns.error), "the domain's error names the cause: {:?}", dns.error);
    assert!(
        dns.error.contains(&wc.display().to_string()),
        "and where: {:?}",
        dns.error
    );
    let status = app.status().await;
    let dns_status = status.domains.iter().find(|d| d.domain == "dns").unwrap();
    assert!(
        says(&dns_status.last_error),
        "Status names the domain's cause: {dns_status:?}"
    );
    let last = status.last_run.unwrap();
    assert!(says(&last.error), "Status names the cause: {:?}", last.error);
    let mails = smtp.wait_for(2);
    let alert = mails
        .iter()
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .find(|m| m.contains("ALERT"))
        .expect("an alert mail");
    let parsed = mail_parser::MessageParser::default().parse(alert.as_bytes()).unwrap();
    assert!(
        says(&parsed.body_text(0).unwrap_or_default()),
        "the alert names the cause: {:?}",
        parsed.body_text(0)
    );
    // Nothing the remote had is lost, and both repositories are sound.
    let after = log_subjects(&env.remote(), "main");
    assert!(after.ends_with(&before), "{before:?} / {after:?}");
    fsck(&env.remote());
    fsck(&wc.join(".git"));

    // Space is freed: the next run succeeds, no manual step.
    std::fs::remove_file(&huge).unwrap();
    let report = app.backup().await;
    assert_eq!(report.outcome, pb::RunOutcome::Success as i32, "{report:?}");
    let status = app.status().await;
    assert!(status.domains.iter().all(|d| d.last_error.is_empty()), "{status:?}");
    fsck(&env.remote());
    fsck(&wc.join(".git"));
    app.stop().await;
}

on_both_backends!(a_full_disk_is_named_in_the_report_status_and_mail_and_the_next_run_recovers);

/// The SQLite audit database on a full filesystem: a backup is refused with
/// UNAVAILABLE naming the cause, Status still answers, and once space is freed the next
/// backup succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_audit_database_is_named_and_the_next_run_recovers() {
    let mut env = TestEnv::new(Backend::Sqlite).await;
    let full = env.dir.path().join("dbfs");
    let _tmpfs = Tmpfs::mount(&full, "4m");
    env.vars.insert(
        "DATABASE_URL".into(),
        format!("sqlite://{}?mode=rwc", full.join("audit.db").display()),
    );
    let app = env.spawn().await;
    assert_eq!(app.backup().await.outcome, pb::RunOutcome::Success as i32);
    // Fill what is left.
    let filler = full.join("filler");
    let _ = std::fs::write(&filler, vec![0u8; 8 << 20]);
    let err = app
        .client()
        .backup(config_backup_tests::with_token(
            pb::BackupRequest::default(),
            config_backup_server::auth::Role::Admin,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
    assert!(err.message().contains("database or disk is full"), "{}", err.message());
    app.status().await;
    std::fs::remove_file(&filler).unwrap();
    assert_eq!(app.backup().await.outcome, pb::RunOutcome::Success as i32);
    app.stop().await;
}
