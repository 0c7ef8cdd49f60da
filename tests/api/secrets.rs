//! Sealed secrets: RADIUS, Kea and Unbound secrets and private keys never leave the site
//! in clear (remote history, audit database, mail, logs, API answers), no published
//! hash lets a guess be checked, and yet every rollback and the manual unseal give the
//! original bytes back.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use config_backup_proto::v1 as pb;
use config_backup_server::auth::Role;
use config_backup_tests::smtp::SmtpServer;
use config_backup_tests::{Backend, TestEnv, token, wait_for, with_token};
use sha2::{Digest, Sha256};

use crate::process::{http_addr, sigterm, start_logged, wait_exit};

const BIN: &str = env!("CARGO_BIN_EXE_config-backup-server");

/// The sample site's RADIUS shared secrets.
const SAMPLE_SECRETS: [&str; 4] = [
    "sample-localhost-secret",
    "sample-bng01-secret-7f3a",
    "sample-bng02-secret-91c4",
    "sample-wlc-secret-52de",
];
const NEW_BNG01: &str = "bng01-rotated-secret-5c2e9a";
/// Held by two files: the Kea hosts database and Unbound's cachedb.
const SHARED: &str = "shared-db-password-81bd47";
const COOKIE: &str = "c00k1e5ecret0f0e1d2c3b4a59687";
const PEM_BODY: &str = "MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQC7cfgbackupTESTkeyMaterial";

const CLIENTS: &str = "config/radius/clients.conf";
const KEA: &str = "config/kea/kea-dhcp4.conf";
const UNBOUND: &str = "config/unbound/unbound.conf";
const KEY: &str = "config/radius/certs/server.key";

fn all_secrets() -> Vec<&'static str> {
    let mut s = SAMPLE_SECRETS.to_vec();
    s.extend([NEW_BNG01, SHARED, COOKIE, PEM_BODY]);
    s
}

/// Changes a RADIUS secret, adds a Kea database password and Unbound's cookie-secret and
/// cachedb password, and a private key file.
fn change_secrets(site: &Path) {
    let edit = |rel: &str, f: &dyn Fn(String) -> String| {
        let p = site.join(rel);
        std::fs::write(&p, f(std::fs::read_to_string(&p).unwrap())).unwrap();
    };
    edit(CLIENTS, &|t| t.replace("sample-bng01-secret-7f3a", NEW_BNG01));
    edit(KEA, &|t| {
        t.replacen(
            "\"Dhcp4\": {\n",
            &format!(
                "\"Dhcp4\": {{\n    \"hosts-database\": {{ \"type\": \"mysql\", \"name\": \"kea\", \"user\": \"kea\", \"password\": \"{SHARED}\" }},\n"
            ),
            1,
        )
    });
    edit(UNBOUND, &|t| {
        format!(
            "{}\ncachedb:\n    redis-server-password: \"{SHARED}\"\n",
            t.replacen("server:\n", &format!("server:\n    cookie-secret: \"{COOKIE}\"\n"), 1)
        )
    });
    std::fs::create_dir_all(site.join("config/radius/certs")).unwrap();
    std::fs::write(
        site.join(KEY),
        format!("-----BEGIN PRIVATE KEY-----\n{PEM_BODY}\n-----END PRIVATE KEY-----\n"),
    )
    .unwrap();
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git").arg("-C").arg(dir).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Everything the audit database holds, as bytes: the SQLite file and its WAL, or a
/// pg_dump of the PostgreSQL database.
fn audit_database(env: &TestEnv, backend: Backend) -> Vec<u8> {
    match backend {
        Backend::Sqlite => {
            let mut all = std::fs::read(env.dir.path().join("audit.db")).unwrap();
            if let Ok(wal) = std::fs::read(env.dir.path().join("audit.db-wal")) {
                all.extend(wal);
            }
            all
        }
        Backend::Postgres => {
            let out = Command::new("pg_dump")
                .args(["--data-only", "--dbname", &env.db.url])
                .output()
                .expect("pg_dump (postgresql-client, installed by the test command)");
            assert!(
                out.status.success(),
                "pg_dump: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            out.stdout
        }
    }
}

/// Whether `hex7` appears as a whole hexadecimal token (not inside a longer one).
fn has_hex_token(text: &str, hex7: &str) -> bool {
    text.match_indices(hex7).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + hex7.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_hexdigit()) && !after.is_some_and(|c| c.is_ascii_hexdigit())
    })
}

