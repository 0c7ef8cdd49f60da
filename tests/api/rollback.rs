//! Rollback: validated, snapshotted, atomic, reloaded, verified, self-reverting, streamed.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use config_backup_proto::v1 as pb;
use config_backup_server::auth::Role;
use config_backup_tests::{ADMIN_SUB, Backend, Gate, TestApp, TestEnv, log_subjects, token, with_token};
use futures::StreamExt;

const KEA: &str = "config/kea/kea-dhcp4.conf";

/// The sample site with kea's validate / reload / verify commands, which fail when the
/// live (or staged) file carries a marker. A reload of a file marked SLOW waits at the
/// [`reload_gate`] until the test opens it.
async fn env_with_commands(backend: Backend) -> TestEnv {
    let mut env = TestEnv::new(backend).await;
    let gate = Gate::new(env.dir.path().join("reload-gate"));
    env.vars.insert(
        "CONFIG_ROLLBACK_VALIDATE__kea".into(),
        format!("! grep -q INVALID {{dir}}/{KEA}"),
    );
    env.vars.insert(
        "CONFIG_ROLLBACK_RELOAD__kea".into(),
        format!(
            "echo reloading; if grep -q SLOW {KEA}; then cat {} >/dev/null; fi; ! grep -q RELOAD_FAILS {KEA}",
            gate.path().display()
        ),
    );
    env.vars.insert(
        "CONFIG_ROLLBACK_VERIFY__kea".into(),
        format!("! grep -q VERIFY_FAILS {KEA}"),
    );
    env
}

/// Where a SLOW reload waits (made by [`env_with_commands`]).
fn reload_gate(env: &TestEnv) -> Gate {
    Gate::existing(env.dir.path().join("reload-gate"))
}

fn kea_commit(r: &pb::BackupReport) -> String {
    r.domains
        .iter()
        .find(|d| d.domain == "kea")
        .unwrap()
        .commit_hash
        .clone()
}

async fn rollback(app: &TestApp, req: pb::RollbackRequest) -> Result<pb::RollbackResponse, tonic::Status> {
    app.client()
        .rollback(with_token(req, Role::Admin))
        .await
        .map(|r| r.into_inner())
}

/// Every state the stream sends, until it ends.
async fn follow(app: &TestApp, task_id: &str) -> Vec<pb::RollbackTask> {
    let req = with_token(
        pb::RollbackStatusRequest {
            task_id: task_id.into(),
        },
        Role::Noc,
    );
    let mut stream = app.client().rollback_status(req).await.unwrap().into_inner();
    let mut states = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while let Some(msg) = tokio::time::timeout_at(deadline.into(), stream.next())
        .await
        .expect("the stream ends")
    {
        states.push(msg.unwrap().task.unwrap());
    }
    states
}

fn stage_names(t: &pb::RollbackTask) -> Vec<pb::RollbackState> {
    t.stages.iter().map(|s| s.state()).collect()
}

/// Two backups of kea: `old` then `new` content. Returns the first kea commit.
async fn two_versions(env: &TestEnv, app: &TestApp, old: &str, new: &str) -> String {
    std::fs::write(env.site().join(KEA), old).unwrap();
    let first = app.backup().await;
    std::fs::write(env.site().join(KEA), new).unwrap();
    app.backup().await;
    kea_commit(&first)
}

