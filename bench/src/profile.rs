//! `--profile`: one kind of backup (first, nochange, full-rehash, warm, change,
//! warm-change), a Diff or
//! a rollback (in process, or through a server), repeated for a profiler (`perf record -- config-backup-bench --profile …`),
//! each timed; or the server's peak RSS (`server-rss`); no report is written.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use config_backup_core::Actor;
use config_backup_core::engine::BackupParams;
use config_backup_core::store::Trigger;

use crate::measure::*;
use crate::runners::*;
use crate::{Cli, site};

/// Repeats one kind of backup for a profiler.
pub(crate) async fn profile(root: &Path, cli: &Cli, kind: &str) -> anyhow::Result<()> {
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
    if kind == "rollback" || kind == "server-rollback" {
        let through = kind == "server-rollback";
        return profile_rollback(root, files, cli.seed, cli.history_days, cli.profile_runs, through).await;
    }
    if kind == "diff" {
        return profile_diff(root, files, cli).await;
    }
    if kind == "server-rss" {
        return profile_server_rss(root, files, cli).await;
    }
    if kind == "server-nochange" {
        return profile_server_nochange(root, files, cli).await;
    }
    for i in 0..=cli.profile_runs {
        let dir = if kind == "first" || i == 0 {
            let dir = new_dir(root, &format!("p{i}"));
            paths = site::generate(&dir.join("site"), files, cli.seed)?;
            dir
        } else {
            root.join("p0")
        };
        if (kind == "change" || kind == "warm-change") && i > 0 {
            site::mutate(&dir.join("site"), &mut paths, &mut rng, &mut next)?;
        }
        // `warm`, `warm-change` and `full-rehash`: one engine for every run, as a server
        // keeps it (and the benchmark's own full re-hash); otherwise a new one each.
        let warm = kind.starts_with("warm") || kind == "full-rehash";
        let e = match (&warm_engine, warm) {
            (Some(e), true) => e.clone(),
            // The periodic full re-hash: every file read and hashed (the stat cache off).
            _ if kind == "full-rehash" => engine_with(&dir, &[("CONFIG_BACKUP_FULL_REHASH_HOURS", "0")]).await?,
            _ => engine(&dir).await?,
        };
        if warm {
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

/// The server's peak RSS (VmHWM) after its first backup of a new site, then after
/// `--profile-runs` no-change and as many 1 % backups: the benchmark's RSS figures alone.
async fn profile_server_rss(root: &Path, files: usize, cli: &Cli) -> anyhow::Result<()> {
    use config_backup_proto::v1 as pb;
    let dir = new_dir(root, "rss");
    let mut paths = site::generate(&dir.join("site"), files, cli.seed)?;
    let (mut rng, mut next) = (site::Rng::new(cli.seed ^ 0xdead), files);
    let server = Server::start(&dir).await;
    let mut c = server.client().await;
    let t = Instant::now();
    c.backup(req(pb::BackupRequest::default())).await?;
    eprintln!(
        "first: {:.1} ms, peak RSS {:.0} MB",
        ms(t.elapsed()),
        server.peak_rss_mb()
    );
    for i in 0..cli.profile_runs {
        c.backup(req(pb::BackupRequest::default())).await?;
        site::mutate(&dir.join("site"), &mut paths, &mut rng, &mut next)?;
        c.backup(req(pb::BackupRequest::default())).await?;
        eprintln!("no-change and 1 % #{i}: peak RSS {:.0} MB", server.peak_rss_mb());
    }
    Ok(())
}

/// No-change backups through the server, back to back after a first backup and one
/// unmeasured run: each call's time at the client beside the server's own account of the
/// run (`duration_seconds`), what the benchmark's gRPC no-change figure compares.
async fn profile_server_nochange(root: &Path, files: usize, cli: &Cli) -> anyhow::Result<()> {
    use config_backup_proto::v1 as pb;
    let dir = new_dir(root, "nochange");
    site::generate(&dir.join("site"), files, cli.seed)?;
    let written = Instant::now();
    let server = Server::start(&dir).await;
    let mut c = server.client().await;
    c.backup(req(pb::BackupRequest::default())).await?;
    wait_settled(written);
    c.backup(req(pb::BackupRequest::default())).await?;
    let mut times = Vec::new();
    for i in 0..cli.profile_runs {
        let t = Instant::now();
        let r = c.backup(req(pb::BackupRequest::default())).await?.into_inner();
        let t = t.elapsed();
        let run = r.report.map(|r| r.duration_seconds * 1e3).unwrap_or(f64::NAN);
        eprintln!(
            "server no-change #{i}: {:.2} ms at the client, {run:.2} ms the run",
            ms(t)
        );
        times.push(t);
    }
    eprintln!("server no-change: median {:.2} ms", ms(median(times)));
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
    for i in 0..cli.profile_runs.max(10) {
        let t = Instant::now();
        let d = e
            .diff(
                DiffQuery {
                    commit1: first.parse()?,
                    commit2: last.parse()?,
                    domain: Some(config_backup_core::Domain::Dns),
                    path: None,
                    // Another cap each time: a Diff asked again is the kept answer, and
                    // this profiles the making of one.
                    limits: DiffLimits {
                        per_file_bytes: DiffLimits::default().per_file_bytes + i,
                        ..DiffLimits::default()
                    },
                    reveal_secrets: false,
                },
                &Actor::User("bench".into()),
            )
            .await?;
        times.push(t.elapsed());
        eprintln!("diff #{i}: {:.1} ms, {} files", ms(t.elapsed()), d.files.len());
    }
    eprintln!("diff: median {:.1} ms", ms(median(times)));
    let git: Vec<Duration> = (0..10)
        .map(|_| {
            time(|| {
                run(Command::new("git").arg("-C").arg(dir.join("wc")).args([
                    "diff",
                    "--stat",
                    first,
                    last,
                    "--",
                    "config/unbound",
                ]))
            })
            .0
        })
        .collect();
    eprintln!("git diff --stat: median {:.1} ms", ms(median(git)));
    Ok(())
}

/// Rollbacks of one domain after `--history-days` days of changes, with the time of each
/// stage: to its first commit, then `runs - 1` more, back and forth between that commit and
/// the domain's last one before the first rollback. `through_server`: as the report
/// measures it, through a server started on the history afterwards (its own process), the
/// first to the domain's commit of the middle day.
async fn profile_rollback(
    root: &Path,
    files: usize,
    seed: u64,
    days: usize,
    runs: usize,
    through_server: bool,
) -> anyhow::Result<()> {
    let dir = new_dir(root, "rollback");
    let mut paths = site::generate(&dir.join("site"), files, seed)?;
    let mut rng = site::Rng::new(seed ^ 0xbeef);
    let mut next = files;
    let e = engine(&dir).await?;
    let kea_commit = |r: &config_backup_core::engine::BackupReport| {
        r.domains
            .iter()
            .find(|d| d.domain == Some(config_backup_core::Domain::Kea))
            .and_then(|d| d.commit.as_ref().map(|c| c.to_string()))
            .ok_or_else(|| anyhow::anyhow!("no kea commit"))
    };
    let first = e
        .backup(BackupParams::new(Trigger::Manual, Actor::User("bench".into()), vec![]))
        .await?;
    let mut old = kea_commit(&first)?;
    for day in 1..days {
        site::mutate(&dir.join("site"), &mut paths, &mut rng, &mut next)?;
        let r = e
            .backup(BackupParams::new(Trigger::Manual, Actor::User("bench".into()), vec![]))
            .await?;
        if through_server && day == days / 2 {
            old = kea_commit(&r)?;
        }
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let last = e
        .backup(BackupParams::new(Trigger::Manual, Actor::User("bench".into()), vec![]))
        .await?;
    let new = kea_commit(&last)?;
    enum Via {
        Engine(config_backup_core::Engine),
        Server(Server),
    }
    let via = if through_server {
        drop(e);
        Via::Server(Server::start(&dir).await)
    } else {
        Via::Engine(e)
    };
    for i in 0..runs.max(1) {
        let target = if i % 2 == 0 { &old } else { &new };
        // The stat cache trusts only files settled for two seconds: wait as a day would.
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(2100)).await;
        }
        settle();
        match &via {
            Via::Server(server) => rollback_through(server, target).await?,
            Via::Engine(e) => rollback_once(e, target).await?,
        }
    }
    Ok(())
}

/// One rollback through the server's gRPC API, timed from the request to the end of
/// its status stream, as the report times it; then the server's own stage times.
async fn rollback_through(server: &Server, target: &str) -> anyhow::Result<()> {
    use config_backup_proto::v1 as pb;
    let mut c = server.client().await;
    let t = Instant::now();
    let task = c
        .rollback(req(pb::RollbackRequest {
            commit: target.to_owned(),
            ..Default::default()
        }))
        .await?
        .into_inner()
        .task
        .ok_or_else(|| anyhow::anyhow!("no task"))?;
    let accepted = t.elapsed();
    let mut stream = c
        .rollback_status(req(pb::RollbackStatusRequest { task_id: task.task_id }))
        .await?
        .into_inner();
    let mut last = None;
    while let Some(m) = stream.message().await? {
        last = m.task;
    }
    let task = last.ok_or_else(|| anyhow::anyhow!("no task"))?;
    eprintln!(
        "rollback to {} through the server: {:.1} ms, {}; accepted after {:.1} ms",
        &target[..7],
        ms(t.elapsed()),
        task.state().as_str_name(),
        ms(accepted)
    );
    macro_rules! at {
        ($ts:expr) => {
            $ts.as_ref()
                .map(|t| t.seconds as f64 * 1e3 + f64::from(t.nanos) / 1e6)
        };
    }
    let mut end = at!(task.requested_at);
    for st in &task.stages {
        let (from, to) = (at!(st.started_at), at!(st.finished_at));
        eprintln!(
            "   {}: {:?} ms after the previous, {:?} ms {}",
            st.state().as_str_name(),
            from.zip(end).map(|(a, b)| a - b),
            to.zip(from).map(|(a, b)| a - b),
            st.message
        );
        end = to;
    }
    eprintln!(
        "   recording the new live state and ending: {:?} ms",
        at!(task.completed_at).zip(end).map(|(a, b)| a - b)
    );
    Ok(())
}

async fn rollback_once(e: &config_backup_core::Engine, target: &str) -> anyhow::Result<()> {
    use config_backup_core::rollback::{DomainChoice, RollbackParams};
    let t = Instant::now();
    let start = e
        .rollback(RollbackParams {
            commit: target.parse()?,
            domain: DomainChoice::OfCommit,
            dry_run: false,
            remove_extra: false,
            reason: "profile".into(),
            requested_by: uuid::Uuid::nil(),
            request_id: None,
            allow_unsigned: false,
        })
        .await?;
    let accepted = t.elapsed();
    let mut watch = Box::pin(e.watch_rollback(start.task.id).await?);
    let mut last = None;
    while let Some(t) = futures::StreamExt::next(&mut watch).await {
        last = Some(t);
    }
    let task = last.ok_or_else(|| anyhow::anyhow!("no task"))?;
    eprintln!(
        "rollback to {}: {:.1} ms, {:?}; accepted (plan made, task recorded) after {:.1} ms",
        &target[..7],
        ms(t.elapsed()),
        task.state,
        ms(accepted)
    );
    if let (Some(last), Some(done)) = (task.stages.last().and_then(|s| s.finished_at), task.completed_at) {
        eprintln!(
            "   recording the new live state and ending: {:.1} ms",
            (done - last).num_microseconds().unwrap_or(0) as f64 / 1000.0
        );
    }
    for st in &task.stages {
        let took = st
            .finished_at
            .map(|f| (f - st.started_at).num_microseconds().unwrap_or(0) as f64 / 1000.0);
        eprintln!("   {:?}: {:?} ms {}", st.stage, took, st.message);
    }
    Ok(())
}
