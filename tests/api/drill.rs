//! Restore drills against a real bare remote and a real database: a good drill proves
//! every domain (Status, ListSites, REST and `/metrics` show it); a commit rewritten and
//! force-pushed from outside, an audit row changed, a lost sealing key and a remote out
//! of reach each fail it, named (commit, file, what), with an ALERT mail.

use std::path::Path;

use config_backup_proto::v1 as pb;
use config_backup_server::auth::Role;
use config_backup_tests::{Backend, TestApp, TestEnv, signing_key, token, wait_for, with_token};

/// Runs a drill as an admin through gRPC.
async fn drill(app: &TestApp) -> pb::Drill {
    app.client()
        .verify(with_token(pb::VerifyRequest {}, Role::Admin))
        .await
        .expect("Verify")
        .into_inner()
        .drill
        .expect("a drill")
}

fn domain<'d>(d: &'d pb::Drill, name: &str) -> &'d pb::DomainDrill {
    d.domains
        .iter()
        .find(|x| x.domain == name)
        .unwrap_or_else(|| panic!("no {name} in {d:#?}"))
}

fn proven(d: &pb::DomainDrill) -> bool {
    d.state == pb::DrillState::Proven as i32 && d.causes.is_empty()
}

fn git(dir: &Path, args: &[&str]) -> String {
    config_backup_tests::ssh::run(std::process::Command::new("git").arg("-C").arg(dir).args(args))
}

/// The remote's branch head and the working copy's HEAD, to show a drill wrote nothing.
fn heads(env: &TestEnv) -> (String, String) {
    (
        git(&env.remote(), &["rev-parse", "main"]).trim().to_owned(),
        git(&env.working_dir(), &["rev-parse", "HEAD"]).trim().to_owned(),
    )
}

