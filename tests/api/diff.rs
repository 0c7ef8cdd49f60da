//! Diff between commits.

use config_backup_proto::v1 as pb;
use config_backup_server::auth::Role;
use config_backup_tests::{Backend, TestApp, TestEnv, with_token};

async fn diff(app: &TestApp, req: pb::DiffRequest) -> Result<pb::DiffResponse, tonic::Status> {
    app.client()
        .diff(with_token(req, Role::Noc))
        .await
        .map(|r| r.into_inner())
}

async fn a_diff_of_a_known_change_has_its_exact_lines(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let app = env.spawn().await;
    let first = app.backup().await;
    let kea = env.site().join("config/kea/kea-dhcp4.conf");
    let text = std::fs::read_to_string(&kea).unwrap();
    std::fs::write(
        &kea,
        text.replace("\"valid-lifetime\": 7200", "\"valid-lifetime\": 3600"),
    )
    .unwrap();
    let second = app.backup().await;
    let (c1, c2) = (&first.domains[3].commit_hash, &second.domains[3].commit_hash);

    // Abbreviated hashes (7 digits) work.
    let d = diff(
        &app,
        pb::DiffRequest {
            commit1: c1[..7].into(),
            commit2: c2[..10].into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!((&d.commit1, &d.commit2), (c1, c2));
    assert_eq!(d.files.len(), 1, "{d:?}");
    let f = &d.files[0];
    assert_eq!(
        (f.path.as_str(), f.domain.as_str(), f.change_type.as_str()),
        ("config/kea/kea-dhcp4.conf", "kea", "modified")
    );
    assert_eq!((f.additions, f.deletions, d.additions, d.deletions), (1, 1, 1, 1));
    assert!(
        f.patch
            .contains("\n-    \"valid-lifetime\": 7200,\n+    \"valid-lifetime\": 3600,\n"),
        "{}",
        f.patch
    );
    assert!(!f.binary && !f.truncated && !d.truncated);

    // From the very first commit: every file of the other domains appears as added, and
    // the domain filter narrows it.
    let root = first.domains[0].previous_hash.clone();
    assert!(root.is_empty());
    let gw = diff(
        &app,
        pb::DiffRequest {
            commit1: first.domains[0].commit_hash.clone(),
            commit2: c2.clone(),
            domain: "dns".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(gw.files.len(), 3);
    assert!(gw.files.iter().all(|f| f.domain == "dns" && f.change_type == "added"));
    let one = diff(
        &app,
        pb::DiffRequest {
            commit1: first.domains[0].commit_hash.clone(),
            commit2: c2.clone(),
            path: "config/radius/clients.conf".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(one.files.len(), 1);
    app.stop().await;
}

async fn binary_files_are_flagged_and_big_patches_truncated(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let app = env.spawn().await;
    let first = app.backup().await;
    let dir = env.site().join("config/unbound/unbound.conf.d");
    std::fs::write(dir.join("root.key.bin"), [0u8, 1, 2, 3, 0, 255, 0, 7]).unwrap();
    let big: String = (0..20_000)
        .map(|i| format!("    local-zone: \"z{i}.example.\" always_nxdomain\n"))
        .collect();
    std::fs::write(dir.join("big.conf"), big).unwrap();
    let second = app.backup().await;
    let d = diff(
        &app,
        pb::DiffRequest {
            commit1: first.domains[1].commit_hash.clone(),
            commit2: second.domains[1].commit_hash.clone(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let bin = d.files.iter().find(|f| f.path.ends_with("root.key.bin")).unwrap();
    assert!(bin.binary);
    assert!(bin.patch.is_empty());
    let big = d.files.iter().find(|f| f.path.ends_with("big.conf")).unwrap();
    assert!(big.truncated && d.truncated);
    assert_eq!(big.additions, 20_000);
    assert!(big.patch.len() <= 256 * 1024);
    app.stop().await;
}

async fn malformed_commits_are_invalid_and_unknown_ones_not_found(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let app = env.spawn().await;
    let first = app.backup().await;
    let c = first.domains[0].commit_hash.clone();
    for (c1, c2, field) in [
        ("xyz1234", c.as_str(), "commit1"),
        (c.as_str(), "abc", "commit2"),
        ("", c.as_str(), "commit1"),
    ] {
        let err = diff(
            &app,
            pb::DiffRequest {
                commit1: c1.into(),
                commit2: c2.into(),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{c1} {c2}");
        assert!(err.message().starts_with(&format!("{field}:")), "{}", err.message());
    }
    let err = diff(
        &app,
        pb::DiffRequest {
            commit1: "0000000000abcdef".into(),
            commit2: c.clone(),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound, "{}", err.message());
    let err = diff(
        &app,
        pb::DiffRequest {
            commit1: c.clone(),
            commit2: c,
            domain: "ospfv3".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    app.stop().await;
}

on_both_backends!(
    a_diff_of_a_known_change_has_its_exact_lines,
    binary_files_are_flagged_and_big_patches_truncated,
    malformed_commits_are_invalid_and_unknown_ones_not_found,
);
