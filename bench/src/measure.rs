//! Measuring: medians and percentiles, the read+hash floor and the git CLI doing the
//! same work, latency of repeated calls, disk use, and flushing writeback between
//! measurements.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use config_backup_core::statcache::RACY_SECS;
use sha2::{Digest, Sha256};

use crate::site;

pub(crate) fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

pub(crate) fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

pub(crate) fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e5).round() / 100.0
}

pub(crate) fn time<T>(f: impl FnOnce() -> T) -> (Duration, T) {
    let t = Instant::now();
    let r = f();
    (t.elapsed(), r)
}

pub(crate) fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Flushes what earlier steps wrote (the generated site is hundreds of MB at L) so that
/// the kernel's writeback of it does not land on whichever measurement comes next.
pub(crate) fn settle() {
    run(&mut Command::new("sync"));
}

/// Waits until what was written into a site at `last_write` is older than the stat
/// cache's racy window ([`RACY_SECS`]): the next run reads those files one last time and
/// the cache vouches for them from then on, as a daily run meets files changed hours
/// before. A run within the window reads them again, every time.
pub(crate) fn wait_settled(last_write: Instant) {
    let window = Duration::from_secs(RACY_SECS.unsigned_abs()) + Duration::from_millis(100);
    if let Some(left) = window.checked_sub(last_write.elapsed()) {
        std::thread::sleep(left);
    }
}

pub(crate) fn new_dir(root: &Path, name: &str) -> PathBuf {
    let d = root.join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    run(Command::new("git")
        .args(["init", "-q", "--bare", "--initial-branch=main"])
        .arg(d.join("remote.git")));
    d
}

/// The floor: read and SHA-256 every file of the tree.
pub(crate) fn floor(site: &Path) -> Duration {
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
pub(crate) fn git_cli(site: &Path, wt: &Path) -> Duration {
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

pub(crate) fn du(path: &Path) -> f64 {
    site::bytes(path) as f64 / 1e6
}

/// p50 and p99 of `n` calls of `call`.
pub(crate) async fn latency<F, Fut>(n: usize, mut call: F) -> anyhow::Result<(f64, f64)>
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
pub(crate) async fn latency_pair<A, AF, B, BF>(n: usize, mut a: A, mut b: B) -> anyhow::Result<((f64, f64), (f64, f64))>
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

/// Runs `psql` on `url` and returns its unaligned output.
pub(crate) fn psql(url: &str, sql: &str) -> anyhow::Result<String> {
    let out = Command::new("psql").arg(url).args(["-XAtqc", sql]).output()?;
    anyhow::ensure!(out.status.success(), "psql: {}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}
