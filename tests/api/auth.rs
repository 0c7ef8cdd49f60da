//! Only admin and noc users (and the scheduler, for Backup) get in.

use config_backup_proto::v1 as pb;
use config_backup_server::auth::{self, Role, Secret};
use config_backup_tests::{Backend, SECRET, TestEnv, with_token};
use tonic::Code;

fn with_header<T>(msg: T, value: &str) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    req.metadata_mut().insert("authorization", value.parse().unwrap());
    req
}

async fn missing_malformed_and_expired_tokens_are_unauthenticated(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let app = env.spawn().await;
    let mut client = app.client();

    let err = client
        .status(tonic::Request::new(pb::StatusRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(err.message().contains("missing authorization"), "{}", err.message());

    let err = client
        .status(with_header(pb::StatusRequest::default(), "Bearer not-a-jwt"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);

    // Expired well past the leeway.
    let secret = Secret::from_bytes(SECRET.as_bytes().to_vec());
    let now = jsonwebtoken_now();
    let claims = auth::Claims {
        sub: "u".into(),
        role: Role::Admin,
        exp: now - 120,
        iat: Some(now - 3600),
    };
    let expired = encode(&claims);
    let err = client
        .status(with_header(pb::StatusRequest::default(), &format!("Bearer {expired}")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(err.message().contains("expired"), "{}", err.message());

    // Signed with another secret.
    let forged = auth::mint(
        &Secret::from_bytes(vec![b'z'; 40]),
        Role::Admin,
        "u",
        std::time::Duration::from_secs(60),
    )
    .unwrap();
    let err = client
        .backup(with_header(pb::BackupRequest::default(), &format!("Bearer {forged}")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let _ = secret;

    // Health and reflection stay open.
    let mut health = tonic_health::pb::health_client::HealthClient::new(app.channel.clone());
    health
        .check(tonic_health::pb::HealthCheckRequest { service: String::new() })
        .await
        .unwrap();
    app.stop().await;
}

fn jsonwebtoken_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn encode(claims: &auth::Claims) -> String {
    // Sign exactly as the server expects, with a past `exp`.
    let header = r#"{"alg":"HS256","typ":"JWT"}"#;
    let b64 = |b: &[u8]| base64_url(b);
    let body = serde_json::to_vec(claims).unwrap();
    let signing_input = format!("{}.{}", b64(header.as_bytes()), b64(&body));
    let mac = hmac_sha256(SECRET.as_bytes(), signing_input.as_bytes());
    format!("{signing_input}.{}", b64(&mac))
}

fn base64_url(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let mut k = [0u8; 64];
    k[..key.len()].copy_from_slice(key);
    let inner: Vec<u8> = k.iter().map(|b| b ^ 0x36).chain(msg.iter().copied()).collect();
    let inner = Sha256::digest(&inner);
    let outer: Vec<u8> = k.iter().map(|b| b ^ 0x5c).chain(inner.iter().copied()).collect();
    Sha256::digest(&outer).to_vec()
}

async fn roles_get_exactly_the_calls_they_are_allowed(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let app = env.spawn().await;
    let mut client = app.client();

    // The scheduler may back up (recorded as "system") but not read.
    let report = client
        .backup(with_token(pb::BackupRequest::default(), Role::Scheduler))
        .await
        .unwrap()
        .into_inner();
    let report = report.report.unwrap();
    assert_eq!(report.requested_by, "system");
    assert_eq!(report.trigger, pb::RunTrigger::Scheduled as i32);
    let err = client
        .status(with_token(pb::StatusRequest::default(), Role::Scheduler))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(
        err.message().contains("role scheduler may not call Status"),
        "{}",
        err.message()
    );

    // noc reads and backs up, but may not roll back.
    client
        .status(with_token(pb::StatusRequest::default(), Role::Noc))
        .await
        .unwrap();
    let report = client
        .backup(with_token(pb::BackupRequest::default(), Role::Noc))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(report.report.unwrap().trigger, pb::RunTrigger::Manual as i32);
    let err = client
        .rollback(with_token(
            pb::RollbackRequest {
                commit: "abcdef1".into(),
                ..Default::default()
            },
            Role::Noc,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("allowed roles are admin"), "{}", err.message());

    // A token with an unknown role is refused outright.
    let now = jsonwebtoken_now();
    let body = serde_json::json!({"sub": "u", "role": "guest", "exp": now + 600});
    let header = r#"{"alg":"HS256","typ":"JWT"}"#;
    let input = format!(
        "{}.{}",
        base64_url(header.as_bytes()),
        base64_url(body.to_string().as_bytes())
    );
    let token = format!(
        "{input}.{}",
        base64_url(&hmac_sha256(SECRET.as_bytes(), input.as_bytes()))
    );
    let err = client
        .status(with_header(pb::StatusRequest::default(), &format!("Bearer {token}")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    app.stop().await;
}

on_both_backends!(
    missing_malformed_and_expired_tokens_are_unauthenticated,
    roles_get_exactly_the_calls_they_are_allowed
);
