//! Rollbacks against the real services, from Debian's packages: Unbound serving on a
//! loopback port from a private mount namespace (validated with unbound-checkconf at its
//! own paths, reloaded with unbound-control, verified with dig), nftables rules checked
//! with `nft -c` through an include, and Kea checked with `kea-dhcp4 -t` where its
//! interface exists (a bridge in a network namespace of the test's own).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use config_backup_proto::v1 as pb;
use config_backup_server::auth::Role;
use config_backup_tests::{Backend, TestApp, TestEnv, wait_for, with_token};
use futures::StreamExt;

const UNBOUND_CONF: &str = "config/unbound/unbound.conf";
const ZONES: &str = "config/unbound/unbound.conf.d/local-zones.conf";
const NAT: &str = "scripts/gateway/rgz-nat.nft";
const KEA: &str = "config/kea/kea-dhcp4.conf";

/// Fails saying what is missing: the test command installs the services' packages.
fn require(bin: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {bin}")])
        .stdout(Stdio::null())
        .status()
        .unwrap()
        .success();
    assert!(
        found,
        "{bin} is not installed: the test command installs Debian's unbound, nftables, kea-dhcp4-server, \
         freeradius, freeradius-utils and dnsutils"
    );
}

/// A port free on loopback for both UDP and TCP, now.
fn free_port() -> u16 {
    loop {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A daemon the test started; stopped when dropped.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A network namespace of the test's own; deleted when dropped.
struct NetNs(String);

impl NetNs {
    /// A namespace holding an up bridge `br-lan` (this kernel has no dummy links).
    fn with_bridge() -> NetNs {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let name = format!(
            "cb-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        for args in [
            vec!["netns", "add", &name],
            vec!["-n", &name, "link", "set", "lo", "up"],
            vec!["-n", &name, "link", "add", "br-lan", "type", "bridge"],
            vec!["-n", &name, "link", "set", "br-lan", "up"],
        ] {
            let out = Command::new("ip").args(&args).output().expect("ip (iproute2) runs");
            assert!(
                out.status.success(),
                "ip {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        NetNs(name)
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn dig(port: u16, name: &str) -> String {
    let out = Command::new("dig")
        .args([
            "+time=1",
            "+tries=1",
            "+short",
            "-p",
            &port.to_string(),
            "@127.0.0.1",
            name,
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn zones(gw: &str) -> String {
    format!(
        "server:\n    local-zone: \"rgz.local.\" static\n    local-data: \"gw.rgz.local. 300 IN A {gw}\"\n    \
         local-data: \"dns.rgz.local. 300 IN A 10.10.0.53\"\n"
    )
}

/// Unbound's configuration for a test: the sample site's, on a loopback port, no chroot,
/// no user switch, control over a unix socket without certificates.
fn unbound_conf(port: u16, control: &Path) -> String {
    format!(
        "server:\n    interface: 127.0.0.1\n    port: {port}\n    do-ip6: no\n    chroot: \"\"\n    username: \"\"\n    \
         pidfile: \"\"\n    use-syslog: no\n    directory: \"/etc/unbound\"\n    module-config: \"iterator\"\n    \
         access-control: 127.0.0.0/8 allow\n    include: \"/etc/unbound/unbound.conf.d/*.conf\"\n\
         remote-control:\n    control-enable: yes\n    control-interface: {}\n    control-use-cert: no\n",
        control.display()
    )
}

async fn rollback_to_end(app: &TestApp, commit: &str) -> pb::RollbackTask {
    let req = pb::RollbackRequest {
        commit: commit.into(),
        reason: "real service".into(),
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
    while let Some(msg) = tokio::time::timeout(Duration::from_secs(120), stream.next())
        .await
        .expect("the rollback ends within two minutes")
    {
        last = msg.unwrap().task;
    }
    last.unwrap()
}

fn commit_of(r: &pb::BackupReport, domain: &str) -> String {
    r.domains
        .iter()
        .find(|d| d.domain == domain)
        .unwrap()
        .commit_hash
        .clone()
}

fn stages(t: &pb::RollbackTask) -> Vec<(pb::RollbackState, bool)> {
    t.stages.iter().map(|s| (s.state(), s.ok)).collect()
}

async fn a_broken_include_is_refused_at_validating_and_a_good_rollback_reloads_a_live_unbound(backend: Backend) {
    for bin in ["unbound", "unbound-checkconf", "unbound-control", "dig", "unshare"] {
        require(bin);
    }
    let mut env = TestEnv::new(backend).await;
    let site = env.site();
    let port = free_port();
    let control = env.dir.path().join("unbound.ctl");
    std::fs::write(site.join(UNBOUND_CONF), unbound_conf(port, &control)).unwrap();
    std::fs::write(site.join(ZONES), zones("10.40.0.1")).unwrap();
    // unbound-control reads only where the control socket is.
    let control_conf = env.dir.path().join("unbound-control.conf");
    std::fs::write(
        &control_conf,
        format!(
            "remote-control:\n    control-enable: yes\n    control-interface: {}\n    control-use-cert: no\n",
            control.display()
        ),
    )
    .unwrap();
    let reload = format!("unbound-control -c {} reload", control_conf.display());
    env.vars.insert(
        "CONFIG_ROLLBACK_SERVICE_PATHS__dns".into(),
        "/etc/unbound=config/unbound".into(),
    );
    env.vars.insert(
        "CONFIG_ROLLBACK_VALIDATE__dns".into(),
        "unbound-checkconf /etc/unbound/unbound.conf".into(),
    );
    env.vars.insert("CONFIG_ROLLBACK_RELOAD__dns".into(), reload.clone());
    env.vars.insert(
        "CONFIG_ROLLBACK_VERIFY__dns".into(),
        format!("dig +time=2 +tries=1 +short -p {port} @127.0.0.1 gw.rgz.local | grep -qx 10.40.0.1"),
    );
    // Unbound reads /etc/unbound, which in its own mount namespace is the site's
    // config/unbound: the host's /etc/unbound is never touched.
    let unbound = Daemon(
        Command::new("unshare")
            .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
            .arg(format!(
                "mount --bind {} /etc/unbound && exec unbound -d -c /etc/unbound/unbound.conf",
                site.join("config/unbound").display()
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("unshare starts unbound"),
    );
    wait_for("unbound to answer gw.rgz.local", Duration::from_secs(20), || {
        std::future::ready(dig(port, "gw.rgz.local") == "10.40.0.1")
    })
    .await;

    let app = env.spawn().await;
    let good = commit_of(&app.backup().await, "dns");
    // An operator's edit, loaded.
    std::fs::write(site.join(ZONES), zones("10.40.0.99")).unwrap();
    let out = Command::new("sh").args(["-c", &reload]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    wait_for("unbound to load the edit", Duration::from_secs(10), || {
        std::future::ready(dig(port, "gw.rgz.local") == "10.40.0.99")
    })
    .await;
    app.backup().await;
    // A broken include is backed up (never loaded), then the live file is put right.
    std::fs::write(
        site.join(ZONES),
        "server:\n    local-data: \"gw.rgz.local. IN A\n    nonsense-option: 1\n",
    )
    .unwrap();
    let broken = commit_of(&app.backup().await, "dns");
    std::fs::write(site.join(ZONES), zones("10.40.0.99")).unwrap();
    app.backup().await;
    let live_before = std::fs::read(site.join(ZONES)).unwrap();

    // The broken target: the checker reads it where Unbound would, and says why.
    let end = rollback_to_end(&app, &broken).await;
    assert_eq!(end.state(), pb::RollbackState::Failed, "{end:?}");
    assert_eq!(stages(&end), [(pb::RollbackState::Validating, false)], "{end:?}");
    assert!(
        end.error.contains("unbound.conf.d/local-zones.conf") || end.error.contains("error"),
        "Unbound's own words are in the error: {}",
        end.error
    );
    assert!(
        end.stages[0].output.contains("local-zones.conf"),
        "{}",
        end.stages[0].output
    );
    assert_eq!(
        std::fs::read(site.join(ZONES)).unwrap(),
        live_before,
        "nothing was touched"
    );
    assert_eq!(dig(port, "gw.rgz.local"), "10.40.0.99");

    // The good target: validated at /etc/unbound, applied, reloaded, verified.
    let end = rollback_to_end(&app, &good).await;
    assert_eq!(end.state(), pb::RollbackState::Success, "{end:?}");
    assert_eq!(
        stages(&end),
        [
            (pb::RollbackState::Validating, true),
            (pb::RollbackState::Snapshot, true),
            (pb::RollbackState::Applying, true),
            (pb::RollbackState::Reloading, true),
            (pb::RollbackState::Verifying, true),
        ]
    );
    assert_eq!(
        dig(port, "gw.rgz.local"),
        "10.40.0.1",
        "the live Unbound serves the rolled-back zone"
    );
    app.stop().await;
    drop(unbound);
}

async fn nft_checks_the_gateway_rules_through_their_include_at_the_service_path(backend: Backend) {
    require("nft");
    let host_path_existed = Path::new("/etc/nftables.d").exists();
    let mut env = TestEnv::new(backend).await;
    let site = env.site();
    env.vars.insert(
        "CONFIG_ROLLBACK_SERVICE_PATHS__gateway".into(),
        "/etc/nftables.d=scripts/gateway".into(),
    );
    env.vars.insert(
        "CONFIG_ROLLBACK_VALIDATE__gateway".into(),
        "nft -c -f /etc/nftables.d/rgz-main.nft".into(),
    );
    let app = env.spawn().await;
    let good = commit_of(&app.backup().await, "gateway");
    let nat = std::fs::read_to_string(site.join(NAT)).unwrap();
    std::fs::write(
        site.join(NAT),
        format!("{nat}\ntable ip nat {{ chain bogus {{ jump nowhere-at-all }} }}\n"),
    )
    .unwrap();
    let broken = commit_of(&app.backup().await, "gateway");
    std::fs::write(site.join(NAT), &nat).unwrap();
    app.backup().await;

    let dry = |commit: String| pb::RollbackRequest {
        commit,
        dry_run: true,
        ..Default::default()
    };
    let plan = |r: pb::RollbackResponse| r.plan.unwrap();
    let ok = plan(
        app.client()
            .rollback(with_token(dry(good), Role::Admin))
            .await
            .unwrap()
            .into_inner(),
    );
    assert!(
        ok.validation_ok,
        "the sample site's rules pass nft -c: {}",
        ok.validation_output
    );
    let bad = plan(
        app.client()
            .rollback(with_token(dry(broken), Role::Admin))
            .await
            .unwrap()
            .into_inner(),
    );
    assert!(!bad.validation_ok);
    assert!(
        bad.validation_output.contains("nowhere-at-all") && bad.validation_output.contains("rgz-nat.nft"),
        "nft's own words name the included file: {}",
        bad.validation_output
    );
    assert_eq!(
        Path::new("/etc/nftables.d").exists(),
        host_path_existed,
        "the host's own service path is never touched"
    );
    app.stop().await;
}

async fn kea_checks_a_config_whose_interface_exists_in_a_namespace(backend: Backend) {
    require("kea-dhcp4");
    require("ip");
    let ns = NetNs::with_bridge();
    let mut env = TestEnv::new(backend).await;
    let site = env.site();
    env.vars.insert(
        "CONFIG_ROLLBACK_VALIDATE__kea".into(),
        format!("ip netns exec {} kea-dhcp4 -t {{dir}}/{KEA}", ns.0),
    );
    let app = env.spawn().await;
    let good = commit_of(&app.backup().await, "kea");
    let conf = std::fs::read_to_string(site.join(KEA)).unwrap();
    std::fs::write(site.join(KEA), conf.replace("\"br-lan\"", "\"br-missing\"")).unwrap();
    let broken = commit_of(&app.backup().await, "kea");
    let dry = |commit: String| pb::RollbackRequest {
        commit,
        dry_run: true,
        ..Default::default()
    };
    let ok = app
        .client()
        .rollback(with_token(dry(good), Role::Admin))
        .await
        .unwrap()
        .into_inner();
    let ok = ok.plan.unwrap();
    assert!(
        ok.validation_ok,
        "the sample site's Kea config passes kea-dhcp4 -t: {}",
        ok.validation_output
    );
    let bad = app
        .client()
        .rollback(with_token(dry(broken), Role::Admin))
        .await
        .unwrap()
        .into_inner();
    let bad = bad.plan.unwrap();
    assert!(!bad.validation_ok);
    assert!(
        bad.validation_output.contains("br-missing"),
        "{}",
        bad.validation_output
    );
    app.stop().await;
}

/// The sample site's Unbound configuration, as shipped, passes unbound-checkconf where
/// Unbound reads it (the README's validate command as written).
async fn the_sample_sites_unbound_config_passes_unbound_checkconf_at_its_service_path(backend: Backend) {
    require("unbound-checkconf");
    let mut env = TestEnv::new(backend).await;
    env.vars.insert(
        "CONFIG_ROLLBACK_SERVICE_PATHS__dns".into(),
        "/etc/unbound=config/unbound".into(),
    );
    env.vars.insert(
        "CONFIG_ROLLBACK_VALIDATE__dns".into(),
        "unbound-checkconf /etc/unbound/unbound.conf".into(),
    );
    let app = env.spawn().await;
    let dns = commit_of(&app.backup().await, "dns");
    let req = pb::RollbackRequest {
        commit: dns,
        dry_run: true,
        ..Default::default()
    };
    let plan = app
        .client()
        .rollback(with_token(req, Role::Admin))
        .await
        .unwrap()
        .into_inner()
        .plan
        .unwrap();
    assert!(plan.validation_ok, "{}", plan.validation_output);
    assert!(
        plan.validation_output
            .contains("no errors in /etc/unbound/unbound.conf"),
        "{}",
        plan.validation_output
    );
    app.stop().await;
}

/// Three consecutive ports free on loopback now (auth, accounting, inner tunnel).
fn free_ports3() -> u16 {
    loop {
        let p = free_port();
        if p < 65000
            && (1..3).all(|i| {
                std::net::UdpSocket::bind(("127.0.0.1", p + i)).is_ok()
                    && std::net::TcpListener::bind(("127.0.0.1", p + i)).is_ok()
            })
        {
            return p;
        }
    }
}

/// Debian's raddb listening on loopback ports of the test's own: the IPv4 auth and
/// accounting listeners on 127.0.0.1 (`port`, `port + 1`), the IPv6 ones on 127.0.0.2,
/// the inner tunnel on `port + 2`.
fn radius_on_loopback(raddb: &Path, port: u16) {
    let default = raddb.join("sites-available/default");
    let mut nth = 0;
    let text: Vec<String> = std::fs::read_to_string(&default)
        .unwrap()
        .lines()
        .map(|l| {
            let t = l.trim_start();
            if t.starts_with("ipaddr = *") {
                "\tipaddr = 127.0.0.1".to_owned()
            } else if t.starts_with("ipv6addr = ::") {
                "\tipaddr = 127.0.0.2".to_owned()
            } else if t.starts_with("port = 0") {
                nth += 1;
                format!("\tport = {}", port + if nth % 2 == 1 { 0 } else { 1 })
            } else {
                l.to_owned()
            }
        })
        .collect();
    assert_eq!(nth, 4, "Debian's default site has four listeners");
    std::fs::write(&default, text.join("\n") + "\n").unwrap();
    let inner = raddb.join("sites-available/inner-tunnel");
    let text = std::fs::read_to_string(&inner).unwrap();
    assert!(text.contains("port = 18120"));
    std::fs::write(&inner, text.replace("port = 18120", &format!("port = {}", port + 2))).unwrap();
    let users = raddb.join("mods-config/files/authorize");
    let text = std::fs::read_to_string(&users).unwrap();
    std::fs::write(&users, format!("bob Cleartext-Password := \"hello\"\n\n{text}")).unwrap();
}

/// Whether the server accepts bob with `secret` (radclient: one try of one second, where
/// radtest waits 3 × 3 s for a server that does not answer).
fn radius_accepts(port: u16, secret: &str) -> bool {
    use std::io::Write;
    let mut c = Command::new("radclient")
        .args(["-t", "1", "-r", "1", &format!("127.0.0.1:{port}"), "auth", secret])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    c.stdin
        .take()
        .unwrap()
        .write_all(b"User-Name = bob, User-Password = hello, Message-Authenticator = 0x00\n")
        .unwrap();
    String::from_utf8_lossy(&c.wait_with_output().unwrap().stdout).contains("Access-Accept")
}

fn radtest(port: u16, secret: &str) -> String {
    let out = Command::new("radtest")
        .args(["-t", "pap", "bob", "hello", &format!("127.0.0.1:{port}"), "0", secret])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Debian's raddb, backed up whole: `freeradius -XC` checks the restored tree where the
/// server reads it (its key readable by freerad only because the owner was restored),
/// and a live FreeRADIUS restarted by the reload command accepts radtest with the
/// client secret of the target again.
async fn freeradius_checks_a_restored_raddb_and_radtest_passes_after_a_rollback_of_clients_conf(backend: Backend) {
    for bin in ["freeradius", "radtest", "setsid", "unshare"] {
        require(bin);
    }
    let mut env = TestEnv::new(backend).await;
    let site = env.site();
    let raddb = site.join("config/radius");
    let port = free_ports3();
    radius_on_loopback(&raddb, port);
    let pidfile = env.dir.path().join("freeradius.pid");
    let start = env.dir.path().join("radius-restart.sh");
    std::fs::write(
        &start,
        format!(
            "#!/bin/sh
# Restarts FreeRADIUS (clients are read at start only) in its mount namespace.
             if [ -s {pid} ] && kill $(cat {pid}) 2>/dev/null; then
                 tail --pid=$(cat {pid}) -f /dev/null
             fi
             setsid unshare --mount --propagation private -- sh -c              'mount --bind {raddb} /etc/freeradius/3.0 && exec freeradius -f -d /etc/freeradius/3.0'              >/dev/null 2>&1 </dev/null &
             echo $! > {pid}
",
            pid = pidfile.display(),
            raddb = raddb.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&start, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    env.vars
        .insert("CONFIG_BACKUP_PATHS__radius".into(), "config/radius/**".into());
    env.vars.insert(
        "CONFIG_ROLLBACK_SERVICE_PATHS__radius".into(),
        "/etc/freeradius/3.0=config/radius".into(),
    );
    env.vars.insert(
        "CONFIG_ROLLBACK_VALIDATE__radius".into(),
        "freeradius -XC -d /etc/freeradius/3.0".into(),
    );
    env.vars
        .insert("CONFIG_ROLLBACK_RELOAD__radius".into(), start.display().to_string());
    // radclient asks again every second, up to 20 times, until the restarted server answers.
    env.vars.insert(
        "CONFIG_ROLLBACK_VERIFY__radius".into(),
        format!(
            "echo 'User-Name = bob, User-Password = hello, Message-Authenticator = 0x00' \
             | radclient -t 1 -r 20 127.0.0.1:{port} auth sample-localhost-secret | grep -q Access-Accept"
        ),
    );
    struct Stop(PathBuf);
    impl Drop for Stop {
        fn drop(&mut self) {
            if let Ok(pid) = std::fs::read_to_string(&self.0) {
                let _ = Command::new("kill").arg(pid.trim()).status();
            }
        }
    }
    let _stop = Stop(pidfile.clone());
    let out = Command::new(&start).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    wait_for("freeradius to accept bob", Duration::from_secs(20), || {
        std::future::ready(radius_accepts(port, "sample-localhost-secret"))
    })
    .await;

    let app = env.spawn().await;
    let good = commit_of(&app.backup().await, "radius");
    // The localhost client's secret rotated by hand, and the server restarted: radtest
    // with the NOC's secret no longer gets in.
    let clients = std::fs::read_to_string(raddb.join("clients.conf")).unwrap();
    std::fs::write(
        raddb.join("clients.conf"),
        clients.replace("sample-localhost-secret", "rotated-by-hand-secret"),
    )
    .unwrap();
    let out = Command::new(&start).output().unwrap();
    assert!(out.status.success());
    wait_for(
        "freeradius to accept the rotated secret",
        Duration::from_secs(20),
        || std::future::ready(radius_accepts(port, "rotated-by-hand-secret")),
    )
    .await;
    assert!(
        !radius_accepts(port, "sample-localhost-secret"),
        "the old secret gets no answer"
    );
    app.backup().await;

    let end = rollback_to_end(&app, &good).await;
    assert_eq!(end.state(), pb::RollbackState::Success, "{end:?}");
    assert_eq!(
        stages(&end),
        [
            (pb::RollbackState::Validating, true),
            (pb::RollbackState::Snapshot, true),
            (pb::RollbackState::Applying, true),
            (pb::RollbackState::Reloading, true),
            (pb::RollbackState::Verifying, true),
        ]
    );
    assert!(
        end.stages[0].output.contains("Configuration appears to be OK"),
        "{}",
        end.stages[0].output
    );
    let answer = radtest(port, "sample-localhost-secret");
    assert!(answer.contains("Access-Accept"), "radtest after the rollback: {answer}");
    // No secret reached the task's record.
    for s in &end.stages {
        assert!(!s.output.contains("sample-localhost-secret") && !s.output.contains("rotated-by-hand-secret"));
    }
    app.stop().await;
}

/// Without CAP_SYS_ADMIN (dropped from the bounding set by setpriv) a private mount
/// namespace cannot be made: a server configured with service paths stops at start,
/// naming the setting, instead of failing every rollback of the domain later.
async fn a_server_without_the_mount_privilege_stops_at_start_naming_the_setting(backend: Backend) {
    require("setpriv");
    let mut env = TestEnv::new(backend).await;
    env.vars.insert(
        "CONFIG_ROLLBACK_SERVICE_PATHS__dns".into(),
        "/etc/unbound=config/unbound".into(),
    );
    let vars: Vec<(String, String)> = env.lookup().into_iter().collect();
    let out = crate::process::command(
        &["setpriv", "--bounding-set=-sys_admin", "--inh-caps=-sys_admin"],
        &vars,
        &["serve"],
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "the server started without the privilege: {stderr}"
    );
    assert!(
        stderr.contains("CONFIG_ROLLBACK_SERVICE_PATHS__dns") && stderr.contains("CAP_SYS_ADMIN"),
        "{stderr}"
    );
}

on_both_backends!(
    the_sample_sites_unbound_config_passes_unbound_checkconf_at_its_service_path,
    freeradius_checks_a_restored_raddb_and_radtest_passes_after_a_rollback_of_clients_conf,
    a_server_without_the_mount_privilege_stops_at_start_naming_the_setting,
    a_broken_include_is_refused_at_validating_and_a_good_rollback_reloads_a_live_unbound,
    nft_checks_the_gateway_rules_through_their_include_at_the_service_path,
    kea_checks_a_config_whose_interface_exists_in_a_namespace,
);
