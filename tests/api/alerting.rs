//! The alerting that ships with the service: `deploy/prometheus/alerts.yml` passes
//! promtool's check and its unit tests (`alerts.test.yml`), and every metric the rules and
//! the Grafana dashboard (`deploy/grafana/dashboard.json`) name is one a running server
//! exports.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use config_backup_proto::v1 as pb;
use config_backup_server::auth::Role;
use config_backup_tests::{Backend, TestEnv, with_token};

fn deploy() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

/// Every `config_backup_…` name in a text (a rule's expression, a panel's query).
fn named(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("config_backup_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        out.insert(name);
    }
    out
}

fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(deploy().join("prometheus"))
        .output()
        .unwrap_or_else(|e| {
            panic!("promtool cannot run ({e}): the test command installs it (Debian package prometheus)")
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?}:\n{text}");
    text
}

#[test]
fn the_alert_rules_pass_promtool_check_and_their_unit_tests() {
    let checked = promtool(&["check", "rules", "alerts.yml"]);
    assert!(checked.contains("SUCCESS: 13 rules found"), "{checked}");
    let tested = promtool(&["test", "rules", "alerts.test.yml"]);
    assert!(tested.contains("SUCCESS"), "{tested}");
    // Every rule has at least one unit test that expects it to fire.
    let rules = std::fs::read_to_string(deploy().join("prometheus/alerts.yml")).unwrap();
    let tests = std::fs::read_to_string(deploy().join("prometheus/alerts.test.yml")).unwrap();
    for name in rules.lines().filter_map(|l| l.trim().strip_prefix("- alert: ")) {
        let firing = tests.split("alertname: ").skip(1).any(|t| {
            t.starts_with(name) && t[name.len()..].starts_with('\n') && t.contains("exp_labels") && {
                let next = t.find("alertname: ").unwrap_or(t.len());
                t[..next].contains("exp_labels")
            }
        });
        assert!(firing, "alerts.test.yml has no test in which {name} fires");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_alert_rules_and_the_dashboard_name_is_exported_by_a_running_server() {
    let env = TestEnv::new(Backend::Sqlite).await;
    let app = env.spawn().await;
    app.client()
        .backup(with_token(pb::BackupRequest::default(), Role::Admin))
        .await
        .unwrap();
    // The per-call and per-phase histograms are filled once the call's answer has ended
    // and the engine's observers have been told: wait for them.
    let text = config_backup_tests::wait_for(
        "the backup's histograms",
        std::time::Duration::from_secs(30),
        || async {
            let text = app.metrics().await;
            if text.contains("config_backup_backup_phase_duration_seconds_count{phase=\"run\"}")
                && text.contains(
                    "config_backup_requests_total{transport=\"grpc\",method=\"/configbackup.v1.ConfigBackup/Backup\"",
                )
            {
                Ok(text)
            } else {
                Err(text)
            }
        },
    )
    .await;
    let exported: BTreeSet<String> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap_or_default().to_owned())
        .collect();
    let rules = std::fs::read_to_string(deploy().join("prometheus/alerts.yml")).unwrap();
    let dashboard = std::fs::read_to_string(deploy().join("grafana/dashboard.json")).unwrap();
    let dashboard_json: serde_json::Value = serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    let queries: Vec<&str> = dashboard_json["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .filter_map(|t| t["expr"].as_str())
        .collect();
    assert!(queries.len() >= 10, "{} queries in the dashboard", queries.len());
    for (what, names) in [
        ("alerts.yml", named(&rules)),
        ("dashboard.json", named(&queries.join("\n"))),
    ] {
        assert!(names.len() >= 8, "{what} names only {names:?}");
        let missing: Vec<&String> = names.iter().filter(|n| !exported.contains(*n)).collect();
        assert!(
            missing.is_empty(),
            "{what} names metrics the server does not export: {missing:?}; it exports {exported:?}"
        );
    }
    app.stop().await;
}