async fn a_good_drill_proves_every_domain_and_status_sites_rest_and_metrics_show_it(backend: Backend) {
    let mut env = TestEnv::new(backend).await;
    let key = signing_key(env.dir.path(), 0o600);
    env.vars
        .insert("CONFIG_BACKUP_SIGNING_KEY".into(), key.display().to_string());
    // The restored RADIUS clients are checked as the service reads them: secrets in clear.
    env.vars.insert(
        "CONFIG_ROLLBACK_VALIDATE__radius".into(),
        "grep -q secret {dir}/config/radius/clients.conf && ! grep -q 'ENC\\[' {dir}/config/radius/clients.conf".into(),
    );
    let app = env.spawn().await;
    app.backup().await;
    std::fs::write(env.site().join("config/kea/kea-dhcp4.conf"), "{}\n").unwrap();
    app.backup().await;
    let before = app.status().await;
    assert!(
        before
            .domains
            .iter()
            .all(|d| d.last_drill_state == pb::DrillState::Unspecified as i32 && d.last_proven_at.is_none()),
        "{before:#?}"
    );
    let untouched = heads(&env);

    let d = drill(&app).await;
    assert_eq!(d.state, pb::DrillState::Proven as i32, "{d:#?}");
    assert_eq!(d.remote_head, untouched.0);
    assert_eq!(d.domains.len(), 4, "{d:#?}");
    for x in &d.domains {
        assert!(proven(x), "{x:#?}");
        assert!(x.files > 0, "{x:#?}");
        let last = before.domains.iter().find(|s| s.domain == x.domain).unwrap();
        assert_eq!(x.commit_hash, last.last_commit_hash, "{x:#?}");
    }
    assert!(
        d.notes.iter().any(|n| n.contains("signatures: 8 commit(s) checked")),
        "{:?}",
        d.notes
    );
    assert!(
        d.notes.iter().any(|n| n == "gateway: no validate command configured"),
        "{:?}",
        d.notes
    );
    // A drill writes nothing but its record: no commit, nothing left in its directory.
    assert_eq!(heads(&env), untouched);
    let left = std::fs::read_dir(env.dir.path().join("data/drills")).unwrap().count();
    assert_eq!(left, 0, "the drill's clone is removed");

    // Status, ListSites and /metrics show each domain proven.
    let status = app.status().await;
    for s in &status.domains {
        assert_eq!(s.last_drill_state, pb::DrillState::Proven as i32, "{s:#?}");
        assert_eq!(s.last_proven_at, d.finished_at, "{s:#?}");
        assert!(s.last_drill_causes.is_empty());
    }
    let sites = app
        .client()
        .list_sites(with_token(pb::ListSitesRequest {}, Role::Noc))
        .await
        .unwrap()
        .into_inner();
    let proofs = &sites.sites[0].domains;
    assert_eq!(proofs.len(), 4, "{sites:#?}");
    assert!(
        proofs
            .iter()
            .all(|p| p.last_drill_state == pb::DrillState::Proven as i32 && p.last_proven_at == d.finished_at),
        "{proofs:#?}"
    );
    let metrics = app.metrics().await;
    let at = d.finished_at.as_ref().unwrap().seconds;
    for name in ["gateway", "dns", "radius", "kea"] {
        assert!(
            metrics.contains(&format!(
                "config_backup_last_proven_restorable_timestamp_seconds{{domain=\"{name}\"}} {at}"
            )),
            "{metrics}"
        );
        assert!(
            metrics.contains(&format!("config_backup_drill_failed{{domain=\"{name}\"}} 0")),
            "{metrics}"
        );
    }

    // REST: an admin runs one, a NOC user reads them and may not run one.
    let http = reqwest::Client::new();
    let verify = app.url("/api/v1/backups/config/verify");
    let refused = http.post(&verify).bearer_auth(token(Role::Noc)).send().await.unwrap();
    assert_eq!(refused.status(), 403);
    let ran = http.post(&verify).bearer_auth(token(Role::Admin)).send().await.unwrap();
    assert_eq!(ran.status(), 200);
    let ran: serde_json::Value = ran.json().await.unwrap();
    assert_eq!(ran["drill"]["state"], "DRILL_STATE_PROVEN", "{ran}");
    let listed: serde_json::Value = http
        .get(app.url("/api/v1/backups/config/drills?limit=2"))
        .bearer_auth(token(Role::Noc))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let drills = listed["drills"].as_array().unwrap();
    assert_eq!(drills.len(), 2, "{listed}");
    assert_eq!(drills[0]["id"], ran["drill"]["id"], "newest first: {listed}");
    assert_eq!(drills[1]["id"], d.id.as_str());
    assert_eq!(drills[1]["domains"][0]["state"], "DRILL_STATE_PROVEN");
    let bad = http
        .get(app.url("/api/v1/backups/config/drills?limit=1000"))
        .bearer_auth(token(Role::Noc))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let bad: serde_json::Value = bad.json().await.unwrap();
    assert!(
        bad["message"].as_str().unwrap().contains("limit") && bad["message"].as_str().unwrap().contains("1 to 100"),
        "{bad}"
    );
    app.stop().await;
}

