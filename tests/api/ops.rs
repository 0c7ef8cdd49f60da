//! Operating it: Prometheus metrics, logs without secrets, the compose file.

use std::time::Duration;

use config_backup_proto::v1 as pb;
use config_backup_server::auth::Role;
use config_backup_tests::smtp::SmtpServer;
use config_backup_tests::{Backend, KillOnDrop, TestEnv, token, wait_for, with_token};
use futures::StreamExt;

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("{name} missing in:\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

async fn metrics_after_a_backup_and_a_rollback_have_the_right_values(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let app = env.spawn().await;
    let mut client = app.client();
    let first = client
        .backup(with_token(pb::BackupRequest::default(), Role::Admin))
        .await
        .unwrap()
        .into_inner()
        .report
        .unwrap();
    std::fs::write(env.site().join("config/kea/kea-dhcp4.conf"), "{}\n").unwrap();
    client
        .backup(with_token(pb::BackupRequest::default(), Role::Admin))
        .await
        .unwrap();
    let req = pb::RollbackRequest {
        commit: first.domains[3].commit_hash.clone(),
        ..Default::default()
    };
    let task = client
        .rollback(with_token(req, Role::Admin))
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    let mut states = client
        .rollback_status(with_token(
            pb::RollbackStatusRequest { task_id: task.task_id },
            Role::Noc,
        ))
        .await
        .unwrap()
        .into_inner();
    while states.next().await.is_some() {}
    // One call without a token, one a noc user may not make.
    let unauthenticated = client
        .status(tonic::Request::new(pb::StatusRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(unauthenticated.code(), tonic::Code::Unauthenticated);
    let denied = client
        .rollback(with_token(pb::RollbackRequest::default(), Role::Noc))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);

    let text = app.metrics().await;
    assert_eq!(
        metric(&text, "config_backup_auth_refusals_total{code=\"unauthenticated\"}"),
        1.0
    );
    assert_eq!(
        metric(&text, "config_backup_auth_refusals_total{code=\"permission_denied\"}"),
        1.0
    );
    assert_eq!(metric(&text, "config_backup_up"), 1.0);
    let now = chrono::Utc::now().timestamp() as f64;
    for d in ["gateway", "dns", "radius", "kea"] {
        let t = metric(
            &text,
            &format!("config_backup_last_success_timestamp_seconds{{domain=\"{d}\"}}"),
        );
        assert!((now - t).abs() < 300.0, "{d}: {t} vs {now}");
    }
    // kea's last commit is the rollback's, which changed its one file; gateway's changed nothing.
    assert_eq!(metric(&text, "config_backup_files_changed{domain=\"kea\"}"), 1.0);
    assert_eq!(metric(&text, "config_backup_files_changed{domain=\"gateway\"}"), 0.0);
    assert_eq!(metric(&text, "config_backup_runs_total{outcome=\"success\"}"), 2.0);
    assert!(metric(&text, "config_backup_duration_seconds") > 0.0);
    assert_eq!(metric(&text, "config_backup_push_failures_total"), 0.0);
    assert_eq!(metric(&text, "config_backup_unpushed_commits"), 0.0);
    assert_eq!(metric(&text, "config_backup_rollbacks_total{outcome=\"success\"}"), 1.0);
    assert_eq!(metric(&text, "config_backup_rollbacks_total{outcome=\"failed\"}"), 0.0);
    assert_eq!(metric(&text, "config_backup_rollback_duration_seconds_count"), 1.0);
    assert!(metric(&text, "config_backup_rollback_duration_seconds_sum") > 0.0);
    assert_eq!(metric(&text, "config_backup_mail_failures_total"), 0.0);

    // Per-call counts and latency histograms, of both transports; the engine's durations.
    let history = reqwest::Client::new()
        .get(app.url("/api/v1/backups/config/history"))
        .bearer_auth(token(Role::Noc))
        .send()
        .await
        .unwrap();
    assert_eq!(history.status(), 200);
    history.bytes().await.unwrap();
    let grpc = |m: &str, code: &str| {
        format!(
            "config_backup_requests_total{{transport=\"grpc\",method=\"/configbackup.v1.ConfigBackup/{m}\",code=\"{code}\"}}"
        )
    };
    let expected = [
        (grpc("Backup", "ok"), 2.0),
        (grpc("Rollback", "ok"), 1.0),
        (grpc("RollbackStatus", "ok"), 1.0),
        (grpc("Status", "unauthenticated"), 1.0),
        (grpc("Rollback", "permission_denied"), 1.0),
        (
            "config_backup_requests_total{transport=\"rest\",method=\"/api/v1/backups/config/history\",code=\"200\"}".to_owned(),
            1.0,
        ),
        (
            "config_backup_request_duration_seconds_count{transport=\"grpc\",method=\"/configbackup.v1.ConfigBackup/Backup\"}".to_owned(),
            2.0,
        ),
        (
            "config_backup_request_duration_seconds_bucket{le=\"+Inf\",transport=\"rest\",method=\"/api/v1/backups/config/history\"}".to_owned(),
            1.0,
        ),
        ("config_backup_backup_phase_duration_seconds_count{phase=\"run\"}".to_owned(), 2.0),
        ("config_backup_backup_phase_duration_seconds_count{phase=\"push\"}".to_owned(), 2.0),
        ("config_backup_domain_duration_seconds_count{domain=\"kea\"}".to_owned(), 2.0),
        ("config_backup_rollback_stage_duration_seconds_count{stage=\"applying\"}".to_owned(), 1.0),
        ("config_backup_rollback_stage_duration_seconds_count{stage=\"total\"}".to_owned(), 1.0),
    ];
    // A call is counted once its answer is sent in full, the engine's durations once the
    // observers have been told: both may trail the client's view by a moment.
    let text = wait_for(
        "every call and stage to be counted",
        Duration::from_secs(30),
        || async {
            let text = app.metrics().await;
            let seen = |name: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
                    .and_then(|v| v.trim().parse::<f64>().ok())
            };
            if expected.iter().all(|(name, want)| seen(name) == Some(*want)) {
                Ok(text)
            } else {
                Err(text)
            }
        },
    )
    .await;
    assert!(
        metric(
            &text,
            "config_backup_rollback_stage_duration_seconds_sum{stage=\"total\"}"
        ) > 0.0
    );

    // A failed push shows up.
    std::fs::rename(env.remote(), env.dir.path().join("away.git")).unwrap();
    client
        .backup(with_token(pb::BackupRequest::default(), Role::Admin))
        .await
        .unwrap();
    let text = app.metrics().await;
    assert_eq!(metric(&text, "config_backup_push_failures_total"), 1.0);
    assert_eq!(metric(&text, "config_backup_unpushed_commits"), 4.0);
    assert_eq!(metric(&text, "config_backup_runs_total{outcome=\"partial\"}"), 1.0);
    app.stop().await;
}

on_both_backends!(metrics_after_a_backup_and_a_rollback_have_the_right_values);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_logs_of_a_full_run_never_contain_secrets() {
    let mut env = TestEnv::new(Backend::Postgres).await;
    let smtp = SmtpServer::start(&env.dir.path().join("maildir"), true);
    env.vars.extend(smtp.vars());
    let password_file = env.dir.path().join("smtp-password");
    std::fs::write(&password_file, "smtp-pass-s3cret\n").unwrap();
    env.vars.insert("SMTP_USERNAME".into(), "noc-relay".into());
    env.vars
        .insert("SMTP_PASSWORD_FILE".into(), password_file.display().to_string());
    // A password in the database URL (trust auth ignores it).
    let url = env
        .db
        .url
        .replace("postgres://postgres@", "postgres://postgres:pg-s3cret@");
    env.vars.insert("DATABASE_URL".into(), url);
    env.vars.insert(
        "CONFIG_ROLLBACK_RELOAD__radius".into(),
        "cat config/radius/clients.conf > /dev/null".into(),
    );
    let vars: Vec<(String, String)> = env.lookup().into_iter().collect();
    let (child, addr, logs) = crate::process::start_logged(&vars, &["serve"]);
    let mut child = KillOnDrop(child);
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_lazy();
    config_backup_tests::wait_serving(&channel).await;
    let mut client = config_backup_proto::v1::config_backup_client::ConfigBackupClient::new(channel);
    let first = crate::process::wait_first_backup(&mut client).await;
    assert_eq!(first.commits, 4);
    let status = client
        .status(with_token(pb::StatusRequest::default(), Role::Noc))
        .await
        .unwrap()
        .into_inner();
    let radius = status
        .domains
        .iter()
        .find(|d| d.domain == "radius")
        .unwrap()
        .last_commit_hash
        .clone();
    std::fs::write(
        env.site().join("config/radius/clients.conf"),
        "client x {\n    secret = rotated-s3cret-9911\n}\n",
    )
    .unwrap();
    client
        .backup(with_token(pb::BackupRequest::default(), Role::Admin))
        .await
        .unwrap();
    let req = pb::RollbackRequest {
        commit: radius,
        reason: "restore clients".into(),
        ..Default::default()
    };
    let task = client
        .rollback(with_token(req, Role::Admin))
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    let mut states = client
        .rollback_status(with_token(
            pb::RollbackStatusRequest {
                task_id: task.task_id.clone(),
            },
            Role::Noc,
        ))
        .await
        .unwrap()
        .into_inner();
    while states.next().await.is_some() {}
    let d = pb::DiffRequest {
        commit1: first.run_id.clone(),
        ..Default::default()
    };
    let _ = client.diff(with_token(d, Role::Noc)).await;
    let mut bad = tonic::Request::new(pb::StatusRequest::default());
    bad.metadata_mut().insert(
        "authorization",
        format!("Bearer {}x", token(Role::Admin)).parse().unwrap(),
    );
    assert!(client.status(bad).await.is_err());
    // A noc user may not roll back: refused, logged with the caller's subject.
    let refused = client
        .rollback(with_token(pb::RollbackRequest::default(), Role::Noc))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    // The same through the REST shim: the refusal names its route too.
    let api = format!("http://{}", crate::process::http_addr(&logs));
    let rest = reqwest::Client::new()
        .post(format!("{api}/api/v1/backups/config/rollback?commit=abcdef1"))
        .bearer_auth(token(Role::Noc))
        .send()
        .await
        .unwrap();
    assert_eq!(rest.status(), 403);
    let logged = |needle: &str| logs.lock().unwrap().iter().any(|l| l.contains(needle));
    // The mail goes out after the run answered: its refusal is logged a moment later.
    wait_for("the refused mail in the log", Duration::from_secs(30), || {
        std::future::ready(logged("mail could not be sent"))
    })
    .await;
    crate::process::sigterm(&child.0);
    assert!(crate::process::wait_exit(&mut child.0).success());
    crate::process::wait_log_end(&logs);

    let logs = logs.lock().unwrap().join("\n");
    assert!(logs.contains("\"backup finished\""), "one line per backup");
    assert!(
        logs.contains(&format!("\"task\":\"{}\"", task.task_id)) && logs.contains("rollback stage ended"),
        "rollback stages are logged with their task id"
    );
    // Each stage has its span, inside the rollback's (which names the task).
    let in_stage_span = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .any(|v| {
            v["fields"]["message"] == "rollback stage ended"
                && v["span"]["name"] == "stage"
                && v["span"]["stage"] == "applying"
                && v["spans"].as_array().is_some_and(|s| {
                    s.iter()
                        .any(|s| s["name"] == "rollback" && s["task"] == task.task_id.as_str())
                })
        });
    assert!(
        in_stage_span,
        "the applying stage's lines are in its span, inside the rollback's: {:?}",
        logs.lines()
            .filter(|l| l.contains("rollback stage"))
            .collect::<Vec<_>>()
    );
    // Refused calls are logged: method, subject when known, reason; never the token.
    let refusals: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["fields"]["message"] == "request refused")
        .collect();
    assert!(
        refusals.iter().any(|v| v["fields"]["code"] == "unauthenticated"
            && v["fields"]["method"] == "Status"
            && v["fields"]["reason"]
                .as_str()
                .unwrap_or_default()
                .contains("invalid token")),
        "{refusals:?}"
    );
    assert!(
        refusals.iter().any(|v| v["fields"]["code"] == "permission_denied"
            && v["fields"]["method"] == "Rollback"
            && v["fields"]["subject"] == config_backup_tests::ADMIN_SUB),
        "{refusals:?}"
    );
    assert!(
        refusals.iter().any(|v| v["fields"]["code"] == "permission_denied"
            && v["fields"]["method"] == "Rollback"
            && v["fields"]["route"] == "/api/v1/backups/config/rollback"),
        "{refusals:?}"
    );
    let secrets = [
        config_backup_tests::SECRET.to_owned(),
        token(Role::Admin),
        "pg-s3cret".to_owned(),
        "smtp-pass-s3cret".to_owned(),
        "sample-bng01-secret-7f3a".to_owned(),
        "sample-wlc-secret-52de".to_owned(),
        "rotated-s3cret-9911".to_owned(),
    ];
    for s in &secrets {
        assert!(!logs.contains(s.as_str()), "a secret reached the logs: {s}");
    }
    // A token's signature is never logged either.
    let sig = token(Role::Admin).rsplit('.').next().unwrap().to_owned();
    assert!(!logs.contains(&sig));
}

