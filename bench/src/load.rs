//! REST under load: `wrk` against one REST History query while backups run back to back
//! through gRPC, on the same server. wrk is Debian's (`apt-get install wrk`); without it
//! the figure is left out, and the goal reads "not measured".

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use config_backup_proto::v1 as pb;
use config_backup_server::auth::Role;

use crate::results::RestLoad;
use crate::runners::*;

const CONNECTIONS: usize = 32;
const SECONDS: u64 = 10;

/// `wrk -t2 -c32 -d10s --latency` on `{server.http}/api/v1/backups/config/history?{query}`
/// while a task calls Backup back to back.
pub(crate) async fn rest_under_backups(server: &Server, query: &str) -> anyhow::Result<Option<RestLoad>> {
    if Command::new("wrk").arg("--version").output().is_err() {
        eprintln!("   wrk is not installed (apt-get install wrk): REST under load not measured");
        return Ok(None);
    }
    let url = format!("{}/api/v1/backups/config/history?{query}", server.http);
    let bearer = format!("Authorization: Bearer {}", token(Role::Admin));
    let answer_bytes = reqwest::Client::new()
        .get(&url)
        .header("authorization", bearer.trim_start_matches("Authorization: "))
        .send()
        .await?
        .error_for_status()?
        .bytes()
        .await?
        .len();

    let stop = Arc::new(AtomicBool::new(false));
    let (run, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let backups = {
        let mut c = server.client().await;
        let (stop, run, failed) = (stop.clone(), run.clone(), failed.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match c.backup(req(pb::BackupRequest::default())).await {
                    Ok(_) => run.fetch_add(1, Ordering::Relaxed),
                    Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        })
    };
    let out = tokio::task::spawn_blocking(move || {
        Command::new("wrk")
            .args([
                "-t2",
                &format!("-c{CONNECTIONS}"),
                &format!("-d{SECONDS}s"),
                "--latency",
            ])
            .args(["-H", &bearer, &url])
            .output()
    })
    .await??;
    stop.store(true, Ordering::Relaxed);
    backups.await?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    anyhow::ensure!(
        out.status.success(),
        "wrk failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parsed = parse_wrk(&text).ok_or_else(|| anyhow::anyhow!("cannot read wrk's output:\n{text}"))?;
    Ok(Some(RestLoad {
        connections: CONNECTIONS,
        seconds: SECONDS,
        requests_per_s: parsed.requests_per_s,
        p50_ms: parsed.p50_ms,
        p99_ms: parsed.p99_ms,
        errors: parsed.errors,
        answer_bytes,
        backups_run: run.load(Ordering::Relaxed),
        backups_failed: failed.load(Ordering::Relaxed),
    }))
}

#[derive(Debug, PartialEq)]
struct Wrk {
    requests_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
}

/// Reads `wrk --latency`'s report: the rate, the 50 % and 99 % latencies, non-2xx/3xx
/// answers and socket errors.
fn parse_wrk(text: &str) -> Option<Wrk> {
    let latency = |pct: &str| {
        text.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(pct).map(str::trim))
            .and_then(duration_ms)
    };
    let rate = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))?
        .trim()
        .parse()
        .ok()?;
    let non_2xx: u64 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Non-2xx or 3xx responses:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    // "Socket errors: connect 0, read 0, write 0, timeout 0"
    let socket: u64 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Socket errors:"))
        .map(|rest| {
            rest.split(',')
                .filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    Some(Wrk {
        requests_per_s: rate,
        p50_ms: latency("50%")?,
        p99_ms: latency("99%")?,
        errors: non_2xx + socket,
    })
}

/// "35.01ms", "812.00us", "1.20s" in milliseconds.
fn duration_ms(v: &str) -> Option<f64> {
    let (num, scale) = if let Some(n) = v.strip_suffix("us") {
        (n, 1e-3)
    } else if let Some(n) = v.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1e3)
    } else {
        return None;
    };
    let ms = num.trim().parse::<f64>().ok()? * scale;
    Some((ms * 100.0).round() / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_wrk_latency_rate_and_errors() {
        let out = "Running 10s test @ http://127.0.0.1:1/x\n  2 threads and 32 connections\n  Thread Stats   Avg      Stdev     Max   +/- Stdev\n    Latency    38.70ms    9.00ms  80.00ms   70.00%\n  Latency Distribution\n     50%   38.70ms\n     75%   42.00ms\n     90%   50.00ms\n     99%  610.00us\n  8130 requests in 10.00s, 700.00MB read\n  Socket errors: connect 0, read 2, write 0, timeout 1\n  Non-2xx or 3xx responses: 4\nRequests/sec:    813.20\nTransfer/sec:     70.00MB\n";
        assert_eq!(
            parse_wrk(out),
            Some(Wrk {
                requests_per_s: 813.2,
                p50_ms: 38.7,
                p99_ms: 0.61,
                errors: 7
            })
        );
        assert_eq!(duration_ms("1.20s"), Some(1200.0));
        assert_eq!(parse_wrk("nothing"), None);
    }
}
