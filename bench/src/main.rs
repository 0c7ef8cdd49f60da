//! `config-backup-bench`: measures the engine against the git CLI and the read+hash floor
//! on synthetic sites (S, M, L), History/Diff latency over two years of daily history,
//! rollback, API throughput and memory, in one run, and writes `docs/benchmarks.md` and
//! `docs/benchmarks.json`. Never part of the test suite's pass/fail.
//!
//!   cargo run --release -p config-backup-bench
//!
//! Workloads (`sizes.rs`, `history.rs`, `fleet.rs`, `profile.rs`) drive the runners
//! (`runners.rs`: an engine in-process, the server as its own process) and measure with
//! `measure.rs`; they return typed figures (`results.rs`) that `report.rs` writes.

mod fleet;
mod goals;
mod history;
mod load;
mod measure;
mod profile;
mod report;
mod results;
mod runners;
mod site;
mod sizes;

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Parser;

/// mimalloc, set up by `allocator::return_freed_memory_at_once` (see that module).
#[global_allocator]
static ALLOCATOR: config_backup_server::allocator::MiMalloc = config_backup_server::allocator::MiMalloc;

#[derive(Parser)]
pub(crate) struct Cli {
    /// Sizes to run: S, M, L (files: 40, 4,000, 40,000).
    #[arg(long, default_value = "S,M,L", value_delimiter = ',')]
    pub(crate) sizes: Vec<String>,
    /// Days of history for the History/Diff measurements (on M).
    #[arg(long, default_value_t = 730)]
    pub(crate) history_days: usize,
    /// Rounds per timing (median).
    #[arg(long, default_value_t = 3)]
    pub(crate) rounds: usize,
    /// Seed of the synthetic sites.
    #[arg(long, default_value_t = 20261126)]
    pub(crate) seed: u64,
    /// Sites of M sharing one PostgreSQL for the fleet benchmark (0: none).
    #[arg(long, default_value_t = 20)]
    pub(crate) fleet_sites: usize,
    /// Days of history of each fleet site.
    #[arg(long, default_value_t = 90)]
    pub(crate) fleet_days: usize,
    /// Where to write benchmarks.md / benchmarks.json.
    #[arg(long, default_value = "docs")]
    pub(crate) out: PathBuf,
    /// Internal: serve (the measured server process).
    #[arg(long, hide = true)]
    pub(crate) serve: bool,
    /// For profiling (`perf record -- config-backup-bench --profile nochange`): a first
    /// backup of the first size given, then `--profile-runs` backups of this kind (first,
    /// nochange, full-rehash, warm, change or warm-change: `warm` keeps one engine, as a server does), each
    /// timed; or rollbacks (`rollback`, or `server-rollback` through a server), Diffs
    /// (`diff`) or the server's peak RSS (`server-rss`); no report is written.
    #[arg(long, hide = true)]
    pub(crate) profile: Option<String>,
    /// With --profile: how many measured backups (default 10).
    #[arg(long, hide = true, default_value_t = 10)]
    pub(crate) profile_runs: usize,
    /// Keep the scratch directory (sites, repositories, audit databases) for a look at them
    /// afterwards (`sqlite3 …/history/audit.db`); its path is printed.
    #[arg(long)]
    pub(crate) keep: bool,
    /// Internal: measure History and REST under load only, on the `history` directory an
    /// earlier `--keep` run left (no build, no report written), to compare History code on
    /// the same trail.
    #[arg(long, hide = true)]
    pub(crate) history_from: Option<PathBuf>,
    /// Internal: measure the fleet only, on the scratch directory an earlier `--keep` run
    /// left (with its `fleet-databases.json`; no build, no report written).
    #[arg(long, hide = true)]
    pub(crate) fleet_from: Option<PathBuf>,
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

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    // As the server does: the measured server is this binary (`--serve`).
    config_backup_server::allocator::return_freed_memory_at_once();
    config_backup_core::parallel::limit_malloc_arenas();
    let cli = Cli::parse();
    if cli.serve {
        let settings =
            config_backup_server::ServerSettings::from_env(&config_backup_core::settings::Env::from_process())?;
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
        return profile::profile(root, &cli, kind).await;
    }
    if cli.history_from.is_some() {
        history::history(root, &cli).await?;
        return Ok(());
    }
    if let Some(kept) = &cli.fleet_from {
        return fleet::fleet_from(kept).await;
    }
    let mut report = results::Report {
        machine: report::machine(),
        date: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        seed: cli.seed,
        rounds: cli.rounds,
        sizes: Default::default(),
        history: None,
        fleet: None,
        elapsed_s: 0.0,
        goals: Vec::new(),
    };
    let counts = [("S", 40usize), ("M", 4000), ("L", 40000)];
    for (name, files) in counts {
        if cli.sizes.iter().any(|s| s.eq_ignore_ascii_case(name)) {
            let figures = sizes::measure(root, &cli, name, files).await?;
            report.sizes.insert(name.to_owned(), figures);
        }
    }
    if cli.history_days > 0 {
        report.history = history::history(root, &cli).await?;
    }
    if cli.fleet_sites > 0 {
        report.fleet = Some(fleet::fleet(root, &cli).await?);
    }
    report.elapsed_s = started.elapsed().as_secs_f64().round();
    report.goals = goals::evaluate(&report);
    for g in &report.goals {
        eprintln!(
            "goal: {} — {} (limit {}): {}",
            g.goal,
            g.measured_text(),
            g.limit_text(),
            g.verdict_text()
        );
    }
    std::fs::create_dir_all(&cli.out)?;
    std::fs::write(
        cli.out.join("benchmarks.json"),
        serde_json::to_string_pretty(&report)? + "\n",
    )?;
    std::fs::write(cli.out.join("benchmarks.md"), report::markdown(&report))?;
    eprintln!(
        "wrote {}/benchmarks.md and .json in {:.0} s",
        cli.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
