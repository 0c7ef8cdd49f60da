//! The REST shim, with a real HTTP client: routes, JSON, errors, auth, OpenAPI.

use config_backup_server::auth::Role;
use config_backup_tests::{Backend, TestApp, TestEnv, token};
use reqwest::StatusCode;
use serde_json::Value;

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

async fn get(app: &TestApp, path: &str, role: Option<Role>) -> (StatusCode, reqwest::header::HeaderMap, String) {
    let mut req = http().get(app.url(path));
    if let Some(role) = role {
        req = req.bearer_auth(token(role));
    }
    let resp = req.send().await.unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    (status, headers, resp.text().await.unwrap())
}

async fn post(app: &TestApp, path: &str, role: Role, body: &str) -> (StatusCode, Value) {
    let resp = http()
        .post(app.url(path))
        .bearer_auth(token(role))
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap())
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

async fn rest_answers_with_proto_json_and_snake_case_fields(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let app = env.spawn().await;

    let (status, report) = post(&app, "/api/v1/backups/config/run", Role::Noc, "").await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["report"]["outcome"], "RUN_OUTCOME_SUCCESS");
    assert_eq!(report["report"]["domains"][0]["domain"], "gateway");
    let kea_commit = report["report"]["domains"][3]["commit_hash"]
        .as_str()
        .unwrap()
        .to_owned();
    let gw_commit = report["report"]["domains"][0]["commit_hash"]
        .as_str()
        .unwrap()
        .to_owned();

    // A body narrows the domains.
    let (status, report) = post(&app, "/api/v1/backups/config/run", Role::Noc, r#"{"domains": ["kea"]}"#).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["report"]["domains"].as_array().unwrap().len(), 1);

    let (status, _, body) = get(&app, "/api/v1/backups/config/status", Some(Role::Noc)).await;
    assert_eq!(status, StatusCode::OK);
    let st = json(&body);
    assert_eq!(st["last_run"]["commits"], 1);
    assert!(st["domains"][0]["last_commit_hash"].is_string());
    let started = st["last_run"]["started_at"].as_str().unwrap();
    assert!(
        started.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(started).is_ok(),
        "{started}"
    );

    // camelCase and snake_case query parameters.
    let (status, _, body) = get(
        &app,
        "/api/v1/backups/config/history?domain=kea&pageSize=1&include_unchanged=true",
        Some(Role::Noc),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let page = json(&body);
    assert_eq!(page["entries"].as_array().unwrap().len(), 1);
    assert_eq!(page["entries"][0]["change_type"], "unchanged");
    let next = page["next_page_token"].as_str().unwrap();
    let (status, _, body) = get(
        &app,
        &format!("/api/v1/backups/config/history?domain=kea&page_size=1&includeUnchanged=true&pageToken={next}"),
        Some(Role::Noc),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(json(&body)["entries"][0]["commit_hash"], kea_commit);

    // Diff as JSON and as a patch.
    let (status, _, body) = get(
        &app,
        &format!("/api/v1/backups/config/diff?commit1={gw_commit}&commit2={kea_commit}"),
        Some(Role::Noc),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(json(&body)["files_changed"], 7);
    let (status, headers, body) = get(
        &app,
        &format!("/api/v1/backups/config/diff?commit1={gw_commit}&commit2={kea_commit}&format=patch&domain=kea"),
        Some(Role::Noc),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers["content-type"].to_str().unwrap().starts_with("text/x-diff"));
    assert!(
        body.starts_with("diff --git a/config/kea/kea-dhcp4.conf b/config/kea/kea-dhcp4.conf\n"),
        "{body}"
    );

    let (status, _, body) = get(&app, "/healthz", None).await;
    assert_eq!(
        (status, json(&body)["status"].as_str()),
        (StatusCode::OK, Some("SERVING"))
    );
    app.stop().await;
}

async fn every_bad_parameter_is_a_400_naming_it(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let app = env.spawn().await;
    let cases = [
        ("/api/v1/backups/config/history?domain=dhcp", "domain"),
        ("/api/v1/backups/config/history?change_type=renamed", "change_type"),
        ("/api/v1/backups/config/history?page_size=abc", "page_size"),
        ("/api/v1/backups/config/history?pageSize=2000", "page_size"),
        ("/api/v1/backups/config/history?since=yesterday", "since"),
        (
            "/api/v1/backups/config/history?include_unchanged=maybe",
            "include_unchanged",
        ),
        ("/api/v1/backups/config/history?page_token=zzz", "page_token"),
        ("/api/v1/backups/config/history?colour=blue", "colour"),
        ("/api/v1/backups/config/diff?commit2=abcdef1", "commit1"),
        ("/api/v1/backups/config/diff?commit1=xyz&commit2=abcdef1", "commit1"),
        (
            "/api/v1/backups/config/diff?commit1=abcdef1&commit2=abcdef2&format=html",
            "format",
        ),
        (
            "/api/v1/backups/config/diff?commit1=abcdef1&commit2=abcdef2&domain=x",
            "domain",
        ),
        ("/api/v1/backups/config/rollback/status", "task_id"),
    ];
    for (path, field) in cases {
        let (status, _, body) = get(&app, path, Some(Role::Noc)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        let v = json(&body);
        assert_eq!(v["code"], 3, "{path}");
        assert!(
            v["message"].as_str().unwrap().starts_with(&format!("{field}:")),
            "{path}: {body}"
        );
        assert_eq!(v["details"][0]["field_violations"][0]["field"], field, "{path}: {body}");
    }
    let resp = http()
        .post(app.url("/api/v1/backups/config/run"))
        .bearer_auth(token(Role::Noc))
        .body(r#"{"domains": ["dhcp"]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let v: Value = resp.json().await.unwrap();
    assert!(v["message"].as_str().unwrap().starts_with("domains:"), "{v}");
    let (status, v) = post(&app, "/api/v1/backups/config/run", Role::Noc, "{not json").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(v["message"].as_str().unwrap().starts_with("body:"), "{v}");
    app.stop().await;
}

async fn unknown_commits_routes_and_methods_get_404_and_405_with_the_error_body(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let app = env.spawn().await;
    post(&app, "/api/v1/backups/config/run", Role::Admin, "").await;
    let (status, _, body) = get(
        &app,
        "/api/v1/backups/config/diff?commit1=0000000000ab&commit2=0000000000cd",
        Some(Role::Noc),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(json(&body)["code"], 5);

    let (status, _, body) = get(&app, "/api/v1/backups/config/nope", Some(Role::Noc)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let v = json(&body);
    assert_eq!(
        (v["code"].as_i64(), v["details"].as_array().map(|d| d.len())),
        (Some(5), Some(0))
    );

    let resp = http()
        .delete(app.url("/api/v1/backups/config/status"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["code"], 12);
    assert!(v["message"].is_string() && v["details"].is_array());
    app.stop().await;
}

async fn no_token_is_401_and_a_forbidden_role_403(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let app = env.spawn().await;
    let (status, headers, body) = get(&app, "/api/v1/backups/config/status", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(headers["www-authenticate"], "Bearer");
    assert_eq!(json(&body)["code"], 16);

    let resp = http()
        .get(app.url("/api/v1/backups/config/status"))
        .header("authorization", "Bearer junk")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    let resp = http()
        .post(app.url("/api/v1/backups/config/rollback?commit=abcdef1"))
        .bearer_auth(token(Role::Noc))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["code"], 7);
    let (status, _, _) = get(&app, "/api/v1/backups/config/history", Some(Role::Scheduler)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    app.stop().await;
}

async fn a_running_backup_makes_run_answer_409(backend: Backend) {
    use config_backup_core::store::{LockHolder, LockKind};
    let env = TestEnv::new(backend).await;
    let app = env.spawn().await;
    let other = LockHolder {
        kind: LockKind::Backup,
        id: uuid::Uuid::new_v4(),
        host: "replica-2".into(),
        pid: 1,
        instance: "other".into(),
        acquired_at: chrono::Utc::now(),
    };
    app.engine
        .store()
        .try_lock(&other, std::time::Duration::from_secs(60))
        .await
        .unwrap();
    let (status, v) = post(&app, "/api/v1/backups/config/run", Role::Noc, "").await;
    assert_eq!(status, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["code"], 10);
    assert!(v["message"].as_str().unwrap().contains(&other.id.to_string()));
    app.stop().await;
}

on_both_backends!(
    rest_answers_with_proto_json_and_snake_case_fields,
    every_bad_parameter_is_a_400_naming_it,
    unknown_commits_routes_and_methods_get_404_and_405_with_the_error_body,
    no_token_is_401_and_a_forbidden_role_403,
    a_running_backup_makes_run_answer_409,
);

/// The `google.api.http` routes declared in the proto.
fn proto_routes() -> Vec<(String, String)> {
    let proto = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../proto/configbackup/v1/config_backup.proto"
    ))
    .unwrap();
    let mut out = Vec::new();
    for (i, _) in proto.match_indices("(google.api.http)") {
        let rest = &proto[i..];
        let block = &rest[..rest.find("};").unwrap()];
        for method in ["get", "post", "put", "delete", "patch"] {
            if let Some(j) = block.find(&format!("{method}: \"")) {
                let start = j + method.len() + 3;
                let end = start + block[start..].find('"').unwrap();
                out.push((method.to_uppercase(), block[start..end].to_owned()));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_annotated_route_is_served_and_documented_in_openapi() {
    let env = TestEnv::new(Backend::Sqlite).await;
    let app = env.spawn().await;
    let routes = proto_routes();
    assert_eq!(routes.len(), 9, "{routes:?}");
    let (status, _, body) = get(&app, "/api/v1/backups/config/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    let doc = json(&body);
    assert_eq!(doc["openapi"], "3.0.3");
    for (method, path) in &routes {
        let op = &doc["paths"][path][method.to_lowercase()];
        assert!(op.is_object(), "{method} {path} is not documented");
        // Served: with its documented required parameters and without a token, the service
        // itself answers 401 (not a 404 or 405 from the router).
        let required: Vec<String> = op["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["required"] == true)
            .map(|p| format!("{}=abcdef1", p["name"].as_str().unwrap()))
            .collect();
        let url = app.url(&format!("{path}?{}", required.join("&")));
        let resp = http().request(method.parse().unwrap(), url).send().await.unwrap();
        let code = resp.status();
        assert_eq!(
            code,
            StatusCode::UNAUTHORIZED,
            "{method} {path}: {}",
            resp.text().await.unwrap()
        );
    }
    let documented: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| p.as_object().unwrap().len())
        .sum();
    assert_eq!(
        documented,
        routes.len() + 1,
        "only the annotated routes and /healthz are documented"
    );
    app.stop().await;
}
