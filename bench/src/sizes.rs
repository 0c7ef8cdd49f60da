//! The backup workload of one synthetic site (S, M, L): the engine's first, no-change,
//! 1 % and full re-hash runs in-process, the same through the server, the git CLI doing
//! the same work, the read+hash floor, peak RSS, and what sealing costs.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use config_backup_proto::v1 as pb;

use crate::measure::{floor, git_cli, median, ms, new_dir, run, settle, time, wait_settled};
use crate::results::{SealingFigures, SizeFigures};
use crate::runners::{Server, backup, backup_timed, engine, engine_sealing, engine_with, phases, req};
use crate::{Cli, site};

/// Measures one size of `files` files under `root`.
pub(crate) async fn measure(root: &Path, cli: &Cli, name: &str, files: usize) -> anyhow::Result<SizeFigures> {
    eprintln!("== {name}: {files} files");
    let dir = new_dir(root, name);
    let mut paths = site::generate(&dir.join("site"), files, cli.seed)?;
    let mut last_write = Instant::now();
    let mut rng = site::Rng::new(cli.seed ^ 0xdead);
    let mut next = files;
    let bytes = site::bytes(&dir.join("site"));
    let rounds = if name == "L" { 1.max(cli.rounds - 1) } else { cli.rounds };

    let sealing = if name == "L" {
        None
    } else {
        Some(sealing_cost(root, name, &dir.join("site"), &paths, &rng, next, rounds.max(15)).await?)
    };
    // Engine, in-process.
    let e = engine(&dir).await?;
    settle();
    let first = backup(&e).await?;
    // The site may have been written too recently for the stat cache to trust; one
    // unmeasured run, once it is settled, reads it all again and fills the cache.
    wait_settled(last_write);
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
        last_write = Instant::now();
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
        last_write = Instant::now();
        g_change.push(git_cli(&dir.join("site"), &wt));
        // Keep the engine's repo in step (its own change backup is measured above).
        backup(&e).await?;
    }
    let g_change = median(g_change);
    drop(e);
    // No change with every file read and hashed (the periodic full re-hash; the stat
    // cache off), each round right after a round of the read+hash floor: the ratio of
    // the two compares them under the same load, which on a shared machine drifts within
    // a minute. At least 5 pairs, also at L (a median of 2 moved the ratio by half).
    let e = engine_with(&dir, &[("CONFIG_BACKUP_FULL_REHASH_HOURS", "0")]).await?;
    let (mut floors, mut full) = (Vec::new(), Vec::new());
    for _ in 0..rounds.max(5) {
        floors.push(floor(&dir.join("site")));
        full.push(backup(&e).await?);
    }
    let (fl, full) = (median(floors), median(full));
    drop(e);

    // Through the gRPC server (its own process): no-change and 1 % change, and RSS. The
    // no-change runs are measured as the engine's above: after one unmeasured call (the
    // server's first run after its start loads the stat cache and opens the repository;
    // a daily run meets a server long started) and back to back, not each right after a
    // 1 % change (whose files, written a moment before, are too recent for the stat cache
    // to trust and are read again: a daily run meets files changed hours before). The
    // unmeasured call waits until the last change is settled: otherwise every call read
    // the last rounds' changed files again (at S a run of the rounds above takes less
    // than the stat cache's racy window).
    let server = Server::start(&dir).await;
    let mut c = server.client().await;
    wait_settled(last_write);
    c.backup(req(pb::BackupRequest::default())).await?;
    let mut grpc_none = Vec::new();
    for _ in 0..rounds.max(5) {
        let t = Instant::now();
        let r = c.backup(req(pb::BackupRequest::default())).await?.into_inner();
        grpc_none.push(t.elapsed());
        let run = r.report.map_or(f64::NAN, |r| r.duration_seconds * 1e3);
        eprintln!(
            "{name}: gRPC no-change {:.2} ms, the server's run {run:.2} ms",
            ms(t.elapsed())
        );
    }
    let mut grpc_change = Vec::new();
    for _ in 0..rounds {
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

    let row = SizeFigures {
        files,
        mb: bytes as f64 / 1e6,
        floor_ms: ms(fl),
        engine_first_ms: ms(first),
        engine_nochange_ms: ms(none),
        engine_change_ms: ms(change),
        grpc_first_ms: ms(grpc_first),
        grpc_nochange_ms: ms(median(grpc_none)),
        grpc_change_ms: ms(median(grpc_change)),
        engine_nochange_full_rehash_ms: ms(full),
        git_first_ms: ms(g_first),
        git_nochange_ms: ms(g_none),
        git_change_ms: ms(g_change),
        git_first_push_ms: ms(g_push),
        ratio_first_vs_git: first.as_secs_f64() / g_first.as_secs_f64(),
        ratio_first_vs_git_with_push: first.as_secs_f64() / (g_first + g_push).as_secs_f64(),
        ratio_nochange_full_rehash_vs_floor: full.as_secs_f64() / fl.as_secs_f64(),
        ratio_nochange_vs_git: none.as_secs_f64() / g_none.as_secs_f64(),
        ratio_change_vs_git: change.as_secs_f64() / g_change.as_secs_f64(),
        ratio_nochange_vs_floor: none.as_secs_f64() / fl.as_secs_f64(),
        server_peak_rss_mb_first_backup: first_rss,
        server_peak_rss_mb_steady: rss,
        sealing,
        nochange_phases: none_phases,
    };
    eprintln!("{name}: {row:?}");
    Ok(row)
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
) -> anyhow::Result<SealingFigures> {
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
    let row = SealingFigures {
        rounds,
        sealed_nochange_ms: ms(sn),
        plain_nochange_ms: ms(pn),
        sealed_change_ms: ms(sc),
        plain_change_ms: ms(pc),
        nochange_ratio: sn.as_secs_f64() / pn.as_secs_f64(),
        change_ratio: sc.as_secs_f64() / pc.as_secs_f64(),
    };
    eprintln!("{name} sealing: {row:?}");
    Ok(row)
}
