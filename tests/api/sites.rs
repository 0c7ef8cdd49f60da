//! Many sites, one database: each server reads and writes its own site, a central reader
//! asks for another's, ListSites shows the fleet, and the engine lock is per site.

use std::collections::HashSet;

use config_backup_proto::v1 as pb;
use config_backup_server::auth::Role;
use config_backup_tests::{Backend, TestEnv, log_messages, with_token};

/// A second site's environment on `first`'s database.
async fn site_beside(first: &TestEnv, backend: Backend, site: &str) -> TestEnv {
    let mut env = TestEnv::new(backend).await;
    env.vars.insert("DATABASE_URL".into(), first.db.url.clone());
    env.vars.insert("CONFIG_BACKUP_SITE".into(), site.into());
    env
}

/// Every commit hash on a remote's branch.
fn commits(remote: &std::path::Path) -> HashSet<String> {
    let repo = git2::Repository::open_bare(remote).unwrap();
    let mut walk = repo.revwalk().unwrap();
    walk.push_ref("refs/heads/main").unwrap();
    walk.map(|id| id.unwrap().to_string()).collect()
}

async fn history(app: &config_backup_tests::TestApp, site: &str) -> Vec<pb::HistoryEntry> {
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let page = app
            .client()
            .history(with_token(
                pb::HistoryRequest {
                    include_unchanged: true,
                    page_size: 7,
                    page_token: token.clone(),
                    site: site.into(),
                    ..Default::default()
                },
                Role::Noc,
            ))
            .await
            .unwrap()
            .into_inner();
        out.extend(page.entries);
        if page.next_page_token.is_empty() {
            return out;
        }
        token = page.next_page_token;
    }
}

async fn site_a_never_shows_site_b_rows_and_a_central_reader_sees_both(backend: Backend) {
    let mut alpha_env = TestEnv::new(backend).await;
    alpha_env.vars.insert("CONFIG_BACKUP_SITE".into(), "alpha".into());
    let beta_env = site_beside(&alpha_env, backend, "beta").await;
    let alpha = alpha_env.spawn().await;
    let beta = beta_env.spawn().await;
    let a_run = alpha.backup().await;
    beta.backup().await;
    std::fs::write(beta_env.site().join("config/kea/kea-dhcp4.conf"), "{ \"Dhcp4\": {} }\n").unwrap();
    let b_run = beta.backup().await;

    let (a_commits, b_commits) = (commits(&alpha_env.remote()), commits(&beta_env.remote()));
    assert!(a_commits.is_disjoint(&b_commits));
    assert_eq!(log_messages(&beta_env.remote(), "main").len(), 8);

    // Each server's own trail holds only its site's commits, every file once per commit.
    let own_a = history(&alpha, "").await;
    assert_eq!(own_a.len(), 10);
    assert!(own_a.iter().all(|e| a_commits.contains(&e.commit_hash)), "{own_a:?}");
    let own_b = history(&beta, "").await;
    assert_eq!(own_b.len(), 20);
    assert!(own_b.iter().all(|e| b_commits.contains(&e.commit_hash)));
    let ids: HashSet<&str> = own_b.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids.len(), own_b.len(), "pages have no duplicates");

    // Status: the site's own run and commits.
    let status = alpha.status().await;
    assert_eq!(status.site, "alpha");
    assert_eq!(status.last_run.unwrap().run_id, a_run.run_id);
    for d in &status.domains {
        assert!(a_commits.contains(&d.last_commit_hash), "{d:?}");
    }

    // A central reader (alpha's server) asks for beta's trail and state.
    let central = history(&alpha, "beta").await;
    let mut got: Vec<&str> = central.iter().map(|e| e.id.as_str()).collect();
    let mut want: Vec<&str> = own_b.iter().map(|e| e.id.as_str()).collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);
    let beta_status = alpha
        .client()
        .status(with_token(pb::StatusRequest { site: "beta".into() }, Role::Noc))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(beta_status.site, "beta");
    assert_eq!(beta_status.last_run.unwrap().run_id, b_run.run_id);
    assert_eq!(beta_status.domains.len(), 4);
    for d in &beta_status.domains {
        assert!(b_commits.contains(&d.last_commit_hash), "{d:?}");
        assert!(d.tracked_files > 0);
    }
    let kea = beta_status.domains.iter().find(|d| d.domain == "kea").unwrap();
    assert_eq!(kea.last_change_commit_hash, kea.last_commit_hash);

    // An unknown site is NOT_FOUND; a malformed one INVALID_ARGUMENT naming the field.
    let err = alpha
        .client()
        .status(with_token(pb::StatusRequest { site: "gamma".into() }, Role::Noc))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound, "{err:?}");
    let err = alpha
        .client()
        .history(with_token(
            pb::HistoryRequest {
                site: "gamma".into(),
                ..Default::default()
            },
            Role::Noc,
        ))
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        tonic::Code::NotFound,
        "a mistyped site is not an empty trail: {err:?}"
    );
    let err = alpha
        .client()
        .history(with_token(
            pb::HistoryRequest {
                site: "Bad Site!".into(),
                ..Default::default()
            },
            Role::Noc,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().starts_with("site:"), "{}", err.message());

    // ListSites, over gRPC and REST: both sites with their last run.
    let sites = beta
        .client()
        .list_sites(with_token(pb::ListSitesRequest::default(), Role::Noc))
        .await
        .unwrap()
        .into_inner()
        .sites;
    let names: Vec<&str> = sites.iter().map(|s| s.site.as_str()).collect();
    assert_eq!(names, ["alpha", "beta"]);
    assert_eq!(sites[0].last_run.as_ref().unwrap().run_id, a_run.run_id);
    assert_eq!(sites[1].last_run.as_ref().unwrap().run_id, b_run.run_id);
    assert!(
        sites
            .iter()
            .all(|s| s.next_scheduled_at.is_some() && s.running.is_empty())
    );
    let rest: serde_json::Value = reqwest::Client::new()
        .get(alpha.url("/api/v1/backups/config/sites"))
        .bearer_auth(config_backup_tests::token(Role::Noc))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rest["sites"][1]["site"], "beta", "{rest}");
    assert_eq!(rest["sites"][1]["last_run"]["run_id"], b_run.run_id.as_str(), "{rest}");
    let refused = reqwest::Client::new()
        .get(alpha.url("/api/v1/backups/config/sites"))
        .bearer_auth(config_backup_tests::token(Role::Scheduler))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);

    alpha.stop().await;
    beta.stop().await;
}

