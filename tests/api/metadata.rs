//! Owners, modes and symlinks: backed up, a change of their own, a security warning when
//! a file holding secrets is opened up, and restored exactly by a rollback.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use config_backup_proto::v1 as pb;
use config_backup_server::auth::Role;
use config_backup_tests::{Backend, TestApp, TestEnv, stored, with_token};
use futures::StreamExt;

const KEY: &str = "config/radius/certs/server.key";
const CLIENTS: &str = "config/radius/clients.conf";
const EAP_LINK: &str = "config/radius/mods-enabled/eap";
const EAP: &str = "config/radius/mods-available/eap";
const OUTSIDE_LINK: &str = "config/radius/certs/ca.pem";

/// Ids no one on the machine is likely to hold: the server must set them itself.
const FREERAD: (u32, u32) = (4242, 4343);

/// What `lstat` says of a path: type, full mode, owner, group and a link's target.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Lstat {
    symlink: bool,
    mode: u32,
    uid: u32,
    gid: u32,
    target: Option<String>,
    content: Option<Vec<u8>>,
}

fn lstat(path: &Path) -> Lstat {
    let m = std::fs::symlink_metadata(path).unwrap();
    let symlink = m.file_type().is_symlink();
    Lstat {
        symlink,
        mode: m.mode() & 0o7777,
        uid: m.uid(),
        gid: m.gid(),
        target: symlink.then(|| std::fs::read_link(path).unwrap().display().to_string()),
        content: (!symlink).then(|| std::fs::read(path).unwrap()),
    }
}

fn chown(path: &Path, (uid, gid): (u32, u32)) {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).unwrap();
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The sample site's radius domain as Debian lays it out: a private key 0600 owned by
/// freerad, clients.conf 0640 root:freerad, a mods-enabled symlink into mods-available,
/// and a link that leads out of the source root.
fn radius_layout(env: &mut TestEnv) {
    let site = env.site();
    std::fs::write(
        site.join(KEY),
        "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIFakeKeyForTestsOnlyNotARealOne000000000\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    chown(&site.join(KEY), FREERAD);
    chmod(&site.join(KEY), 0o600);
    chown(&site.join(CLIENTS), (0, FREERAD.1));
    chmod(&site.join(CLIENTS), 0o640);
    // The sample site's raddb is Debian's: mods-enabled/eap is a link into mods-available.
    assert_eq!(
        std::fs::read_link(site.join(EAP_LINK)).unwrap(),
        Path::new("../mods-available/eap")
    );
    chown(&site.join(EAP), (0, 0));
    chmod(&site.join(EAP), 0o644);
    let _ = std::fs::remove_file(site.join(OUTSIDE_LINK));
    std::os::unix::fs::symlink("/etc/ssl/certs/ca-certificates.crt", site.join(OUTSIDE_LINK)).unwrap();
    // A setgid directory-style mode on a script, to see every bit kept.
    chmod(&site.join("scripts/gateway/watch_config.sh"), 0o2750);
    env.vars.insert(
        "CONFIG_BACKUP_PATHS__radius".into(),
        "config/radius/*.conf,config/radius/dictionary,config/radius/certs/*,config/radius/mods-available/*,config/radius/mods-enabled/*".into(),
    );
}

fn domain<'r>(r: &'r pb::BackupReport, name: &str) -> &'r pb::DomainReport {
    r.domains.iter().find(|d| d.domain == name).unwrap()
}

async fn rollback_to_end(app: &TestApp, commit: &str, domain: &str) -> pb::RollbackTask {
    let req = pb::RollbackRequest {
        commit: commit.into(),
        domain: domain.into(),
        reason: "restore owners and modes".into(),
        ..Default::default()
    };
    let task = app
        .client()
        .rollback(with_token(req, Role::Admin))
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    let req = with_token(
        pb::RollbackStatusRequest {
            task_id: task.task_id.clone(),
        },
        Role::Admin,
    );
    let mut stream = app.client().rollback_status(req).await.unwrap().into_inner();
    let mut last = None;
    while let Some(msg) = tokio::time::timeout(std::time::Duration::from_secs(60), stream.next())
        .await
        .expect("the rollback ends within a minute")
    {
        last = msg.unwrap().task;
    }
    last.unwrap()
}