async fn a_commit_rewritten_and_force_pushed_on_the_remote_is_caught_naming_the_commit_and_file(backend: Backend) {
    let (mut env, smtp) = crate::mail::env_with_mail(backend, &[]).await;
    let key = signing_key(env.dir.path(), 0o600);
    env.vars
        .insert("CONFIG_BACKUP_SIGNING_KEY".into(), key.display().to_string());
    let app = env.spawn().await;
    app.backup().await;
    std::fs::write(env.site().join("config/kea/kea-dhcp4.conf"), "{}\n").unwrap();
    let run = app.backup().await;
    let recorded = run.domains[3].commit_hash.clone();
    let first = drill(&app).await;
    assert!(proven(domain(&first, "kea")), "{first:?}\nthe run: {run:?}");

    // Someone with push access rewrites the last kea commit (same message and trailers,
    // another file) and force-pushes it.
    let scratch = env.dir.path().join("intruder");
    config_backup_tests::ssh::run(
        std::process::Command::new("git")
            .args(["clone", "-q"])
            .arg(env.remote())
            .arg(&scratch),
    );
    std::fs::write(
        scratch.join("config/kea/kea-dhcp4.conf"),
        "{ \"Dhcp4\": { \"option-data\": [ { \"name\": \"domain-name-servers\", \"data\": \"203.0.113.66\" } ] } }\n",
    )
    .unwrap();
    git(
        &scratch,
        &[
            "-c",
            "user.name=Config Backup",
            "-c",
            "user.email=config-backup@rgz.local",
            "commit",
            "-q",
            "-a",
            "--amend",
            "--no-edit",
        ],
    );
    git(&scratch, &["push", "-q", "-f", "origin", "main"]);
    let rewritten = git(&scratch, &["rev-parse", "HEAD"]).trim().to_owned();
    assert_ne!(rewritten, recorded);

    let d = drill(&app).await;
    assert_eq!(d.state, pb::DrillState::Failed as i32, "{d:#?}");
    let kea = domain(&d, "kea");
    assert_eq!(kea.state, pb::DrillState::Failed as i32);
    assert_eq!(kea.commit_hash, rewritten);
    let named = |needles: &[&str]| {
        assert!(
            kea.causes.iter().any(|c| needles.iter().all(|n| c.contains(n))),
            "no cause names {needles:?}: {:#?}",
            kea.causes
        )
    };
    named(&[&rewritten, "config/kea/kea-dhcp4.conf", "the audit trail recorded"]);
    named(&[&rewritten, "it is not signed"]);
    named(&[&recorded, "in the audit trail but not in the backup repository"]);
    for other in ["gateway", "dns", "radius"] {
        assert!(proven(domain(&d, other)), "{d:#?}");
    }

    // The NOC hears of it: an ALERT naming the domain, the commit and the file.
    let alert = wait_for("the drill's ALERT mail", std::time::Duration::from_secs(20), || {
        let found = smtp
            .messages()
            .iter()
            .map(|m| crate::mail::parse(m))
            .find(|m| m.subject.starts_with("ALERT: Config restore drill FAILED"));
        std::future::ready(found)
    })
    .await;
    assert_eq!(alert.subject, "ALERT: Config restore drill FAILED — kea");
    assert!(
        alert.text.contains(&rewritten) && alert.text.contains("config/kea/kea-dhcp4.conf"),
        "{}",
        alert.text
    );
    let status = app.status().await;
    let kea = status.domains.iter().find(|s| s.domain == "kea").unwrap();
    assert_eq!(kea.last_drill_state, pb::DrillState::Failed as i32);
    assert!(kea.last_proven_at.is_some(), "the first drill proved it");
    assert_ne!(kea.last_proven_at, kea.last_drill_at);
    assert!(!kea.last_drill_causes.is_empty());
    assert!(
        app.metrics()
            .await
            .contains("config_backup_drill_failed{domain=\"kea\"} 1")
    );
    app.stop().await;
}

