//! `config-backup-bench`: measures the engine against the git CLI and the read+hash floor
//! on synthetic sites (S, M, L), History/Diff latency over two years of daily history,
//! rollback, API throughput and memory, in one run, and writes `docs/benchmarks.md` and
//! `docs/benchmarks.json`. Never part of the test suite's pass/fail.
//!
//!   cargo run --release -p config-backup-bench

mod site;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use config_backup_core::engine::{BackupParams, RunTimings};
use config_backup_core::store::Trigger;
use config_backup_core::{Actor, Engine, Settings};
use config_backup_proto::v1 as pb;
use config_backup_proto::v1::config_backup_client::ConfigBackupClient;
use config_backup_server::auth::{self, Role, Secret};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const SECRET: &str = "bench-secret-0123456789abcdef0123456789";

#[derive(Parser)]
struct Cli {
    /// Sizes to run: S, M, L (files: 40, 4,000, 40,000).
    #[arg(long, default_value = "S,M,L", value_delimiter = ',')]
    sizes: Vec<String>,
    /// Days of history for the History/Diff measurements (on M).
    #[arg(long, default_value_t = 730)]
    history_days: usize,
    /// Rounds per timing (median).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Seed of the synthetic sites.
    #[arg(long, default_value_t = 20261126)]
    seed: u64,
    /// Sites of M sharing one PostgreSQL for the fleet benchmark (0: none).
    #[arg(long, default_value_t = 20)]
    fleet_sites: usize,
    /// Days of history of each fleet site.
    #[arg(long, default_value_t = 90)]
    fleet_days: usize,
    /// Where to write benchmarks.md / benchmarks.json.
    #[arg(long, default_value = "docs")]
    out: PathBuf,
    /// Internal: serve (the measured server process).
    #[arg(long, hide = true)]
    serve: bool,
    /// For profiling (`perf record -- config-backup-bench --profile nochange`): a first
    /// backup of the first size given, then `--profile-runs` backups of this kind (first, nochange or
    /// change), each timed; no report is written.
    #[arg(long, hide = true)]
    profile: Option<String>,
    /// With --profile: how many measured backups (default 10).
    #[arg(long, hide = true, default_value_t = 10)]
    profile_runs: usize,
    /// Keep the scratch directory (sites, repositories, audit databases) for a look at them
    /// afterwards (`sqlite3 …/history/audit.db`); its path is printed.
    #[arg(long)]
    keep: bool,
    /// Internal: measure History only, on the `history` directory an earlier `--keep` run
    /// left (no build, no report written), to compare History code on the same trail.
    #[arg(long, hide = true)]
    history_from: Option<PathBuf>,
    /// Internal: measure the fleet only, on the scratch directory an earlier `--keep` run
    /// left (with its `fleet-databases.json`; no build, no report written).
    #[arg(long, hide = true)]
    fleet_from: Option<PathBuf>,
}

/// The bench's scratch directory: removed at the end unless `--keep`.
enum Scratch {
    Temp(tempfile::TempDir),
    Kept(PathBuf),
}

