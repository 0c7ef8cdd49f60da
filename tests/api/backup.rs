//! What one backup does: commits per domain with the product's messages, audit rows,
//! pushes, and one backup at a time.

use std::os::unix::fs::PermissionsExt;

use config_backup_core::Domain;
use config_backup_core::domain::ChangeKind;
use config_backup_core::store::{HistoryQuery, LockHolder, LockKind};
use config_backup_proto::v1 as pb;
use config_backup_server::auth::Role;
use config_backup_tests::{Backend, TestEnv, log_messages, log_subjects, with_token};
use sha2::{Digest, Sha256};

fn today() -> String {
    chrono::Utc::now().format("%Y-%m-%d").to_string()
}

fn sha7(path: &std::path::Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))[..7].to_owned()
}

async fn rows(app: &config_backup_tests::TestApp, domain: Domain) -> Vec<config_backup_core::store::AuditRow> {
    let q = HistoryQuery {
        domain: Some(domain),
        include_unchanged: true,
        limit: 1000,
        ..Default::default()
    };
    app.engine.store().history(&q).await.unwrap()
}

async fn first_backup_of_the_sample_site_makes_four_commits_with_the_product_messages(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let app = env.spawn().await;
    let report = app.backup().await;
    assert_eq!(report.outcome, pb::RunOutcome::Success as i32, "{report:?}");
    assert_eq!(report.push.as_ref().unwrap().outcome, pb::PushOutcome::Pushed as i32);

    let d = today();
    let site = env.site();
    let messages = log_messages(&env.remote(), "main");
    assert_eq!(messages.len(), 4, "{messages:?}");
    let first_paragraphs: Vec<&str> = messages
        .iter()
        .map(|m| m.split("\n\nConfig-Backup-Domain").next().unwrap())
        .collect();
    let gw = |f: &str| sha7(&site.join("scripts/gateway").join(f));
    let dns = |f: &str| sha7(&site.join("config/unbound").join(f));
    let rad = |f: &str| sha7(&site.join("config/radius").join(f));
    // clients.conf holds RADIUS secrets: it is stored, and so hashed, with them sealed.
    let clients = config_backup_tests::stored(&env.remote(), "main", "config/radius/clients.conf");
    let stored_clients_sha7 = hex::encode(Sha256::digest(&clients))[..7].to_owned();
    assert_ne!(
        stored_clients_sha7,
        rad("clients.conf"),
        "no plain hash of a file holding secrets"
    );
    assert!(!String::from_utf8_lossy(&clients).contains("sample-bng01-secret-7f3a"));
    assert_eq!(
        first_paragraphs,
        [
            format!(
                "config backup {d} config/kea/kea-dhcp4.conf 0000000→{}",
                sha7(&site.join("config/kea/kea-dhcp4.conf"))
            )
            .as_str(),
            format!(
                "config backup {d} radius: 3 files changed\n\nA config/radius/clients.conf 0000000→{}\n\
                 A config/radius/dictionary 0000000→{}\nA config/radius/radiusd.conf 0000000→{}",
                stored_clients_sha7,
                rad("dictionary"),
                rad("radiusd.conf")
            )
            .as_str(),
            format!(
                "config backup {d} dns: 3 files changed\n\nA config/unbound/unbound.conf 0000000→{}\n\
                 A config/unbound/unbound.conf.d/local-zones.conf 0000000→{}\n\
                 A config/unbound/unbound.conf.d/sinkhole.conf 0000000→{}",
                dns("unbound.conf"),
                dns("unbound.conf.d/local-zones.conf"),
                dns("unbound.conf.d/sinkhole.conf")
            )
            .as_str(),
            format!(
                "config backup {d} gateway: 3 files changed\n\nA scripts/gateway/rgz-main.nft 0000000→{}\n\
                 A scripts/gateway/rgz-nat.nft 0000000→{}\nA scripts/gateway/watch_config.sh 0000000→{}",
                gw("rgz-main.nft"),
                gw("rgz-nat.nft"),
                gw("watch_config.sh")
            )
            .as_str(),
        ]
    );
    // Author and committer are GIT_USER_NAME <GIT_USER_EMAIL>; watch_config.sh stays executable.
    let repo = git2::Repository::open(env.remote()).unwrap();
    let head = repo.head().unwrap().peel_to_commit().unwrap();
    assert_eq!(head.author().name().ok(), Some("Config Backup"));
    assert_eq!(head.committer().email().ok(), Some("config-backup@rgz.local"));
    let tree = head.tree().unwrap();
    let mode = tree
        .get_path(std::path::Path::new("scripts/gateway/watch_config.sh"))
        .unwrap()
        .filemode();
    assert_eq!(mode, 0o100755);

    // One audit row per file per domain, with the commit and its parent.
    let gw_rows = rows(&app, Domain::Gateway).await;
    assert_eq!(gw_rows.len(), 3);
    assert!(
        gw_rows
            .iter()
            .all(|r| r.change_type == ChangeKind::Added && r.changes_made && r.previous_hash.is_none())
    );
    assert!(gw_rows.iter().all(|r| r.backed_up_by == config_backup_tests::ADMIN_SUB));
    let dns_rows = rows(&app, Domain::Dns).await;
    assert_eq!(
        dns_rows[0].previous_hash.as_deref(),
        Some(gw_rows[0].commit_hash.as_str())
    );
    app.stop().await;
}