async fn a_successful_rollback_restores_content_and_modes_and_records_it(backend: Backend) {
    let env = env_with_commands(backend).await;
    let app = env.spawn().await;
    let site = env.site();
    let first = app.backup().await;
    let gw_target = first.domains[0].commit_hash.clone();
    let original_main = std::fs::read(site.join("scripts/gateway/rgz-main.nft")).unwrap();
    std::fs::write(
        site.join("scripts/gateway/rgz-main.nft"),
        "flush ruleset\n# broken edit\n",
    )
    .unwrap();
    std::fs::set_permissions(
        site.join("scripts/gateway/watch_config.sh"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    app.backup().await;

    let resp = rollback(
        &app,
        pb::RollbackRequest {
            commit: gw_target[..8].into(),
            reason: "bad nft edit".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let planned = resp
        .plan
        .as_ref()
        .and_then(|p| p.files.iter().find(|f| f.path == "scripts/gateway/rgz-main.nft"))
        .map(|f| f.summary.clone())
        .unwrap();
    assert!(
        planned.contains("chain input added"),
        "told in nftables' terms: {planned}"
    );
    let task = resp.task.unwrap();
    assert_eq!(task.domains, ["gateway"], "the commit's own domain");
    assert_eq!(task.target_hash, gw_target);
    let states = follow(&app, &task.task_id).await;
    let last = states.last().unwrap();
    assert_eq!(last.state(), pb::RollbackState::Success, "{last:?}");
    assert_eq!(
        stage_names(last),
        [
            pb::RollbackState::Validating,
            pb::RollbackState::Snapshot,
            pb::RollbackState::Applying,
            pb::RollbackState::Reloading,
            pb::RollbackState::Verifying
        ]
    );
    assert!(last.stages.iter().all(|s| s.ok && s.finished_at.is_some()));
    assert_eq!(
        std::fs::read(site.join("scripts/gateway/rgz-main.nft")).unwrap(),
        original_main
    );
    let mode = std::fs::metadata(site.join("scripts/gateway/watch_config.sh"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755, "modes come back too");

    // The audit row of the rollback.
    let row = env.query_rollback_history(&task.task_id).await;
    assert_eq!(row.0, "success");
    assert_eq!(row.1, ADMIN_SUB);
    assert_eq!(
        (row.2.as_str(), row.3.as_str(), row.4.as_str()),
        ("gateway", gw_target.as_str(), "bad nft edit")
    );
    assert!(row.5, "completed_at and duration_seconds are set");

    // The repository: a snapshot of the bad state, then the rollback commit, pushed.
    let subjects = log_subjects(&env.remote(), "main");
    let short = &gw_target[..7];
    assert!(
        subjects[0].starts_with("config rollback ")
            && subjects[0].contains(&format!("gateway to {short} (task {})", task.task_id)),
        "{subjects:?}"
    );
    assert!(
        subjects[1].contains("no changes (gateway domain stable)"),
        "the snapshot: {subjects:?}"
    );
    assert!(last.duration_seconds > 0.0);
    // The rollback commit tells the change as the plan did (the recording run takes the
    // plan's summary for the same pair of versions).
    let recorded = app
        .client()
        .history(with_token(
            pb::HistoryRequest {
                path: "scripts/gateway/rgz-main.nft".into(),
                page_size: 1,
                ..Default::default()
            },
            Role::Noc,
        ))
        .await
        .unwrap()
        .into_inner()
        .entries
        .remove(0);
    assert!(recorded.commit_message.starts_with("config rollback "), "{recorded:?}");
    assert_eq!(recorded.summary, planned);

    // The snapshot (the live files set aside) goes once the end is recorded.
    let rollbacks = std::path::PathBuf::from(&env.lookup()["CONFIG_BACKUP_DATA_DIR"]).join("rollback");
    let snapshot = rollbacks.join(&task.task_id);
    config_backup_tests::wait_for_blocking("the snapshot's removal", Duration::from_secs(10), || !snapshot.exists());
    // A server stopped between recording the end and removing it leaves it behind: the
    // next start removes it, and leaves alone a directory that is no ended task's.
    let stray = rollbacks.join(uuid::Uuid::new_v4().to_string());
    for dir in [&snapshot, &stray] {
        std::fs::create_dir_all(dir.join("files/scripts")).unwrap();
        std::fs::write(dir.join("files/scripts/secret.conf"), "secret").unwrap();
    }
    app.stop().await;
    let app = env.spawn().await;
    config_backup_tests::wait_for_blocking("the left snapshot's removal at start", Duration::from_secs(30), || {
        !snapshot.exists()
    });
    assert!(stray.exists(), "a directory of no ended task is left alone");
    app.stop().await;
}

async fn validation_failing_writes_nothing(backend: Backend) {
    let env = env_with_commands(backend).await;
    let app = env.spawn().await;
    let target = two_versions(&env, &app, "{ \"INVALID\": true }\n", "{ \"Dhcp4\": {} }\n").await;
    let commits_before = log_subjects(&env.remote(), "main").len();
    let task = rollback(
        &app,
        pb::RollbackRequest {
            commit: target,
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .task
    .unwrap();
    let last = follow(&app, &task.task_id).await.pop().unwrap();
    assert_eq!(last.state(), pb::RollbackState::Failed);
    assert_eq!(stage_names(&last), [pb::RollbackState::Validating]);
    assert!(last.error.contains("validation failed"), "{}", last.error);
    assert!(!last.revert_succeeded);
    assert_eq!(
        std::fs::read_to_string(env.site().join(KEA)).unwrap(),
        "{ \"Dhcp4\": {} }\n"
    );
    assert_eq!(
        log_subjects(&env.remote(), "main").len(),
        commits_before,
        "no snapshot was made"
    );
    assert_eq!(env.query_rollback_history(&task.task_id).await.0, "failed");
    app.stop().await;
}

async fn a_failing_reload_reverts_the_live_files(backend: Backend) {
    let env = env_with_commands(backend).await;
    let app = env.spawn().await;
    let current = "{ \"Dhcp4\": { \"valid-lifetime\": 7200 } }\n";
    let target = two_versions(
        &env,
        &app,
        "{ \"Dhcp4\": { \"comment\": \"RELOAD_FAILS\" } }\n",
        current,
    )
    .await;
    let task = rollback(
        &app,
        pb::RollbackRequest {
            commit: target,
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .task
    .unwrap();
    let last = follow(&app, &task.task_id).await.pop().unwrap();
    assert_eq!(last.state(), pb::RollbackState::Failed, "{last:?}");
    assert_eq!(
        stage_names(&last),
        [
            pb::RollbackState::Validating,
            pb::RollbackState::Snapshot,
            pb::RollbackState::Applying,
            pb::RollbackState::Reloading,
            pb::RollbackState::Reverting
        ]
    );
    assert!(last.revert_succeeded, "{last:?}");
    assert!(last.error.contains("reload failed"), "{}", last.error);
    let reload = &last.stages[3];
    assert!(
        !reload.ok && reload.output.contains("reloading"),
        "the command's output is kept: {reload:?}"
    );
    assert_eq!(std::fs::read_to_string(env.site().join(KEA)).unwrap(), current);
    app.stop().await;
}

async fn a_failing_verify_reverts_the_live_files(backend: Backend) {
    let env = env_with_commands(backend).await;
    let app = env.spawn().await;
    let current = "{ \"Dhcp4\": { \"valid-lifetime\": 7200 } }\n";
    let target = two_versions(
        &env,
        &app,
        "{ \"Dhcp4\": { \"comment\": \"VERIFY_FAILS\" } }\n",
        current,
    )
    .await;
    let task = rollback(
        &app,
        pb::RollbackRequest {
            commit: target,
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .task
    .unwrap();
    let last = follow(&app, &task.task_id).await.pop().unwrap();
    assert_eq!(last.state(), pb::RollbackState::Failed);
    assert_eq!(*stage_names(&last).last().unwrap(), pb::RollbackState::Reverting);
    assert!(last.error.contains("verify failed"), "{}", last.error);
    assert!(last.revert_succeeded);
    assert_eq!(std::fs::read_to_string(env.site().join(KEA)).unwrap(), current);
    app.stop().await;
}

async fn a_dry_run_writes_nothing_and_shows_the_plan(backend: Backend) {
    let env = env_with_commands(backend).await;
    let app = env.spawn().await;
    let target = two_versions(
        &env,
        &app,
        "{ \"Dhcp4\": { \"valid-lifetime\": 1 } }\n",
        "{ \"Dhcp4\": { \"valid-lifetime\": 2 } }\n",
    )
    .await;
    let commits_before = log_subjects(&env.remote(), "main").len();
    let resp = rollback(
        &app,
        pb::RollbackRequest {
            commit: target,
            dry_run: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let plan = resp.plan.unwrap();
    assert!(plan.validation_ok);
    assert_eq!(plan.files.len(), 1);
    assert_eq!(
        (
            plan.files[0].path.as_str(),
            plan.files[0].action.as_str(),
            plan.files[0].mode.as_str()
        ),
        (KEA, "write", "100644")
    );
    assert!(
        plan.files[0]
            .patch
            .contains("-{ \"Dhcp4\": { \"valid-lifetime\": 2 } }\n+{ \"Dhcp4\": { \"valid-lifetime\": 1 } }"),
        "{}",
        plan.files[0].patch
    );
    let task = resp.task.unwrap();
    assert!(task.dry_run);
    assert_eq!(task.state(), pb::RollbackState::Success);
    assert_eq!(
        std::fs::read_to_string(env.site().join(KEA)).unwrap(),
        "{ \"Dhcp4\": { \"valid-lifetime\": 2 } }\n"
    );
    assert_eq!(log_subjects(&env.remote(), "main").len(), commits_before);
    app.stop().await;
}

async fn extra_files_are_left_alone_unless_remove_extra(backend: Backend) {
    let env = env_with_commands(backend).await;
    let app = env.spawn().await;
    let first = app.backup().await;
    let dns_target = first.domains[1].commit_hash.clone();
    let extra = env.site().join("config/unbound/unbound.conf.d/extra.conf");
    std::fs::write(&extra, "server:\n").unwrap();
    app.backup().await;

    let resp = rollback(
        &app,
        pb::RollbackRequest {
            commit: dns_target.clone(),
            dry_run: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(resp.plan.unwrap().warnings.iter().any(|w| w.contains("extra.conf")));
    let task = rollback(
        &app,
        pb::RollbackRequest {
            commit: dns_target.clone(),
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .task
    .unwrap();
    let last = follow(&app, &task.task_id).await.pop().unwrap();
    assert_eq!(last.state(), pb::RollbackState::Success);
    assert!(extra.exists(), "left alone");
    assert!(last.warnings.iter().any(|w| w.contains("extra.conf")));

    let task = rollback(
        &app,
        pb::RollbackRequest {
            commit: dns_target,
            remove_extra: true,
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .task
    .unwrap();
    let last = follow(&app, &task.task_id).await.pop().unwrap();
    assert_eq!(last.state(), pb::RollbackState::Success, "{last:?}");
    assert!(!extra.exists(), "removed with remove_extra");
    app.stop().await;
}

async fn unknown_commits_and_bad_requests_are_refused(backend: Backend) {
    let env = env_with_commands(backend).await;
    let app = env.spawn().await;
    app.backup().await;
    let err = rollback(
        &app,
        pb::RollbackRequest {
            commit: "0000000aaaa".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    let err = rollback(
        &app,
        pb::RollbackRequest {
            commit: "zzz".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().starts_with("commit:"));
    let err = rollback(
        &app,
        pb::RollbackRequest {
            commit: "abcdef1".into(),
            domain: "dhcp".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert!(
        err.message().starts_with("domain:") && err.message().contains("all"),
        "{}",
        err.message()
    );
    let err = app
        .client()
        .rollback(with_token(
            pb::RollbackRequest {
                commit: "abcdef1".into(),
                ..Default::default()
            },
            Role::Noc,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    let err = app
        .client()
        .rollback_status(with_token(
            pb::RollbackStatusRequest {
                task_id: uuid::Uuid::new_v4().to_string(),
            },
            Role::Noc,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);

    let resp = reqwest::Client::new()
        .post(app.url("/api/v1/backups/config/rollback?commit=0000000aaaa"))
        .bearer_auth(token(Role::Admin))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    app.stop().await;
}

async fn a_second_rollback_or_a_backup_during_one_is_refused_with_409(backend: Backend) {
    let env = env_with_commands(backend).await;
    let app = env.spawn().await;
    let target = two_versions(
        &env,
        &app,
        "{ \"Dhcp4\": { \"comment\": \"SLOW\" } }\n",
        "{ \"Dhcp4\": {} }\n",
    )
    .await;
    let task = rollback(
        &app,
        pb::RollbackRequest {
            commit: target.clone(),
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .task
    .unwrap();
    let err = rollback(
        &app,
        pb::RollbackRequest {
            commit: target.clone(),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Aborted);
    assert!(
        err.message().contains(&format!("rollback task {}", task.task_id)),
        "{}",
        err.message()
    );
    let resp = reqwest::Client::new()
        .post(app.url(&format!("/api/v1/backups/config/rollback?commit={target}")))
        .bearer_auth(token(Role::Admin))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 409);
    let err = app
        .client()
        .backup(with_token(pb::BackupRequest::default(), Role::Admin))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Aborted);
    reload_gate(&env).open().await;
    let end = follow(&app, &task.task_id).await;
    assert_eq!(end.last().unwrap().state(), pb::RollbackState::Success, "{end:?}");
    app.stop().await;
}

async fn rest_answers_202_and_streams_ndjson_until_the_terminal_state(backend: Backend) {
    let env = env_with_commands(backend).await;
    let app = env.spawn().await;
    let target = two_versions(
        &env,
        &app,
        "{ \"Dhcp4\": { \"valid-lifetime\": 1 } }\n",
        "{ \"Dhcp4\": { \"valid-lifetime\": 2 } }\n",
    )
    .await;
    let http = reqwest::Client::new();
    let resp = http
        .post(app.url(&format!(
            "/api/v1/backups/config/rollback?commit={}&reason=test",
            &target[..7]
        )))
        .bearer_auth(token(Role::Admin))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let body: serde_json::Value = resp.json().await.unwrap();
    let task_id = body["task"]["task_id"].as_str().unwrap().to_owned();
    assert_eq!(body["task"]["state"], "ROLLBACK_STATE_PENDING");

    let resp = http
        .get(app.url(&format!(
            "/api/v1/backups/config/rollback/status?task_id={task_id}&watch=true"
        )))
        .bearer_auth(token(Role::Noc))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/x-ndjson");
    let text = resp.text().await.unwrap();
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(!lines.is_empty());
    let last = lines.last().unwrap();
    assert_eq!(last["result"]["task"]["state"], "ROLLBACK_STATE_SUCCESS", "{text}");
    assert!(lines.iter().all(|l| l.get("result").is_some()));

    // After the end: the final state, as JSON, and a watch that closes at once.
    let resp = http
        .get(app.url(&format!("/api/v1/backups/config/rollback/status?taskId={task_id}")))
        .bearer_auth(token(Role::Noc))
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["task"]["state"], "ROLLBACK_STATE_SUCCESS");
    assert_eq!(body["task"]["stages"].as_array().unwrap().len(), 5);
    let late = follow(&app, &task_id).await;
    assert_eq!(late.len(), 1);
    assert_eq!(late[0].state(), pb::RollbackState::Success);
    assert_eq!(
        std::fs::read_to_string(env.site().join(KEA)).unwrap(),
        "{ \"Dhcp4\": { \"valid-lifetime\": 1 } }\n"
    );
    app.stop().await;
}

on_both_backends!(
    a_successful_rollback_restores_content_and_modes_and_records_it,
    validation_failing_writes_nothing,
    a_failing_reload_reverts_the_live_files,
    a_failing_verify_reverts_the_live_files,
    a_dry_run_writes_nothing_and_shows_the_plan,
    extra_files_are_left_alone_unless_remove_extra,
    unknown_commits_and_bad_requests_are_refused,
    a_second_rollback_or_a_backup_during_one_is_refused_with_409,
    rest_answers_202_and_streams_ndjson_until_the_terminal_state,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_during_a_slow_reload_reverts_to_the_snapshot_at_restart() {
    use crate::process::{sigterm, start, wait_exit, wait_first_backup};
    use config_backup_proto::v1::config_backup_client::ConfigBackupClient;

    let env = env_with_commands(Backend::Sqlite).await;
    // Opened at the end, so the reload the killed server left behind ends too.
    let _gate = reload_gate(&env);
    let target_content = "{ \"Dhcp4\": { \"comment\": \"SLOW\" } }\n";
    let live_content = "{ \"Dhcp4\": { \"valid-lifetime\": 7200 } }\n";
    std::fs::write(env.site().join(KEA), target_content).unwrap();
    let vars: Vec<(String, String)> = env.lookup().into_iter().collect();

    let connect = |addr: std::net::SocketAddr| async move {
        let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect_lazy();
        config_backup_tests::wait_serving(&channel).await;
        ConfigBackupClient::new(channel)
    };
    let (mut child, addr) = start(&vars, &["serve"]);
    let mut client = connect(addr).await;
    wait_first_backup(&mut client).await;
    let status = client
        .status(with_token(pb::StatusRequest::default(), Role::Noc))
        .await
        .unwrap()
        .into_inner();
    let target = status
        .domains
        .iter()
        .find(|d| d.domain == "kea")
        .unwrap()
        .last_commit_hash
        .clone();
    std::fs::write(env.site().join(KEA), live_content).unwrap();
    client
        .backup(with_token(pb::BackupRequest::default(), Role::Admin))
        .await
        .unwrap();

    let task = client
        .rollback(with_token(
            pb::RollbackRequest {
                commit: target,
                ..Default::default()
            },
            Role::Admin,
        ))
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    let mut stream = client
        .rollback_status(with_token(
            pb::RollbackStatusRequest {
                task_id: task.task_id.clone(),
            },
            Role::Noc,
        ))
        .await
        .unwrap()
        .into_inner();
    loop {
        let t = stream
            .next()
            .await
            .expect("stream ends before Reloading")
            .unwrap()
            .task
            .unwrap();
        if t.state() == pb::RollbackState::Reloading {
            break;
        }
    }
    // kill -9 while the reload runs: the target is live, nothing is recorded as finished.
    assert!(
        std::process::Command::new("kill")
            .args(["-KILL", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let _ = child.wait();
    assert_eq!(std::fs::read_to_string(env.site().join(KEA)).unwrap(), target_content);

    let (mut child, addr) = start(&vars, &["serve"]);
    let mut client = connect(addr).await;
    let t = client
        .rollback_status(with_token(
            pb::RollbackStatusRequest {
                task_id: task.task_id.clone(),
            },
            Role::Noc,
        ))
        .await
        .unwrap()
        .into_inner()
        .next()
        .await
        .unwrap()
        .unwrap()
        .task
        .unwrap();
    assert_eq!(t.state(), pb::RollbackState::Failed, "{t:?}");
    assert!(t.error.contains("interrupted"), "{}", t.error);
    assert!(t.revert_succeeded, "{t:?}");
    assert_eq!(
        std::fs::read_to_string(env.site().join(KEA)).unwrap(),
        live_content,
        "the snapshot is live again"
    );
    assert_eq!(env.query_rollback_history(&task.task_id).await.0, "failed");
    sigterm(&child);
    assert!(
        tokio::task::spawn_blocking(move || wait_exit(&mut child))
            .await
            .unwrap()
            .success()
    );
}
