//! History: filters and pagination from the audit trail.

use std::collections::HashSet;

use config_backup_proto::v1 as pb;
use config_backup_server::auth::Role;
use config_backup_tests::{Backend, TestApp, TestEnv, wait_for, with_token};

async fn history(app: &TestApp, req: pb::HistoryRequest) -> Result<pb::HistoryResponse, tonic::Status> {
    app.client()
        .history(with_token(req, Role::Noc))
        .await
        .map(|r| r.into_inner())
}

/// Five runs: the first adds 10 files, each later one modifies kea and one dns file.
async fn five_runs(env: &TestEnv, app: &TestApp) {
    app.backup().await;
    for i in 1..5 {
        std::fs::write(
            env.site().join("config/kea/kea-dhcp4.conf"),
            format!("{{ \"run\": {i} }}\n"),
        )
        .unwrap();
        std::fs::write(
            env.site().join("config/unbound/unbound.conf.d/sinkhole.conf"),
            format!("server: # {i}\n"),
        )
        .unwrap();
        app.backup().await;
    }
}

async fn pages_have_no_gaps_or_duplicates_even_while_backups_run(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let app = env.spawn().await;
    five_runs(&env, &app).await;
    // Changes only: 10 added + 4 × 2 modified.
    let all = history(
        &app,
        pb::HistoryRequest {
            page_size: 1000,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(all.entries.len(), 18);
    assert!(all.next_page_token.is_empty());

    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = history(
            &app,
            pb::HistoryRequest {
                page_size: 4,
                page_token: token.clone(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        pages += 1;
        seen.extend(page.entries.iter().map(|e| e.id.clone()));
        if pages == 2 {
            // A backup with changes lands between pages: it is newer, so it shows on no later page.
            std::fs::write(env.site().join("config/kea/kea-dhcp4.conf"), "{ \"run\": 99 }\n").unwrap();
            app.backup().await;
        }
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(pages, 5);
    let expected: Vec<String> = all.entries.iter().map(|e| e.id.clone()).collect();
    assert_eq!(seen, expected, "same entries, same order");
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), seen.len());
    app.stop().await;
}

async fn history_filters_by_domain_path_time_and_change_type(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let app = env.spawn().await;
    five_runs(&env, &app).await;

    let kea = history(
        &app,
        pb::HistoryRequest {
            domain: "kea".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(kea.entries.len(), 5);
    assert!(
        kea.entries
            .iter()
            .all(|e| e.domain == "kea" && e.file == "config/kea/kea-dhcp4.conf")
    );
    // Newest first, each linked to its parent commit and with the product's fields.
    assert_eq!(kea.entries[0].change_type, "modified");
    assert_eq!(kea.entries[4].change_type, "added");
    assert!(!kea.entries[0].previous_hash.is_empty());
    assert!(kea.entries[0].commit_message.starts_with("config backup "));
    assert!(!kea.entries[0].commit_message.contains('\n'), "the subject line only");
    assert_eq!(kea.entries[0].backed_up_by, config_backup_tests::ADMIN_SUB);
    assert_eq!(
        kea.entries[0].backup_date,
        chrono::Utc::now().format("%Y-%m-%d").to_string()
    );

    let path = history(
        &app,
        pb::HistoryRequest {
            path: "config/unbound/unbound.conf.d/sinkhole.conf".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(path.entries.len(), 5);

    let added = history(
        &app,
        pb::HistoryRequest {
            change_type: "added".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(added.entries.len(), 10);

    let with_unchanged = history(
        &app,
        pb::HistoryRequest {
            domain: "radius".into(),
            include_unchanged: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(with_unchanged.entries.len(), 15, "3 files × 5 runs");
    let unchanged = history(
        &app,
        pb::HistoryRequest {
            change_type: "unchanged".into(),
            domain: "radius".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(unchanged.entries.len(), 12);

    // Time range: nothing before the first run, everything since it.
    let first = kea.entries.last().unwrap().backed_up_at.unwrap();
    let before = pbjson_types::Timestamp {
        seconds: first.seconds - 3600,
        nanos: 0,
    };
    let none = history(
        &app,
        pb::HistoryRequest {
            until: Some(before),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(none.entries.is_empty());
    let since = history(
        &app,
        pb::HistoryRequest {
            since: Some(before),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(since.entries.len(), 18);
    app.stop().await;
}

async fn bad_history_parameters_are_invalid_argument_naming_the_field(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let app = env.spawn().await;
    let ts = |s| Some(pbjson_types::Timestamp { seconds: s, nanos: 0 });
    let cases = [
        (
            pb::HistoryRequest {
                domain: "dhcp".into(),
                ..Default::default()
            },
            "domain",
        ),
        (
            pb::HistoryRequest {
                change_type: "renamed".into(),
                ..Default::default()
            },
            "change_type",
        ),
        (
            pb::HistoryRequest {
                page_size: 5000,
                ..Default::default()
            },
            "page_size",
        ),
        (
            pb::HistoryRequest {
                page_token: "bogus".into(),
                ..Default::default()
            },
            "page_token",
        ),
        (
            pb::HistoryRequest {
                since: ts(2000),
                until: ts(1000),
                ..Default::default()
            },
            "until",
        ),
    ];
    for (req, field) in cases {
        let err = history(&app, req).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{field}");
        assert!(err.message().starts_with(&format!("{field}:")), "{}", err.message());
    }
    app.stop().await;
}

/// The files of the newest page of changes, through gRPC.
async fn newest_files(app: &TestApp) -> Vec<String> {
    let req = pb::HistoryRequest {
        page_size: 50,
        ..Default::default()
    };
    let page = history(app, req).await.unwrap();
    page.entries.iter().map(|e| e.file.clone()).collect()
}

/// [`newest_files`] when nothing is being written: asked again through gRPC, and twice
/// through REST (the second from the page and the JSON kept), the same files.
async fn settled_newest_files(app: &TestApp) -> Vec<String> {
    let files = newest_files(app).await;
    assert_eq!(newest_files(app).await, files, "asked again, the same page");
    let url = app.url("/api/v1/backups/config/history?page_size=50");
    let bearer = format!("Bearer {}", config_backup_tests::token(Role::Noc));
    for _ in 0..2 {
        let rest: serde_json::Value = reqwest::Client::new()
            .get(&url)
            .header("authorization", &bearer)
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .json()
            .await
            .unwrap();
        let rest_files: Vec<&str> = rest["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["file"].as_str().unwrap())
            .collect();
        assert_eq!(rest_files, files, "REST shows what gRPC shows");
    }
    files
}

/// History pages are read once for many callers, but never hide a change: this server's
/// own backup shows at once, even on a page it has just served, and a replica's (same
/// database) within `HISTORY_MAX_AGE`.
async fn history_shows_this_servers_backup_at_once_and_a_replicas_within_a_second(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let a = env.spawn().await;
    let b = env.spawn().await;
    a.backup().await;
    let first = settled_newest_files(&a).await;
    assert_eq!(first.len(), 10, "{first:?}");

    let kea = "config/kea/kea-dhcp4.conf";
    std::fs::write(env.site().join(kea), "{ \"run\": \"own\" }\n").unwrap();
    a.backup().await;
    let own = settled_newest_files(&a).await;
    assert_eq!(own.len(), 11, "this server's backup at once: {own:?}");
    assert_eq!(own[0], kea);

    let dns = "config/unbound/unbound.conf.d/sinkhole.conf";
    std::fs::write(env.site().join(dns), "server: # replica\n").unwrap();
    b.backup().await;
    let max = config_backup_core::engine::HISTORY_MAX_AGE + std::time::Duration::from_millis(500);
    wait_for("the replica's backup in this server's History", max, || async {
        newest_files(&a).await.first().map(String::as_str) == Some(dns)
    })
    .await;
    assert_eq!(settled_newest_files(&a).await.len(), 12);
    a.stop().await;
    b.stop().await;
}

on_both_backends!(
    history_shows_this_servers_backup_at_once_and_a_replicas_within_a_second,
    pages_have_no_gaps_or_duplicates_even_while_backups_run,
    history_filters_by_domain_path_time_and_change_type,
    bad_history_parameters_are_invalid_argument_naming_the_field,
);