async fn a_second_run_with_nothing_changed_makes_four_empty_no_changes_commits(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let app = env.spawn().await;
    app.backup().await;
    let report = app.backup().await;
    assert_eq!(report.outcome, pb::RunOutcome::Success as i32, "{report:?}");
    let subjects = log_subjects(&env.remote(), "main");
    assert_eq!(subjects.len(), 8);
    let d = today();
    assert_eq!(
        &subjects[..4],
        [
            format!("config backup {d} — no changes (kea domain stable)"),
            format!("config backup {d} — no changes (radius domain stable)"),
            format!("config backup {d} — no changes (dns domain stable)"),
            format!("config backup {d} — no changes (gateway domain stable)"),
        ]
    );
    // Empty: each commit's tree is its parent's.
    let repo = git2::Repository::open(env.remote()).unwrap();
    let head = repo.head().unwrap().peel_to_commit().unwrap();
    assert_eq!(head.tree_id(), head.parent(0).unwrap().tree_id());
    for d in &report.domains {
        assert_eq!((d.files_added, d.files_modified, d.files_deleted), (0, 0, 0), "{d:?}");
    }
    // Unchanged rows are recorded too (one per file per domain per run).
    let kea = rows(&app, Domain::Kea).await;
    assert_eq!(kea.len(), 2);
    assert_eq!(kea[0].change_type, ChangeKind::Unchanged);
    assert!(!kea[0].changes_made);
    app.stop().await;
}