fn sealed_payloads(stored: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(stored);
    let mut out = Vec::new();
    for (i, _) in text.match_indices("ENC[v1,") {
        let body = &text[i + 7..i + 7 + text[i + 7..].find(']').unwrap()];
        let parts: Vec<&str> = body.splitn(3, ',').collect();
        out.push((parts[1].to_owned(), parts[2].to_owned()));
    }
    out
}

async fn rest(base: &str, method: &str, path: &str, role: Role) -> (u16, String) {
    let c = reqwest::Client::new();
    let req = if method == "POST" {
        c.post(format!("{base}{path}"))
    } else {
        c.get(format!("{base}{path}"))
    };
    let resp = req.bearer_auth(token(role)).send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

async fn wait_idle(client: &mut pb::config_backup_client::ConfigBackupClient<tonic::transport::Channel>) {
    wait_for("the first backup to finish", Duration::from_secs(60), || {
        let mut client = client.clone();
        async move {
            match client.status(with_token(pb::StatusRequest::default(), Role::Noc)).await {
                Ok(s) => {
                    let s = s.into_inner();
                    s.last_run.is_some() && s.running.is_empty()
                }
                Err(_) => false,
            }
        }
    })
    .await
}

/// Starts a rollback and follows its stream to the end; the last state.
async fn rollback_to_end(
    client: &mut pb::config_backup_client::ConfigBackupClient<tonic::transport::Channel>,
    request: pb::RollbackRequest,
) -> pb::RollbackTask {
    let start = client
        .rollback(with_token(request, Role::Admin))
        .await
        .unwrap()
        .into_inner();
    let task_id = start.task.unwrap().task_id;
    let mut stream = client
        .rollback_status(with_token(pb::RollbackStatusRequest { task_id }, Role::Admin))
        .await
        .unwrap()
        .into_inner();
    let mut last = None;
    while let Some(msg) = stream.message().await.unwrap() {
        last = msg.task;
    }
    last.unwrap()
}

async fn rollback_to_success(
    client: &mut pb::config_backup_client::ConfigBackupClient<tonic::transport::Channel>,
    commit: &str,
) {
    let last = rollback_to_end(
        client,
        pb::RollbackRequest {
            commit: commit.to_owned(),
            domain: "all".into(),
            reason: "secrets test".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(last.state, pb::RollbackState::Success as i32, "{last:?}");
}

async fn no_secret_reaches_the_remote_the_audit_trail_mail_logs_or_any_answer_and_restores_are_byte_exact(
    backend: Backend,
) {
    let mut env = TestEnv::new(backend).await;
    let smtp = SmtpServer::start(&env.dir.path().join("maildir"), false);
    env.vars.extend(smtp.vars());
    env.vars
        .insert("CONFIG_BACKUP_NOTIFY_INCLUDE_DIFF".into(), "true".into());
    env.vars.insert(
        "CONFIG_BACKUP_PATHS__radius".into(),
        "config/radius/radiusd.conf,config/radius/clients.conf,config/radius/dictionary,config/radius/certs/*".into(),
    );
    env.vars.insert(
        "RUST_LOG".into(),
        "info,config_backup_core=debug,config_backup_server=debug,config_backup_notify=debug".into(),
    );
    let vars: Vec<(String, String)> = env.lookup().into_iter().collect();
    let (mut child, addr, logs) = start_logged(&vars, &["serve"]);
    let api = format!("http://{}", http_addr(&logs));
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_lazy();
    let mut client = pb::config_backup_client::ConfigBackupClient::new(channel);
    wait_idle(&mut client).await; // the first backup, made at start
    let t1 = git(&env.remote(), &["rev-parse", "main"]).trim().to_owned();
    let site = env.site();
    let originals: BTreeMap<&str, Vec<u8>> = [CLIENTS, KEA, UNBOUND]
        .into_iter()
        .map(|p| (p, std::fs::read(site.join(p)).unwrap()))
        .collect();

    change_secrets(&site);
    let changed: BTreeMap<&str, Vec<u8>> = [CLIENTS, KEA, UNBOUND, KEY]
        .into_iter()
        .map(|p| (p, std::fs::read(site.join(p)).unwrap()))
        .collect();
    let mut answers = String::new();
    for _ in 0..2 {
        let r = client
            .backup(with_token(pb::BackupRequest::default(), Role::Admin))
            .await
            .unwrap()
            .into_inner();
        let report = r.report.unwrap();
        assert_eq!(report.outcome, pb::RunOutcome::Success as i32, "{report:?}");
        answers.push_str(&format!("{report:?}\n"));
    }
    let t3 = git(&env.remote(), &["rev-parse", "main"]).trim().to_owned();

    // A day with no change commits its parent's tree (no re-encryption churn).
    let remote = git2::Repository::open(env.remote()).unwrap();
    let mut c = remote.find_commit(git2::Oid::from_str(&t3).unwrap()).unwrap();
    for _ in 0..4 {
        let parent = c.parent(0).unwrap();
        assert_eq!(c.tree_id(), parent.tree_id(), "{:?} changed its tree", c.summary());
        c = parent;
    }
    let t2 = c.id().to_string();

    // Two files holding the same secret: different ciphertexts.
    let stored = |p: &str| config_backup_tests::stored(&env.remote(), "main", p);
    let kea_tokens = sealed_payloads(&stored(KEA));
    let unbound_tokens = sealed_payloads(&stored(UNBOUND));
    assert_eq!(kea_tokens.len(), 1, "{kea_tokens:?}");
    assert_eq!(unbound_tokens.len(), 2, "{unbound_tokens:?}");
    assert_eq!(kea_tokens[0].0, "/Dhcp4/hosts-database/password");
    assert!(unbound_tokens.iter().all(|(_, payload)| *payload != kea_tokens[0].1));
    assert!(String::from_utf8_lossy(&stored(KEY)).starts_with("-----BEGIN CONFIG-BACKUP SEALED FILE-----"));

    // Answers, for noc and admin: History, Diff (gRPC and REST), Status, a dry-run plan.
    for role in [Role::Noc, Role::Admin] {
        let h = client
            .history(with_token(
                pb::HistoryRequest {
                    include_unchanged: true,
                    page_size: 1000,
                    ..Default::default()
                },
                role,
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(h.entries.len() > 30);
        answers.push_str(&format!("{h:?}\n"));
        for (from, to) in [(&t1, &t3), (&t1, &t2)] {
            let d = client
                .diff(with_token(
                    pb::DiffRequest {
                        commit1: from.clone(),
                        commit2: to.clone(),
                        ..Default::default()
                    },
                    role,
                ))
                .await
                .unwrap()
                .into_inner();
            let clients = d
                .files
                .iter()
                .find(|f| f.path == CLIENTS)
                .expect("clients.conf changed");
            assert!(
                clients.patch.contains("-    secret = «secret changed»"),
                "{}",
                clients.patch
            );
            assert!(
                clients.patch.contains("+    secret = «secret changed»"),
                "{}",
                clients.patch
            );
            let key = d.files.iter().find(|f| f.path == KEY).expect("the key file was added");
            assert!(key.sealed && key.patch.is_empty(), "{key:?}");
            answers.push_str(&format!("{d:?}\n"));
        }
        for path in [
            format!("/api/v1/backups/config/diff?commit1={t1}&commit2={t3}&format=patch"),
            format!("/api/v1/backups/config/diff?commit1={t1}&commit2={t3}"),
            "/api/v1/backups/config/history?include_unchanged=true&page_size=1000".to_owned(),
            "/api/v1/backups/config/status".to_owned(),
        ] {
            let (status, body) = rest(&api, "GET", &path, role).await;
            assert_eq!(status, 200, "{path}: {body}");
            answers.push_str(&body);
        }
    }
    let (status, plan) = rest(
        &api,
        "POST",
        &format!("/api/v1/backups/config/rollback?commit={t1}&domain=all&dry_run=true"),
        Role::Admin,
    )
    .await;
    assert_eq!(status, 202, "{plan}");
    assert!(
        plan.contains("«secret changed»") && plan.contains("«secret removed»"),
        "{plan}"
    );
    answers.push_str(&plan);

    // The remote's whole history, the audit database, the mails, the logs.
    let history = git(&env.remote(), &["log", "-p", "--all", "--format=%H%n%B"]);
    let database = String::from_utf8_lossy(&audit_database(&env, backend)).into_owned();
    let mails = smtp.wait_for(3);
    let mut mail_text = String::new();
    for raw in &mails {
        let m = mail_parser::MessageParser::default().parse(raw).unwrap();
        mail_text.push_str(&String::from_utf8_lossy(raw));
        mail_text.push_str(&m.body_text(0).unwrap_or_default());
        mail_text.push_str(&m.body_html(0).unwrap_or_default());
    }
    assert!(mail_text.contains("«secret"), "the mails carry redacted patch lines");
    let log_text = || logs.lock().unwrap().join("\n");
    let corpora = [
        ("the remote's history", history.clone()),
        ("the audit database", database.clone()),
        ("the mails", mail_text.clone()),
        ("the server's logs", log_text()),
        ("the API answers", answers.clone()),
    ];
    for (name, text) in &corpora {
        for secret in all_secrets() {
            assert!(!text.contains(secret), "{secret} is in {name} in clear");
        }
    }
    // No published hash lets a guess be checked: the files with the right secrets, hashed
    // plainly, are nowhere.
    for (path, content) in &changed {
        let full = hex::encode(Sha256::digest(content));
        for (name, text) in &corpora {
            assert!(!text.contains(&full), "the plain SHA-256 of {path} is in {name}");
            assert!(
                !has_hex_token(text, &full[..7]),
                "the plain SHA-256 prefix {} of {path} is in {name}",
                &full[..7]
            );
        }
    }

    // reveal_secrets: refused for noc, works for admin, and is recorded.
    let reveal = pb::DiffRequest {
        commit1: t1.clone(),
        commit2: t3.clone(),
        domain: "radius".into(),
        reveal_secrets: true,
        ..Default::default()
    };
    let denied = client.diff(with_token(reveal.clone(), Role::Noc)).await.unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied, "{denied:?}");
    let (status, body) = rest(
        &api,
        "GET",
        &format!("/api/v1/backups/config/diff?commit1={t1}&commit2={t3}&reveal_secrets=true"),
        Role::Noc,
    )
    .await;
    assert_eq!(status, 403, "{body}");
    // The same Diff without reveal first: answers are kept, but never across the flag.
    let redacted = pb::DiffRequest {
        reveal_secrets: false,
        ..reveal.clone()
    };
    let hidden = client
        .diff(with_token(redacted.clone(), Role::Admin))
        .await
        .unwrap()
        .into_inner();
    let shown = client.diff(with_token(reveal, Role::Admin)).await.unwrap().into_inner();
    let hidden_again = client
        .diff(with_token(redacted, Role::Admin))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(hidden_again, hidden, "asked again, the same redacted answer");
    for secret in all_secrets() {
        assert!(!format!("{hidden:?}").contains(secret), "{secret} shown without reveal");
    }
    let clients = shown.files.iter().find(|f| f.path == CLIENTS).unwrap();
    assert!(
        clients.patch.contains(&format!("+    secret = {NEW_BNG01}")),
        "{}",
        clients.patch
    );
    assert!(
        clients.patch.contains("-    secret = sample-bng01-secret-7f3a"),
        "{}",
        clients.patch
    );
    let key = shown.files.iter().find(|f| f.path == KEY).unwrap();
    assert!(!key.sealed && key.patch.contains(PEM_BODY), "{key:?}");
    let reveals = reveal_rows(&env, backend).await;
    assert_eq!(
        reveals,
        vec![(config_backup_tests::ADMIN_SUB.to_owned(), t1.clone(), t3.clone())]
    );

    // A rollback to before the change restores every live file byte for byte ...
    rollback_to_success(&mut client, &t1).await;
    for (path, content) in &originals {
        assert_eq!(
            &std::fs::read(site.join(path)).unwrap(),
            content,
            "{path} after the rollback"
        );
    }
    // ... and one to after it puts back the changed files, the sealed key file included.
    rollback_to_success(&mut client, &t2).await;
    for (path, content) in &changed {
        assert_eq!(
            &std::fs::read(site.join(path)).unwrap(),
            content,
            "{path} after the second rollback"
        );
    }

    // The manual path: a plain checkout, unsealed with the key file.
    let checkout = env.dir.path().join("checkout");
    let out = Command::new("git")
        .args(["clone", "-q"])
        .arg(env.remote())
        .arg(&checkout)
        .output()
        .unwrap();
    assert!(out.status.success());
    git(&checkout, &["checkout", "-q", &t2]);
    let out = Command::new(BIN)
        .arg("unseal")
        .arg(&checkout)
        .env(
            "CONFIG_BACKUP_SECRETS_KEY_FILE",
            env.dir.path().join("data/secrets.key"),
        )
        .output()
        .unwrap();
    assert!(out.status.success(), "unseal: {}", String::from_utf8_lossy(&out.stderr));
    for entry in walkdir::WalkDir::new(&checkout).into_iter().filter_entry(|e| {
        let n = e.file_name().to_string_lossy();
        n != ".git" && n != ".config-backup"
    }) {
        let entry = entry.unwrap();
        if entry.file_type().is_file() {
            let rel = entry.path().strip_prefix(&checkout).unwrap();
            assert_eq!(
                std::fs::read(entry.path()).unwrap(),
                std::fs::read(site.join(rel)).unwrap(),
                "{} unsealed",
                rel.display()
            );
        }
    }

    // Nothing of the above wrote a secret into the logs either.
    let log_text = log_text();
    for secret in all_secrets() {
        assert!(!log_text.contains(secret), "{secret} is in the server's logs");
    }
    sigterm(&child);
    assert!(wait_exit(&mut child).success());
}

async fn reveal_rows(env: &TestEnv, backend: Backend) -> Vec<(String, String, String)> {
    use sqlx::Row;
    let sql = "SELECT revealed_by, commit1, commit2 FROM config_secret_reveals";
    let rows: Vec<(String, String, String)> = match backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&env.db.url).await.unwrap();
            sqlx::query(sql)
                .fetch_all(&pool)
                .await
                .unwrap()
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect()
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&env.db.url).await.unwrap();
            sqlx::query(sql)
                .fetch_all(&pool)
                .await
                .unwrap()
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect()
        }
    };
    rows
}

