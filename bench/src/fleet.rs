//! A fleet on one PostgreSQL: many sites of M, their own files, repositories and engines,
//! sharing one database; one site's History through its own server against the same
//! site alone on a database of its own, another site's History, and ListSites.

use std::path::Path;
use std::time::Instant;

use config_backup_proto::v1 as pb;
use config_backup_proto::v1::config_backup_client::ConfigBackupClient;

use crate::measure::*;
use crate::results::*;
use crate::runners::*;
use crate::{Cli, site};
use serde_json::{Value, json};

/// Many sites of M on one PostgreSQL, each with its own server-side engine, repository
/// and files, backed up day after day in turn; then one site's History and the fleet's
/// ListSites through a server, and the database's size. The same first site is built
/// alone on a database of its own too, and the two are measured call for call in turn
/// (`latency_pair`), so that what sharing the database costs one site is measured, not
/// assumed, and the machine's moods fall on both alike.
pub(crate) async fn fleet(root: &Path, cli: &Cli) -> anyhow::Result<FleetFigures> {
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
            r.build_s = build_s.round();
            r.alone.build_s = lone_s.round();
            Ok(r)
        })
        .await
    })
    .await
}

/// `--fleet-from`: measures the fleet an earlier `--keep` run left (its scratch directory
/// and the two databases named in its `fleet-databases.json`), and prints the figures.
pub(crate) async fn fleet_from(kept: &Path) -> anyhow::Result<()> {
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
async fn on_scratch_database<T, F, Fut>(cli: &Cli, tag: &str, f: F) -> anyhow::Result<T>
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
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
async fn measure_fleet(root: &Path, lone_url: &str, fleet_url: &str) -> anyhow::Result<FleetFigures> {
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
    Ok(FleetFigures {
        sites,
        days,
        files_per_site: 4000,
        calls: n,
        db_mb,
        commits,
        file_rows,
        view_rows,
        bytes_per_file_per_day: db_mb * 1e6 / (sites as f64 * 4000.0 * days as f64),
        history_domain_p50_ms: dns_fleet.0,
        history_domain_p99_ms: dns_fleet.1,
        history_file_p50_ms: file_fleet.0,
        history_file_p99_ms: file_fleet.1,
        history_other_site_p50_ms: other.0,
        history_other_site_p99_ms: other.1,
        list_sites_p50_ms: list.0,
        list_sites_p99_ms: list.1,
        alone: AloneFigures {
            history_domain_p50_ms: dns_alone.0,
            history_domain_p99_ms: dns_alone.1,
            history_file_p50_ms: file_alone.0,
            history_file_p99_ms: file_alone.1,
            build_s: 0.0,
        },
        build_s: 0.0,
    })
}