async fn a_chmod_of_a_key_is_a_change_with_a_security_warning_and_a_rollback_restores_lstat_exactly(backend: Backend) {
    let mut env = TestEnv::new(backend).await;
    radius_layout(&mut env);
    let site = env.site();
    let app = env.spawn().await;
    let first = app.backup().await;
    let radius_first = domain(&first, "radius").commit_hash.clone();
    assert_eq!(
        domain(&first, "radius").security_warnings,
        Vec::<String>::new(),
        "the layout is the norm"
    );
    let gateway_first = domain(&first, "gateway").commit_hash.clone();
    let paths = [
        KEY,
        CLIENTS,
        EAP_LINK,
        EAP,
        OUTSIDE_LINK,
        "scripts/gateway/watch_config.sh",
    ];
    let before: Vec<Lstat> = paths.iter().map(|p| lstat(&site.join(p))).collect();

    // Links are links in git, with their target text; metadata is readable with git show.
    let link = stored(&env.remote(), "main", EAP_LINK);
    assert_eq!(link, b"../mods-available/eap");
    let outside = stored(&env.remote(), "main", OUTSIDE_LINK);
    assert_eq!(
        outside, b"/etc/ssl/certs/ca-certificates.crt",
        "a link out of the root is kept, not followed"
    );
    let meta = String::from_utf8(stored(&env.remote(), "main", ".config-backup/radius.meta")).unwrap();
    assert!(
        meta.contains(&format!("0600 file 4242:4343 4242:4343 {KEY}\n")),
        "{meta}"
    );
    assert!(
        meta.contains(&format!("0777 link root:root 0:0 {EAP_LINK}\n")),
        "{meta}"
    );
    let manifest = String::from_utf8(stored(&env.remote(), "main", ".config-backup/radius.sha256")).unwrap();
    assert!(
        !manifest.contains(EAP_LINK),
        "sha256sum -c must not read through links: {manifest}"
    );
    let gw_meta = String::from_utf8(stored(&env.remote(), "main", ".config-backup/gateway.meta")).unwrap();
    assert!(
        gw_meta.contains("2750 file root:root 0:0 scripts/gateway/watch_config.sh"),
        "{gw_meta}"
    );

    // A chmod alone is a change, with a security warning; so is an owner change.
    chmod(&site.join(KEY), 0o644);
    chown(&site.join(CLIENTS), (0, 0));
    let second = app.backup().await;
    let radius = domain(&second, "radius");
    let key = radius
        .changes
        .iter()
        .find(|c| c.path == KEY)
        .expect("the chmod is a change");
    assert_eq!(key.change_type, "modified");
    assert_eq!(key.old_sha256, key.new_sha256, "the content did not change");
    assert_eq!(key.metadata_changes, ["mode 0600 → 0644"]);
    assert_eq!(key.new_metadata.as_ref().unwrap().mode, "0644");
    assert_eq!(key.old_metadata.as_ref().unwrap().uid, FREERAD.0);
    let clients = radius.changes.iter().find(|c| c.path == CLIENTS).unwrap();
    assert_eq!(clients.metadata_changes, ["group 4343 → root"]);
    // Both hold secrets: the key opened to everyone, clients.conf (RADIUS shared secrets)
    // readable by another group.
    assert_eq!(radius.security_warnings.len(), 2, "{:?}", radius.security_warnings);
    assert!(
        radius.security_warnings[0].contains(KEY) && radius.security_warnings[0].contains("mode 0600 → 0644"),
        "{:?}",
        radius.security_warnings
    );
    assert!(
        radius.security_warnings[1].contains(CLIENTS) && radius.security_warnings[1].contains("group 4343 → root"),
        "{:?}",
        radius.security_warnings
    );
    assert!(
        radius.commit_message.contains("mode 0600 → 0644"),
        "{}",
        radius.commit_message
    );
    assert!(
        radius.commit_message.contains("group 4343 → root"),
        "{}",
        radius.commit_message
    );
    assert_eq!(domain(&second, "dns").changes.len(), 0);
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("config_backup_security_warnings_total{domain=\"radius\"} 2\n"),
        "{metrics}"
    );

    // History serves the metadata from the audit trail, and names the change.
    let req = pb::HistoryRequest {
        domain: "radius".into(),
        path: KEY.into(),
        ..Default::default()
    };
    let history = app
        .client()
        .history(with_token(req, Role::Noc))
        .await
        .unwrap()
        .into_inner();
    let newest = &history.entries[0];
    assert_eq!(newest.commit_hash, radius.commit_hash);
    assert_eq!(newest.change_type, "modified");
    assert_eq!(newest.metadata_changes, ["mode 0600 → 0644"]);
    let m = newest.metadata.as_ref().unwrap();
    assert_eq!(
        (m.mode.as_str(), m.r#type.as_str(), m.uid, m.gid),
        ("0644", "file", FREERAD.0, FREERAD.1)
    );
    assert_eq!(newest.previous_metadata.as_ref().unwrap().mode, "0600");

    // Diff names the change of mode alone.
    let req = pb::DiffRequest {
        commit1: radius_first.clone(),
        commit2: radius.commit_hash.clone(),
        ..Default::default()
    };
    let diff = app
        .client()
        .diff(with_token(req, Role::Noc))
        .await
        .unwrap()
        .into_inner();
    let key_diff = diff
        .files
        .iter()
        .find(|f| f.path == KEY)
        .expect("a chmod shows in Diff");
    assert_eq!(key_diff.metadata_changes, ["mode 0600 → 0644"]);
    assert!(
        key_diff.patch.is_empty() && key_diff.change_type == "modified",
        "{key_diff:?}"
    );

    // Break the layout further: the link replaced by a copy, the script's bits lost.
    std::fs::remove_file(site.join(EAP_LINK)).unwrap();
    std::fs::copy(site.join(EAP), site.join(EAP_LINK)).unwrap();
    chmod(&site.join("scripts/gateway/watch_config.sh"), 0o755);
    chown(&site.join(KEY), (0, 0));
    let third = app.backup().await;
    let eap = domain(&third, "radius")
        .changes
        .iter()
        .find(|c| c.path == EAP_LINK)
        .unwrap();
    assert_eq!(eap.metadata_changes, ["link → file"]);

    // A rollback puts back every type, mode, owner, group and link target.
    for (commit, d) in [(&radius_first, "radius"), (&gateway_first, "gateway")] {
        let end = rollback_to_end(&app, commit, d).await;
        assert_eq!(end.state(), pb::RollbackState::Success, "{end:?}");
    }
    let after: Vec<Lstat> = paths.iter().map(|p| lstat(&site.join(p))).collect();
    assert_eq!(after, before);
    app.stop().await;
}