async fn modified_new_deleted_and_mode_changed_files_land_in_their_domain_commit(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let app = env.spawn().await;
    app.backup().await;
    let site = env.site();
    let old_sinkhole = sha7(&site.join("config/unbound/unbound.conf.d/sinkhole.conf"));
    std::fs::write(
        site.join("config/unbound/unbound.conf.d/sinkhole.conf"),
        "server:\n    local-zone: \"new-ads.example.com.\" always_nxdomain\n",
    )
    .unwrap();
    std::fs::write(site.join("config/unbound/unbound.conf.d/blocklist.conf"), "server:\n").unwrap();
    std::fs::remove_file(site.join("config/unbound/unbound.conf.d/local-zones.conf")).unwrap();
    std::fs::set_permissions(
        site.join("scripts/gateway/rgz-nat.nft"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();

    let report = app.backup().await;
    assert_eq!(report.outcome, pb::RunOutcome::Success as i32, "{report:?}");
    let by_domain = |n: &str| report.domains.iter().find(|d| d.domain == n).unwrap().clone();
    let dns = by_domain("dns");
    assert_eq!(
        (
            dns.files_added,
            dns.files_modified,
            dns.files_deleted,
            dns.files_unchanged
        ),
        (1, 1, 1, 1)
    );
    let new_sinkhole = sha7(&site.join("config/unbound/unbound.conf.d/sinkhole.conf"));
    let d = today();
    assert!(
        dns.commit_message
            .starts_with(&format!("config backup {d} dns: 3 files changed\n\n")),
        "{}",
        dns.commit_message
    );
    assert!(dns.commit_message.contains(&format!(
        "M config/unbound/unbound.conf.d/sinkhole.conf {old_sinkhole}→{new_sinkhole}"
    )));
    assert!(
        dns.commit_message
            .contains("A config/unbound/unbound.conf.d/blocklist.conf 0000000→")
    );
    assert!(
        dns.commit_message
            .contains("D config/unbound/unbound.conf.d/local-zones.conf ")
    );
    // The mode change: same content, new mode, in the gateway commit.
    let gw = by_domain("gateway");
    assert_eq!((gw.files_modified, gw.files_unchanged), (1, 2));
    let nat = sha7(&site.join("scripts/gateway/rgz-nat.nft"));
    assert!(
        gw.commit_message.starts_with(&format!(
            "config backup {d} scripts/gateway/rgz-nat.nft {nat}→{nat} (mode 0644 → 0755)\n"
        )),
        "{}",
        gw.commit_message
    );
    assert_eq!(gw.changes[0].metadata_changes, ["mode 0644 → 0755"]);
    assert_eq!(gw.changes[0].old_mode, "100644");
    assert_eq!(gw.changes[0].new_mode, "100755");
    // Other domains: no changes.
    assert!(
        by_domain("kea")
            .commit_message
            .contains("no changes (kea domain stable)")
    );

    // The remote tree has the new state.
    let repo = git2::Repository::open(env.remote()).unwrap();
    let tree = repo.head().unwrap().peel_to_tree().unwrap();
    assert!(
        tree.get_path(std::path::Path::new("config/unbound/unbound.conf.d/local-zones.conf"))
            .is_err()
    );
    assert!(
        tree.get_path(std::path::Path::new("config/unbound/unbound.conf.d/blocklist.conf"))
            .is_ok()
    );
    assert_eq!(
        tree.get_path(std::path::Path::new("scripts/gateway/rgz-nat.nft"))
            .unwrap()
            .filemode(),
        0o100755
    );

    // Audit rows of the dns commit.
    let dns_rows: Vec<_> = rows(&app, Domain::Dns)
        .await
        .into_iter()
        .filter(|r| r.commit_hash == dns.commit_hash)
        .collect();
    let mut kinds: Vec<(String, ChangeKind)> = dns_rows
        .iter()
        .map(|r| (r.config_file.clone(), r.change_type))
        .collect();
    kinds.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        kinds,
        [
            ("config/unbound/unbound.conf".to_owned(), ChangeKind::Unchanged),
            (
                "config/unbound/unbound.conf.d/blocklist.conf".to_owned(),
                ChangeKind::Added
            ),
            (
                "config/unbound/unbound.conf.d/local-zones.conf".to_owned(),
                ChangeKind::Deleted
            ),
            (
                "config/unbound/unbound.conf.d/sinkhole.conf".to_owned(),
                ChangeKind::Modified
            ),
        ]
    );
    let modified = dns_rows.iter().find(|r| r.change_type == ChangeKind::Modified).unwrap();
    assert!(
        modified
            .previous_file_sha256
            .as_deref()
            .unwrap()
            .starts_with(&old_sinkhole)
    );
    assert!(modified.file_sha256.as_deref().unwrap().starts_with(&new_sinkhole));
    assert_eq!(modified.previous_hash.as_deref(), Some(dns.previous_hash.as_str()));
    app.stop().await;
}

async fn a_backup_while_another_replica_holds_the_lock_is_aborted_naming_the_run(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let app = env.spawn().await;
    assert_eq!(app.backup().await.outcome, pb::RunOutcome::Success as i32);
    let other = LockHolder {
        kind: LockKind::Backup,
        id: uuid::Uuid::new_v4(),
        host: "replica-2".into(),
        pid: 4242,
        instance: "other".into(),
        acquired_at: chrono::Utc::now(),
    };
    let store = app.engine.store().clone();
    store
        .try_lock(&other, std::time::Duration::from_secs(30))
        .await
        .unwrap();
    let err = app
        .client()
        .backup(with_token(pb::BackupRequest::default(), Role::Admin))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Aborted);
    assert!(err.message().contains(&other.id.to_string()), "{}", err.message());
    assert!(err.message().contains("replica-2"), "{}", err.message());
    // Refused before anything was written: the lock and the run's row are taken in one
    // transaction, and the refused run has no row.
    let runs = store.recent_runs(10).await.unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].outcome, config_backup_core::store::RunOutcome::Success);
    // A run's end recorded with another holder's id leaves the replica's lock alone.
    let mut last = store.last_run().await.unwrap().expect("the first backup's run");
    last.error = Some("recorded again".into());
    store.finish_run(&last, Some(uuid::Uuid::new_v4())).await.unwrap();
    let (holder, _) = store.lock_holder().await.unwrap().expect("still held");
    assert_eq!(holder.id, other.id);
    store.release_lock(other.id).await.unwrap();
    assert_eq!(app.backup().await.outcome, pb::RunOutcome::Success as i32);
    // The run's end and the lock's release are one transaction: both are done when it answers.
    assert!(store.lock_holder().await.unwrap().is_none(), "the lock is released");
    let run = store.last_run().await.unwrap().unwrap();
    assert!(run.finished_at.is_some(), "{run:?}");
    app.stop().await;
}

