//! History, Diff, a rollback and API throughput over long daily history (M, 1 % daily
//! change), against `git log` and `git diff --stat` on the same repository.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use config_backup_proto::v1 as pb;
use config_backup_server::auth::Role;

use crate::measure::*;
use crate::results::*;
use crate::runners::*;
use crate::{Cli, site};

/// Two years of daily history on M, then History / Diff latency over gRPC and REST
/// against `git log` / `git diff`, rollback time, API throughput, and repository size.
pub(crate) async fn history(root: &Path, cli: &Cli) -> anyhow::Result<Option<HistoryFigures>> {
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
        let mut read = Vec::new();
        for _ in 0..3 {
            tokio::time::sleep(config_backup_core::engine::HISTORY_MAX_AGE + Duration::from_millis(50)).await;
            let t = Instant::now();
            c.history(req(q.clone())).await?;
            read.push(t.elapsed());
        }
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
        measure.push(QueryLatency {
            query: label.to_string(),
            grpc_read_ms: ms(pct(&mut read, 0.5)),
            grpc_p50_ms: ms(pct(&mut g, 0.5)),
            grpc_p99_ms: ms(pct(&mut g, 0.99)),
            rest_p50_ms: ms(pct(&mut r, 0.5)),
            rest_p99_ms: ms(pct(&mut r, 0.99)),
        });
    }
    if cli.history_from.is_some() {
        eprintln!("{}", serde_json::to_string_pretty(&measure)?);
        let diff = diff_latency(&server, &dir.join("wc")).await?;
        eprintln!(
            "Diff: first {:.1} ms, p50 {:.2} ms; git diff --stat p99 {:.1} ms; first ÷ git p99 {:.2}×",
            diff.grpc_first_ms,
            diff.grpc_p50_ms,
            diff.git_p99_ms,
            diff.grpc_p99_ms / diff.git_p99_ms
        );
        let rest_load = crate::load::rest_under_backups(&server, "domain=dns&page_size=100").await?;
        eprintln!("REST under back-to-back backups: {rest_load:?}");
        return Ok(None);
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

    let diff = diff_latency(&server, &wc).await?;

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
    // The History/Diff measurements above wrote nothing, but the history's build did:
    // its writeback must not land on the rollback's flushes.
    settle();
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
        throughput.push(Throughput {
            rpc: kind.to_string(),
            requests_per_s: (l.len() as f64 / 10.0).round(),
            p50_ms: ms(pct(&mut l, 0.5)),
            p99_ms: ms(pct(&mut l, 0.99)),
            errors: errors.load(std::sync::atomic::Ordering::Relaxed),
        });
    }
    eprintln!("   REST History under wrk while backups run back to back");
    let rest_load = crate::load::rest_under_backups(&server, "domain=dns&page_size=100").await?;
    drop(server);
    Ok(Some(HistoryFigures {
        days,
        build_s: build_s.round(),
        repo_mb,
        audit_db_mb: db_mb,
        bytes_per_file_per_day: db_mb * 1e6 / (4000.0 * days as f64),
        queries: measure,
        git_log: GitLogLatency {
            domain_p50_ms: ms(l50),
            domain_p99_ms: ms(l99),
            file_p50_ms: ms(f50),
            file_p99_ms: ms(f99),
            page20_p50_ms: ms(p50),
            page20_p99_ms: ms(p99),
        },
        diff,
        rollback: RollbackFigure {
            ms: ms(rollback),
            state,
        },
        throughput,
        rest_load,
    }))
}

/// Diff of the dns domain's first and last commits, 20 calls over gRPC and REST each
/// (the first gRPC call makes it; the later ones get the answer the server keeps), and
/// `git diff --stat` of the same commits.
async fn diff_latency(server: &Server, wc: &Path) -> anyhow::Result<DiffLatency> {
    let mut c = server.client().await;
    let http = reqwest::Client::new();
    let bearer = format!("Bearer {}", token(Role::Admin));
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
        .arg(wc)
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
    let mut git: Vec<Duration> = (0..10)
        .map(|_| {
            time(|| {
                run(Command::new("git").arg("-C").arg(wc).args([
                    "diff",
                    "--stat",
                    &first,
                    &last,
                    "--",
                    "config/unbound",
                ]))
            })
            .0
        })
        .collect();
    Ok(DiffLatency {
        grpc_first_ms: ms(dg[0]),
        grpc_p50_ms: ms(pct(&mut dg, 0.5)),
        grpc_p99_ms: ms(pct(&mut dg, 0.99)),
        rest_p50_ms: ms(pct(&mut dr, 0.5)),
        rest_p99_ms: ms(pct(&mut dr, 0.99)),
        git_p50_ms: ms(pct(&mut git, 0.5)),
        git_p99_ms: ms(pct(&mut git, 0.99)),
    })
}