async fn a_dry_run_lists_the_metadata_changes(backend: Backend) {
    let mut env = TestEnv::new(backend).await;
    radius_layout(&mut env);
    let site = env.site();
    let app = env.spawn().await;
    let first = app.backup().await;
    chmod(&site.join(KEY), 0o644);
    app.backup().await;
    let req = pb::RollbackRequest {
        commit: domain(&first, "radius").commit_hash.clone(),
        dry_run: true,
        ..Default::default()
    };
    let resp = app
        .client()
        .rollback(with_token(req, Role::Admin))
        .await
        .unwrap()
        .into_inner();
    let plan = resp.plan.unwrap();
    let key = plan.files.iter().find(|f| f.path == KEY).unwrap();
    assert_eq!(key.action, "write");
    assert_eq!(key.metadata_changes, ["mode 0644 → 0600"]);
    assert_eq!(lstat(&site.join(KEY)).mode, 0o644, "a dry run touches nothing");
    app.stop().await;
}

/// Root without CAP_CHOWN (dropped by setpriv) cannot give a file back to freerad: the
/// rollback is refused before anything is touched, naming the files.
async fn a_server_that_cannot_set_owners_refuses_the_rollback_before_touching_anything(backend: Backend) {
    let mut env = TestEnv::new(backend).await;
    radius_layout(&mut env);
    let site = env.site();
    let vars: Vec<(String, String)> = env.lookup().into_iter().collect();
    let (mut child, addr, _) = crate::process::start_wrapped(
        &["setpriv", "--bounding-set=-chown", "--inh-caps=-chown"],
        &vars,
        &["serve"],
    );
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_lazy();
    let mut client = pb::config_backup_client::ConfigBackupClient::new(channel);
    let first = crate::process::wait_first_backup(&mut client).await;
    assert_eq!(first.outcome(), pb::RunOutcome::Success, "{first:?}");
    let history = client
        .history(with_token(
            pb::HistoryRequest {
                domain: "radius".into(),
                path: KEY.into(),
                ..Default::default()
            },
            Role::Noc,
        ))
        .await
        .unwrap()
        .into_inner();
    let target = history.entries[0].commit_hash.clone();
    chown(&site.join(KEY), (0, 0));
    chmod(&site.join(KEY), 0o644);
    let before = lstat(&site.join(KEY));
    let req = pb::RollbackRequest {
        commit: target,
        reason: "owners".into(),
        ..Default::default()
    };
    let err = client.rollback(with_token(req, Role::Admin)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
    assert!(
        err.message().contains(KEY) && err.message().contains("CAP_CHOWN"),
        "{}",
        err.message()
    );
    assert_eq!(lstat(&site.join(KEY)), before, "nothing was touched");
    crate::process::sigterm(&child);
    crate::process::wait_exit(&mut child);
}

/// A small deterministic generator (xorshift64*): the cases are the same on every run,
/// and a failure names its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Random modes (setuid, setgid and sticky included), owners, groups and symlinks (inside
/// the tree, outside it, dangling): backed up, then every one mutated (mode, owner, a link
/// retargeted, a link replaced by a file, a file replaced by a link, content), then rolled
/// back: `lstat` of every path is as it was: type, mode, uid, gid, link target, content.
async fn random_modes_owners_and_links_roll_back_to_identical_lstat(backend: Backend) {
    for seed in [0x9e37_79b9_7f4a_7c15_u64, 0xdead_beef_cafe_f00d, 0x0123_4567_89ab_cdef] {
        let mut rng = Rng(seed);
        let mut env = TestEnv::new(backend).await;
        let site = env.site();
        let dir = site.join("config/kea/extra");
        std::fs::create_dir_all(&dir).unwrap();
        let mut paths = Vec::new();
        for i in 0..8 {
            let rel = format!("config/kea/extra/f{i}");
            let abs = site.join(&rel);
            match rng.below(4) {
                0 => {
                    let target = ["f0", "../kea-dhcp4.conf", "/etc/hostname", "no-such-file"][rng.below(4) as usize];
                    std::os::unix::fs::symlink(target, &abs).unwrap();
                    std::os::unix::fs::lchown(&abs, Some(rng.below(3) as u32 * 1000), Some(rng.below(3) as u32 * 1000))
                        .unwrap();
                }
                _ => {
                    std::fs::write(&abs, format!("option-{i} = {}\n", rng.next())).unwrap();
                    chown(&abs, (rng.below(5000) as u32, rng.below(5000) as u32));
                    chmod(&abs, rng.below(0o10000) as u32);
                }
            }
            paths.push(rel);
        }
        env.vars.insert(
            "CONFIG_BACKUP_PATHS__kea".into(),
            "config/kea/kea-dhcp4.conf,config/kea/extra/*".into(),
        );
        let app = env.spawn().await;
        let first = app.backup().await;
        let kea = domain(&first, "kea").commit_hash.clone();
        let before: Vec<Lstat> = paths.iter().map(|p| lstat(&site.join(p))).collect();

        for p in &paths {
            let abs = site.join(p);
            let was_link = std::fs::symlink_metadata(&abs).unwrap().file_type().is_symlink();
            match (was_link, rng.below(3)) {
                (true, 0) => {
                    std::fs::remove_file(&abs).unwrap();
                    std::fs::write(&abs, "now a file\n").unwrap();
                }
                (true, _) => {
                    std::fs::remove_file(&abs).unwrap();
                    std::os::unix::fs::symlink("elsewhere", &abs).unwrap();
                    std::os::unix::fs::lchown(&abs, Some(7), Some(7)).unwrap();
                }
                (false, 0) => {
                    std::fs::remove_file(&abs).unwrap();
                    std::os::unix::fs::symlink("f1", &abs).unwrap();
                }
                (false, 1) => {
                    chmod(&abs, 0o666);
                    chown(&abs, (0, 0));
                }
                (false, _) => std::fs::write(&abs, "edited\n").unwrap(),
            }
        }
        let second = app.backup().await;
        assert_eq!(
            domain(&second, "kea").changes.len(),
            paths.len(),
            "seed {seed:#x}: every mutation is a change"
        );
        let end = rollback_to_end(&app, &kea, "kea").await;
        assert_eq!(end.state(), pb::RollbackState::Success, "seed {seed:#x}: {end:?}");
        let after: Vec<Lstat> = paths.iter().map(|p| lstat(&site.join(p))).collect();
        for ((p, b), a) in paths.iter().zip(&before).zip(&after) {
            assert_eq!(a, b, "seed {seed:#x}: {p}");
        }
        app.stop().await;
    }
}

on_both_backends!(
    random_modes_owners_and_links_roll_back_to_identical_lstat,
    a_server_that_cannot_set_owners_refuses_the_rollback_before_touching_anything,
    a_chmod_of_a_key_is_a_change_with_a_security_warning_and_a_rollback_restores_lstat_exactly,
    a_dry_run_lists_the_metadata_changes,
);
