//! Mail to the NOC through a real SMTP server: summaries, alerts, rollback reports, and
//! a refusing server that fails nothing.

use config_backup_proto::v1 as pb;
use config_backup_server::auth::Role;
use config_backup_tests::smtp::SmtpServer;
use config_backup_tests::{Backend, TestEnv, wait_for, with_token};
use mail_parser::MessageParser;
use sha2::{Digest, Sha256};

pub(crate) struct Parsed {
    pub(crate) subject: String,
    pub(crate) to: Vec<String>,
    pub(crate) text: String,
    pub(crate) html: String,
}

pub(crate) fn parse(raw: &[u8]) -> Parsed {
    let m = MessageParser::default().parse(raw).expect("a parsable mail");
    let to = m
        .to()
        .map(|a| a.iter().filter_map(|x| x.address().map(str::to_owned)).collect())
        .unwrap_or_default();
    Parsed {
        subject: m.subject().unwrap_or_default().to_owned(),
        to,
        text: m.body_text(0).map(|t| t.into_owned()).unwrap_or_default(),
        html: m.body_html(0).map(|t| t.into_owned()).unwrap_or_default(),
    }
}

pub(crate) async fn env_with_mail(backend: Backend, extra: &[(&str, &str)]) -> (TestEnv, SmtpServer) {
    let mut env = TestEnv::new(backend).await;
    let smtp = SmtpServer::start(&env.dir.path().join("maildir"), false);
    env.vars.extend(smtp.vars());
    for (k, v) in extra {
        env.vars.insert((*k).into(), (*v).into());
    }
    (env, smtp)
}

fn sha7(path: &std::path::Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))[..7].to_owned()
}

async fn a_change_mails_a_summary_with_hashes_and_line_counts_but_no_contents(backend: Backend) {
    let (env, smtp) = env_with_mail(backend, &[]).await;
    let app = env.spawn().await;
    app.backup().await;
    let mails = smtp.wait_for(1);
    let m = parse(&mails[0]);
    assert_eq!(m.subject, "Config backup — 10 files changed, 4 commits");
    assert_eq!(m.to, ["noc@rgz.local", "oncall@rgz.local"]);
    let clients = env.site().join("config/radius/clients.conf");
    let lines = std::fs::read_to_string(&clients).unwrap().lines().count();
    // clients.conf holds RADIUS secrets: its hash is that of the stored, sealed form.
    let stored = config_backup_tests::stored(&env.remote(), "main", "config/radius/clients.conf");
    let expected = format!(
        "added config/radius/clients.conf 0000000→{} +{lines} -0",
        &hex::encode(Sha256::digest(&stored))[..7]
    );
    assert!(
        !m.text.contains(&sha7(&clients)),
        "no plain hash of a file holding secrets"
    );
    assert!(m.text.contains(&expected), "{expected} not in:\n{}", m.text);
    assert!(m.text.contains("Push: pushed"), "{}", m.text);
    assert!(
        m.html.contains("<table>") && m.html.contains("config/radius/clients.conf"),
        "{}",
        m.html
    );
    // RADIUS shared secrets never leave in a mail by default.
    for part in [&m.text, &m.html] {
        assert!(!part.contains("sample-bng01-secret"), "a secret leaked: {part}");
    }
    // The mail is recorded once the SMTP server accepted it, a moment after it arrived.
    let status = wait_for(
        "the mail recorded in Status",
        std::time::Duration::from_secs(10),
        || async { Some(app.status().await).filter(|s| !s.last_mail_subject.is_empty()) },
    )
    .await;
    assert_eq!(status.last_mail_subject, m.subject);
    assert!(status.last_mail_error.is_empty());
    app.stop().await;
}

async fn a_no_change_run_mails_a_summary_unless_only_changes_are_wanted(backend: Backend) {
    let (env, smtp) = env_with_mail(backend, &[]).await;
    let app = env.spawn().await;
    app.backup().await;
    smtp.wait_for(1);
    app.backup().await;
    let m = parse(&smtp.wait_for(2)[1]);
    assert_eq!(m.subject, "Config backup — 0 files changed, 4 commits");
    assert!(m.text.contains("no changes"), "{}", m.text);
    app.stop().await;

    let (env, smtp) = env_with_mail(backend, &[("CONFIG_BACKUP_NOTIFY_ON_CHANGES", "true")]).await;
    let app = env.spawn().await;
    app.backup().await;
    smtp.wait_for(1);
    app.backup().await;
    std::fs::write(env.site().join("config/kea/kea-dhcp4.conf"), "{}\n").unwrap();
    app.backup().await;
    let mails = smtp.wait_for(2);
    assert_eq!(mails.len(), 2, "the no-change run sent nothing");
    assert_eq!(parse(&mails[1]).subject, "Config backup — 1 files changed, 4 commits");
    app.stop().await;
}

