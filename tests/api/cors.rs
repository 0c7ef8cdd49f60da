//! CORS for the NOC's own web UI: an allowed origin's preflight and request get the
//! headers (the NDJSON stream too); another origin gets none; none configured, none sent.

use config_backup_proto::v1 as pb;
use config_backup_server::auth::Role;
use config_backup_tests::{Backend, TestEnv, token};
use reqwest::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, ORIGIN,
};

const NOC: &str = "http://noc.rgz.local";

async fn preflight(app: &config_backup_tests::TestApp, path: &str, origin: &str) -> reqwest::Response {
    reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, app.url(path))
        .header(ORIGIN, origin)
        .header(ACCESS_CONTROL_REQUEST_METHOD, "GET")
        .header(ACCESS_CONTROL_REQUEST_HEADERS, "authorization,content-type")
        .send()
        .await
        .unwrap()
}

async fn an_allowed_origin_gets_cors_headers_and_another_gets_none(backend: Backend) {
    let mut env = TestEnv::new(backend).await;
    env.vars.insert(
        "HTTP_CORS_ALLOWED_ORIGINS".into(),
        format!("{NOC}, https://noc.example.net"),
    );
    let app = env.spawn().await;
    let report = app.backup().await;
    let kea = report
        .domains
        .iter()
        .find(|d| d.domain == "kea")
        .unwrap()
        .commit_hash
        .clone();

    for path in [
        "/api/v1/backups/config/status",
        "/api/v1/backups/config/rollback/status",
    ] {
        let r = preflight(&app, path, NOC).await;
        assert!(r.status().is_success(), "{path}: {}", r.status());
        assert_eq!(r.headers()[ACCESS_CONTROL_ALLOW_ORIGIN], NOC);
        let allowed = r.headers()[ACCESS_CONTROL_ALLOW_HEADERS]
            .to_str()
            .unwrap()
            .to_lowercase();
        assert!(
            allowed.contains("authorization") && allowed.contains("content-type"),
            "{allowed}"
        );
        let methods = r.headers()[ACCESS_CONTROL_ALLOW_METHODS].to_str().unwrap().to_owned();
        assert!(methods.contains("GET") && methods.contains("POST"), "{methods}");
    }
    let r = reqwest::Client::new()
        .get(app.url("/api/v1/backups/config/status"))
        .header(ORIGIN, NOC)
        .bearer_auth(token(Role::Noc))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()[ACCESS_CONTROL_ALLOW_ORIGIN], NOC);
    // Errors carry the headers too, so the page can show them.
    let r = reqwest::Client::new()
        .get(app.url("/api/v1/backups/config/status"))
        .header(ORIGIN, NOC)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(r.headers()[ACCESS_CONTROL_ALLOW_ORIGIN], NOC);

    // Another origin: no CORS header, on the preflight or the request.
    let evil = "http://evil.example";
    let r = preflight(&app, "/api/v1/backups/config/status", evil).await;
    assert!(
        r.headers().get(ACCESS_CONTROL_ALLOW_ORIGIN).is_none(),
        "{:?}",
        r.headers()
    );
    let r = reqwest::Client::new()
        .get(app.url("/api/v1/backups/config/status"))
        .header(ORIGIN, evil)
        .bearer_auth(token(Role::Noc))
        .send()
        .await
        .unwrap();
    assert!(r.headers().get(ACCESS_CONTROL_ALLOW_ORIGIN).is_none());

    // The NDJSON stream of a rollback, cross-origin.
    let start = app
        .client()
        .rollback(config_backup_tests::with_token(
            pb::RollbackRequest {
                commit: kea,
                reason: "cors".into(),
                ..Default::default()
            },
            Role::Admin,
        ))
        .await
        .unwrap()
        .into_inner();
    let task = start.task.unwrap().task_id;
    let r = reqwest::Client::new()
        .get(app.url(&format!(
            "/api/v1/backups/config/rollback/status?task_id={task}&watch=true"
        )))
        .header(ORIGIN, NOC)
        .bearer_auth(token(Role::Admin))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()[ACCESS_CONTROL_ALLOW_ORIGIN], NOC);
    let body = r.text().await.unwrap();
    let last: serde_json::Value = serde_json::from_str(body.lines().last().unwrap()).unwrap();
    assert_eq!(last["result"]["task"]["state"], "ROLLBACK_STATE_SUCCESS", "{body}");
    app.stop().await;
}

async fn without_allowed_origins_no_cors_headers_are_sent_and_a_bad_origin_stops_the_server(backend: Backend) {
    let mut env = TestEnv::new(backend).await;
    let app = env.spawn().await;
    let r = preflight(&app, "/api/v1/backups/config/status", NOC).await;
    assert!(r.headers().get(ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
    app.stop().await;
    for bad in ["*", "noc.rgz.local", "http://noc.rgz.local/ui", "ftp://x"] {
        env.vars.insert("HTTP_CORS_ALLOWED_ORIGINS".into(), bad.into());
        let vars = env.lookup();
        let e = match config_backup_server::ServerSettings::from_env(&vars.clone().into_iter().collect()) {
            Ok(_) => panic!("{bad} must be refused"),
            Err(e) => e,
        };
        assert_eq!(e.var, "HTTP_CORS_ALLOWED_ORIGINS", "{e}");
    }
}

on_both_backends!(
    an_allowed_origin_gets_cors_headers_and_another_gets_none,
    without_allowed_origins_no_cors_headers_are_sent_and_a_bad_origin_stops_the_server,
);
