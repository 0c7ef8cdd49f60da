//! What a crash or a bad working copy leaves, and how the next run recovers.

use config_backup_core::Domain;
use config_backup_core::store::{HistoryQuery, RunOutcome, RunRecord, Trigger};
use config_backup_proto::v1 as pb;
use config_backup_server::auth::Role;
use config_backup_tests::{Backend, TestEnv, log_subjects, with_token};

async fn backup(app: &config_backup_tests::TestApp) -> Result<pb::BackupReport, tonic::Status> {
    app.client()
        .backup(with_token(pb::BackupRequest::default(), Role::Admin))
        .await
        .map(|r| r.into_inner().report.unwrap())
}

async fn a_stale_index_lock_from_a_crashed_run_is_recovered(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let app = env.spawn().await;
    backup(&app).await.unwrap();
    std::fs::write(env.working_dir().join(".git/index.lock"), b"").unwrap();
    std::fs::write(env.site().join("config/kea/kea-dhcp4.conf"), "{}\n").unwrap();
    let report = backup(&app).await.unwrap();
    assert_eq!(report.outcome, pb::RunOutcome::Success as i32, "{report:?}");
    assert!(!env.working_dir().join(".git/index.lock").exists());
    assert_eq!(log_subjects(&env.remote(), "main").len(), 8);
    app.stop().await;
}

async fn commits_of_an_interrupted_run_get_their_audit_rows_at_the_next_run(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let app = env.spawn().await;
    let first = backup(&app).await.unwrap();
    let store = app.engine.store().clone();
    // Simulate a crash after the commits but before the audit rows: drop the rows of the
    // last run and leave a run marked running.
    let kea_commit = first.domains[3].commit_hash.clone();
    let crashed = RunRecord {
        id: uuid::Uuid::new_v4(),
        trigger: Trigger::Scheduled,
        requested_by: "system".into(),
        host: "gone".into(),
        started_at: chrono::Utc::now(),
        finished_at: None,
        outcome: RunOutcome::Running,
        error: None,
        push_outcome: None,
        push_error: None,
        unpushed_commits: 0,
        files_added: 0,
        files_modified: 0,
        files_deleted: 0,
        files_unchanged: 0,
        commits: 0,
        request_id: None,
    };
    store.insert_run(&crashed).await.unwrap();
    // The commit's audit write never happened: its rows go, and the versions it ended
    // are current again.
    for sql in [
        "UPDATE config_file_changes SET next_seq = NULL WHERE next_seq IN \
         (SELECT seq FROM config_commits WHERE commit_hash = $1)",
        "DELETE FROM config_file_changes WHERE commit_seq IN (SELECT seq FROM config_commits WHERE commit_hash = $1)",
        "DELETE FROM config_commits WHERE commit_hash = $1",
    ] {
        env.execute(sql, &kea_commit).await;
    }
    assert!(!store.commit_recorded(&kea_commit).await.unwrap());

    backup(&app).await.unwrap();
    assert!(store.commit_recorded(&kea_commit).await.unwrap());
    let q = HistoryQuery {
        domain: Some(Domain::Kea),
        include_unchanged: true,
        limit: 100,
        ..Default::default()
    };
    let rows = store.history(&q).await.unwrap();
    let recovered = rows.iter().find(|r| r.commit_hash == kea_commit).unwrap();
    assert_eq!(
        recovered.run_id.unwrap().to_string(),
        first.run_id,
        "run id comes from the commit trailer"
    );
    assert_eq!(
        store.run(crashed.id).await.unwrap().unwrap().outcome,
        RunOutcome::Interrupted
    );
    app.stop().await;
}

async fn a_working_copy_of_another_remote_fails_clearly_and_changes_nothing(backend: Backend) {
    let env = TestEnv::new(backend).await;
    // A clone of some other repository where the working copy should be.
    let other = tempfile::tempdir().unwrap();
    git2::Repository::init_opts(
        other.path(),
        git2::RepositoryInitOptions::new().bare(true).initial_head("main"),
    )
    .unwrap();
    let wc = git2::Repository::init(env.working_dir()).unwrap();
    wc.remote("origin", other.path().to_str().unwrap()).unwrap();
    let mut vars_env = env;
    vars_env
        .vars
        .insert("CONFIG_BACKUP_LOCK_TTL_SECONDS".into(), "5".into());
    let vars = vars_env.lookup();
    let mut settings = config_backup_server::ServerSettings::from_env(&vars.clone().into_iter().collect()).unwrap();
    settings.initial_backup = false;
    let app = config_backup_server::Application::build(settings).await.unwrap();
    let engine = app.engine().clone();
    assert!(engine.prepare().await.is_err(), "the server must not report ready");
    let report = engine
        .backup(config_backup_core::BackupParams::new(
            Trigger::Manual,
            config_backup_core::Actor::User("u".into()),
            vec![],
        ))
        .await
        .unwrap();
    assert_eq!(report.run.outcome, RunOutcome::Failed);
    let msg = report.run.error.unwrap();
    assert!(msg.contains("is a clone of"), "{msg}");
    assert!(msg.contains("GIT_BACKUP_REPO"), "{msg}");
    assert!(log_subjects(&vars_env.remote(), "main").is_empty());
    assert!(wc.head().is_err(), "nothing was committed in the foreign working copy");
}

async fn a_partly_staged_index_left_by_a_stopped_run_is_reset_before_the_next_commit(backend: Backend) {
    use std::path::Path;
    let env = TestEnv::new(backend).await;
    let app = env.spawn().await;
    backup(&app).await.unwrap();
    // A run stopped after staging a file it never committed: the index no longer matches
    // HEAD (the clean mark the last run left no longer matches it either).
    let wc = env.working_dir();
    std::fs::write(wc.join("stray.conf"), "half-written\n").unwrap();
    let repo = git2::Repository::open(&wc).unwrap();
    let mut index = repo.index().unwrap();
    index.add_path(Path::new("stray.conf")).unwrap();
    index.write().unwrap();
    std::fs::write(env.site().join("config/kea/kea-dhcp4.conf"), "{ \"Dhcp4\": {} }\n").unwrap();
    let report = backup(&app).await.unwrap();
    assert_eq!(report.outcome, pb::RunOutcome::Success as i32, "{report:?}");
    let remote = git2::Repository::open_bare(env.remote()).unwrap();
    let tree = remote
        .find_reference("refs/heads/main")
        .unwrap()
        .peel_to_tree()
        .unwrap();
    assert!(
        tree.get_path(Path::new("stray.conf")).is_err(),
        "the stray staging was committed"
    );
    assert!(tree.get_path(Path::new("config/kea/kea-dhcp4.conf")).is_ok());
    let mut index = repo.index().unwrap();
    index.read(true).unwrap();
    assert!(
        index.get_path(Path::new("stray.conf"), 0).is_none(),
        "the index was not reset to HEAD"
    );
    app.stop().await;
}

on_both_backends!(
    a_partly_staged_index_left_by_a_stopped_run_is_reset_before_the_next_commit,
    a_stale_index_lock_from_a_crashed_run_is_recovered,
    commits_of_an_interrupted_run_get_their_audit_rows_at_the_next_run,
    a_working_copy_of_another_remote_fails_clearly_and_changes_nothing,
);