/// Every variable the compose file sets for our binaries is one they read.
#[test]
fn the_compose_file_is_valid_and_sets_only_known_variables() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let compose = root.join("docker/compose.yaml");
    let out = std::process::Command::new("docker-compose")
        .arg("-f")
        .arg(&compose)
        .arg("config")
        .output()
        .expect("docker-compose is not installed: the test command installs it (apt-get install docker-compose)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}{}", text, String::from_utf8_lossy(&out.stderr));

    let mut sources = String::new();
    for dir in ["services", "scheduler/src"] {
        for e in walkdir::WalkDir::new(root.join(dir)).into_iter().flatten() {
            if e.path().extension().is_some_and(|x| x == "rs") {
                sources.push_str(&std::fs::read_to_string(e.path()).unwrap());
            }
        }
    }
    let yaml = std::fs::read_to_string(&compose).unwrap();
    let mut checked = 0;
    let mut in_env = false;
    for line in yaml.lines() {
        let t = line.trim();
        if t == "environment:" {
            in_env = true;
            continue;
        }
        if in_env {
            let Some((key, _)) = t.split_once(':').filter(|(k, _)| {
                !k.is_empty()
                    && k.chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            }) else {
                in_env = t.is_empty() || t.starts_with('#');
                continue;
            };
            // Postgres' and the SMTP catcher's own variables are theirs.
            if key.starts_with("POSTGRES_") || key.starts_with("MP_") || key == "PGDATA" {
                continue;
            }
            let known = match key.split_once("__") {
                Some((prefix, _)) => sources.contains(&format!("\"{prefix}__")),
                None => sources.contains(&format!("\"{key}\"")),
            };
            assert!(known, "compose sets {key}, which no binary reads");
            checked += 1;
        }
    }
    assert!(
        checked >= 15,
        "only {checked} variables found: is the compose file parsed?"
    );
}

