//! The audit hash chain: a history with changes, a rebase and retention verifies whole;
//! an audit row edited or deleted afterwards, or a link removed, is named (link, commit
//! and what), through the engine and through `config-backup-server verify-audit`.

use std::process::Command;

use config_backup_tests::{Backend, TestEnv};

const BIN: &str = env!("CARGO_BIN_EXE_config-backup-server");

fn verify_audit(env: &TestEnv) -> (bool, String) {
    let out = Command::new(BIN)
        .arg("verify-audit")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .envs(env.lookup())
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Checks the chain and asserts that one problem holds every one of `needles`.
async fn assert_named(app: &config_backup_tests::TestApp, needles: &[&str]) -> config_backup_core::store::ChainReport {
    let report = app.engine.verify_audit_chain().await.unwrap();
    assert!(
        report.problems.iter().any(|p| needles.iter().all(|n| p.contains(n))),
        "no problem names {needles:?}: {report:?}"
    );
    report
}

async fn an_edited_or_deleted_audit_row_and_a_removed_link_are_named(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let app = env.spawn().await;
    let first = app.backup().await;
    std::fs::write(env.site().join("config/kea/kea-dhcp4.conf"), "{}\n").unwrap();
    let second = app.backup().await;
    app.backup().await;
    let report = app.engine.verify_audit_chain().await.unwrap();
    assert!(report.problems.is_empty(), "{report:?}");
    assert_eq!(report.links, 12, "three runs of four domains: {report:?}");
    let (ok, said) = verify_audit(&env);
    assert!(
        ok && said.contains("12 links checked") && said.contains("as recorded"),
        "{said}"
    );
    // The commits of a run name the chain head it started from: the remote holds anchors.
    let anchored = second.domains[3].commit_message.clone();
    assert!(anchored.contains("\nConfig-Backup-Audit-Chain: "), "{anchored}");
    assert!(
        !first.domains[0].commit_message.contains("Audit-Chain"),
        "the first run had no chain yet"
    );

    // Someone with database access edits the hash of the changed kea file ...
    let kea = second.domains[3].commit_hash.clone();
    env.execute(
        "UPDATE config_file_changes SET file_sha256 = $1 WHERE change_type = 'modified'",
        &"0".repeat(64),
    )
    .await;
    // ... deletes the first gateway commit's row ...
    let gateway = first.domains[0].commit_hash.clone();
    env.execute("DELETE FROM config_commits WHERE commit_hash = $1", &gateway)
        .await;
    assert_named(&app, &[&kea, "changed or deleted"]).await;
    assert_named(&app, &[&gateway, "row was deleted"]).await;
    // ... and removes a link of the chain.
    env.execute(
        "DELETE FROM config_audit_chain WHERE position = 7 AND kind <> $1",
        "none",
    )
    .await;
    assert_named(&app, &["links 7 to 7: missing"]).await;
    let (ok, said) = verify_audit(&env);
    assert!(!ok && said.contains("FAILED: link") && said.contains(&kea), "{said}");
    // A stored subject edited no longer matches git's.
    env.execute(
        "UPDATE config_commits SET commit_message = commit_message || 'x' WHERE commit_hash = $1",
        &kea,
    )
    .await;
    assert_named(&app, &[&kea, "differs from the commit in the repository"]).await;
    // A chain recomputed after an edit (here: its links' hashes replaced) no longer has
    // the heads the commits in git name.
    env.execute(
        "UPDATE config_audit_chain SET hash = $1 || hash, prev_hash = 'x' || prev_hash",
        "x",
    )
    .await;
    assert_named(&app, &["the chain was rewritten"]).await;
    // Deleting the whole chain does not make it pass: the commits name chain heads.
    env.execute("DELETE FROM config_audit_chain WHERE kind <> $1", "none")
        .await;
    let report = assert_named(&app, &["no link covers it"]).await;
    assert_eq!(report.links, 0);
    app.stop().await;
}

async fn commits_moved_by_a_rebase_keep_the_chain_whole(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let app = env.spawn().await;
    app.backup().await;
    // Our commits wait while the remote is away, and someone else pushes meanwhile: the
    // next run rebases ours (their recorded hashes change).
    let remote = env.remote();
    let away = env.dir.path().join("away.git");
    std::fs::rename(&remote, &away).unwrap();
    std::fs::write(env.site().join("config/kea/kea-dhcp4.conf"), "{}\n").unwrap();
    let unpushed = app.backup().await.domains[3].commit_hash.clone();
    std::fs::rename(&away, &remote).unwrap();
    config_backup_tests::foreign_commit(&remote, &env.dir.path().join("op"), "NOTES.md", "audit notes\n");
    app.backup().await;
    let st = app.status().await;
    assert_ne!(
        st.domains[3].last_change_commit_hash, unpushed,
        "the commit was rebased"
    );
    let report = app.engine.verify_audit_chain().await.unwrap();
    assert!(report.problems.is_empty(), "{report:?}");
    assert!(report.links > 12, "the rebase added its links: {report:?}");
    app.stop().await;
}

on_both_backends!(
    an_edited_or_deleted_audit_row_and_a_removed_link_are_named,
    commits_moved_by_a_rebase_keep_the_chain_whole,
);