/// Puts a commit made by the previous release (secrets in clear, no sealing trailer) on
/// the remote.
fn legacy_commit(env: &TestEnv) -> String {
    let scratch = env.dir.path().join("legacy");
    let out = Command::new("git")
        .args(["clone", "-q"])
        .arg(env.remote())
        .arg(&scratch)
        .output()
        .unwrap();
    assert!(out.status.success());
    let clients = std::fs::read(env.site().join(CLIENTS)).unwrap();
    std::fs::create_dir_all(scratch.join("config/radius")).unwrap();
    std::fs::create_dir_all(scratch.join(".config-backup")).unwrap();
    std::fs::write(scratch.join(CLIENTS), &clients).unwrap();
    std::fs::write(
        scratch.join(".config-backup/radius.sha256"),
        format!("{}  {CLIENTS}\n", hex::encode(Sha256::digest(&clients))),
    )
    .unwrap();
    git(&scratch, &["add", "-A"]);
    git(
        &scratch,
        &[
            "-c",
            "user.name=Config Backup",
            "-c",
            "user.email=config-backup@rgz.local",
            "commit",
            "-q",
            "-m",
            &format!(
                "config backup 2026-11-30 {CLIENTS} 0000000→1234567\n\nConfig-Backup-Domain: radius\n\
                 Config-Backup-Run: {}\nConfig-Backup-By: system\n",
                uuid::Uuid::new_v4()
            ),
        ],
    );
    git(&scratch, &["push", "-q", "origin", "HEAD:main"]);
    git(&scratch, &["rev-parse", "HEAD"]).trim().to_owned()
}

