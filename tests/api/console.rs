//! The NOC console in a real browser (Debian's chromium through chromedriver), against
//! the real server over SQLite with the sample site: sign-in, Status, Back up now,
//! History, a diff, a dry-run rollback, a rollback followed to SUCCESS and one whose
//! reload fails followed to FAILED with the revert shown (the page reloaded mid-way);
//! noc sees no rollback action and a forced call shows the 403 message; a bad token
//! brings back the sign-in screen with the reason. Screenshots go to
//! target/console-screenshots/ (not committed).

use std::path::PathBuf;

use config_backup_server::auth::Role;
use config_backup_tests::webdriver::Browser;
use config_backup_tests::{Backend, Gate, TestEnv, token};

fn shots() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/console-screenshots")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_walks_an_operator_through_status_history_diff_and_rollbacks() {
    let mut env = TestEnv::new(Backend::Sqlite).await;
    // With the marker, a reload takes it, waits at the gate until the test opens it,
    // and fails (the revert's reload then passes).
    let refuse = env.dir.path().join("refuse-reload");
    let gate = Gate::new(env.dir.path().join("reload-gate"));
    env.vars.insert(
        "CONFIG_ROLLBACK_RELOAD__kea".into(),
        format!(
            "if [ -e {r} ]; then rm {r}; cat {g} >/dev/null; exit 1; fi",
            r = refuse.display(),
            g = gate.path().display()
        ),
    );
    let app = env.spawn().await;
    let first = app.backup().await;
    // A restore drill: Status shows when each domain was last proven restorable.
    let drill = app
        .client()
        .verify(config_backup_tests::with_token(
            config_backup_proto::v1::VerifyRequest {},
            Role::Admin,
        ))
        .await
        .unwrap()
        .into_inner()
        .drill
        .unwrap();
    assert_eq!(
        drill.state,
        config_backup_proto::v1::DrillState::Proven as i32,
        "{drill:#?}"
    );
    let target = first
        .domains
        .iter()
        .find(|d| d.domain == "kea")
        .unwrap()
        .commit_hash
        .clone();
    let kea = env.site().join("config/kea/kea-dhcp4.conf");
    let original = std::fs::read(&kea).unwrap();
    let base = app.url("/");

    // Strict headers on the console.
    let resp = reqwest::get(&base).await.unwrap();
    let csp = resp.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(
        csp.contains("connect-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(resp.headers()["x-frame-options"], "DENY");
    assert_eq!(resp.headers()["referrer-policy"], "no-referrer");

    let b = Browser::start().await;
    let dir = shots();

    // A bad token: the sign-in screen says why.
    b.goto(&base).await;
    b.fill("#token", "not-a-token").await;
    b.click("#signin-submit").await;
    b.wait_text("#signin-reason", "refused").await;
    b.screenshot(&dir.join("signin-refused.png")).await;

    // Admin: Status.
    b.fill("#token", &token(Role::Admin)).await;
    b.click("#signin-submit").await;
    b.wait_text("#domains", "kea").await;
    let proofs = b.text("#domains").await;
    assert_eq!(
        proofs.matches("proven ").count(),
        4,
        "each domain proven restorable: {proofs}"
    );
    assert!(
        b.script("return location.href")
            .await
            .as_str()
            .unwrap()
            .ends_with("#status")
    );
    assert!(
        !b.script("return location.href").await.as_str().unwrap().contains("ey"),
        "no token in the URL"
    );
    b.screenshot(&dir.join("status.png")).await;

    // Back up now records a change (Kea, and a DNS sinkhole entry).
    std::fs::write(&kea, b"{ \"Dhcp4\": { \"valid-lifetime\": 60 } }\n").unwrap();
    let sinkhole = env.site().join("config/unbound/unbound.conf.d/sinkhole.conf");
    let mut text = std::fs::read_to_string(&sinkhole).unwrap();
    text.push_str("    local-zone: \"console-test.example.\" always_nxdomain\n");
    std::fs::write(&sinkhole, text).unwrap();
    b.click("#backup-now").await;
    b.wait_text("#backup-result", "success").await;
    b.screenshot(&dir.join("backup-now.png")).await;

    // History of dns, then the newest commit's diff.
    b.goto(&format!("{base}#history")).await;
    b.script("document.getElementById('h-domain').value = 'dns'").await;
    b.click("#h-search").await;
    b.wait_text("#history-table", "config/unbound/unbound.conf.d/sinkhole.conf")
        .await;
    assert!(!b.text("#history-table").await.contains("kea-dhcp4.conf"));
    b.screenshot(&dir.join("history.png")).await;
    b.click("#history-table a.commit").await;
    b.wait_text("#diff-summary", "1 files").await;
    let diff = b.text("#diff-body").await;
    assert!(
        diff.contains("sinkhole.conf") && diff.contains("console-test.example."),
        "{diff}"
    );
    b.screenshot(&dir.join("diff.png")).await;

    // Rollback: the dry-run plan, then the real one to SUCCESS.
    b.goto(&format!("{base}#rollback")).await;
    b.fill("#r-commit", &target).await;
    b.fill("#r-reason", "console test").await;
    b.click("#r-plan").await;
    b.wait_text("#plan-validation", "Validation passed").await;
    assert!(b.text("#rollback-plan").await.contains("kea-dhcp4.conf"));
    b.screenshot(&dir.join("rollback-plan.png")).await;
    b.click("#r-confirm").await;
    b.wait_text("#rollback-state", "success").await;
    assert!(b.text("#rollback-progress").await.contains("verifying"));
    b.screenshot(&dir.join("rollback-success.png")).await;
    assert_eq!(std::fs::read(&kea).unwrap(), original);

    // A rollback whose reload fails: followed to FAILED with the revert, the page
    // reloaded while it runs.
    std::fs::write(&kea, b"{ \"Dhcp4\": { \"valid-lifetime\": 90 } }\n").unwrap();
    app.backup().await;
    std::fs::write(&refuse, b"").unwrap();
    b.fill("#r-commit", &target).await;
    b.click("#r-plan").await;
    b.wait_text("#plan-validation", "Validation passed").await;
    b.click("#r-confirm").await;
    // The new task's own state (the progress list still shows the last task's stages,
    // "reloading" among them, until the new one replaces it): refreshing before the
    // page has the new task could abort the request that starts it.
    b.wait_text("#rollback-state", "reloading").await;
    b.refresh().await;
    gate.open().await;
    b.wait_text("#rollback-state", "failed").await;
    let progress = b.text("#rollback-progress").await;
    assert!(
        progress.contains("reverting") && progress.contains("put back"),
        "{progress}"
    );
    b.screenshot(&dir.join("rollback-failed.png")).await;
    assert_eq!(
        std::fs::read(&kea).unwrap(),
        b"{ \"Dhcp4\": { \"valid-lifetime\": 90 } }\n"
    );

    // Every control has a label; the actions are native buttons and links (keyboard
    // reachable), none a clickable div.
    let unlabeled = b
        .script(
            "return [...document.querySelectorAll('input, select, textarea')]\
             .filter(e => e.labels.length === 0).map(e => e.id)",
        )
        .await;
    assert_eq!(unlabeled, serde_json::json!([]), "controls without a label");
    let fake = b
        .script("return document.querySelectorAll('[onclick], div[tabindex], span[tabindex]').length")
        .await;
    assert_eq!(fake, serde_json::json!(0));
    // The keyboard reaches the navigation: real Tab presses from a fresh page.
    b.goto(&format!("{base}#status")).await;
    b.refresh().await;
    b.wait_text("#domains", "kea").await;
    let mut reached = Vec::new();
    for _ in 0..4 {
        b.press_tab().await;
        let label = b.script("return document.activeElement.textContent.trim()").await;
        reached.push(label.as_str().unwrap_or("").to_owned());
    }
    assert_eq!(reached, ["Status", "History", "Diff", "Rollback"], "Tab order");

    // Phone width: nothing wider than the screen.
    b.resize(390, 844).await;
    b.goto(&format!("{base}#status")).await;
    b.wait_text("#domains", "kea").await;
    let fits = b
        .script("return document.documentElement.scrollWidth <= window.innerWidth + 1")
        .await;
    assert_eq!(fits, serde_json::json!(true));
    b.screenshot(&dir.join("status-phone.png")).await;
    b.resize(1280, 800).await;

    // noc: no rollback action; a forced call shows the 403 message.
    b.click("#sign-out").await;
    b.fill("#token", &token(Role::Noc)).await;
    b.click("#signin-submit").await;
    b.wait_text("#domains", "kea").await;
    assert!(!b.visible("#nav-rollback").await, "noc sees no rollback action");
    b.goto(&format!("{base}#rollback")).await;
    b.fill("#r-commit", &target).await;
    b.fill("#r-reason", "not allowed").await;
    b.click("#r-plan").await;
    let shown = b.wait_text("#error", "may not call Rollback").await;
    assert!(shown.contains("noc"), "{shown}");
    b.screenshot(&dir.join("noc-forbidden.png")).await;
    drop(b);
    app.stop().await;
}