async fn two_concurrent_backups_on_two_replicas_one_is_aborted(backend: Backend) {
    let env = TestEnv::new(backend).await;
    env.add_zone_files(3000);
    let a = env.spawn().await;
    let b = env.spawn().await;
    let (mut ca, mut cb) = (a.client(), b.client());
    let (ra, rb) = tokio::join!(
        ca.backup(with_token(pb::BackupRequest::default(), Role::Noc)),
        cb.backup(with_token(pb::BackupRequest::default(), Role::Noc)),
    );
    let outcomes = [&ra, &rb];
    let aborted = outcomes
        .iter()
        .filter(|r| matches!(r, Err(e) if e.code() == tonic::Code::Aborted))
        .count();
    let ok = outcomes.iter().filter(|r| r.is_ok()).count();
    assert_eq!((ok, aborted), (1, 1), "{ra:?} / {rb:?}");
    let err = outcomes.iter().find_map(|r| r.as_ref().err()).unwrap();
    assert!(err.message().contains("backup run"), "{}", err.message());
    a.stop().await;
    b.stop().await;
}

async fn an_unreachable_remote_keeps_the_commits_and_the_next_run_pushes_them(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let app = env.spawn().await;
    app.backup().await;
    let moved = env.dir.path().join("remote-away.git");
    std::fs::rename(env.remote(), &moved).unwrap();
    std::fs::write(env.site().join("config/kea/kea-dhcp4.conf"), "{ \"Dhcp4\": {} }\n").unwrap();
    let report = app.backup().await;
    assert_eq!(report.outcome, pb::RunOutcome::Partial as i32, "{report:?}");
    let push = report.push.unwrap();
    assert_eq!(push.outcome, pb::PushOutcome::Failed as i32);
    assert!(!push.error.is_empty());
    assert_eq!(push.unpushed_commits, 4);
    let status = app
        .client()
        .status(with_token(pb::StatusRequest::default(), Role::Noc))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.unpushed_commits, 4);
    assert!(!status.last_push_error.is_empty());

    std::fs::rename(&moved, env.remote()).unwrap();
    let report = app.backup().await;
    assert_eq!(report.outcome, pb::RunOutcome::Success as i32, "{report:?}");
    assert_eq!(report.push.unwrap().unpushed_commits, 0);
    let subjects = log_subjects(&env.remote(), "main");
    assert_eq!(subjects.len(), 12);
    assert!(subjects[4].contains("config/kea/kea-dhcp4.conf"), "{subjects:?}");
    let status = app
        .client()
        .status(with_token(pb::StatusRequest::default(), Role::Noc))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.unpushed_commits, 0);
    assert!(status.last_push_error.is_empty());
    app.stop().await;
}

