//! What the workloads drive: an engine in-process over a site directory, and the server
//! as its own process (this binary with `--serve`), with tokens and requests for it.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use config_backup_core::engine::{BackupParams, RunTimings};
use config_backup_core::store::Trigger;
use config_backup_core::{Actor, Engine, Settings};
use config_backup_proto::v1::config_backup_client::ConfigBackupClient;
use config_backup_server::auth::{self, Role, Secret};

use crate::measure::{median, ms};
use crate::results::Phases;
use crate::site;

const SECRET: &str = "bench-secret-0123456789abcdef0123456789";

/// The environment of a service over `dir/site`.
pub(crate) fn vars(dir: &Path) -> BTreeMap<String, String> {
    let mut v = BTreeMap::new();
    v.insert("CONFIG_BACKUP_DATA_DIR".into(), dir.join("data").display().to_string());
    v.insert(
        "CONFIG_BACKUP_SOURCE_ROOT".into(),
        dir.join("site").display().to_string(),
    );
    v.insert("GIT_BACKUP_REPO".into(), dir.join("remote.git").display().to_string());
    v.insert("GIT_WORKING_DIR".into(), dir.join("wc").display().to_string());
    v.insert(
        "DATABASE_URL".into(),
        format!("sqlite://{}?mode=rwc", dir.join("audit.db").display()),
    );
    v.insert("AUTH_JWT_SECRET".into(), SECRET.into());
    for (d, g) in site::GLOBS {
        v.insert(format!("CONFIG_BACKUP_PATHS__{d}"), g.into());
    }
    v
}

pub(crate) async fn engine(dir: &Path) -> anyhow::Result<Engine> {
    engine_with(dir, &[]).await
}

pub(crate) async fn engine_with(dir: &Path, extra: &[(&str, &str)]) -> anyhow::Result<Engine> {
    engine_sealing(dir, extra, true).await
}

/// An engine; with `seal` false, one with no secret rules at all (it seals nothing), to
/// measure what sealing costs.
pub(crate) async fn engine_sealing(dir: &Path, extra: &[(&str, &str)], seal: bool) -> anyhow::Result<Engine> {
    let mut v = vars(dir);
    v.extend(extra.iter().map(|(k, x)| (k.to_string(), x.to_string())));
    let mut settings = Settings::from_env(&v.into_iter().collect())?;
    if !seal {
        for rules in settings.secrets.rules.values_mut() {
            *rules = config_backup_core::secrets::Rules {
                builtin: config_backup_core::secrets::detect::Builtin::None,
                custom: Vec::new(),
                text: "none".into(),
            };
        }
    }
    let store = config_backup_core::store::connect(&settings.database_url, &settings.site).await?;
    let e = Engine::new(settings, store)?;
    e.prepare().await?;
    Ok(e)
}

pub(crate) async fn backup(e: &Engine) -> anyhow::Result<Duration> {
    Ok(backup_timed(e).await?.0)
}

/// A backup, with the engine's account of where its time went.
pub(crate) async fn backup_timed(e: &Engine) -> anyhow::Result<(Duration, RunTimings)> {
    let t = Instant::now();
    let r = e
        .backup(BackupParams::new(Trigger::Manual, Actor::User("bench".into()), vec![]))
        .await?;
    anyhow::ensure!(
        r.run.outcome == config_backup_core::store::RunOutcome::Success,
        "backup: {:?}",
        r.run.error
    );
    let took = t.elapsed();
    // The repack that may follow a run (on its own thread, after the run is recorded) is
    // not part of it; nothing measured next shares the machine with it.
    e.maintenance_idle().await;
    Ok((took, r.timings))
}

/// The median of each phase over several runs, in ms, and the audit write's share.
pub(crate) fn phases(runs: &[(Duration, RunTimings)]) -> Phases {
    let m = |f: &dyn Fn(&RunTimings) -> Duration| ms(median(runs.iter().map(|(_, t)| f(t)).collect()));
    let total = median(runs.iter().map(|(d, _)| *d).collect());
    let audit = median(runs.iter().map(|(_, t)| t.audit).collect());
    Phases {
        start_ms: m(&|t| t.start),
        sync_ms: m(&|t| t.sync),
        domains_ms: m(&|t| t.domains),
        push_ms: m(&|t| t.push),
        audit_ms: m(&|t| t.audit),
        finish_ms: m(&|t| t.finish),
        total_ms: ms(total),
        audit_share: audit.as_secs_f64() / total.as_secs_f64(),
    }
}

/// The server as its own process (this binary with --serve), for gRPC/REST timings and RSS.
pub(crate) struct Server {
    pub(crate) child: std::process::Child,
    pub(crate) grpc: String,
    pub(crate) http: String,
}

impl Server {
    pub(crate) async fn start(dir: &Path) -> Server {
        Server::start_with(dir, &[]).await
    }

    pub(crate) async fn start_with(dir: &Path, extra: &[(&str, &str)]) -> Server {
        let port = || {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        };
        let (g, h, m) = (port(), port(), port());
        let child = Command::new(std::env::current_exe().unwrap())
            .arg("--serve")
            .envs(vars(dir))
            .envs(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())))
            .env("GRPC_LISTEN_ADDR", format!("127.0.0.1:{g}"))
            .env("HTTP_LISTEN_ADDR", format!("127.0.0.1:{h}"))
            .env("METRICS_LISTEN_ADDR", format!("127.0.0.1:{m}"))
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let s = Server {
            child,
            grpc: format!("http://127.0.0.1:{g}"),
            http: format!("http://127.0.0.1:{h}"),
        };
        for _ in 0..600 {
            if reqwest::get(format!("{}/healthz", s.http))
                .await
                .map(|r| r.status().is_success())
                .unwrap_or(false)
            {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the bench server did not start");
    }

    pub(crate) async fn client(&self) -> ConfigBackupClient<tonic::transport::Channel> {
        ConfigBackupClient::connect(self.grpc.clone())
            .await
            .unwrap()
            .max_decoding_message_size(256 << 20)
    }

    pub(crate) fn peak_rss_mb(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map(|kb| kb / 1024.0)
            .unwrap_or(f64::NAN)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn token(role: Role) -> String {
    auth::mint(
        &Secret::from_bytes(SECRET.as_bytes().to_vec()),
        role,
        "6f1c0f7e-1111-4222-8333-944455556666",
        Duration::from_secs(7200),
    )
    .unwrap()
}

pub(crate) fn req<T>(msg: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", token(Role::Admin)).parse().unwrap(),
    );
    r
}