async fn a_repository_with_secrets_in_clear_keeps_its_history_says_so_and_shows_no_clear_secret(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let legacy = legacy_commit(&env);
    let clients_path = env.site().join(CLIENTS);
    let text = std::fs::read_to_string(&clients_path).unwrap();
    std::fs::write(&clients_path, text.replace("sample-bng01-secret-7f3a", NEW_BNG01)).unwrap();
    let app = env.spawn().await;
    let notice = app.status().await.clear_secrets_notice;
    assert!(
        notice.contains(&legacy[..7]) && notice.contains("in clear"),
        "{notice:?}"
    );
    let report = app.backup().await;
    assert_eq!(report.outcome, pb::RunOutcome::Success as i32, "{report:?}");
    // History is never rewritten: the old commit is still there, in clear.
    let repo = git2::Repository::open(env.remote()).unwrap();
    assert!(repo.find_commit(git2::Oid::from_str(&legacy).unwrap()).is_ok());
    // The next backup sealed the current file.
    let stored = config_backup_tests::stored(&env.remote(), "main", CLIENTS);
    assert!(!String::from_utf8_lossy(&stored).contains("sample-bng01-secret-7f3a"));
    let radius = report.domains.iter().find(|d| d.domain == "radius").unwrap();
    assert_eq!(radius.files_modified, 1, "clients.conf is committed sealed: {radius:?}");
    // Readers see no clear secret, even from the old commit: it is sealed on the fly.
    let d = app
        .client()
        .diff(with_token(
            pb::DiffRequest {
                commit1: legacy.clone(),
                commit2: radius.commit_hash.clone(),
                ..Default::default()
            },
            Role::Noc,
        ))
        .await
        .unwrap()
        .into_inner();
    let clients = d.files.iter().find(|f| f.path == CLIENTS).unwrap();
    assert!(
        clients.patch.contains("-    secret = «secret changed»"),
        "{}",
        clients.patch
    );
    assert!(
        clients.patch.contains("+    secret = «secret changed»"),
        "{}",
        clients.patch
    );
    assert_eq!((clients.additions, clients.deletions), (1, 1), "{}", clients.patch);
    for secret in SAMPLE_SECRETS.into_iter().chain([NEW_BNG01]) {
        assert!(!clients.patch.contains(secret), "{}", clients.patch);
    }
    let h = app
        .client()
        .history(with_token(pb::HistoryRequest::default(), Role::Noc))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(h.clear_secrets_notice, notice);
    app.stop().await;
}