impl Scratch {
    fn path(&self) -> &Path {
        match self {
            Scratch::Temp(t) => t.path(),
            Scratch::Kept(p) => p,
        }
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e5).round() / 100.0
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn time<T>(f: impl FnOnce() -> T) -> (Duration, T) {
    let t = Instant::now();
    let r = f();
    (t.elapsed(), r)
}

/// The environment of a service over `dir/site`.
fn vars(dir: &Path) -> BTreeMap<String, String> {
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

async fn engine(dir: &Path) -> anyhow::Result<Engine> {
    engine_with(dir, &[]).await
}

async fn engine_with(dir: &Path, extra: &[(&str, &str)]) -> anyhow::Result<Engine> {
    engine_sealing(dir, extra, true).await
}

/// An engine; with `seal` false, one with no secret rules at all (it seals nothing), to
/// measure what sealing costs.
async fn engine_sealing(dir: &Path, extra: &[(&str, &str)], seal: bool) -> anyhow::Result<Engine> {
    let mut v = vars(dir);
    v.extend(extra.iter().map(|(k, x)| (k.to_string(), x.to_string())));
    let mut settings = Settings::from_lookup(|k| v.get(k).cloned())?;
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

async fn backup(e: &Engine) -> anyhow::Result<Duration> {
    Ok(backup_timed(e).await?.0)
}

/// A backup, with the engine's account of where its time went.
async fn backup_timed(e: &Engine) -> anyhow::Result<(Duration, RunTimings)> {
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
fn phases(runs: &[(Duration, RunTimings)]) -> Value {
    let m = |f: &dyn Fn(&RunTimings) -> Duration| ms(median(runs.iter().map(|(_, t)| f(t)).collect()));
    let total = median(runs.iter().map(|(d, _)| *d).collect());
    let audit = median(runs.iter().map(|(_, t)| t.audit).collect());
    json!({
        "start_ms": m(&|t| t.start), "sync_ms": m(&|t| t.sync), "domains_ms": m(&|t| t.domains),
        "push_ms": m(&|t| t.push), "audit_ms": m(&|t| t.audit), "finish_ms": m(&|t| t.finish),
        "total_ms": ms(total), "audit_share": audit.as_secs_f64() / total.as_secs_f64(),
    })
}

/// Flushes what earlier steps wrote (the generated site is hundreds of MB at L) so that
/// the kernel's writeback of it does not land on whichever measurement comes next.
fn settle() {
    run(&mut Command::new("sync"));
}

fn new_dir(root: &Path, name: &str) -> PathBuf {
    let d = root.join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    run(Command::new("git")
        .args(["init", "-q", "--bare", "--initial-branch=main"])
        .arg(d.join("remote.git")));
    d
}

/// The floor: read and SHA-256 every file of the tree.
fn floor(site: &Path) -> Duration {
    time(|| {
        let mut total = 0usize;
        for e in walkdir::WalkDir::new(site).into_iter().flatten() {
            if e.file_type().is_file() {
                let b = std::fs::read(e.path()).unwrap();
                total += Sha256::digest(&b)[0] as usize;
            }
        }
        total
    })
    .0
}

/// What an operator would run instead: per domain, copy its files into a work tree,
/// `git add -A <domain>`, `git commit`.
fn git_cli(site: &Path, wt: &Path) -> Duration {
    time(|| {
        for (d, dir) in site::domain_dirs() {
            let src = site.join(&dir);
            let dst = wt.join(&dir);
            let _ = std::fs::remove_dir_all(&dst);
            for e in walkdir::WalkDir::new(&src).into_iter().flatten() {
                let rel = e.path().strip_prefix(site).unwrap();
                if e.file_type().is_dir() {
                    std::fs::create_dir_all(wt.join(rel)).unwrap();
                } else {
                    std::fs::copy(e.path(), wt.join(rel)).unwrap();
                }
            }
            run(Command::new("git").arg("-C").arg(wt).args(["add", "-A"]).arg(&dir));
            run(Command::new("git")
                .arg("-C")
                .arg(wt)
                .args([
                    "-c",
                    "user.name=bench",
                    "-c",
                    "user.email=b@x",
                    "commit",
                    "-q",
                    "--allow-empty",
                    "-m",
                ])
                .arg(format!("backup {d}")));
        }
    })
    .0
}

/// The server as its own process (this binary with --serve), for gRPC/REST timings and RSS.
struct Server {
    child: std::process::Child,
    grpc: String,
    http: String,
}

impl Server {
    async fn start(dir: &Path) -> Server {
        Server::start_with(dir, &[]).await
    }

    async fn start_with(dir: &Path, extra: &[(&str, &str)]) -> Server {
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

    async fn client(&self) -> ConfigBackupClient<tonic::transport::Channel> {
        ConfigBackupClient::connect(self.grpc.clone())
            .await
            .unwrap()
            .max_decoding_message_size(256 << 20)
    }

    fn peak_rss_mb(&self) -> f64 {
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

fn token(role: Role) -> String {
    auth::mint(
        &Secret::from_bytes(SECRET.as_bytes().to_vec()),
        role,
        "6f1c0f7e-1111-4222-8333-944455556666",
        Duration::from_secs(7200),
    )
    .unwrap()
}

fn req<T>(msg: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", token(Role::Admin)).parse().unwrap(),
    );
    r
}

fn du(path: &Path) -> f64 {
    site::bytes(path) as f64 / 1e6
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if cli.serve {
        let settings = config_backup_server::ServerSettings::from_lookup(|k| std::env::var(k).ok())?;
        let mut settings = settings;
        settings.initial_backup = false;
        let app = config_backup_server::Application::build(settings).await?;
        return app.run_until_stopped(futures::future::pending()).await;
    }
    let started = Instant::now();
    let scratch = tempfile::Builder::new().prefix("cb-bench-").tempdir()?;
    let scratch = if cli.keep {
        let kept = scratch.keep();
        eprintln!("scratch kept in {}", kept.display());
        Scratch::Kept(kept)
    } else {
        Scratch::Temp(scratch)
    };
    let root = scratch.path();
    if let Some(kind) = &cli.profile {
        // The engine's own account of each run (RUST_LOG=config_backup_core=info).
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
        return profile(root, &cli, kind).await;
    }
    if cli.history_from.is_some() {
        history(root, &cli).await?;
        return Ok(());
    }
    if let Some(kept) = &cli.fleet_from {
        return fleet_from(kept).await;
    }
    let mut results = json!({
        "machine": machine(),
        "date": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "seed": cli.seed,
        "rounds": cli.rounds,
        "sizes": {},
    });
    let counts = [("S", 40usize), ("M", 4000), ("L", 40000)];
    for (name, files) in counts {
        if !cli.sizes.iter().any(|s| s.eq_ignore_ascii_case(name)) {
            continue;
        }
        eprintln!("== {name}: {files} files");
        let dir = new_dir(root, name);
        let mut paths = site::generate(&dir.join("site"), files, cli.seed)?;
        let mut rng = site::Rng::new(cli.seed ^ 0xdead);
        let mut next = files;
        let bytes = site::bytes(&dir.join("site"));
        let rounds = if name == "L" { 1.max(cli.rounds - 1) } else { cli.rounds };

        let fl = median((0..rounds).map(|_| floor(&dir.join("site"))).collect());
        let sealing = if name == "L" {
            Value::Null
        } else {
            sealing_cost(root, name, &dir.join("site"), &paths, &rng, next, rounds.max(15)).await?
        };
        // Engine, in-process.
        let e = engine(&dir).await?;
        settle();
        let first = backup(&e).await?;
        // The site was written just before the first backup, too recently for the stat cache
        // to trust; one unmeasured run reads it all again and fills the cache.
        backup(&e).await?;
        let none_runs = {
            let mut v = Vec::new();
            for _ in 0..rounds.max(5) {
                v.push(backup_timed(&e).await?);
            }
            v
        };
        let none = median(none_runs.iter().map(|(d, _)| *d).collect());
        let none_phases = phases(&none_runs);
        let mut change = Vec::new();
        for _ in 0..rounds {
            site::mutate(&dir.join("site"), &mut paths, &mut rng, &mut next)?;
            change.push(backup(&e).await?);
        }
        let change = median(change);
        // The git CLI, same work, on a copy.
        let wt = dir.join("git-cli");
        run(Command::new("git")
            .args(["init", "-q", "--initial-branch=main"])
            .arg(&wt));
        settle();
        let g_first = git_cli(&dir.join("site"), &wt);
        // What the git CLI needs to push that first backup (the engine's first backup pushes).
        let bare = dir.join("git-cli-remote.git");
        run(Command::new("git").args(["init", "-q", "--bare"]).arg(&bare));
        let (g_push, ()) = time(|| {
            run(Command::new("git")
                .arg("-C")
                .arg(&wt)
                .args(["push", "-q"])
                .arg(&bare)
                .arg("main"))
        });
        let g_none = median((0..rounds).map(|_| git_cli(&dir.join("site"), &wt)).collect());
        let mut g_change = Vec::new();
        for _ in 0..rounds {
            site::mutate(&dir.join("site"), &mut paths, &mut rng, &mut next)?;
            g_change.push(git_cli(&dir.join("site"), &wt));
            // Keep the engine's repo in step (its own change backup is measured above).
            backup(&e).await?;
        }
        let g_change = median(g_change);
        drop(e);
        // No change with every file read and hashed (the periodic full re-hash; the stat
        // cache off).
        let e = engine_with(&dir, &[("CONFIG_BACKUP_FULL_REHASH_HOURS", "0")]).await?;
        let mut full = Vec::new();
        for _ in 0..rounds {
            full.push(backup(&e).await?);
        }
        let full = median(full);
        drop(e);

        // Through the gRPC server (its own process): no-change and 1 % change, and RSS.
        let server = Server::start(&dir).await;
        let mut c = server.client().await;
        let mut grpc_none = Vec::new();
        let mut grpc_change = Vec::new();
        for _ in 0..rounds {
            let t = Instant::now();
            c.backup(req(pb::BackupRequest::default())).await?;
            grpc_none.push(t.elapsed());
            site::mutate(&dir.join("site"), &mut paths, &mut rng, &mut next)?;
            let t = Instant::now();
            c.backup(req(pb::BackupRequest::default())).await?;
            grpc_change.push(t.elapsed());
        }
        let rss = server.peak_rss_mb();
        drop(server);

        // A fresh server doing the first backup of this size: its peak RSS.
        let fresh = new_dir(root, &format!("{name}-rss"));
        std::fs::rename(dir.join("site"), fresh.join("site"))?;
        let server = Server::start(&fresh).await;
        settle();
        let t = Instant::now();
        server.client().await.backup(req(pb::BackupRequest::default())).await?;
        let grpc_first = t.elapsed();
        let first_rss = server.peak_rss_mb();
        drop(server);
        std::fs::rename(fresh.join("site"), dir.join("site"))?;

        let row = json!({
            "files": files, "mb": bytes as f64 / 1e6,
            "floor_ms": ms(fl),
            "engine_first_ms": ms(first), "engine_nochange_ms": ms(none), "engine_change_ms": ms(change),
            "grpc_first_ms": ms(grpc_first), "grpc_nochange_ms": ms(median(grpc_none)), "grpc_change_ms": ms(median(grpc_change)),
            "engine_nochange_full_rehash_ms": ms(full),
            "git_first_ms": ms(g_first), "git_nochange_ms": ms(g_none), "git_change_ms": ms(g_change),
            "git_first_push_ms": ms(g_push),
            "ratio_first_vs_git": first.as_secs_f64() / g_first.as_secs_f64(),
            "ratio_first_vs_git_with_push": first.as_secs_f64() / (g_first + g_push).as_secs_f64(),
            "ratio_nochange_full_rehash_vs_floor": full.as_secs_f64() / fl.as_secs_f64(),
            "ratio_nochange_vs_git": none.as_secs_f64() / g_none.as_secs_f64(),
            "ratio_change_vs_git": change.as_secs_f64() / g_change.as_secs_f64(),
            "ratio_nochange_vs_floor": none.as_secs_f64() / fl.as_secs_f64(),
            "server_peak_rss_mb_first_backup": first_rss,
            "server_peak_rss_mb_steady": rss,
            "sealing": sealing,
            "nochange_phases": none_phases,
        });
        eprintln!("{name}: {row}");
        results["sizes"][name] = row;
    }

    if cli.history_days > 0 {
        results["history"] = history(root, &cli).await?;
    }
    if cli.fleet_sites > 0 {
        results["fleet"] = fleet(root, &cli).await?;
    }
    results["elapsed_s"] = json!(started.elapsed().as_secs_f64().round());
    std::fs::create_dir_all(&cli.out)?;
    std::fs::write(
        cli.out.join("benchmarks.json"),
        serde_json::to_string_pretty(&results)? + "\n",
    )?;
    std::fs::write(cli.out.join("benchmarks.md"), markdown(&results))?;
    eprintln!(
        "wrote {}/benchmarks.md and .json in {:.0} s",
        cli.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// What sealing costs: two copies of the site, each with its own repository; one engine
/// seals (the built-in rules: the bench's RADIUS files hold a `secret` per client), the
/// other has no rules and seals nothing. The same no-change and 1 % runs, interleaved.
#[allow(clippy::too_many_arguments)]
async fn sealing_cost(
    root: &Path,
    name: &str,
    site: &Path,
    paths: &[String],
    rng: &site::Rng,
    next: usize,
    rounds: usize,
) -> anyhow::Result<Value> {
    let mut twins = Vec::new();
    for (kind, seal) in [("sealed", true), ("plain", false)] {
        let dir = new_dir(root, &format!("{name}-{kind}"));
        run(Command::new("cp").arg("-a").arg(site).arg(dir.join("site")));
        let e = engine_sealing(&dir, &[], seal).await?;
        backup(&e).await?;
        // The second run fills the stat cache (the copy is too recent at the first).
        tokio::time::sleep(Duration::from_secs(2)).await;
        backup(&e).await?;
        twins.push((dir, e, paths.to_vec(), rng.clone(), next));
    }
    // Which twin goes first alternates (ABBA), so neither always runs on a warmer machine.
    let order = |round: usize| if round.is_multiple_of(2) { [0, 1] } else { [1, 0] };
    let (mut none, mut change) = ([Vec::new(), Vec::new()], [Vec::new(), Vec::new()]);
    for round in 0..rounds {
        for i in order(round) {
            none[i].push(backup(&twins[i].1).await?);
        }
    }
    for round in 0..rounds {
        for i in order(round) {
            let t = &mut twins[i];
            site::mutate(&t.0.join("site"), &mut t.2, &mut t.3, &mut t.4)?;
            change[i].push(backup(&t.1).await?);
        }
    }
    let [sn, pn] = none.map(median);
    let [sc, pc] = change.map(median);
    let row = json!({
        "rounds": rounds,
        "sealed_nochange_ms": ms(sn), "plain_nochange_ms": ms(pn),
        "sealed_change_ms": ms(sc), "plain_change_ms": ms(pc),
        "nochange_ratio": sn.as_secs_f64() / pn.as_secs_f64(),
        "change_ratio": sc.as_secs_f64() / pc.as_secs_f64(),
    });
    eprintln!("{name} sealing: {row}");
    Ok(row)
}

/// Repeats one kind of backup for a profiler.
async fn profile(root: &Path, cli: &Cli, kind: &str) -> anyhow::Result<()> {
    let files = match cli.sizes.first().map(|s| s.to_ascii_uppercase()).as_deref() {
        Some("S") => 40,
        Some("L") => 40000,
        _ => 4000,
    };
    let mut times = Vec::new();
    let mut paths = Vec::new();
    let mut rng = site::Rng::new(cli.seed ^ 0xdead);
    let mut next = files;
    let mut warm_engine: Option<config_backup_core::Engine> = None;
    if kind == "rollback" {
        return profile_rollback(root, files, cli.seed, cli.history_days).await;
    }
    if kind == "diff" {
        return profile_diff(root, files, cli).await;
    }
    for i in 0..=cli.profile_runs {
        let dir = if kind == "first" || i == 0 {
            let dir = new_dir(root, &format!("p{i}"));
            paths = site::generate(&dir.join("site"), files, cli.seed)?;
            dir
        } else {
            root.join("p0")
        };
        if kind == "change" && i > 0 {
            site::mutate(&dir.join("site"), &mut paths, &mut rng, &mut next)?;
        }
        // `warm`: one engine for every run, as a server keeps it; otherwise a new one each.
        let e = match (&warm_engine, kind == "warm") {
            (Some(e), true) => e.clone(),
            _ => engine(&dir).await?,
        };
        if kind == "warm" {
            warm_engine = Some(e.clone());
        }
        let (t, phases) = backup_timed(&e).await?;
        eprintln!("{kind} #{i}: {:.1} ms {phases:?}", ms(t));
        if i > 0 {
            times.push(t);
        }
        if kind == "first" {
            std::fs::remove_dir_all(&dir)?;
        }
    }
    if !times.is_empty() {
        eprintln!("{kind}: median {:.1} ms", ms(median(times)));
    }
    if kind != "first" {
        eprintln!("remote: {:.1} MB", du(&root.join("p0").join("remote.git")));
    }
    Ok(())
}

/// Diff of dns's first and last commits after `--history-days` days of 1 % daily change,
/// in-process, ten times.
async fn profile_diff(root: &Path, files: usize, cli: &Cli) -> anyhow::Result<()> {
    use config_backup_core::diff::{DiffLimits, DiffQuery};
    let dir = new_dir(root, "diff");
    let mut paths = site::generate(&dir.join("site"), files, cli.seed)?;
    let mut rng = site::Rng::new(cli.seed ^ 0xbeef);
    let mut next = files;
    let e = engine(&dir).await?;
    backup(&e).await?;
    for _ in 1..cli.history_days {
        site::mutate(&dir.join("site"), &mut paths, &mut rng, &mut next)?;
        backup(&e).await?;
    }
    let out = Command::new("git")
        .arg("-C")
        .arg(dir.join("wc"))
        .args(["log", "--format=%H", "--grep=Config-Backup-Domain: dns"])
        .output()?;
    let commits: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    let (Some(last), Some(first)) = (commits.first(), commits.last()) else {
        anyhow::bail!("no dns commits");
    };
    let mut times = Vec::new();
    for i in 0..10 {
        let t = Instant::now();
        let d = e
            .diff(
                DiffQuery {
                    commit1: first.parse()?,
                    commit2: last.parse()?,
                    domain: Some(config_backup_core::Domain::Dns),
                    path: None,
                    limits: DiffLimits::default(),
                    reveal_secrets: false,
                },
                &Actor::User("bench".into()),
            )
            .await?;
        times.push(t.elapsed());
        eprintln!("diff #{i}: {:.1} ms, {} files", ms(t.elapsed()), d.files.len());
    }
    eprintln!("diff: median {:.1} ms", ms(median(times)));
    Ok(())
}

/// A rollback of one domain to its first commit after `--history-days` days of changes, with the
/// time of each stage.
async fn profile_rollback(root: &Path, files: usize, seed: u64, days: usize) -> anyhow::Result<()> {
    use config_backup_core::rollback::{DomainChoice, RollbackParams};
    let dir = new_dir(root, "rollback");
    let mut paths = site::generate(&dir.join("site"), files, seed)?;
    let mut rng = site::Rng::new(seed ^ 0xbeef);
    let mut next = files;
    let e = engine(&dir).await?;
    let first = e
        .backup(BackupParams::new(Trigger::Manual, Actor::User("bench".into()), vec![]))
        .await?;
    let kea = first
        .domains
        .iter()
        .find(|d| d.domain == Some(config_backup_core::Domain::Kea))
        .and_then(|d| d.commit.clone())
        .ok_or_else(|| anyhow::anyhow!("no kea commit"))?;
    for _ in 1..days {
        site::mutate(&dir.join("site"), &mut paths, &mut rng, &mut next)?;
        backup(&e).await?;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    backup(&e).await?;
    let t = Instant::now();
    let start = e
        .rollback(RollbackParams {
            commit: kea.to_string().parse()?,
            domain: DomainChoice::OfCommit,
            dry_run: false,
            remove_extra: false,
            reason: "profile".into(),
            requested_by: uuid::Uuid::nil(),
        })
        .await?;
    let mut watch = Box::pin(e.watch_rollback(start.task.id).await?);
    let mut last = None;
    while let Some(t) = futures::StreamExt::next(&mut watch).await {
        last = Some(t);
    }
    let task = last.ok_or_else(|| anyhow::anyhow!("no task"))?;
    eprintln!("rollback: {:.1} ms, {:?}", ms(t.elapsed()), task.state);
    for st in &task.stages {
        let took = st
            .finished_at
            .map(|f| (f - st.started_at).num_microseconds().unwrap_or(0) as f64 / 1000.0);
        eprintln!("   {:?}: {:?} ms {}", st.stage, took, st.message);
    }
    Ok(())
}

/// Two years of daily history on M, then History / Diff latency over gRPC and REST
/// against `git log` / `git diff`, rollback time, API throughput, and repository size.
async fn history(root: &Path, cli: &Cli) -> anyhow::Result<Value> {
    let days = cli.history_days;
    let dir = match &cli.history_from {
        Some(kept) => kept.clone(),
        None => new_dir(root, "history"),
    };
    let mut paths: Vec<String>;
    let mut rng = site::Rng::new(cli.seed ^ 0xbeef);
    let mut next = 4000;
    let t = Instant::now();
    if cli.history_from.is_none() {
        eprintln!("== history: {days} days on M");
        paths = site::generate(&dir.join("site"), 4000, cli.seed)?;
        let e = engine(&dir).await?;
        backup(&e).await?;
        for day in 1..days {
            site::mutate(&dir.join("site"), &mut paths, &mut rng, &mut next)?;
            backup(&e).await?;
            if day % 100 == 0 {
                eprintln!("   day {day} ({:.0} s)", t.elapsed().as_secs_f64());
            }
        }
    } else {
        let out = Command::new("git")
            .arg("-C")
            .arg(dir.join("wc"))
            .args(["ls-files", "config/unbound"])
            .output()?;
        paths = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect();
    }
    let build_s = t.elapsed().as_secs_f64();
    let repo_mb = du(&dir.join("remote.git"));
    let db_mb = du(&dir.join("audit.db")) + du(&dir.join("audit.db-wal"));

    let server = Server::start(&dir).await;
    let mut c = server.client().await;
    let http = reqwest::Client::new();
    let bearer = format!("Bearer {}", token(Role::Admin));
    let n = 200;
    let some_file = paths.iter().find(|p| p.starts_with("config/unbound")).cloned().unwrap();
    let mut measure = Vec::new();

    // History: domain filter, file filter, page 1 and page 20.
    let page20_token = {
        let mut tok = String::new();
        for _ in 0..19 {
            let r = c
                .history(req(pb::HistoryRequest {
                    domain: "dns".into(),
                    page_size: 100,
                    page_token: tok.clone(),
                    ..Default::default()
                }))
                .await?;
            tok = r.into_inner().next_page_token;
        }
        tok
    };
    let queries: Vec<(&str, pb::HistoryRequest, String)> = vec![
        (
            "History domain=dns, page 1",
            pb::HistoryRequest {
                domain: "dns".into(),
                page_size: 100,
                ..Default::default()
            },
            "domain=dns&page_size=100".to_owned(),
        ),
        (
            "History file filter",
            pb::HistoryRequest {
                path: some_file.clone(),
                page_size: 100,
                ..Default::default()
            },
            format!("path={some_file}&page_size=100"),
        ),
        (
            "History domain=dns, unchanged files too, page 1",
            pb::HistoryRequest {
                domain: "dns".into(),
                include_unchanged: true,
                page_size: 100,
                ..Default::default()
            },
            "domain=dns&include_unchanged=true&page_size=100".to_owned(),
        ),
        (
            "History domain=dns, page 20",
            pb::HistoryRequest {
                domain: "dns".into(),
                page_size: 100,
                page_token: page20_token.clone(),
                ..Default::default()
            },
            format!("domain=dns&page_size=100&page_token={page20_token}"),
        ),
    ];
    for (label, q, query) in &queries {
        let mut g = Vec::new();
        let mut r = Vec::new();
        for _ in 0..n {
            let t = Instant::now();
            c.history(req(q.clone())).await?;
            g.push(t.elapsed());
            let t = Instant::now();
            let resp = http
                .get(format!("{}/api/v1/backups/config/history?{query}", server.http))
                .header("authorization", &bearer)
                .send()
                .await?;
            anyhow::ensure!(resp.status().is_success(), "REST history: {}", resp.status());
            resp.bytes().await?;
            r.push(t.elapsed());
        }
        measure.push(
            json!({"query": label, "grpc_p50_ms": ms(pct(&mut g, 0.5)), "grpc_p99_ms": ms(pct(&mut g, 0.99)),
                            "rest_p50_ms": ms(pct(&mut r, 0.5)), "rest_p99_ms": ms(pct(&mut r, 0.99))}),
        );
    }
    if cli.history_from.is_some() {
        eprintln!("{}", serde_json::to_string_pretty(&measure)?);
        return Ok(Value::Null);
    }
    // git log equivalents on the same repository.
    let wc = dir.join("wc");
    let git_time = |args: &[&str], n: usize| -> (Duration, Duration) {
        let mut v: Vec<Duration> = (0..n)
            .map(|_| time(|| run(Command::new("git").arg("-C").arg(&wc).args(args))).0)
            .collect();
        (pct(&mut v, 0.5), pct(&mut v, 0.99))
    };
    let (l50, l99) = git_time(&["log", "--format=%H %s", "-n", "100", "--", "config/unbound"], 20);
    let (f50, f99) = git_time(&["log", "--format=%H %s", "-n", "100", "--", &some_file], 20);
    let (p50, p99) = git_time(
        &[
            "log",
            "--format=%H %s",
            "--skip",
            "1900",
            "-n",
            "100",
            "--",
            "config/unbound",
        ],
        10,
    );

    // Diff first ↔ last dns commit.
    let all = c
        .history(req(pb::HistoryRequest {
            domain: "dns".into(),
            include_unchanged: true,
            page_size: 1,
            ..Default::default()
        }))
        .await?
        .into_inner();
    let last = all.entries[0].commit_hash.clone();
    let out = Command::new("git")
        .arg("-C")
        .arg(&wc)
        .args(["log", "--reverse", "--format=%H", "--grep=Config-Backup-Domain: dns"])
        .output()?;
    let first = String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    let mut dg = Vec::new();
    let mut dr = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        c.diff(req(pb::DiffRequest {
            commit1: first.clone(),
            commit2: last.clone(),
            domain: "dns".into(),
            ..Default::default()
        }))
        .await?;
        dg.push(t.elapsed());
        let t = Instant::now();
        let resp = http
            .get(format!(
                "{}/api/v1/backups/config/diff?commit1={first}&commit2={last}&domain=dns",
                server.http
            ))
            .header("authorization", &bearer)
            .send()
            .await?;
        resp.bytes().await?;
        dr.push(t.elapsed());
    }
    let (gd50, gd99) = git_time(&["diff", "--stat", &first, &last, "--", "config/unbound"], 10);

    // Rollback of one domain at M, request to success, no reload command.
    let kea_first = {
        let out = Command::new("git")
            .arg("-C")
            .arg(&wc)
            .args(["log", "--reverse", "--format=%H", "--grep=Config-Backup-Domain: kea"])
            .output()?;
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(days / 2)
            .unwrap_or_default()
            .to_owned()
    };
    let t = Instant::now();
    let task = c
        .rollback(req(pb::RollbackRequest {
            commit: kea_first,
            ..Default::default()
        }))
        .await?
        .into_inner()
        .task
        .unwrap();
    let mut stream = c
        .rollback_status(req(pb::RollbackStatusRequest { task_id: task.task_id }))
        .await?
        .into_inner();
    let mut state = String::new();
    while let Some(m) = stream.message().await? {
        state = m.task.unwrap().state().as_str_name().to_owned();
    }
    let rollback = t.elapsed();

    // Throughput: 16 concurrent clients for 10 s, Status then History.
    let mut throughput = Vec::new();
    for kind in ["Status", "History"] {
        let stop = Instant::now() + Duration::from_secs(10);
        let lat = Arc::new(std::sync::Mutex::new(Vec::new()));
        let errors = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let mut c = server.client().await;
            let (lat, errors) = (lat.clone(), errors.clone());
            tasks.push(tokio::spawn(async move {
                while Instant::now() < stop {
                    let t = Instant::now();
                    let ok = if kind == "Status" {
                        c.status(req(pb::StatusRequest::default())).await.is_ok()
                    } else {
                        c.history(req(pb::HistoryRequest {
                            domain: "kea".into(),
                            page_size: 20,
                            ..Default::default()
                        }))
                        .await
                        .is_ok()
                    };
                    if ok {
                        lat.lock().unwrap().push(t.elapsed());
                    } else {
                        errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            }));
        }
        for t in tasks {
            t.await?;
        }
        let mut l = lat.lock().unwrap().clone();
        throughput.push(json!({"rpc": kind, "requests_per_s": (l.len() as f64 / 10.0).round(), "p50_ms": ms(pct(&mut l, 0.5)),
                               "p99_ms": ms(pct(&mut l, 0.99)), "errors": errors.load(std::sync::atomic::Ordering::Relaxed)}));
    }
    drop(server);
    Ok(json!({
        "days": days, "build_s": build_s.round(), "repo_mb": repo_mb, "audit_db_mb": db_mb,
        "bytes_per_file_per_day": db_mb * 1e6 / (4000.0 * days as f64),
        "queries": measure,
        "git_log": {"domain_p50_ms": ms(l50), "domain_p99_ms": ms(l99), "file_p50_ms": ms(f50), "file_p99_ms": ms(f99), "page20_p50_ms": ms(p50), "page20_p99_ms": ms(p99)},
        "diff": {"grpc_p50_ms": ms(pct(&mut dg, 0.5)), "grpc_p99_ms": ms(pct(&mut dg, 0.99)), "rest_p50_ms": ms(pct(&mut dr, 0.5)), "rest_p99_ms": ms(pct(&mut dr, 0.99)), "git_p50_ms": ms(gd50), "git_p99_ms": ms(gd99)},
        "rollback": {"ms": ms(rollback), "state": state},
        "throughput": throughput,
    }))
}

/// Runs `psql` on `url` and returns its unaligned output.
fn psql(url: &str, sql: &str) -> anyhow::Result<String> {
    let out = Command::new("psql").arg(url).args(["-XAtqc", sql]).output()?;
    anyhow::ensure!(out.status.success(), "psql: {}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// p50 and p99 of `n` calls of `call`.
async fn latency<F, Fut>(n: usize, mut call: F) -> anyhow::Result<(f64, f64)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    // Warm up: the server's pool opens its database connections on first use.
    for _ in 0..20 {
        call().await?;
    }
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        call().await?;
        v.push(t.elapsed());
    }
    Ok((ms(pct(&mut v, 0.5)), ms(pct(&mut v, 0.99))))
}

/// p50 and p99 of `n` calls of `a` and of `b`, called in turn (which goes first changes
/// every round), so that what the machine does meanwhile falls on both alike.
async fn latency_pair<A, AF, B, BF>(n: usize, mut a: A, mut b: B) -> anyhow::Result<((f64, f64), (f64, f64))>
where
    A: FnMut() -> AF,
    AF: std::future::Future<Output = anyhow::Result<()>>,
    B: FnMut() -> BF,
    BF: std::future::Future<Output = anyhow::Result<()>>,
{
    for _ in 0..20 {
        a().await?;
        b().await?;
    }
    let (mut va, mut vb) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for i in 0..n {
        for first in [i % 2 == 0, i % 2 == 1] {
            let t = Instant::now();
            if first {
                a().await?;
                va.push(t.elapsed());
            } else {
                b().await?;
                vb.push(t.elapsed());
            }
        }
    }
    Ok((
        (ms(pct(&mut va, 0.5)), ms(pct(&mut va, 0.99))),
        (ms(pct(&mut vb, 0.5)), ms(pct(&mut vb, 0.99))),
    ))
}

/// Many sites of M on one PostgreSQL, each with its own server-side engine, repository
/// and files, backed up day after day in turn; then one site's History and the fleet's
/// ListSites through a server, and the database's size. The same first site is built
/// alone on a database of its own too, and the two are measured call for call in turn
/// (`latency_pair`), so that what sharing the database costs one site is measured, not
/// assumed, and the machine's moods fall on both alike.
async fn fleet(root: &Path, cli: &Cli) -> anyhow::Result<Value> {
    let (sites, days) = (cli.fleet_sites, cli.fleet_days);
    eprintln!("== fleet: site-00 alone, then {sites} sites of M, {days} days each, one PostgreSQL");
    on_scratch_database(cli, "lone", |lone| async move {
        let t = Instant::now();
        build_fleet(root, cli, "lone", 1, days, &lone).await?;
        let lone_s = t.elapsed().as_secs_f64();
        on_scratch_database(cli, "fleet", |fleet| async move {
            let t = Instant::now();
            build_fleet(root, cli, "fleet", sites, days, &fleet).await?;
            let build_s = t.elapsed().as_secs_f64();
            if cli.keep {
                std::fs::write(
                    root.join("fleet-databases.json"),
                    serde_json::to_vec_pretty(&json!({"lone": lone, "fleet": fleet}))?,
                )?;
            }
            let mut r = measure_fleet(root, &lone, &fleet).await?;
            r["build_s"] = json!(build_s.round());
            r["alone"]["build_s"] = json!(lone_s.round());
            Ok(r)
        })
        .await
    })
    .await
}

/// `--fleet-from`: measures the fleet an earlier `--keep` run left (its scratch directory
/// and the two databases named in its `fleet-databases.json`), and prints the figures.
async fn fleet_from(kept: &Path) -> anyhow::Result<()> {
    let dbs: Value = serde_json::from_slice(&std::fs::read(kept.join("fleet-databases.json"))?)?;
    let url = |k: &str| {
        dbs[k]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow::anyhow!("fleet-databases.json has no {k:?}"))
    };
    let r = measure_fleet(kept, &url("lone")?, &url("fleet")?).await?;
    eprintln!("{}", serde_json::to_string_pretty(&r)?);
    Ok(())
}

/// Runs `f` on a new PostgreSQL database (next to `TEST_DATABASE_URL`'s), dropped after
/// unless `--keep`.
async fn on_scratch_database<F, Fut>(cli: &Cli, tag: &str, f: F) -> anyhow::Result<Value>
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Value>>,
{
    let admin =
        std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let name = format!("cb_bench_{tag}_{}", std::process::id());
    psql(&admin, &format!("CREATE DATABASE {name}"))?;
    let base = admin
        .rsplit_once('/')
        .map(|(b, _)| b.to_owned())
        .unwrap_or(admin.clone());
    let url = format!("{base}/{name}");
    let result = f(url.clone()).await;
    if cli.keep {
        eprintln!("{tag} database kept: {url}");
    } else {
        let _ = psql(&admin, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
    }
    result
}

/// `sites` sites of M (`{tag}-00`…, named site-00…) on the database `url`, `days` days
/// of 1 % change each, backed up in turn day after day. Ends with the database vacuumed,
/// analysed and checkpointed, so that no write of the build is still being flushed while
/// it is measured.
async fn build_fleet(root: &Path, cli: &Cli, tag: &str, sites: usize, days: usize, url: &str) -> anyhow::Result<()> {
    let t = Instant::now();
    let mut fleet = Vec::new();
    for i in 0..sites {
        let dir = new_dir(root, &format!("{tag}-{i:02}"));
        let paths = site::generate(&dir.join("site"), 4000, cli.seed + i as u64)?;
        let name = format!("site-{i:02}");
        let e = engine_with(&dir, &[("DATABASE_URL", url), ("CONFIG_BACKUP_SITE", &name)]).await?;
        backup(&e).await?;
        fleet.push((
            e,
            dir,
            paths,
            site::Rng::new(cli.seed ^ (0xf1ee7 + i as u64)),
            4000usize,
        ));
    }
    for day in 1..days {
        for (e, dir, paths, rng, next) in fleet.iter_mut() {
            site::mutate(&dir.join("site"), paths, rng, next)?;
            backup(e).await?;
        }
        if day % 10 == 0 {
            eprintln!("   {tag}: day {day} ({:.0} s)", t.elapsed().as_secs_f64());
        }
    }
    drop(fleet);
    psql(url, "VACUUM ANALYZE")?;
    psql(url, "CHECKPOINT")?;
    Ok(())
}

/// The fleet's figures: its database's size and rows, site-00's History through its own
/// server on the fleet database and on the lone one (call for call in turn), another
/// site's History and ListSites.
async fn measure_fleet(root: &Path, lone_url: &str, fleet_url: &str) -> anyhow::Result<Value> {
    let db_mb: f64 = psql(fleet_url, "SELECT pg_database_size(current_database())")?.parse::<f64>()? / 1e6;
    let count = |table: &str| -> anyhow::Result<i64> {
        Ok(psql(fleet_url, &format!("SELECT COUNT(*) FROM {table}"))?.parse()?)
    };
    let (commits, file_rows, view_rows) = (
        count("config_commits")?,
        count("config_file_changes")?,
        count("config_git_backups")?,
    );
    let sites: usize = psql(fleet_url, "SELECT COUNT(DISTINCT site) FROM config_commits")?.parse()?;
    let days: i64 = psql(
        fleet_url,
        "SELECT COUNT(*) FROM config_commits WHERE site = 'site-00' AND domain = 'dns'",
    )?
    .parse()?;
    // The same file on both: the sites were generated from the same seed.
    let some_file = psql(
        lone_url,
        "SELECT config_file FROM config_file_changes WHERE site = 'site-00' \
         AND config_file LIKE 'config/unbound/%' ORDER BY seq LIMIT 1",
    )?;
    anyhow::ensure!(!some_file.is_empty(), "the lone database holds no unbound file");

    let env = |url: &str| {
        [
            ("DATABASE_URL", url.to_owned()),
            ("CONFIG_BACKUP_SITE", "site-00".to_owned()),
        ]
    };
    let start = |dir: &str, url: &str| {
        let env = env(url);
        let dir = root.join(dir);
        async move {
            let vars: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
            Server::start_with(&dir, &vars).await
        }
    };
    let (lone, fleet) = (start("lone-00", lone_url).await, start("fleet-00", fleet_url).await);
    let (lc, fc) = (lone.client().await, fleet.client().await);
    let n = 300;
    let history = |c: &ConfigBackupClient<tonic::transport::Channel>, q: pb::HistoryRequest| {
        let c = c.clone();
        move || {
            let q = q.clone();
            let mut c = c.clone();
            async move {
                c.history(req(q)).await?;
                Ok(())
            }
        }
    };
    let dns = pb::HistoryRequest {
        domain: "dns".into(),
        page_size: 100,
        ..Default::default()
    };
    let file = pb::HistoryRequest {
        path: some_file,
        page_size: 100,
        ..Default::default()
    };
    let (dns_alone, dns_fleet) = latency_pair(n, history(&lc, dns.clone()), history(&fc, dns.clone())).await?;
    let (file_alone, file_fleet) = latency_pair(n, history(&lc, file.clone()), history(&fc, file)).await?;
    drop(lone);
    let other = latency(
        n,
        history(
            &fc,
            pb::HistoryRequest {
                site: format!("site-{:02}", sites - 1),
                ..dns
            },
        ),
    )
    .await?;
    let list = latency(n, || {
        let mut c = fc.clone();
        async move {
            let r = c.list_sites(req(pb::ListSitesRequest::default())).await?.into_inner();
            anyhow::ensure!(r.sites.len() == sites, "ListSites: {} sites", r.sites.len());
            Ok(())
        }
    })
    .await?;
    drop(fleet);
    Ok(json!({
        "sites": sites, "days": days, "files_per_site": 4000, "calls": n,
        "db_mb": db_mb, "commits": commits, "file_rows": file_rows, "view_rows": view_rows,
        "bytes_per_file_per_day": db_mb * 1e6 / (sites as f64 * 4000.0 * days as f64),
        "history_domain_p50_ms": dns_fleet.0, "history_domain_p99_ms": dns_fleet.1,
        "history_file_p50_ms": file_fleet.0, "history_file_p99_ms": file_fleet.1,
        "history_other_site_p50_ms": other.0, "history_other_site_p99_ms": other.1,
        "list_sites_p50_ms": list.0, "list_sites_p99_ms": list.1,
        "alone": {
            "history_domain_p50_ms": dns_alone.0, "history_domain_p99_ms": dns_alone.1,
            "history_file_p50_ms": file_alone.0, "history_file_p99_ms": file_alone.1,
        },
    }))
}

fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpu
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_default();
    let mem = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gb = mem
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| (kb / 1048576.0).round())
        .unwrap_or(0.0);
    let git = Command::new("git")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    json!({"cpu": model, "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0), "memory_gb": mem_gb, "git": git})
}

fn markdown(r: &Value) -> String {
    let m = &r["machine"];
    let mut s = format!(
        "# Benchmarks\n\nOne run of `cargo run --release -p config-backup-bench` on {} ({} cores, {} GB), {}, {}; seed {}, median of {} rounds; {} s in all. \
         Raw figures: [benchmarks.json](benchmarks.json).\n\n## Backup: the engine against the git CLI and the read+hash floor\n\n\
         Engine: in-process; gRPC: the same through the server (its own process). No-change runs are measured with the stat cache \
         warm (files untouched since they were hashed are not read); \"full re-hash\" is the same run reading and hashing every file \
         (what the periodic full re-hash does, and `CONFIG_BACKUP_FULL_REHASH_HOURS=0`). The engine's first backup includes its push \
         (objects sent whole: no delta search, see the README); the `git gc --auto` that may follow a run runs on a thread of its own \
         once the run is recorded and is not counted (the benchmark waits for it before measuring anything else; the server's peak RSS \
         is the server process's, the gc being a `git` child). The git CLI's push of its first commit is shown on its own. \
         Each first backup (engine, gRPC, git CLI) starts after a `sync`, so the kernel's writeback of the generated site does not land on it.\n\n\
         | size | files | MB | floor (read+SHA-256) | engine first | engine no-change | engine no-change, full re-hash | engine 1 % | gRPC first | gRPC no-change | gRPC 1 % | git CLI first | git CLI push of first | git CLI no-change | git CLI 1 % | peak RSS, first backup (MB) |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
        m["cpu"].as_str().unwrap_or("?"),
        m["cores"],
        m["memory_gb"],
        m["git"].as_str().unwrap_or(""),
        r["date"].as_str().unwrap_or(""),
        r["seed"],
        r["rounds"],
        r["elapsed_s"]
    );
    let f = |v: &Value| v.as_f64().unwrap_or(0.0);
    for (name, v) in r["sizes"].as_object().into_iter().flatten() {
        s.push_str(&format!(
            "| {name} | {} | {:.1} | {} ms | {} ms | {} ms | {} ms | {} ms | {} ms | {} ms | {} ms | {} ms | {} ms | {} ms | {} ms | {:.0} |\n",
            v["files"], f(&v["mb"]), v["floor_ms"], v["engine_first_ms"], v["engine_nochange_ms"], v["engine_nochange_full_rehash_ms"],
            v["engine_change_ms"], v["grpc_first_ms"], v["grpc_nochange_ms"], v["grpc_change_ms"], v["git_first_ms"], v["git_first_push_ms"],
            v["git_nochange_ms"], v["git_change_ms"], f(&v["server_peak_rss_mb_first_backup"])
        ));
    }
    s.push_str(
        "\n| size | first ÷ git | first ÷ (git + push) | no-change ÷ git | no-change ÷ floor | full re-hash ÷ floor | 1 % ÷ git |\n|---|---|---|---|---|---|---|\n",
    );
    for (name, v) in r["sizes"].as_object().into_iter().flatten() {
        s.push_str(&format!(
            "| {name} | {:.2}× | {:.2}× | {:.2}× | {:.2}× | {:.2}× | {:.2}× |\n",
            f(&v["ratio_first_vs_git"]),
            f(&v["ratio_first_vs_git_with_push"]),
            f(&v["ratio_nochange_vs_git"]),
            f(&v["ratio_nochange_vs_floor"]),
            f(&v["ratio_nochange_full_rehash_vs_floor"]),
            f(&v["ratio_change_vs_git"])
        ));
    }
    s.push_str(
        "\n### Where a no-change run's time goes\n\nThe engine's own account (`RunTimings`), median of the no-change runs above: \
         *start* records the run; *sync* opens the working copy and fetches the remote's branch; *domains* scans the globs, \
         stats every file against the stat cache, and writes each domain's commit (its manifest and trees); *push* pushes and \
         reads the remote branch back; *audit* writes the audit trail (a no-change commit is one row); *finish* records the \
         outcome and applies retention.\n\n\
         | size | start | sync | domains | push | audit | finish | total | audit share |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    for (name, v) in r["sizes"].as_object().into_iter().flatten() {
        let p = &v["nochange_phases"];
        if p.is_object() {
            s.push_str(&format!(
                "| {name} | {} ms | {} ms | {} ms | {} ms | {} ms | {} ms | {} ms | {:.1} % |\n",
                p["start_ms"],
                p["sync_ms"],
                p["domains_ms"],
                p["push_ms"],
                p["audit_ms"],
                p["finish_ms"],
                p["total_ms"],
                f(&p["audit_share"]) * 100.0
            ));
        }
    }
    s.push_str(
        "\n## Sealing's cost\n\nThe same site in two copies, each with its own repository: one engine seals secrets (the built-in rules; \
         the synthetic RADIUS files hold one `secret` per client stanza), the other has no secret rules. Runs interleaved, engine in-process, median.\n\n\
         | size | rounds | no-change, sealing | no-change, no rules | ratio | 1 %, sealing | 1 %, no rules | ratio |\n|---|---|---|---|---|---|---|---|\n",
    );
    for (name, v) in r["sizes"].as_object().into_iter().flatten() {
        let c = &v["sealing"];
        if c.is_object() {
            s.push_str(&format!(
                "| {name} | {} | {} ms | {} ms | {:.2}× | {} ms | {} ms | {:.2}× |\n",
                c["rounds"],
                c["sealed_nochange_ms"],
                c["plain_nochange_ms"],
                f(&c["nochange_ratio"]),
                c["sealed_change_ms"],
                c["plain_change_ms"],
                f(&c["change_ratio"])
            ));
        } else {
            s.push_str(&format!("| {name} | — | — | — | — | — | — | — |\n"));
        }
    }
    let h = &r["history"];
    if h.is_object() {
        s.push_str(&format!(
            "\n## History and Diff over {} days of daily history (M, 1 % daily change)\n\nBuilding the history took {} s. Backup repository: {:.1} MB; \
             audit database (SQLite): {:.1} MB, {:.2}× the repository, {:.2} bytes per file per day (the audit trail stores a row per \
             commit and per changed file; the table-per-file-per-day schema before it measured 2,265 MB, about 775 bytes per file per day, here).\n\n\
             | query | gRPC p50 | gRPC p99 | REST p50 | REST p99 |\n|---|---|---|---|---|\n",
            h["days"],
            h["build_s"],
            f(&h["repo_mb"]),
            f(&h["audit_db_mb"]),
            f(&h["audit_db_mb"]) / f(&h["repo_mb"]).max(1e-9),
            f(&h["bytes_per_file_per_day"])
        ));
        for q in h["queries"].as_array().into_iter().flatten() {
            s.push_str(&format!(
                "| {} | {} ms | {} ms | {} ms | {} ms |\n",
                q["query"].as_str().unwrap_or(""),
                q["grpc_p50_ms"],
                q["grpc_p99_ms"],
                q["rest_p50_ms"],
                q["rest_p99_ms"]
            ));
        }
        let g = &h["git_log"];
        let d = &h["diff"];
        s.push_str(&format!(
            "\nThe same with the git CLI on the same repository (process start included): `git log -n 100 -- <domain>` p50 {} / p99 {} ms; `-- <file>` p50 {} / p99 {} ms; page 20 (`--skip 1900`) p50 {} / p99 {} ms.\n\n\
             Diff, first ↔ last commit of one domain: gRPC p50 {} / p99 {} ms; REST p50 {} / p99 {} ms; `git diff --stat` p50 {} / p99 {} ms.\n\n\
             Rollback of one domain (kea) at M, request to success, no reload command: {} ms ({}).\n\n## API throughput (16 concurrent gRPC clients, 10 s)\n\n| RPC | requests/s | p50 | p99 | errors |\n|---|---|---|---|---|\n",
            g["domain_p50_ms"], g["domain_p99_ms"], g["file_p50_ms"], g["file_p99_ms"], g["page20_p50_ms"], g["page20_p99_ms"],
            d["grpc_p50_ms"], d["grpc_p99_ms"], d["rest_p50_ms"], d["rest_p99_ms"], d["git_p50_ms"], d["git_p99_ms"],
            h["rollback"]["ms"], h["rollback"]["state"].as_str().unwrap_or("")
        ));
        for t in h["throughput"].as_array().into_iter().flatten() {
            s.push_str(&format!(
                "| {} | {} | {} ms | {} ms | {} |\n",
                t["rpc"].as_str().unwrap_or(""),
                t["requests_per_s"],
                t["p50_ms"],
                t["p99_ms"],
                t["errors"]
            ));
        }
    }
    let fl = &r["fleet"];
    let ratio = |a: &Value, b: &Value| f(a) / f(b);
    if fl.is_object() {
        s.push_str(&format!(
            "\n## A fleet on one PostgreSQL\n\n{} sites of M (4,000 files each, their own files, repository and engine; `CONFIG_BACKUP_SITE` \
             site-00…), one PostgreSQL database, {} days of 1 % daily change each, backed up in turn day after day (the days are \
             simulated: every commit lands in the current month's partition). Building it took {} s.\n\n\
             | database | commits | stored file rows | rows of the `config_git_backups` view | bytes per file per day |\n|---|---|---|---|---|\n\
             | {:.1} MB | {} | {} | {} | {:.2} |\n\n\
             Through one site's server (site-00, its own process), {} calls each:\n\n\
             | query | p50 | p99 | site-00 alone on its database: p50 | p99 | p50 fleet / alone |\n|---|---|---|---|---|---|\n\
             | History domain=dns, page 1 (own site) | {} ms | {} ms | {} ms | {} ms | {:.2} |\n\
             | History file filter (own site) | {} ms | {} ms | {} ms | {} ms | {:.2} |\n\
             | History domain=dns, page 1, `site=` another site | {} ms | {} ms | | | |\n\
             | ListSites ({} sites) | {} ms | {} ms | | | |\n\n\
             \"Alone\" is the same site-00 (same files, same days) built on a PostgreSQL database of its own \
             ({} s): what sharing the database with the other sites costs one site's History. Both servers run side by \
             side and are called in turn, call for call (which one first alternates), so that whatever else the machine \
             does falls on both alike. The store plans each statement once per connection (generic plans, \
             `store/sql.rs`): a plan that PostgreSQL makes anew for every call's values costs more than the query here \
             and, for one site, depends on what the other sites hold.\n",
            fl["sites"], fl["days"], fl["build_s"], f(&fl["db_mb"]), fl["commits"], fl["file_rows"], fl["view_rows"],
            f(&fl["bytes_per_file_per_day"]),
            fl["calls"],
            fl["history_domain_p50_ms"], fl["history_domain_p99_ms"],
            fl["alone"]["history_domain_p50_ms"], fl["alone"]["history_domain_p99_ms"],
            ratio(&fl["history_domain_p50_ms"], &fl["alone"]["history_domain_p50_ms"]),
            fl["history_file_p50_ms"], fl["history_file_p99_ms"],
            fl["alone"]["history_file_p50_ms"], fl["alone"]["history_file_p99_ms"],
            ratio(&fl["history_file_p50_ms"], &fl["alone"]["history_file_p50_ms"]),
            fl["history_other_site_p50_ms"], fl["history_other_site_p99_ms"], fl["sites"], fl["list_sites_p50_ms"], fl["list_sites_p99_ms"],
            fl["alone"]["build_s"]
        ));
    }
    s
}
