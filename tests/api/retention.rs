//! Retention of audit rows, and a compact working copy.

use chrono::{Months, Utc};
use config_backup_core::Domain;
use config_backup_core::domain::ChangeKind;
use config_backup_core::store::{AuditRow, HistoryQuery};
use config_backup_proto::v1 as pb;
use config_backup_server::auth::Role;
use config_backup_tests::{Backend, TestEnv, with_token};

fn row(age_months: u32, extra_days: i64, file: &str) -> AuditRow {
    let at = Utc::now().checked_sub_months(Months::new(age_months)).unwrap() - chrono::Duration::days(extra_days);
    AuditRow {
        id: uuid::Uuid::new_v4(),
        seq: 0,
        run_id: None,
        backup_date: at.date_naive(),
        domain: Domain::Kea,
        config_file: file.into(),
        commit_hash: "0123456789012345678901234567890123456789".into(),
        commit_message: "config backup (old)".into(),
        changes_made: true,
        change_type: ChangeKind::Modified,
        previous_hash: None,
        file_sha256: None,
        previous_file_sha256: None,
        file_meta: None,
        previous_file_meta: None,
        change_summary: None,
        change_detail: None,
        backed_up_at: at,
        backed_up_by: "system".into(),
    }
}

async fn retention_deletes_exactly_the_rows_older_than_the_limit(backend: Backend) {
    let mut env = TestEnv::new(backend).await;
    env.vars
        .insert("CONFIG_BACKUP_GIT_RETENTION_MONTHS".into(), "24".into());
    let app = env.spawn().await;
    let store = app.engine.store().clone();
    let old = [row(24, 1, "old-a"), row(30, 0, "old-b"), row(24, 2, "old-c")];
    let kept = [row(24, -1, "kept-a"), row(23, 0, "kept-b"), row(1, 0, "kept-c")];
    store.insert_audit_rows(&old).await.unwrap();
    store.insert_audit_rows(&kept).await.unwrap();
    app.client()
        .backup(with_token(pb::BackupRequest::default(), Role::Admin))
        .await
        .unwrap();

    let q = HistoryQuery {
        domain: Some(Domain::Kea),
        include_unchanged: true,
        limit: 1000,
        ..Default::default()
    };
    let mut files: Vec<String> = store
        .history(&q)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.config_file)
        .collect();
    files.sort();
    assert_eq!(files, ["config/kea/kea-dhcp4.conf", "kept-a", "kept-b", "kept-c"]);
    app.stop().await;
}

async fn the_working_copy_is_packed_by_git_gc_auto(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let app = env.spawn().await;
    app.client()
        .backup(with_token(pb::BackupRequest::default(), Role::Admin))
        .await
        .unwrap();
    let wc = env.working_dir();
    let git =
        |args: &[&str]| config_backup_tests::ssh::run(std::process::Command::new("git").arg("-C").arg(&wc).args(args));
    git(&["config", "gc.auto", "500"]);
    let dir = env.site().join("config/unbound/unbound.conf.d");
    for i in 0..3000 {
        std::fs::write(
            dir.join(format!("z{i:05}.conf")),
            format!("server:\n    local-zone: \"z{i}.example.\" static\n"),
        )
        .unwrap();
    }
    app.client()
        .backup(with_token(pb::BackupRequest::default(), Role::Admin))
        .await
        .unwrap();
    // The gc runs on its own thread once the run is recorded.
    let field = |counts: &str, name: &str| -> u64 {
        counts
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let packed = |counts: &str| field(counts, "packs") >= 1 && field(counts, "count") < 500;
    config_backup_tests::wait_for(
        "the loose objects to be packed",
        std::time::Duration::from_secs(60),
        || {
            let counts = git(&["count-objects", "-v"]);
            std::future::ready(if packed(&counts) { Ok(()) } else { Err(counts) })
        },
    )
    .await;
    app.stop().await;
}

on_both_backends!(
    retention_deletes_exactly_the_rows_older_than_the_limit,
    the_working_copy_is_packed_by_git_gc_auto
);