async fn a_lost_sealing_key_a_changed_audit_row_and_an_unreachable_remote_fail_the_drill_named(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let app = env.spawn().await;
    app.backup().await;
    let d = drill(&app).await;
    assert_eq!(d.state, pb::DrillState::Proven as i32, "{d:#?}");
    assert!(
        d.notes
            .iter()
            .any(|n| n == "signatures not checked: CONFIG_BACKUP_SIGNING_KEY is not set"),
        "{:?}",
        d.notes
    );

    // The key file is lost and a new one made in its place: the sealed RADIUS secrets can
    // no longer be opened, which only a restore would otherwise find out.
    let key_file = app.engine.settings().secrets.key_file.clone();
    let kept = std::fs::read(&key_file).unwrap();
    std::fs::remove_file(&key_file).unwrap();
    config_backup_core::secrets::Keyring::generate(&key_file).unwrap();
    let d = drill(&app).await;
    let radius = domain(&d, "radius");
    assert!(
        radius
            .causes
            .iter()
            .any(|c| c.contains("config/radius/clients.conf: cannot unseal") && c.contains(&radius.commit_hash)),
        "{radius:#?}"
    );
    assert!(proven(domain(&d, "gateway")), "{d:#?}");
    std::fs::write(&key_file, kept).unwrap();
    assert_eq!(drill(&app).await.state, pb::DrillState::Proven as i32);

    // An audit row changed in the database breaks the chain and no longer matches the
    // remote's file.
    env.execute(
        "UPDATE config_file_changes SET file_sha256 = $1 WHERE config_file = 'config/radius/clients.conf'",
        &"0".repeat(64),
    )
    .await;
    let d = drill(&app).await;
    let radius = domain(&d, "radius");
    assert!(
        radius
            .causes
            .iter()
            .any(|c| c.starts_with("audit trail: link") && c.contains("changed or deleted")),
        "{radius:#?}"
    );
    assert!(
        radius
            .causes
            .iter()
            .any(|c| c.contains("config/radius/clients.conf") && c.contains("the audit trail recorded 000000000000")),
        "{radius:#?}"
    );

    // A remote out of reach proves nothing: every domain fails, saying why.
    std::fs::rename(env.remote(), env.dir.path().join("away.git")).unwrap();
    let d = drill(&app).await;
    assert!(d.error.starts_with("cannot clone the remote"), "{d:#?}");
    assert!(
        d.domains
            .iter()
            .all(|x| x.state == pb::DrillState::Failed as i32 && x.causes[0].starts_with("cannot clone the remote")),
        "{d:#?}"
    );
    app.stop().await;
}

async fn history_from_before_signing_fails_the_drill_until_the_trust_start_names_its_last_commit(backend: Backend) {
    let mut env = TestEnv::new(backend).await;
    let app = env.spawn().await;
    app.backup().await;
    app.stop().await;
    let before_signing = git(&env.remote(), &["rev-parse", "main"]).trim().to_owned();
    let key = signing_key(env.dir.path(), 0o600);
    env.vars
        .insert("CONFIG_BACKUP_SIGNING_KEY".into(), key.display().to_string());
    let app = env.spawn().await;
    app.backup().await;
    let d = drill(&app).await;
    for x in &d.domains {
        assert!(
            x.causes.iter().any(|c| c.contains("it is not signed")
                && c.contains("every commit (CONFIG_BACKUP_SIGNING_TRUST_START is not set)")),
            "{x:#?}"
        );
    }
    app.stop().await;

    env.vars
        .insert("CONFIG_BACKUP_SIGNING_TRUST_START".into(), before_signing.clone());
    let app = env.spawn().await;
    let d = drill(&app).await;
    assert_eq!(d.state, pb::DrillState::Proven as i32, "{d:#?}");
    assert!(
        d.notes
            .iter()
            .any(|n| n
                == &format!("signatures: 4 commit(s) checked: every commit after the trust start {before_signing}")),
        "{:?}",
        d.notes
    );
    app.stop().await;

    // A trust start the remote does not hold (history rewritten below it) proves nothing.
    env.vars
        .insert("CONFIG_BACKUP_SIGNING_TRUST_START".into(), "0".repeat(40));
    let app = env.spawn().await;
    let d = drill(&app).await;
    assert!(
        d.domains
            .iter()
            .all(|x| x.causes.iter().any(|c| c.contains("is not on the remote"))),
        "{d:#?}"
    );
    app.stop().await;
}

on_both_backends!(
    history_from_before_signing_fails_the_drill_until_the_trust_start_names_its_last_commit,
    a_good_drill_proves_every_domain_and_status_sites_rest_and_metrics_show_it,
    a_commit_rewritten_and_force_pushed_on_the_remote_is_caught_naming_the_commit_and_file,
    a_lost_sealing_key_a_changed_audit_row_and_an_unreachable_remote_fail_the_drill_named,
);
