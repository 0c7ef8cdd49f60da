//! Signed history: with `CONFIG_BACKUP_SIGNING_KEY`, every commit the service makes is
//! SSH-signed, and stock git verifies it with the allowed-signers line the binary prints;
//! without it commits are unsigned and Status says so; a key others can read stops the
//! server at start.

use std::path::Path;
use std::process::Command;

use config_backup_proto::v1 as pb;
use config_backup_server::auth::Role;
use config_backup_tests::{Backend, TestEnv, with_token};

const BIN: &str = env!("CARGO_BIN_EXE_config-backup-server");

use config_backup_tests::signing_key as keygen;

fn git(repo: &Path, args: &[&str]) -> std::process::Output {
    Command::new("git").arg("-C").arg(repo).args(args).output().unwrap()
}

/// `git verify-commit` of `commit` in `repo`, trusting `allowed`.
fn verify(repo: &Path, allowed: &Path, commit: &str) -> std::process::Output {
    let allowed = format!("gpg.ssh.allowedSignersFile={}", allowed.display());
    git(repo, &["-c", "gpg.format=ssh", "-c", &allowed, "verify-commit", commit])
}

fn commits(repo: &Path) -> Vec<String> {
    let out = git(repo, &["rev-list", "main"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

async fn every_commit_is_signed_and_stock_git_verifies_it_with_the_printed_allowed_signers(backend: Backend) {
    let mut env = TestEnv::new(backend).await;
    let key = keygen(env.dir.path(), 0o600);
    env.vars
        .insert("CONFIG_BACKUP_SIGNING_KEY".into(), key.display().to_string());
    let app = env.spawn().await;
    app.backup().await;
    // A commit that cannot be pushed (the remote is away) ...
    let remote = env.remote();
    let away = env.dir.path().join("away.git");
    std::fs::rename(&remote, &away).unwrap();
    std::fs::write(env.site().join("config/kea/kea-dhcp4.conf"), "{}\n").unwrap();
    let unpushed = app.backup().await.domains[3].commit_hash.clone();
    std::fs::rename(&away, &remote).unwrap();
    // ... while someone else adds a file there: the next run rebases ours on top of it,
    // writing those commits anew, and they must be signed too.
    config_backup_tests::foreign_commit(&remote, &env.dir.path().join("op"), "NOTES.md", "audit notes\n");
    std::fs::write(env.site().join("config/kea/kea-dhcp4.conf"), "{ }\n").unwrap();
    let third = app.backup().await;
    assert_eq!(
        third.push.as_ref().map(|p| p.outcome),
        Some(config_backup_proto::v1::PushOutcome::Pushed as i32),
        "{third:?}"
    );

    let status = app.status().await;
    let fingerprint = Command::new("ssh-keygen").arg("-lf").arg(&key).output().unwrap();
    let fingerprint = String::from_utf8_lossy(&fingerprint.stdout).to_string();
    assert!(status.signing_enabled, "{status:?}");
    assert!(
        status.signing_key_fingerprint.starts_with("SHA256:") && fingerprint.contains(&status.signing_key_fingerprint),
        "Status {} vs ssh-keygen {fingerprint}",
        status.signing_key_fingerprint
    );

    let printed = Command::new(BIN)
        .arg("allowed-signers")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .envs(env.lookup())
        .output()
        .unwrap();
    let line = String::from_utf8_lossy(&printed.stdout).to_string();
    assert!(printed.status.success(), "{}", String::from_utf8_lossy(&printed.stderr));
    let email = env.lookup()["GIT_USER_EMAIL"].clone();
    assert!(
        line.starts_with(&format!("{email} namespaces=\"git\" ssh-ed25519 ")),
        "{line}"
    );
    let allowed = env.dir.path().join("allowed_signers");
    std::fs::write(&allowed, &line).unwrap();

    // Every commit of ours (three runs of four domains), the rebased ones included; the
    // operator's hand edit is the one unsigned commit.
    let all = commits(&remote);
    let ours: Vec<&String> = all
        .iter()
        .filter(|c| {
            let body = git(&remote, &["log", "-1", "--format=%B", c.as_str()]);
            String::from_utf8_lossy(&body.stdout).contains("Config-Backup-Domain:")
        })
        .collect();
    assert_eq!(
        (all.len(), ours.len()),
        (13, 12),
        "three runs of four domains and the hand edit"
    );
    assert!(
        !all.contains(&unpushed),
        "the unpushed run's commits were rebased (written anew)"
    );
    for c in &ours {
        let out = verify(&remote, &allowed, c);
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "git verify-commit {c}: {said}");
        assert!(said.contains(&format!("Good \"git\" signature for {email}")), "{said}");
    }
    // Another key's allowed-signers line does not verify them.
    let other = tempfile::tempdir().unwrap();
    let other_key = keygen(other.path(), 0o600);
    let other_pub = std::fs::read_to_string(other_key.with_extension("pub")).unwrap();
    let stranger = other.path().join("allowed_signers");
    std::fs::write(&stranger, format!("{email} namespaces=\"git\" {other_pub}")).unwrap();
    assert!(!verify(&remote, &stranger, &all[0]).status.success());

    // A rollback applies only commits this key signed: the operator's hand edit is refused,
    // naming it, and nothing changes.
    let hand_edit = all.iter().find(|c| !ours.contains(c)).unwrap().clone();
    let rollback = |commit: &str, allow_unsigned: bool, reason: &str| {
        let req = pb::RollbackRequest {
            commit: commit.to_owned(),
            domain: "kea".into(),
            reason: reason.into(),
            allow_unsigned,
            ..Default::default()
        };
        let mut client = app.client();
        async move { client.rollback(with_token(req, Role::Admin)).await }
    };
    let live = std::fs::read(env.site().join("config/kea/kea-dhcp4.conf")).unwrap();
    let refused = rollback(&hand_edit, false, "").await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition, "{refused:?}");
    assert!(
        refused.message().contains(&hand_edit) && refused.message().contains("it is not signed"),
        "{}",
        refused.message()
    );
    assert_eq!(
        std::fs::read(env.site().join("config/kea/kea-dhcp4.conf")).unwrap(),
        live
    );
    // The override needs a reason ...
    let no_reason = rollback(&hand_edit, true, " ").await.unwrap_err();
    assert_eq!(no_reason.code(), tonic::Code::InvalidArgument, "{no_reason:?}");
    assert!(no_reason.message().contains("reason"), "{}", no_reason.message());
    // ... and with one the rollback runs, its task recording the override.
    let task = rollback(&hand_edit, true, "restore the hand-edited tree, ticket 4711")
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    let mut states = app
        .client()
        .rollback_status(with_token(
            pb::RollbackStatusRequest {
                task_id: task.task_id.clone(),
            },
            Role::Noc,
        ))
        .await
        .unwrap()
        .into_inner();
    let mut last = None;
    while let Some(t) = futures::StreamExt::next(&mut states).await {
        last = t.unwrap().task;
    }
    let last = last.unwrap();
    assert_eq!(last.state, pb::RollbackState::Success as i32, "{last:?}");
    assert!(
        last.warnings
            .iter()
            .any(|w| w.contains(&hand_edit) && w.contains("allow_unsigned") && w.contains("ticket 4711")),
        "{:?}",
        last.warnings
    );
    // A commit this key signed needs no override.
    let signed = rollback(ours[0], false, "").await;
    assert!(signed.is_ok(), "{signed:?}");
    app.stop().await;
}

async fn without_a_key_commits_are_unsigned_and_status_says_so(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let app = env.spawn().await;
    app.backup().await;
    let status = app.status().await;
    assert!(
        !status.signing_enabled && status.signing_key_fingerprint.is_empty(),
        "{status:?}"
    );
    let head = commits(&env.remote()).remove(0);
    let allowed = env.dir.path().join("allowed_signers");
    std::fs::write(&allowed, "").unwrap();
    let out = verify(&env.remote(), &allowed, &head);
    assert!(!out.status.success());
    app.stop().await;
}

on_both_backends!(
    every_commit_is_signed_and_stock_git_verifies_it_with_the_printed_allowed_signers,
    without_a_key_commits_are_unsigned_and_status_says_so,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signing_key_others_can_read_stops_the_server_naming_it() {
    let env = TestEnv::new(Backend::Sqlite).await;
    let key = keygen(env.dir.path(), 0o644);
    let out = Command::new(BIN)
        .arg("allowed-signers")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .envs(env.lookup())
        .env("CONFIG_BACKUP_SIGNING_KEY", &key)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("CONFIG_BACKUP_SIGNING_KEY") && err.contains("mode 0644"),
        "{err}"
    );
    // The server itself stops at start, before it serves anything.
    let mut settings = config_backup_server::ServerSettings::from_env(
        &env.lookup()
            .into_iter()
            .chain([("CONFIG_BACKUP_SIGNING_KEY".to_owned(), key.display().to_string())])
            .collect(),
    )
    .unwrap();
    settings.grpc_listen = "127.0.0.1:0".parse().unwrap();
    settings.http_listen = "127.0.0.1:0".parse().unwrap();
    settings.metrics_listen = "127.0.0.1:0".parse().unwrap();
    let e = config_backup_server::Application::build(settings)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("CONFIG_BACKUP_SIGNING_KEY") && e.contains("mode 0644"),
        "{e}"
    );
}
