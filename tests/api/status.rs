//! Status, and what survives a restart.

use config_backup_proto::v1 as pb;
use config_backup_server::auth::Role;
use config_backup_tests::{Backend, TestEnv, wait_for, with_token};

async fn status_after_a_restart_shows_the_last_run_and_every_domain(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let app = env.spawn().await;
    let report = app
        .client()
        .backup(with_token(pb::BackupRequest::default(), Role::Admin))
        .await
        .unwrap()
        .into_inner()
        .report
        .unwrap();
    app.stop().await;

    let app = env.spawn().await;
    let status = app
        .client()
        .status(with_token(pb::StatusRequest::default(), Role::Noc))
        .await
        .unwrap()
        .into_inner();
    let last = status.last_run.unwrap();
    assert_eq!(last.run_id, report.run_id);
    assert_eq!(last.outcome, pb::RunOutcome::Success as i32);
    assert_eq!((last.files_added, last.commits), (10, 4));
    assert_eq!(status.last_successful_run.unwrap().run_id, report.run_id);
    let names: Vec<&str> = status.domains.iter().map(|d| d.domain.as_str()).collect();
    assert_eq!(names, ["gateway", "dns", "radius", "kea"]);
    for (d, r) in status.domains.iter().zip(&report.domains) {
        assert_eq!(d.last_commit_hash, r.commit_hash);
        assert_eq!(d.last_change_commit_hash, r.commit_hash);
        assert!(d.last_changed_at.is_some());
    }
    assert_eq!(status.domains[0].tracked_files, 3);
    assert_eq!(status.unpushed_commits, 0);
    assert!(status.last_push_at.is_some());
    assert!(status.last_push_error.is_empty());
    assert!(status.running.is_empty());
    assert_eq!(status.branch, "main");

    // A no-change run moves last_commit but not last_changed.
    let second = app
        .client()
        .backup(with_token(pb::BackupRequest::default(), Role::Admin))
        .await
        .unwrap()
        .into_inner()
        .report
        .unwrap();
    let status = app
        .client()
        .status(with_token(pb::StatusRequest::default(), Role::Noc))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.domains[3].last_commit_hash, second.domains[3].commit_hash);
    assert_eq!(status.domains[3].last_change_commit_hash, report.domains[3].commit_hash);
    app.stop().await;
}

async fn the_next_scheduled_time_is_the_configured_utc_time(backend: Backend) {
    let mut env = TestEnv::new(backend).await;
    env.vars.insert("CONFIG_BACKUP_HOUR_UTC".into(), "4".into());
    env.vars.insert("CONFIG_BACKUP_MINUTE_UTC".into(), "30".into());
    let app = env.spawn().await;
    let status = app
        .client()
        .status(with_token(pb::StatusRequest::default(), Role::Admin))
        .await
        .unwrap()
        .into_inner();
    let next = status.next_scheduled_at.unwrap();
    let next = chrono::DateTime::from_timestamp(next.seconds, 0).unwrap();
    assert_eq!(next.format("%H:%M:%S").to_string(), "04:30:00");
    let now = chrono::Utc::now();
    assert!(next > now && next <= now + chrono::Duration::days(1), "{next}");
    assert!(status.schedule_enabled);
    assert!(status.last_run.is_none());
    app.stop().await;
}

/// Status is read once for many callers, but never hides a change: this server's own run
/// shows at once, and a replica's (same database) within `STATUS_MAX_AGE`.
async fn status_shows_this_servers_run_at_once_and_a_replicas_within_a_second(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let a = env.spawn().await;
    let b = env.spawn().await;
    assert!(a.status().await.last_run.is_none());
    let own = a.backup().await;
    assert_eq!(
        a.status().await.last_run.unwrap().run_id,
        own.run_id,
        "this server's run at once"
    );
    let theirs = b.backup().await;
    let max = config_backup_core::engine::STATUS_MAX_AGE + std::time::Duration::from_millis(500);
    wait_for("the replica's run in this server's Status", max, || async {
        a.status().await.last_run.unwrap().run_id == theirs.run_id
    })
    .await;
    a.stop().await;
    b.stop().await;
}

on_both_backends!(
    status_after_a_restart_shows_the_last_run_and_every_domain,
    the_next_scheduled_time_is_the_configured_utc_time,
    status_shows_this_servers_run_at_once_and_a_replicas_within_a_second
);