/// The commands the compose file configures for rollbacks: validate, reload, verify.
fn compose_commands(yaml: &str) -> Vec<String> {
    yaml.lines()
        .filter_map(|l| l.trim().strip_prefix("CONFIG_ROLLBACK_"))
        .filter(|l| ["VALIDATE__", "RELOAD__", "VERIFY__"].iter().any(|k| l.starts_with(k)))
        .filter_map(|l| {
            l.split_once(':')
                .map(|(_, v)| v.trim().trim_matches(['"', '\'']).to_owned())
        })
        .collect()
}

/// The packages the Dockerfile's runtime stage (after its last FROM) installs.
fn runtime_packages(dockerfile: &str) -> Vec<String> {
    let runtime = dockerfile.rsplit_once("\nFROM ").map(|(_, r)| r).unwrap_or(dockerfile);
    let joined = runtime.replace("\\\n", " ");
    joined
        .lines()
        .filter_map(|l| l.split_once("apt-get install").map(|(_, rest)| rest.to_owned()))
        .flat_map(|rest| {
            rest.split("&&")
                .next()
                .unwrap_or_default()
                .split_whitespace()
                .filter(|w| !w.starts_with('-'))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Every command a rollback of the shipped deployment runs is in the image: each
/// command's Debian package (as `dpkg -S` names it on this machine, where the test
/// command installs the services) is installed by the Dockerfile's runtime stage.
#[test]
fn every_command_the_compose_file_configures_is_installed_in_the_image() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let yaml = std::fs::read_to_string(root.join("docker/compose.yaml")).unwrap();
    let dockerfile = std::fs::read_to_string(root.join("docker/Dockerfile")).unwrap();
    let installed = runtime_packages(&dockerfile);
    assert!(
        installed.iter().any(|p| p == "git"),
        "the runtime stage's packages were not found: {installed:?}"
    );
    let commands = compose_commands(&yaml);
    assert!(!commands.is_empty(), "compose.yaml configures no rollback command");
    for line in commands {
        let program = line
            .split_whitespace()
            .find(|w| !w.contains('='))
            .unwrap_or_default()
            .to_owned();
        let found = std::process::Command::new("sh")
            .args(["-c", &format!("command -v {program}")])
            .output()
            .unwrap();
        let path = String::from_utf8_lossy(&found.stdout).trim().to_owned();
        assert!(
            found.status.success() && !path.is_empty(),
            "{program} (from {line:?}) is not installed here: the test command installs the services' packages"
        );
        let real = std::fs::canonicalize(&path).unwrap();
        let owner = std::process::Command::new("dpkg")
            .arg("-S")
            .arg(&real)
            .output()
            .unwrap();
        let owner = String::from_utf8_lossy(&owner.stdout);
        let package = owner.split(':').next().unwrap_or_default().trim().to_owned();
        assert!(!package.is_empty(), "no Debian package owns {}", real.display());
        assert!(
            installed.contains(&package),
            "compose runs {program} ({line:?}), from the Debian package {package}, which docker/Dockerfile's runtime image does not install ({installed:?})"
        );
    }
}

/// A REST GET as a NOC user, its answer as JSON.
async fn noc_json(http: &reqwest::Client, url: &str) -> serde_json::Value {
    http.get(url)
        .bearer_auth(token(Role::Noc))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A request id per call: the caller's `x-request-id` comes back in the REST answer and
/// the server's log lines for the call carry it (through the gRPC hop, into the engine's
/// run); a call without one gets a new UUID.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rest_call_returns_its_request_id_and_the_logs_of_its_work_carry_it() {
    use crate::process::{http_addr, start_logged, wait_exit, wait_first_backup, wait_log_end};
    let env = TestEnv::new(Backend::Sqlite).await;
    let vars: Vec<(String, String)> = env.lookup().into_iter().collect();
    let (mut child, addr, logs) = start_logged(&vars, &["serve"]);
    let api = format!("http://{}", http_addr(&logs));
    // The server makes its first backup at start: let it finish before asking for one.
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_lazy();
    config_backup_tests::wait_serving(&channel).await;
    wait_first_backup(&mut pb::config_backup_client::ConfigBackupClient::new(channel)).await;
    let http = reqwest::Client::new();
    let id = "noc-req-4711";
    let resp = http
        .post(format!("{api}/api/v1/backups/config/run"))
        .bearer_auth(token(Role::Admin))
        .header("x-request-id", id)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-request-id"], id);
    let run: serde_json::Value = resp.json().await.unwrap();
    // The run's audit record keeps it: Status reads the last run from the database.
    let status = noc_json(&http, &format!("{api}/api/v1/backups/config/status")).await;
    assert_eq!(status["last_run"]["request_id"], id, "{status}");
    // So does a rollback's.
    let commit = run["report"]["domains"][0]["commit_hash"].as_str().unwrap().to_owned();
    let rollback: serde_json::Value = http
        .post(format!(
            "{api}/api/v1/backups/config/rollback?commit={commit}&reason=request-id-test"
        ))
        .bearer_auth(token(Role::Admin))
        .header("x-request-id", "noc-rb-17")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rollback["task"]["request_id"], "noc-rb-17", "{rollback}");
    let task_id = rollback["task"]["task_id"].as_str().unwrap().to_owned();
    let ended = wait_for("the rollback to end", Duration::from_secs(60), || {
        let (http, api, task_id) = (http.clone(), api.clone(), task_id.clone());
        async move {
            let t = noc_json(
                &http,
                &format!("{api}/api/v1/backups/config/rollback/status?task_id={task_id}"),
            )
            .await;
            if t["task"]["completed_at"].is_string() {
                Ok(t)
            } else {
                Err(t.to_string())
            }
        }
    })
    .await;
    assert_eq!(ended["task"]["request_id"], "noc-rb-17", "{ended}");
    assert_eq!(ended["task"]["state"], "ROLLBACK_STATE_SUCCESS", "{ended}");
    let fresh = http
        .get(format!("{api}/api/v1/backups/config/status"))
        .bearer_auth(token(Role::Noc))
        .send()
        .await
        .unwrap();
    let made = fresh.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&made).is_ok(), "{made}");
    crate::process::sigterm(&child);
    assert!(wait_exit(&mut child).success());
    wait_log_end(&logs);
    let lines = logs.lock().unwrap().clone();
    let of = |id: &str| -> Vec<serde_json::Value> {
        lines
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            // In the call's span, or in a span inside it (the run, a domain, a stage).
            .filter(|v| {
                v["spans"]
                    .as_array()
                    .is_some_and(|spans| spans.iter().any(|s| s["request_id"] == id))
            })
            .collect()
    };
    let backup = of(id);
    assert!(
        backup.iter().any(|v| v["fields"]["message"] == "backup finished"
            && v["span"]["name"] == "backup"
            && v["span"]["run_id"].is_string()),
        "the run's log line is in the run's span, inside the call's, and carries the request id: {backup:?}"
    );
    assert!(
        backup
            .iter()
            .any(|v| v["span"]["method"] == "/configbackup.v1.ConfigBackup/Backup"),
        "{backup:?}"
    );
    assert!(!of(&made).is_empty(), "the made-up id is logged too");
}