async fn an_unknown_domain_is_invalid_argument_naming_the_field_and_allowed_values(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let app = env.spawn().await;
    let req = pb::BackupRequest {
        domains: vec!["dhcp".into()],
        ..Default::default()
    };
    let err = app.client().backup(with_token(req, Role::Admin)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().starts_with("domains:"), "{}", err.message());
    assert!(
        err.message().contains("gateway, dns, radius, kea, ospf"),
        "{}",
        err.message()
    );
    // A known but unconfigured domain names the configured ones.
    let req = pb::BackupRequest {
        domains: vec!["ospf".into()],
        ..Default::default()
    };
    let err = app.client().backup(with_token(req, Role::Admin)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(
        err.message()
            .contains("configured domains are gateway, dns, radius, kea"),
        "{}",
        err.message()
    );
    // One domain only.
    let req = pb::BackupRequest {
        domains: vec!["kea".into()],
        ..Default::default()
    };
    let report = app
        .client()
        .backup(with_token(req, Role::Admin))
        .await
        .unwrap()
        .into_inner()
        .report
        .unwrap();
    assert_eq!(report.domains.len(), 1);
    assert_eq!(log_subjects(&env.remote(), "main").len(), 1);
    app.stop().await;
}

async fn patterns_that_match_nothing_are_reported_not_fatal(backend: Backend) {
    let mut env = TestEnv::new(backend).await;
    env.vars.insert(
        "CONFIG_BACKUP_PATHS__kea".into(),
        "config/kea/kea-dhcp4.conf,config/kea/kea-dhcp6.conf".into(),
    );
    let app = env.spawn().await;
    let report = app.backup().await;
    assert_eq!(report.outcome, pb::RunOutcome::Success as i32);
    let kea = report.domains.iter().find(|d| d.domain == "kea").unwrap();
    assert_eq!(kea.unmatched_patterns, ["config/kea/kea-dhcp6.conf"]);
    assert_eq!(kea.files_added, 1);
    app.stop().await;
}

on_both_backends!(
    first_backup_of_the_sample_site_makes_four_commits_with_the_product_messages,
    a_second_run_with_nothing_changed_makes_four_empty_no_changes_commits,
    modified_new_deleted_and_mode_changed_files_land_in_their_domain_commit,
    a_backup_while_another_replica_holds_the_lock_is_aborted_naming_the_run,
    two_concurrent_backups_on_two_replicas_one_is_aborted,
    an_unreachable_remote_keeps_the_commits_and_the_next_run_pushes_them,
    an_unknown_domain_is_invalid_argument_naming_the_field_and_allowed_values,
    patterns_that_match_nothing_are_reported_not_fatal,
    a_change_with_the_same_size_and_mtime_is_never_missed,
    the_full_rehash_reads_every_file_finds_a_changed_secret_and_keeps_no_plain_hash_of_it,
    a_local_remote_is_repacked_and_keeps_every_commit,
    pushed_packs_hold_no_deltas,
);

/// Pushes send objects whole: libgit2's delta search only pairs the new objects of one
/// push, costs most of a first backup's time and memory, and the remote's repack makes
/// the deltas that pay (see `WorkingCopy::push_without_delta_search`). Two files that
/// differ in one line would be deltified by any delta search.
async fn pushed_packs_hold_no_deltas(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let sinkhole = (0..400)
        .map(|i| format!("local-zone: \"ads{i}.example.net.\" always_nxdomain\n"))
        .collect::<String>();
    let dir = env.site().join("config/unbound/unbound.conf.d");
    std::fs::write(dir.join("blocklist-a.conf"), &sinkhole).unwrap();
    std::fs::write(dir.join("blocklist-b.conf"), sinkhole + "# b\n").unwrap();
    let app = env.spawn().await;
    let report = app.backup().await;
    assert_eq!(report.push.as_ref().unwrap().outcome, pb::PushOutcome::Pushed as i32);
    let mut checked = 0;
    for entry in std::fs::read_dir(env.remote().join("objects/pack")).unwrap() {
        let idx = entry.unwrap().path();
        if idx.extension().is_none_or(|x| x != "idx") {
            continue;
        }
        let out = std::process::Command::new("git")
            .arg("verify-pack")
            .arg("-v")
            .arg(&idx)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let listing = String::from_utf8(out.stdout).unwrap();
        assert!(listing.contains("non delta:"), "{listing}");
        assert!(
            !listing.contains("chain length"),
            "deltas in {}:\n{listing}",
            idx.display()
        );
        checked += 1;
    }
    assert!(checked > 0, "the push left no pack in the remote");
    app.stop().await;
}

/// Every push into a local remote leaves a pack; after the run the remote is repacked as
/// git's receive-pack would (here after more than two packs).
async fn a_local_remote_is_repacked_and_keeps_every_commit(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let app = env.spawn().await;
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(env.remote())
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    git(&["config", "gc.autoPackLimit", "2"]);
    let kea = env.site().join("config/kea/kea-dhcp4.conf");
    for i in 0..5 {
        std::fs::write(
            &kea,
            format!("{{ \"Dhcp4\": {{ \"valid-lifetime\": {} }} }}\n", 4000 + i),
        )
        .unwrap();
        assert_eq!(app.backup().await.outcome, pb::RunOutcome::Success as i32);
    }
    // The repack runs on its own thread once the run is recorded.
    let packs = || {
        std::fs::read_dir(env.remote().join("objects/pack"))
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "pack"))
            .count()
    };
    config_backup_tests::wait_for("the remote's repack", std::time::Duration::from_secs(30), || {
        let n = packs();
        std::future::ready(if n <= 2 { Ok(()) } else { Err(format!("{n} packs")) })
    })
    .await;
    assert_eq!(git(&["rev-list", "--count", "main"]).trim(), "20");
    git(&["fsck", "--strict"]);
    app.stop().await;
}

