//! Pushing over SSH to a real OpenSSH sshd: key formats, strict host keys, verified
//! pushes, outages, hooks, foreign commits and hung remotes.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use config_backup_proto::v1 as pb;
use config_backup_server::auth::Role;
use config_backup_tests::ssh::{self, KeyPair, SshServer, keygen};
use config_backup_tests::{Backend, TestEnv, log_subjects, with_token};

struct Site {
    env: TestEnv,
    sshd: SshServer,
    key: KeyPair,
}

impl Site {
    /// A test environment whose remote is reached over SSH with `key`.
    async fn new(kind: &str, pem: bool, passphrase: &str) -> Site {
        let mut env = TestEnv::new(Backend::Sqlite).await;
        let keys = env.dir.path().join("keys");
        std::fs::create_dir_all(&keys).unwrap();
        let key = keygen(&keys, "client", kind, pem, passphrase);
        let sshd = SshServer::start(&env.dir.path().join("sshd"), &[&key]);
        let known = env.dir.path().join("known_hosts");
        std::fs::write(&known, sshd.known_hosts_hashed()).unwrap();
        env.vars.insert("GIT_BACKUP_REPO".into(), sshd.url(&env.remote()));
        env.vars
            .insert("GIT_SSH_KEY_PATH".into(), key.private.display().to_string());
        env.vars
            .insert("GIT_SSH_KNOWN_HOSTS".into(), known.display().to_string());
        if !passphrase.is_empty() {
            let pf = env.dir.path().join("passphrase");
            std::fs::write(&pf, format!("{passphrase}\n")).unwrap();
            env.vars
                .insert("GIT_SSH_KEY_PASSPHRASE_FILE".into(), pf.display().to_string());
        }
        Site { env, sshd, key }
    }

    fn known_hosts(&self) -> std::path::PathBuf {
        self.env.dir.path().join("known_hosts")
    }
}

fn pushed(report: &pb::BackupReport) -> bool {
    report.push.as_ref().unwrap().outcome == pb::PushOutcome::Pushed as i32
}

fn push_error(report: &pb::BackupReport) -> String {
    report.push.as_ref().unwrap().error.clone()
}

async fn pushes_with(kind: &str, pem: bool, passphrase: &str) {
    let site = Site::new(kind, pem, passphrase).await;
    let app = site.env.spawn().await;
    let report = app.backup().await;
    assert!(pushed(&report), "{kind} pem={pem}: {report:?}");
    assert_eq!(report.outcome, pb::RunOutcome::Success as i32);
    assert_eq!(log_subjects(&site.env.remote(), "main").len(), 4);
    // A restore drill clones the remote afresh over the same transport, with the same key.
    let drill = drill(&app).await;
    assert_eq!(
        drill.state,
        pb::DrillState::Proven as i32,
        "{kind} pem={pem}: {drill:#?}"
    );
    app.stop().await;
}