async fn two_sites_back_up_at_once_while_two_replicas_of_one_site_exclude_each_other(backend: Backend) {
    let mut alpha_env = TestEnv::new(backend).await;
    alpha_env.vars.insert("CONFIG_BACKUP_SITE".into(), "alpha".into());
    let beta_env = site_beside(&alpha_env, backend, "beta").await;
    alpha_env.add_zone_files(3000);
    beta_env.add_zone_files(3000);
    let alpha = alpha_env.spawn().await;
    let alpha_replica = alpha_env.spawn().await;
    let beta = beta_env.spawn().await;
    let (mut ca, mut cr, mut cb) = (alpha.client(), alpha_replica.client(), beta.client());
    let (ra, rr, rb) = tokio::join!(
        ca.backup(with_token(pb::BackupRequest::default(), Role::Noc)),
        cr.backup(with_token(pb::BackupRequest::default(), Role::Noc)),
        cb.backup(with_token(pb::BackupRequest::default(), Role::Noc)),
    );
    let alpha_outcomes = [&ra, &rr];
    let aborted = alpha_outcomes
        .iter()
        .filter(|r| matches!(r, Err(e) if e.code() == tonic::Code::Aborted))
        .count();
    let ok = alpha_outcomes.iter().filter(|r| r.is_ok()).count();
    assert_eq!((ok, aborted), (1, 1), "alpha's replicas: {ra:?} / {rr:?}");
    let beta_report = rb.expect("beta is not held up by alpha").into_inner().report.unwrap();
    let alpha_report = alpha_outcomes
        .iter()
        .find_map(|r| r.as_ref().ok())
        .unwrap()
        .get_ref()
        .report
        .clone()
        .unwrap();
    let span = |r: &pb::BackupReport| {
        let t = |ts: &Option<pbjson_types::Timestamp>| {
            let ts = ts.as_ref().unwrap();
            ts.seconds as f64 + f64::from(ts.nanos) / 1e9
        };
        (t(&r.started_at), t(&r.finished_at))
    };
    let (a, b) = (span(&alpha_report), span(&beta_report));
    assert!(
        a.0 < b.1 && b.0 < a.1,
        "the two sites' runs overlap in time: alpha {a:?}, beta {b:?}"
    );
    alpha.stop().await;
    alpha_replica.stop().await;
    beta.stop().await;
}

on_both_backends!(
    site_a_never_shows_site_b_rows_and_a_central_reader_sees_both,
    two_sites_back_up_at_once_while_two_replicas_of_one_site_exclude_each_other
);
