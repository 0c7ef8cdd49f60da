//! What black-box tests found on the built server: long parameters got a 500, a 64 KB
//! `Authorization` got a 429, `nbf` was ignored, and an unknown role was
//! UNAUTHENTICATED. (The full disk and the killed run have their own files.)

use config_backup_proto::v1 as pb;
use config_backup_server::auth::Role;
use config_backup_tests::{ADMIN_SUB, Backend, SECRET, TestEnv, token, with_token};
use tonic::Code;

fn signed(claims: serde_json::Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

fn bearer<T>(msg: T, token: &str) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    req.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    req
}

async fn long_parameters_get_a_400_quoting_at_most_64_characters(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let app = env.spawn().await;
    app.backup().await;
    let long = "a".repeat(5000);
    let http = reqwest::Client::new();
    for (method, path, field) in [
        ("GET", format!("/api/v1/backups/config/history?domain={long}"), "domain"),
        (
            "POST",
            format!("/api/v1/backups/config/rollback?commit=abcdef1&domain={long}"),
            "domain",
        ),
        (
            "GET",
            format!("/api/v1/backups/config/rollback/status?task_id={long}"),
            "task_id",
        ),
        (
            "GET",
            format!("/api/v1/backups/config/diff?commit1={long}&commit2=abcdef1"),
            "commit1",
        ),
        ("GET", format!("/api/v1/backups/config/history?{long}=1"), ""),
    ] {
        let req = if method == "GET" {
            http.get(app.url(&path))
        } else {
            http.post(app.url(&path))
        };
        let resp = req.bearer_auth(token(Role::Admin)).send().await.unwrap();
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap();
        assert_eq!(status, 400, "{method} {field}: {body:.300}");
        assert!(body.len() < 1024, "{field}: {} bytes", body.len());
        assert!(!body.contains(&"a".repeat(65)), "{field}: {body}");
        assert!(body.contains("(5000 characters)"), "{field}: {body}");
        if !field.is_empty() {
            assert!(body.contains(&format!("\"message\":\"{field}: ")), "{body}");
        }
    }
    // Over gRPC too: the message and the BadRequest detail are bounded.
    let err = app
        .client()
        .history(with_token(
            pb::HistoryRequest {
                domain: long.clone(),
                ..Default::default()
            },
            Role::Noc,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().len() < 300 && err.message().contains("(5000 characters)"),
        "{}",
        err.message()
    );
    assert!(err.details().len() < 600, "{} bytes of details", err.details().len());
    app.stop().await;
}

async fn an_oversize_authorization_is_431_on_rest_and_a_clean_refusal_on_grpc(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let app = env.spawn().await;
    let huge = "a".repeat(64 * 1024);
    let resp = reqwest::Client::new()
        .get(app.url("/api/v1/backups/config/status"))
        .header("authorization", format!("Bearer {huge}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 431);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["code"], Code::ResourceExhausted as i32);
    assert!(body["message"].as_str().unwrap().contains("at most 8192"), "{body}");
    // Many headers adding up past the section limit: 431 too.
    let mut req = reqwest::Client::new().get(app.url("/api/v1/backups/config/status"));
    for i in 0..40 {
        req = req.header(format!("x-filler-{i}"), "f".repeat(500));
    }
    assert_eq!(req.send().await.unwrap().status().as_u16(), 431);
    // gRPC: over the authorization limit, UNAUTHENTICATED saying so ...
    let err = app
        .client()
        .status(bearer(pb::StatusRequest::default(), &"a".repeat(10 * 1024)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    assert!(err.message().contains("at most 8192"), "{}", err.message());
    // ... and past the header section limit, refused cleanly, and the server carries on.
    let err = app
        .client()
        .status(bearer(pb::StatusRequest::default(), &huge))
        .await
        .unwrap_err();
    // The HTTP/2 layer refuses the header block (GOAWAY, ENHANCE_YOUR_CALM) before any
    // call: clients see RESOURCE_EXHAUSTED.
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    // The refused connection is closed; a client's next connection is served. (On the
    // shared channel, a call could still race the GOAWAY onto the closing connection.)
    let fresh = tonic::transport::Channel::from_shared(format!("http://{}", app.addr))
        .unwrap()
        .connect()
        .await
        .expect("the server accepts a new connection after refusing a header block");
    let status = pb::config_backup_client::ConfigBackupClient::new(fresh)
        .status(with_token(pb::StatusRequest::default(), Role::Noc))
        .await;
    assert!(status.is_ok(), "{status:?}");
    app.stop().await;
}

async fn a_token_not_valid_yet_or_issued_in_the_future_is_unauthenticated(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let app = env.spawn().await;
    for (claims, says) in [
        (
            serde_json::json!({"sub": ADMIN_SUB, "role": "admin", "exp": now() + 7200, "nbf": now() + 3600}),
            "not valid yet",
        ),
        (
            serde_json::json!({"sub": ADMIN_SUB, "role": "admin", "exp": now() + 7200, "iat": now() + 3600}),
            "issued in the future",
        ),
        (serde_json::json!({"sub": ADMIN_SUB, "role": "admin"}), "required claim"),
    ] {
        let t = signed(claims);
        let err = app
            .client()
            .status(bearer(pb::StatusRequest::default(), &t))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated);
        assert!(err.message().contains(says), "{}", err.message());
        let resp = reqwest::Client::new()
            .get(app.url("/api/v1/backups/config/status"))
            .bearer_auth(&t)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 401);
    }
    app.stop().await;
}

async fn a_well_signed_token_with_an_unknown_role_is_permission_denied(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let app = env.spawn().await;
    let t = signed(serde_json::json!({"sub": ADMIN_SUB, "role": "superuser", "exp": now() + 600}));
    let err = app
        .client()
        .status(bearer(pb::StatusRequest::default(), &t))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(err.message().contains("\"superuser\""), "{}", err.message());
    let resp = reqwest::Client::new()
        .get(app.url("/api/v1/backups/config/status"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    app.stop().await;
}

on_both_backends!(
    long_parameters_get_a_400_quoting_at_most_64_characters,
    an_oversize_authorization_is_431_on_rest_and_a_clean_refusal_on_grpc,
    a_token_not_valid_yet_or_issued_in_the_future_is_unauthenticated,
    a_well_signed_token_with_an_unknown_role_is_permission_denied,
);