async fn a_lost_secrets_key_stops_the_server_saying_how_to_recover(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let app = env.spawn().await;
    app.backup().await;
    app.stop().await;
    // The key file is gone (a wiped data directory): a new key is generated, and it
    // cannot open the repository: the server refuses to serve.
    let key = env.dir.path().join("data/secrets.key");
    std::fs::remove_file(&key).unwrap();
    let vars = env.lookup();
    let settings = config_backup_server::ServerSettings::from_env(&vars.clone().into_iter().collect()).unwrap();
    let app = config_backup_server::Application::build(settings).await.unwrap();
    let err = app.engine().prepare().await.unwrap_err().to_string();
    assert!(err.contains("restore the key file from its backup"), "{err}");
    assert!(err.contains("sealed with secrets key"), "{err}");
    // A key file named in the environment is never generated: missing, the server stops.
    let mut vars = env.lookup();
    vars.insert(
        "CONFIG_BACKUP_SECRETS_KEY_FILE".into(),
        env.dir.path().join("nowhere.key").display().to_string(),
    );
    let settings = config_backup_server::ServerSettings::from_env(&vars.clone().into_iter().collect()).unwrap();
    let err = match config_backup_server::Application::build(settings).await {
        Ok(_) => panic!("a missing key file must stop the server"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("CONFIG_BACKUP_SECRETS_KEY_FILE"), "{err}");
    // A bad rule stops it too, naming the variable.
    let mut vars = env.lookup();
    vars.insert("CONFIG_BACKUP_SECRETS__radius".into(), "regex:(a)(b)".into());
    let e = match config_backup_server::ServerSettings::from_env(&vars.clone().into_iter().collect()) {
        Ok(_) => panic!("a bad rule must be refused"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("CONFIG_BACKUP_SECRETS__radius"), "{e}");
}

async fn a_rotated_key_reseals_every_secret_and_older_commits_still_roll_back(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let app = env.spawn().await;
    let first = app.backup().await;
    let before = config_backup_tests::stored(&env.remote(), "main", CLIENTS);
    app.stop().await;
    let key = env.dir.path().join("data/secrets.key");
    let out = Command::new(BIN)
        .arg("rotate-secrets-key")
        .env("CONFIG_BACKUP_SECRETS_KEY_FILE", &key)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let app = env.spawn().await;
    let report = app.backup().await;
    let radius = report.domains.iter().find(|d| d.domain == "radius").unwrap();
    assert_eq!(radius.files_modified, 1, "the re-seal commit: {radius:?}");
    let after = config_backup_tests::stored(&env.remote(), "main", CLIENTS);
    assert_ne!(before, after);
    let d = app
        .client()
        .diff(with_token(
            pb::DiffRequest {
                commit1: radius.previous_hash.clone(),
                commit2: radius.commit_hash.clone(),
                ..Default::default()
            },
            Role::Noc,
        ))
        .await
        .unwrap()
        .into_inner();
    let patch = &d.files[0].patch;
    assert!(
        patch.contains("«secret unchanged»") && !patch.contains("«secret changed»"),
        "{patch}"
    );
    // A commit sealed with the old key still rolls back, byte for byte.
    std::fs::write(env.site().join(CLIENTS), "client x {\n    secret = other\n}\n").unwrap();
    let original = std::fs::read(config_backup_tests::sample_site().join(CLIENTS)).unwrap();
    let target = &first.domains.last().unwrap().commit_hash;
    let mut client = app.client();
    rollback_to_success(&mut client, target).await;
    assert_eq!(std::fs::read(env.site().join(CLIENTS)).unwrap(), original);
    app.stop().await;
}

async fn the_validation_command_sees_the_real_files_in_a_private_directory_and_its_output_is_scrubbed(
    backend: Backend,
) {
    let mut env = TestEnv::new(backend).await;
    let marker = env.dir.path().join("validated");
    env.vars.insert(
        "CONFIG_ROLLBACK_VALIDATE__radius".into(),
        format!(
            "test \"$(stat -c %a {{dir}})\" = 700 && grep 'secret = sample-bng01-secret-7f3a' {{dir}}/{CLIENTS} \
             && echo {{dir}} > {}",
            marker.display()
        ),
    );
    let app = env.spawn().await;
    let first = app.backup().await;
    let target = first
        .domains
        .iter()
        .find(|d| d.domain == "radius")
        .unwrap()
        .commit_hash
        .clone();
    let clients = env.site().join(CLIENTS);
    let text = std::fs::read_to_string(&clients).unwrap();
    std::fs::write(&clients, text.replace("sample-bng01-secret-7f3a", NEW_BNG01)).unwrap();
    app.backup().await;
    let last = rollback_to_end(
        &mut app.client(),
        pb::RollbackRequest {
            commit: target,
            reason: "validate sees plaintext".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(last.state, pb::RollbackState::Success as i32, "{last:?}");
    let staged = std::fs::read_to_string(&marker).expect("the validation command ran and passed");
    assert!(
        !Path::new(staged.trim()).exists(),
        "the staging directory {staged} was removed"
    );
    // The command printed the line it found: the recorded output has the secret scrubbed.
    let validating = &last.stages[0];
    assert!(validating.output.contains("secret = «secret»"), "{validating:?}");
    assert!(!format!("{last:?}").contains("sample-bng01-secret-7f3a"), "{last:?}");
    assert!(
        std::fs::read_to_string(&clients)
            .unwrap()
            .contains("sample-bng01-secret-7f3a")
    );
    app.stop().await;
}

on_both_backends!(
    the_validation_command_sees_the_real_files_in_a_private_directory_and_its_output_is_scrubbed,
    no_secret_reaches_the_remote_the_audit_trail_mail_logs_or_any_answer_and_restores_are_byte_exact,
    a_repository_with_secrets_in_clear_keeps_its_history_says_so_and_shows_no_clear_secret,
    a_lost_secrets_key_stops_the_server_saying_how_to_recover,
    a_rotated_key_reseals_every_secret_and_older_commits_still_roll_back,
);