async fn patch_lines_are_mailed_only_when_asked(backend: Backend) {
    let (env, smtp) = env_with_mail(backend, &[("CONFIG_BACKUP_NOTIFY_INCLUDE_DIFF", "true")]).await;
    let app = env.spawn().await;
    app.backup().await;
    let m = parse(&smtp.wait_for(1)[0]);
    // Patch lines, with every secret a placeholder: never the secret itself.
    assert!(m.text.contains("+    secret = «secret added»"), "{}", m.text);
    assert!(m.text.contains("+    shortname = bng-01"), "{}", m.text);
    assert!(!m.text.contains("sample-bng01-secret-7f3a"), "{}", m.text);
    app.stop().await;
}

async fn a_push_failing_twice_in_a_row_mails_an_alert(backend: Backend) {
    let (env, smtp) = env_with_mail(backend, &[]).await;
    let app = env.spawn().await;
    app.backup().await;
    smtp.wait_for(1);
    std::fs::rename(env.remote(), env.dir.path().join("away.git")).unwrap();
    app.backup().await;
    let first = parse(&smtp.wait_for(2)[1]);
    assert!(
        !first.subject.starts_with("ALERT"),
        "one failed push is not yet an alert: {}",
        first.subject
    );
    assert!(first.text.contains("Push: FAILED"), "{}", first.text);
    app.backup().await;
    let alert = parse(&smtp.wait_for(3)[2]);
    assert_eq!(alert.subject, "ALERT: Config Backup FAILED");
    assert!(alert.text.contains("push"), "{}", alert.text);
    assert!(
        alert
            .text
            .contains("commit(s) made and kept in the working copy; 8 commit(s) waiting to be pushed"),
        "{}",
        alert.text
    );
    app.stop().await;
}

async fn a_rollback_mails_who_why_the_target_and_the_duration(backend: Backend) {
    let (env, smtp) = env_with_mail(backend, &[]).await;
    let app = env.spawn().await;
    let first = app.backup().await;
    std::fs::write(env.site().join("config/kea/kea-dhcp4.conf"), "{}\n").unwrap();
    app.backup().await;
    smtp.wait_for(2);
    let target = first.domains[3].commit_hash.clone();
    let req = pb::RollbackRequest {
        commit: target.clone(),
        reason: "lease time regression".into(),
        ..Default::default()
    };
    let task = app
        .client()
        .rollback(with_token(req, Role::Admin))
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    // The rollback mail (the rollback's own commits send no backup summary).
    let mails = smtp.wait_for(3);
    let m = parse(mails.last().unwrap());
    assert_eq!(m.subject, format!("Config rollback — kea to {}: SUCCESS", &target[..7]));
    assert!(
        m.text.contains(&format!("Rollback task {}", task.task_id)),
        "{}",
        m.text
    );
    assert!(
        m.text
            .contains(&format!("Requested by: {}", config_backup_tests::ADMIN_SUB))
    );
    assert!(m.text.contains("Reason: lease time regression"));
    assert!(m.text.contains("Duration: "));
    assert!(m.html.contains("<table>"));
    app.stop().await;
    assert_eq!(smtp.messages().len(), 3);
}

async fn a_refusing_smtp_server_fails_no_backup_and_shows_in_status(backend: Backend) {
    let mut env = TestEnv::new(backend).await;
    let smtp = SmtpServer::start(&env.dir.path().join("maildir"), true);
    env.vars.extend(smtp.vars());
    let app = env.spawn().await;
    let report = app.backup().await;
    assert_eq!(report.outcome, pb::RunOutcome::Success as i32);
    let status = wait_for(
        "the mail failure in Status",
        std::time::Duration::from_secs(30),
        || async { Some(app.status().await).filter(|s| !s.last_mail_error.is_empty()) },
    )
    .await;
    assert!(status.last_mail_error.contains("550"), "{}", status.last_mail_error);
    assert!(smtp.messages().is_empty());
    app.stop().await;
}

on_both_backends!(
    a_change_mails_a_summary_with_hashes_and_line_counts_but_no_contents,
    a_no_change_run_mails_a_summary_unless_only_changes_are_wanted,
    patch_lines_are_mailed_only_when_asked,
    a_push_failing_twice_in_a_row_mails_an_alert,
    a_rollback_mails_who_why_the_target_and_the_duration,
    a_refusing_smtp_server_fails_no_backup_and_shows_in_status,
);