/// Waits until `file`'s mtime and ctime are RACY_SECS old: the stat cache keeps an entry
/// only for such a file.
async fn settled(file: &std::path::Path) {
    let racy = std::time::Duration::from_secs(config_backup_core::statcache::RACY_SECS as u64);
    config_backup_tests::wait_for(&format!("{} to settle", file.display()), racy * 3, || {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(file).unwrap();
        let changed = std::time::UNIX_EPOCH
            + std::time::Duration::new(m.mtime().max(m.ctime()) as u64, 0)
            + std::time::Duration::from_secs(1);
        std::future::ready(changed + racy < std::time::SystemTime::now())
    })
    .await;
}

async fn a_change_with_the_same_size_and_mtime_is_never_missed(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let app = env.spawn().await;
    // Files changed in the last seconds are never trusted unread; wait until kea's file
    // has settled (its mtime and ctime RACY_SECS old, the stat cache's rule), so the first
    // backup puts it in the stat cache and the second relies on it.
    let kea = env.site().join("config/kea/kea-dhcp4.conf");
    settled(&kea).await;
    app.backup().await;
    let cache = env.working_dir().join(".git/config-backup/stat-kea");
    let cached = std::fs::read_to_string(&cache).unwrap();
    assert!(cached.contains("config/kea/kea-dhcp4.conf"), "{cached}");
    let before = std::fs::metadata(&kea).unwrap();
    let mut text = std::fs::read(&kea).unwrap();
    let at = text.iter().position(|b| *b == b'7').unwrap();
    text[at] = b'8';
    std::fs::write(&kea, &text).unwrap();
    let mtime = before
        .modified()
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let stamp = format!("@{}.{:09}", mtime.as_secs(), mtime.subsec_nanos());
    assert!(
        std::process::Command::new("touch")
            .args(["-m", "-d", &stamp])
            .arg(&kea)
            .status()
            .unwrap()
            .success()
    );
    let after = std::fs::metadata(&kea).unwrap();
    assert_eq!(
        (after.len(), after.modified().unwrap()),
        (before.len(), before.modified().unwrap())
    );
    let report = app.backup().await;
    let kea_report = report.domains.iter().find(|d| d.domain == "kea").unwrap();
    assert_eq!(kea_report.files_modified, 1, "{kea_report:?}");
    app.stop().await;
}

/// The full re-hash (here at every run) reads every file again. A file whose clear content
/// is what it was is known by a keyed digest of it, kept in the stat cache instead of being
/// sealed and hashed again; a secret changed in place is found. The cache never holds the
/// plain SHA-256 of a file's clear content, which could be checked against guesses.
async fn the_full_rehash_reads_every_file_finds_a_changed_secret_and_keeps_no_plain_hash_of_it(backend: Backend) {
    let mut env = TestEnv::new(backend).await;
    env.vars.insert("CONFIG_BACKUP_FULL_REHASH_HOURS".into(), "0".into());
    let app = env.spawn().await;
    let clients = env.site().join("config/radius/clients.conf");
    // Only files settled for RACY_SECS get cache entries.
    settled(&clients).await;
    app.backup().await;
    let cache = env.working_dir().join(".git/config-backup/stat-radius");
    let clear = std::fs::read(&clients).unwrap();
    let plain = hex::encode(Sha256::digest(&clear));
    let cached = std::fs::read_to_string(&cache).unwrap();
    let line = cached
        .lines()
        .find(|l| l.ends_with(" config/radius/clients.conf"))
        .unwrap_or_else(|| panic!("clients.conf is cached: {cached}"));
    assert!(!cached.contains(&plain), "{line}");
    assert!(
        line.contains(" 1 config/radius/clients.conf"),
        "marked as holding secrets: {line}"
    );

    let again = app.backup().await;
    for d in &again.domains {
        assert_eq!((d.files_added, d.files_modified, d.files_deleted), (0, 0, 0), "{d:?}");
    }
    // A secret changed in place, same length: found, sealed anew.
    let text = String::from_utf8(clear).unwrap();
    let at = text.find("secret").unwrap();
    let value = text[at..]
        .find(|c: char| c.is_ascii_alphanumeric() && !"secret".contains(c))
        .unwrap()
        + at;
    let mut changed = text.into_bytes();
    changed[value] = if changed[value] == b'x' { b'y' } else { b'x' };
    std::fs::write(&clients, &changed).unwrap();
    let third = app.backup().await;
    let radius = third.domains.iter().find(|d| d.domain == "radius").unwrap();
    assert_eq!(radius.files_modified, 1, "{radius:?}");
    app.stop().await;
}