async fn drill(app: &config_backup_tests::TestApp) -> pb::Drill {
    app.client()
        .verify(config_backup_tests::with_token(pb::VerifyRequest {}, Role::Admin))
        .await
        .unwrap()
        .into_inner()
        .drill
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_pushes_over_ssh_with_an_ed25519_key_and_a_hashed_known_hosts_entry() {
    pushes_with("ed25519", false, "").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_pushes_over_ssh_with_an_rsa_key_in_openssh_format() {
    pushes_with("rsa", false, "").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_pushes_over_ssh_with_an_rsa_key_in_pem_format() {
    pushes_with("rsa", true, "").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_pushes_over_ssh_with_an_ecdsa_key() {
    pushes_with("ecdsa", false, "").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_pushes_over_ssh_with_a_passphrase_protected_key() {
    pushes_with("ed25519", false, "correct horse battery").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_known_hosts_entry_with_a_port_is_accepted() {
    let site = Site::new("ed25519", false, "").await;
    std::fs::write(site.known_hosts(), site.sshd.known_hosts_plain()).unwrap();
    let app = site.env.spawn().await;
    assert!(pushed(&app.backup().await));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_host_key_refuses_the_push_and_names_the_host_and_fingerprint() {
    let site = Site::new("ed25519", false, "").await;
    let app = site.env.spawn().await;
    assert!(pushed(&app.backup().await));
    let before = log_subjects(&site.env.remote(), "main");

    // The host now presents a key that known_hosts does not have (as after a MITM).
    let other = keygen(site.env.dir.path(), "impostor", "ed25519", false, "");
    let other_key: Vec<&str> = other.public.split_whitespace().take(2).collect();
    std::fs::write(
        site.known_hosts(),
        format!("[127.0.0.1]:{} {}\n", site.sshd.port, other_key.join(" ")),
    )
    .unwrap();
    std::fs::write(site.env.site().join("config/kea/kea-dhcp4.conf"), "{}\n").unwrap();
    let report = app.backup().await;
    assert!(!pushed(&report));
    assert_eq!(report.outcome, pb::RunOutcome::Partial as i32);
    let err = push_error(&report);
    let offered = ssh::fingerprint(&site.sshd.host_public);
    assert!(err.contains("HOST KEY MISMATCH"), "{err}");
    assert!(err.contains(&format!("[127.0.0.1]:{}", site.sshd.port)), "{err}");
    assert!(err.contains(&offered), "{err} lacks {offered}");
    assert_eq!(log_subjects(&site.env.remote(), "main"), before, "nothing arrives");
    let st = app.status().await;
    assert_eq!(st.unpushed_commits, 4);
    assert!(st.last_push_error.contains(&offered), "{}", st.last_push_error);
    assert!(st.last_run.unwrap().push_error.contains("HOST KEY MISMATCH"));
    // A drill's clone checks the host key as a push does: refused, named.
    let refused = drill(&app).await;
    assert!(
        refused.error.starts_with("cannot clone the remote") && refused.error.contains(&offered),
        "{refused:#?}"
    );

    // An unknown host (empty known_hosts) is refused too.
    std::fs::write(site.known_hosts(), "").unwrap();
    let report = app.backup().await;
    assert!(
        push_error(&report).contains("not in GIT_SSH_KNOWN_HOSTS"),
        "{}",
        push_error(&report)
    );
    assert!(push_error(&report).contains(&offered));

    // A revoked key is refused even when listed.
    let key = std::fs::read_to_string(&site.sshd.host_public).unwrap();
    let key: Vec<&str> = key.split_whitespace().take(2).collect();
    std::fs::write(
        site.known_hosts(),
        format!(
            "@revoked * {k}\n[127.0.0.1]:{p} {k}\n",
            k = key.join(" "),
            p = site.sshd.port
        ),
    )
    .unwrap();
    let report = app.backup().await;
    assert!(push_error(&report).contains("@revoked"), "{}", push_error(&report));

    // Back to the right key: everything arrives.
    std::fs::write(site.known_hosts(), site.sshd.known_hosts_hashed()).unwrap();
    let report = app.backup().await;
    assert!(pushed(&report), "{report:?}");
    assert_eq!(log_subjects(&site.env.remote(), "main").len(), 4 * 5);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_file_readable_by_others_is_refused_with_a_clear_error() {
    let site = Site::new("ed25519", false, "").await;
    let app = site.env.spawn().await;
    std::fs::set_permissions(&site.key.private, std::fs::Permissions::from_mode(0o644)).unwrap();
    let report = app.backup().await;
    assert!(!pushed(&report));
    let err = push_error(&report);
    assert!(err.contains("readable by group or others (mode 0644)"), "{err}");
    assert!(err.contains("chmod 600"), "{err}");
    assert!(log_subjects(&site.env.remote(), "main").is_empty());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_file_is_used_at_the_next_push_without_a_restart() {
    let site = Site::new("ed25519", false, "").await;
    let app = site.env.spawn().await;
    assert!(pushed(&app.backup().await));
    // Rotation: a new key is authorized, the old one revoked, the file replaced.
    let keys = site.env.dir.path().join("keys");
    let new = keygen(&keys, "client-2027", "ed25519", false, "");
    site.sshd.authorize(&[&new]);
    assert!(!pushed(&app.backup().await), "the old key must no longer work");
    std::fs::copy(&new.private, &site.key.private).unwrap();
    let report = app.backup().await;
    assert!(pushed(&report), "{report:?}");
    assert_eq!(log_subjects(&site.env.remote(), "main").len(), 12);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejecting_pre_receive_hook_fails_the_push_and_the_next_run_pushes_everything() {
    let site = Site::new("ed25519", false, "").await;
    let app = site.env.spawn().await;
    assert!(pushed(&app.backup().await));
    let hook = site.env.remote().join("hooks/pre-receive");
    std::fs::write(&hook, "#!/bin/sh\necho 'branch main is protected' >&2\nexit 1\n").unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();

    let report = app.backup().await;
    assert!(!pushed(&report), "a rejected ref is a failed push: {report:?}");
    assert_eq!(report.outcome, pb::RunOutcome::Partial as i32);
    assert!(push_error(&report).contains("rejected"), "{}", push_error(&report));
    assert_eq!(log_subjects(&site.env.remote(), "main").len(), 4);

    std::fs::remove_file(&hook).unwrap();
    let report = app.backup().await;
    assert!(pushed(&report), "{report:?}");
    assert_eq!(report.push.unwrap().unpushed_commits, 0);
    assert_eq!(log_subjects(&site.env.remote(), "main").len(), 12);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sshd_down_for_two_runs_then_up_every_commit_arrives_in_order() {
    let mut site = Site::new("ed25519", false, "").await;
    let app = site.env.spawn().await;
    assert!(pushed(&app.backup().await));
    site.sshd.down();
    std::fs::write(
        site.env.site().join("config/kea/kea-dhcp4.conf"),
        "{ \"Dhcp4\": { \"valid-lifetime\": 1 } }\n",
    )
    .unwrap();
    let r1 = app.backup().await;
    std::fs::write(
        site.env.site().join("config/kea/kea-dhcp4.conf"),
        "{ \"Dhcp4\": { \"valid-lifetime\": 2 } }\n",
    )
    .unwrap();
    let r2 = app.backup().await;
    for r in [&r1, &r2] {
        assert!(!pushed(r));
        assert_eq!(r.outcome, pb::RunOutcome::Partial as i32);
    }
    assert_eq!(r2.push.as_ref().unwrap().unpushed_commits, 8);
    site.sshd.up();
    let r3 = app.backup().await;
    assert!(pushed(&r3), "{r3:?}");
    let remote = log_subjects(&site.env.remote(), "main");
    let local = log_subjects(&site.env.working_dir(), "main");
    assert_eq!(remote.len(), 16);
    assert_eq!(remote, local, "same commits, same order");
    let kea: Vec<&String> = remote.iter().filter(|s| s.contains("kea-dhcp4.conf")).collect();
    assert_eq!(kea.len(), 3, "{remote:?}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_commit_on_the_remote_is_kept_and_our_commits_are_rebased_on_top() {
    let site = Site::new("ed25519", false, "").await;
    let app = site.env.spawn().await;
    assert!(pushed(&app.backup().await));
    let foreign = config_backup_tests::foreign_commit(
        &site.env.remote(),
        &site.env.dir.path().join("op"),
        "NOTES.md",
        "audit notes\n",
    );

    std::fs::write(site.env.site().join("config/kea/kea-dhcp4.conf"), "{}\n").unwrap();
    let report = app.backup().await;
    assert!(pushed(&report), "{report:?}");
    let remote = git2::Repository::open(site.env.remote()).unwrap();
    let head = remote.head().unwrap().target().unwrap();
    assert!(
        remote
            .graph_descendant_of(head, git2::Oid::from_str(&foreign).unwrap())
            .unwrap(),
        "the remote keeps the foreign commit"
    );
    assert_eq!(
        head.to_string(),
        report.domains[3].commit_hash,
        "the report names the rebased commits"
    );
    let subjects = log_subjects(&site.env.remote(), "main");
    assert_eq!(subjects.len(), 9);
    assert_eq!(subjects[4], "hand edit");
    // The audit trail follows the rebased hashes.
    let st = app.status().await;
    assert_eq!(st.domains[3].last_commit_hash, head.to_string());
    assert_eq!(st.unpushed_commits, 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflicting_foreign_commit_is_reported_as_diverged_and_never_overwritten() {
    let mut site = Site::new("ed25519", false, "").await;
    let app = site.env.spawn().await;
    assert!(pushed(&app.backup().await));
    // Our change cannot be pushed while the remote is down ...
    site.sshd.down();
    std::fs::write(site.env.site().join("config/kea/kea-dhcp4.conf"), "{ \"live\": 2 }\n").unwrap();
    assert!(!pushed(&app.backup().await));
    site.sshd.up();
    // ... and meanwhile someone edits the same file on the remote.
    let foreign = config_backup_tests::foreign_commit(
        &site.env.remote(),
        &site.env.dir.path().join("op"),
        "config/kea/kea-dhcp4.conf",
        "{ \"edited\": 1 }\n",
    );

    let report = app.backup().await;
    let push = report.push.clone().unwrap();
    assert_eq!(push.outcome, pb::PushOutcome::Diverged as i32, "{report:?}");
    assert!(push.error.contains("diverged"), "{}", push.error);
    assert_eq!(report.outcome, pb::RunOutcome::Partial as i32);
    let remote = git2::Repository::open(site.env.remote()).unwrap();
    assert_eq!(
        remote.head().unwrap().target().unwrap().to_string(),
        foreign,
        "the remote keeps the foreign commit"
    );
    let st = app.status().await;
    assert_eq!(st.unpushed_commits, 8, "our commits are kept");
    assert!(st.last_push_error.contains("diverged"));
    assert_eq!(st.last_run.unwrap().push_outcome, pb::PushOutcome::Diverged as i32);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_edit_of_a_tracked_file_is_restored_from_the_live_file_at_the_next_run() {
    let site = Site::new("ed25519", false, "").await;
    let app = site.env.spawn().await;
    assert!(pushed(&app.backup().await));
    config_backup_tests::foreign_commit(
        &site.env.remote(),
        &site.env.dir.path().join("op"),
        "config/radius/clients.conf",
        "tampered\n",
    );
    assert!(pushed(&app.backup().await));
    // The live file was not changed; the repository must hold it again, not the hand edit.
    let repo = git2::Repository::open(site.env.remote()).unwrap();
    let tree = repo.head().unwrap().peel_to_tree().unwrap();
    let blob = repo
        .find_blob(tree.get_path(Path::new("config/radius/clients.conf")).unwrap().id())
        .unwrap();
    // Stored with its secrets sealed: unsealed, it is the live file byte for byte.
    assert_eq!(
        app.engine
            .sealer()
            .unseal("config/radius/clients.conf", blob.content())
            .unwrap()
            .as_ref(),
        std::fs::read(site.env.site().join("config/radius/clients.conf")).unwrap()
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_remote_does_not_hang_the_backup_and_the_commits_are_recorded() {
    let mut site = Site::new("ed25519", false, "").await;
    // The server binary in its own process: libgit2's network timeouts are process-wide.
    site.env.vars.insert("GIT_CONNECT_TIMEOUT_SECONDS".into(), "3".into());
    site.env.vars.insert("GIT_TRANSFER_TIMEOUT_SECONDS".into(), "3".into());
    let vars: Vec<(String, String)> = site.env.lookup().into_iter().collect();
    let (mut child, addr) = crate::process::start(&vars, &["serve"]);
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_lazy();
    config_backup_tests::wait_serving(&channel).await;
    let mut client = config_backup_proto::v1::config_backup_client::ConfigBackupClient::new(channel);
    let first = crate::process::wait_first_backup(&mut client).await;
    assert_eq!(first.push_outcome, pb::PushOutcome::Pushed as i32, "{first:?}");

    // The remote now accepts connections and never answers.
    let port = site.sshd.port;
    site.sshd.down();
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().flatten() {
            held.push(s);
        }
    });
    let started = Instant::now();
    let report = client
        .backup(with_token(pb::BackupRequest::default(), Role::Admin))
        .await
        .unwrap()
        .into_inner()
        .report
        .unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(30), "the backup took {took:?}");
    assert!(!pushed(&report));
    assert_eq!(report.outcome, pb::RunOutcome::Partial as i32);
    assert_eq!(
        report.domains.iter().filter(|d| !d.commit_hash.is_empty()).count(),
        4,
        "commits made and recorded"
    );
    let st = client
        .status(with_token(pb::StatusRequest::default(), Role::Noc))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(st.unpushed_commits, 4);
    assert_eq!(st.last_run.unwrap().commits, 4);
    assert!(!st.last_push_error.is_empty());
    crate::process::sigterm(&child);
    assert!(crate::process::wait_exit(&mut child).success());
}
