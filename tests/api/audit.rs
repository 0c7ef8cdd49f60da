//! The audit trail's schema: `config_git_backups` is a view with exactly the spec's
//! columns, an existing database is migrated in place without losing a row, storage
//! follows changes, and retention keeps every younger row as it was.

use chrono::{DateTime, Duration, Months, NaiveDate, Utc};
use config_backup_core::Domain;
use config_backup_core::domain::ChangeKind;
use config_backup_core::store::{self, AuditRow, HistoryQuery};
use config_backup_tests::{Backend, TestDatabase, TestEnv};
use uuid::Uuid;

/// A row of the view, as the spec names its columns.
type SpecRow = (
    Uuid,
    NaiveDate,
    String,
    String,
    String,
    String,
    bool,
    Option<String>,
    DateTime<Utc>,
    String,
);

/// (commit, file, change type, hash after, hash before).
type FileState = (String, String, String, Option<String>, Option<String>);

const SPEC_SELECT: &str = "SELECT id, backup_date, domain, config_file, commit_hash, commit_message, changes_made, \
     previous_hash, backed_up_at, backed_up_by FROM config_git_backups";

/// Runs `$body` with `$pool` bound to a pool of the test database's backend.
macro_rules! with_pool {
    ($db:expr, |$pool:ident| $body:expr) => {
        if $db.url.starts_with("postgres") {
            let $pool = sqlx::PgPool::connect(&$db.url).await.unwrap();
            $body
        } else {
            let $pool = sqlx::SqlitePool::connect(&$db.url).await.unwrap();
            $body
        }
    };
}

async fn spec_rows(db: &TestDatabase, filter: &str) -> Vec<SpecRow> {
    let mut rows: Vec<SpecRow> = with_pool!(db, |pool| {
        sqlx::query_as(&format!("{SPEC_SELECT} {filter}"))
            .fetch_all(&pool)
            .await
            .unwrap()
    });
    rows.sort_by(|a, b| (a.8, &a.4, &a.3).cmp(&(b.8, &b.4, &b.3)));
    rows
}

async fn execute(db: &TestDatabase, sql: &str) {
    with_pool!(db, |pool| {
        sqlx::query(sql).execute(&pool).await.unwrap();
    })
}

async fn count(db: &TestDatabase, sql: &str) -> i64 {
    with_pool!(db, |pool| sqlx::query_scalar::<_, i64>(sql)
        .fetch_one(&pool)
        .await
        .unwrap())
}

async fn the_view_has_exactly_the_spec_columns_and_types(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let app = env.spawn().await;
    app.backup().await;
    let expected = [
        "id",
        "backup_date",
        "domain",
        "config_file",
        "commit_hash",
        "commit_message",
        "changes_made",
        "previous_hash",
        "backed_up_at",
        "backed_up_by",
    ];
    match backend {
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&env.db.url).await.unwrap();
            let kind: String = sqlx::query_scalar(
                "SELECT table_type::text FROM information_schema.tables WHERE table_name = 'config_git_backups'",
            )
            .fetch_one(&pool)
            .await
            .unwrap();
            assert_eq!(kind, "VIEW");
            let cols: Vec<(String, String)> = sqlx::query_as(
                "SELECT column_name::text, data_type::text FROM information_schema.columns \
                 WHERE table_name = 'config_git_backups' ORDER BY ordinal_position",
            )
            .fetch_all(&pool)
            .await
            .unwrap();
            let types = [
                "uuid",
                "date",
                "text",
                "text",
                "text",
                "text",
                "boolean",
                "text",
                "timestamp with time zone",
                "text",
            ];
            let want: Vec<(String, String)> = expected
                .iter()
                .zip(types)
                .map(|(c, t)| (c.to_string(), t.to_string()))
                .collect();
            assert_eq!(cols, want);
        }
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&env.db.url).await.unwrap();
            let kind: String = sqlx::query_scalar("SELECT type FROM sqlite_master WHERE name = 'config_git_backups'")
                .fetch_one(&pool)
                .await
                .unwrap();
            assert_eq!(kind, "view");
            let cols: Vec<String> = sqlx::query_scalar("SELECT name FROM pragma_table_info('config_git_backups')")
                .fetch_all(&pool)
                .await
                .unwrap();
            assert_eq!(cols, expected);
            // SQLite stores values, not column types: every row's values are of the kinds
            // sqlx writes for the spec's types (a 16-byte UUID, RFC 3339 text, 0 or 1).
            let bad: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM config_git_backups WHERE typeof(id) <> 'blob' OR length(id) <> 16 \
                 OR typeof(backup_date) <> 'text' OR typeof(changes_made) <> 'integer' OR changes_made NOT IN (0, 1) \
                 OR typeof(backed_up_at) <> 'text' OR typeof(domain) <> 'text' OR typeof(config_file) <> 'text'",
            )
            .fetch_one(&pool)
            .await
            .unwrap();
            assert_eq!(bad, 0);
        }
    }
    // And every row decodes as the spec's types.
    let rows = spec_rows(&env.db, "").await;
    assert_eq!(rows.len(), 10, "the sample site has 10 files");
    assert!(rows.iter().all(|r| r.6), "a first backup adds every file");
    let ids: std::collections::HashSet<Uuid> = rows.iter().map(|r| r.0).collect();
    assert_eq!(ids.len(), rows.len(), "ids are unique");
    app.stop().await;
}

/// The spec view through the distribution's own SQLite (Debian 12: 3.40, before
/// `unhex()`): the `sqlite3` CLI and Python's `sqlite3` module read every row, with the
/// ids the engine (its bundled SQLite) and History give them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_view_reads_the_same_with_the_distributions_sqlite3_cli_and_python() {
    let env = TestEnv::new(Backend::Sqlite).await;
    let app = env.spawn().await;
    app.backup().await;
    std::fs::write(env.site().join("config/kea/kea-dhcp4.conf"), "{ \"Dhcp4\": {} }\n").unwrap();
    app.backup().await;
    app.backup().await;
    app.stop().await;
    let query = "SELECT lower(hex(id)), config_file, commit_hash, changes_made FROM config_git_backups \
                 ORDER BY commit_hash, config_file";
    let pool = sqlx::SqlitePool::connect(&env.db.url).await.unwrap();
    let engine: Vec<(String, String, String, i64)> = sqlx::query_as(query).fetch_all(&pool).await.unwrap();
    assert_eq!(engine.len(), 30, "10 files in each of 3 runs");
    assert!(
        engine.iter().filter(|r| r.3 == 0).count() >= 19,
        "carried rows are in the view"
    );
    let as_text = |rows: &[(String, String, String, i64)]| {
        rows.iter()
            .map(|(id, f, c, m)| format!("{id}|{f}|{c}|{m}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let db = env.dir.path().join("audit.db");
    let cli = std::process::Command::new("sqlite3")
        .arg("-readonly")
        .arg(&db)
        .arg(query)
        .output()
        .expect("the sqlite3 CLI runs (the test command installs Debian's sqlite3)");
    assert!(
        cli.status.success(),
        "sqlite3: {}",
        String::from_utf8_lossy(&cli.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&cli.stdout).trim(), as_text(&engine));
    let python = std::process::Command::new("python3")
        .arg("-c")
        .arg(format!(
            "import sqlite3, sys\n\
             c = sqlite3.connect(sys.argv[1])\n\
             print(sqlite3.sqlite_version, file=sys.stderr)\n\
             for r in c.execute({query:?}): print('|'.join(str(x) for x in r))"
        ))
        .arg(&db)
        .output()
        .unwrap();
    assert!(
        python.status.success(),
        "python3: {}",
        String::from_utf8_lossy(&python.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&python.stdout).trim(), as_text(&engine));
    // History's ids (the engine's own derivation) are the view's.
    let store = store::connect(&env.db.url, store::DEFAULT_SITE).await.unwrap();
    let history = store
        .history(&HistoryQuery {
            include_unchanged: true,
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(history.len(), 30);
    let view_ids: std::collections::BTreeSet<String> = engine.iter().map(|r| r.0.clone()).collect();
    for row in &history {
        assert!(
            view_ids.contains(&row.id.simple().to_string()),
            "History's {} is not in the view",
            row.id
        );
    }
}

async fn a_no_change_run_stores_one_row_per_commit_and_the_view_still_lists_every_file(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let app = env.spawn().await;
    app.backup().await;
    let files_before = count(&env.db, "SELECT COUNT(*) FROM config_file_changes").await;
    let before = spec_rows(&env.db, "").await;
    for _ in 0..3 {
        app.backup().await;
    }
    assert_eq!(
        count(&env.db, "SELECT COUNT(*) FROM config_file_changes").await,
        files_before,
        "no-change runs store no file row"
    );
    assert_eq!(count(&env.db, "SELECT COUNT(*) FROM config_commits").await, 16);
    let after = spec_rows(&env.db, "").await;
    assert_eq!(after.len(), 40, "the view lists 10 files in each of 4 runs");
    let seen: std::collections::HashSet<&SpecRow> = after.iter().collect();
    assert!(
        before.iter().all(|r| seen.contains(r)),
        "earlier rows are unchanged, ids included"
    );
    assert_eq!(
        after.iter().filter(|r| !r.6).count(),
        30,
        "three no-change runs of 10 files"
    );
    // Stable ids: the same query twice gives the same ids, and History reads the very
    // rows of the view.
    assert_eq!(spec_rows(&env.db, "").await, after);
    let history = app
        .engine
        .store()
        .history(&HistoryQuery {
            include_unchanged: true,
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut history_ids: Vec<Uuid> = history.iter().map(|r| r.id).collect();
    let mut view_ids: Vec<Uuid> = after.iter().map(|r| r.0).collect();
    history_ids.sort();
    view_ids.sort();
    assert_eq!(history_ids, view_ids);
    // A change stores one row.
    std::fs::write(env.site().join("config/kea/kea-dhcp4.conf"), "{ \"Dhcp4\": {} }\n").unwrap();
    app.backup().await;
    assert_eq!(
        count(&env.db, "SELECT COUNT(*) FROM config_file_changes").await,
        files_before + 1
    );
    app.stop().await;
}

/// An old-schema row, as the previous release wrote it.
#[derive(Clone)]
struct OldRow {
    id: Uuid,
    domain: &'static str,
    file: String,
    commit: String,
    parent: Option<String>,
    kind: &'static str,
    sha: Option<String>,
    prev_sha: Option<String>,
    at: DateTime<Utc>,
}

/// A trail with every case the migration must carry: first backups, no-change days,
/// modifications, deletions and re-additions, a trail that starts on an existing
/// repository (unchanged rows with no earlier row), a file that vanishes without a
/// deletion row, and two domains interleaved.
fn old_trail() -> Vec<OldRow> {
    let start = Utc::now() - Duration::days(40);
    let mut rows = Vec::new();
    let mut shas: std::collections::BTreeMap<(&str, String), String> = Default::default();
    let mut parent: std::collections::HashMap<&str, String> = Default::default();
    let plan: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("kea", vec![("a", "added"), ("b", "added"), ("c", "added")]),
        // The dns trail starts on an existing repository: its first rows are unchanged.
        ("dns", vec![("x", "unchanged"), ("y", "unchanged")]),
        ("kea", vec![]),
        ("dns", vec![("y", "modified")]),
        ("kea", vec![("b", "modified")]),
        ("kea", vec![("c", "deleted")]),
        ("dns", vec![("z", "added")]),
        ("kea", vec![("c", "added"), ("d", "added")]),
        // x vanishes from dns without a deletion row (a gap), and comes back later.
        ("dns", vec![("x", "gone")]),
        ("kea", vec![]),
        ("dns", vec![("x", "added")]),
        ("kea", vec![("a", "modified"), ("d", "deleted")]),
    ];
    for (day, (domain, changes)) in plan.into_iter().enumerate() {
        let at = start + Duration::days(day as i64) + Duration::microseconds(123_456);
        let commit = format!("{:040x}", day + 1);
        for (file, kind) in &changes {
            let key = (domain, file.to_string());
            match *kind {
                "deleted" | "gone" => {
                    shas.remove(&key);
                }
                _ => {
                    shas.insert(
                        key,
                        format!("{:064x}", day * 100 + file.len() + file.as_bytes()[0] as usize),
                    );
                }
            }
        }
        let old: std::collections::BTreeMap<_, _> = shas.clone();
        let mut files: Vec<String> = shas
            .keys()
            .filter(|(d, _)| *d == domain)
            .map(|(_, f)| f.clone())
            .collect();
        for (file, kind) in &changes {
            if *kind == "deleted" {
                files.push(file.to_string());
            }
        }
        files.sort();
        for file in files {
            let kind = changes
                .iter()
                .find(|(f, _)| *f == file)
                .map(|(_, k)| *k)
                .filter(|k| *k != "unchanged")
                .unwrap_or("unchanged");
            let sha = old.get(&(domain, file.clone())).cloned();
            rows.push(OldRow {
                id: Uuid::now_v7(),
                domain,
                file: file.clone(),
                commit: commit.clone(),
                parent: parent.get(domain).cloned(),
                kind,
                prev_sha: if kind == "added" { None } else { sha.clone() },
                sha: if kind == "deleted" { None } else { sha },
                at,
            });
        }
        parent.insert(domain, commit);
    }
    rows
}

async fn an_existing_database_is_migrated_in_place_and_loses_nothing(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDatabase::create(backend, dir.path()).await;
    let trail = old_trail();
    let before: Vec<SpecRow> = with_pool!(db, |pool| {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(if backend == Backend::Postgres {
            "../../migrations/postgres"
        } else {
            "../../migrations/sqlite"
        });
        let mut previous = sqlx::migrate::Migrator::new(dir).await.unwrap();
        previous.migrations = previous
            .migrations
            .iter()
            .filter(|m| m.version < 20261201000007)
            .cloned()
            .collect::<Vec<_>>()
            .into();
        previous.run(&pool).await.unwrap();
        for r in &trail {
            sqlx::query(
                "INSERT INTO config_git_backups (id, run_id, backup_date, domain, config_file, commit_hash, \
                 commit_message, changes_made, change_type, previous_hash, file_sha256, previous_file_sha256, \
                 backed_up_at, backed_up_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
            )
            .bind(r.id)
            .bind(None::<Uuid>)
            .bind(r.at.date_naive())
            .bind(r.domain)
            .bind(&r.file)
            .bind(&r.commit)
            .bind(format!("config backup {} {}", r.domain, r.at.date_naive()))
            .bind(r.kind != "unchanged")
            .bind(r.kind)
            .bind(&r.parent)
            .bind(&r.sha)
            .bind(&r.prev_sha)
            .bind(r.at)
            .bind("system")
            .execute(&pool)
            .await
            .unwrap();
        }
        sqlx::query_as(SPEC_SELECT).fetch_all(&pool).await.unwrap()
    });
    assert_eq!(before.len(), trail.len());
    let mut before = before;
    before.sort_by(|a, b| (a.8, &a.4, &a.3).cmp(&(b.8, &b.4, &b.3)));

    // The release's connect applies the new migration to the existing database.
    let store = store::connect(&db.url, store::DEFAULT_SITE).await.unwrap();
    let after = spec_rows(&db, "").await;
    assert_eq!(
        after, before,
        "every row of the old table, ids included, is a row of the view"
    );
    let stored = count(&db, "SELECT COUNT(*) FROM config_file_changes").await;
    let changed = trail.iter().filter(|r| r.kind != "unchanged").count() as i64;
    assert!(
        stored <= changed + 3,
        "{stored} file rows stored for {changed} changes (plus the anchors of x, y and x again)"
    );

    // History reads the same rows, with the hashes of unchanged files.
    let rows = store
        .history(&HistoryQuery {
            include_unchanged: true,
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut got: Vec<FileState> = rows
        .iter()
        .map(|r| {
            (
                r.commit_hash.clone(),
                r.config_file.clone(),
                r.change_type.as_str().to_owned(),
                r.file_sha256.clone(),
                r.previous_file_sha256.clone(),
            )
        })
        .collect();
    let mut want: Vec<FileState> = trail
        .iter()
        .map(|r| {
            (
                r.commit.clone(),
                r.file.clone(),
                r.kind.to_owned(),
                r.sha.clone(),
                r.prev_sha.clone(),
            )
        })
        .collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);

    // The next commit continues the migrated trail: kea's b is modified, the rest carried.
    let next = Utc::now();
    let live = ["a", "b", "c"];
    let rows: Vec<AuditRow> = live
        .iter()
        .map(|f| {
            let prev = trail.iter().rev().find(|r| r.domain == "kea" && r.file == *f).unwrap();
            let kind = if *f == "b" {
                ChangeKind::Modified
            } else {
                ChangeKind::Unchanged
            };
            AuditRow {
                id: Uuid::now_v7(),
                seq: 0,
                run_id: None,
                backup_date: next.date_naive(),
                domain: Domain::Kea,
                config_file: f.to_string(),
                commit_hash: "f".repeat(40),
                commit_message: "config backup kea".into(),
                changes_made: kind != ChangeKind::Unchanged,
                change_type: kind,
                previous_hash: Some(format!("{:040x}", 12)),
                file_sha256: if *f == "b" {
                    Some("9".repeat(64))
                } else {
                    prev.sha.clone()
                },
                previous_file_sha256: prev.sha.clone(),
                file_meta: None,
                previous_file_meta: None,
                change_summary: None,
                change_detail: None,
                backed_up_at: next,
                backed_up_by: "system".into(),
            }
        })
        .collect();
    store.insert_audit_rows(&rows).await.unwrap();
    let stored_after = count(&db, "SELECT COUNT(*) FROM config_file_changes").await;
    assert_eq!(stored_after, stored + 1, "one modification, one stored row");
    let newest = spec_rows(&db, &format!("WHERE commit_hash = '{}'", "f".repeat(40))).await;
    let files: Vec<(&str, bool)> = newest.iter().map(|r| (r.3.as_str(), r.6)).collect();
    assert_eq!(files, [("a", false), ("b", true), ("c", false)]);
}

fn row_at(at: DateTime<Utc>, commit: &str, file: &str, kind: ChangeKind) -> AuditRow {
    AuditRow {
        id: Uuid::now_v7(),
        seq: 0,
        run_id: None,
        backup_date: at.date_naive(),
        domain: Domain::Kea,
        config_file: file.into(),
        commit_hash: commit.into(),
        commit_message: format!("config backup {commit}"),
        changes_made: kind != ChangeKind::Unchanged,
        change_type: kind,
        previous_hash: None,
        file_sha256: Some(format!("{:064}", file.len())),
        previous_file_sha256: None,
        file_meta: None,
        previous_file_meta: None,
        change_summary: None,
        change_detail: None,
        backed_up_at: at,
        backed_up_by: "system".into(),
    }
}

async fn retention_keeps_every_younger_row_as_it_was_and_drops_whole_months(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDatabase::create(backend, dir.path()).await;
    let store = store::connect(&db.url, store::DEFAULT_SITE).await.unwrap();
    let now = Utc::now();
    let cutoff = now.checked_sub_months(Months::new(24)).unwrap();
    // A commit every 20 days from 30 months ago: "keep" was added in the first one and
    // never changed, "edit" changes in every one, "late" arrives after the cutoff.
    let mut at = now.checked_sub_months(Months::new(30)).unwrap();
    let mut n = 0;
    let mut late_added = false;
    // History's pages are kept while the trail's generation stands still: every write to
    // the trail moves it, a lock (a write to another table) does not.
    let trail = store.trail_generation();
    let lock = store::LockHolder {
        kind: store::LockKind::Backup,
        id: Uuid::new_v4(),
        host: "here".into(),
        pid: 1,
        instance: "test".into(),
        acquired_at: now,
    };
    let writes = store.write_generation();
    store.try_lock(&lock, std::time::Duration::from_secs(60)).await.unwrap();
    assert!(store.write_generation() > writes, "a lock is a write");
    assert_eq!(store.trail_generation(), trail, "a lock changes no History row");
    while at < now {
        n += 1;
        let commit = format!("{n:040x}");
        let mut rows = vec![
            row_at(
                at,
                &commit,
                "edit",
                if n == 1 {
                    ChangeKind::Added
                } else {
                    ChangeKind::Modified
                },
            ),
            row_at(
                at,
                &commit,
                "keep",
                if n == 1 {
                    ChangeKind::Added
                } else {
                    ChangeKind::Unchanged
                },
            ),
        ];
        rows[0].file_sha256 = Some(format!("{n:064}"));
        if at >= cutoff + Duration::days(30) {
            let kind = if late_added {
                ChangeKind::Unchanged
            } else {
                ChangeKind::Added
            };
            rows.push(row_at(at, &commit, "late", kind));
            late_added = true;
        }
        store.insert_audit_rows(&rows).await.unwrap();
        at += Duration::days(20);
    }
    let all = spec_rows(&db, "").await;
    let young: Vec<SpecRow> = all.iter().filter(|r| r.8 >= cutoff).cloned().collect();
    assert!(young.len() < all.len() && !young.is_empty());

    let key = config_backup_tests::signing_key(dir.path(), 0o600);
    let signer = config_backup_core::signing::Signer::load(&key).unwrap();
    let before = store.verify_audit_chain(Some(&signer)).await.unwrap();
    assert!(before.problems.is_empty() && before.checkpoint.is_none(), "{before:?}");
    let recorded = store.trail_generation();
    assert!(recorded > trail, "recording moves the trail's generation");
    let removed = store.delete_audit_rows_before(cutoff, Some(&signer)).await.unwrap();
    assert!(removed > 0);
    assert!(store.trail_generation() > recorded, "retention moves it too");
    // The pruned prefix of the chain became a checkpoint, signed: what is kept still
    // verifies, and the checkpoint is proven the service's.
    let after = store.verify_audit_chain(Some(&signer)).await.unwrap();
    assert!(after.problems.is_empty() && after.notes.is_empty(), "{after:?}");
    assert!(after.checkpoint.is_some() && after.head == before.head, "{after:?}");
    let unchecked = store.verify_audit_chain(None).await.unwrap();
    assert!(
        unchecked
            .notes
            .iter()
            .any(|n| n.contains("signed, but no signing key is set")),
        "{unchecked:?}"
    );
    // A checkpoint edited afterwards (here: the range it says was pruned) no longer
    // matches its signature; nor does another key's.
    execute(
        &db,
        "UPDATE config_audit_chain SET detail = detail || ' (edited)' WHERE kind = 'checkpoint'",
    )
    .await;
    let edited = store.verify_audit_chain(Some(&signer)).await.unwrap();
    assert!(
        edited
            .problems
            .iter()
            .any(|p| p.contains("the checkpoint's signature does not hold")),
        "{edited:?}"
    );
    execute(
        &db,
        "UPDATE config_audit_chain SET detail = replace(detail, ' (edited)', '') WHERE kind = 'checkpoint'",
    )
    .await;
    let other_dir = tempfile::tempdir().unwrap();
    let other =
        config_backup_core::signing::Signer::load(&config_backup_tests::signing_key(other_dir.path(), 0o600)).unwrap();
    let foreign = store.verify_audit_chain(Some(&other)).await.unwrap();
    assert_eq!(foreign.problems.len(), 1, "{foreign:?}");
    assert!(
        store
            .verify_audit_chain(Some(&signer))
            .await
            .unwrap()
            .problems
            .is_empty()
    );
    let left = spec_rows(&db, "").await;
    assert_eq!(
        left, young,
        "every row younger than the limit is kept as it was, ids included"
    );
    assert!(
        left.iter().any(|r| r.3 == "keep" && !r.6),
        "a file unchanged since before the cutoff still shows in every kept commit"
    );

    if backend == Backend::Postgres {
        let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
        let parts: Vec<String> = sqlx::query_scalar(
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
             JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'config_file_changes' ORDER BY 1",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        let boundary = cutoff.format("%Y%m").to_string();
        assert!(
            parts.iter().all(|p| p.rsplit('_').next().unwrap() >= boundary.as_str()),
            "months before the cutoff's are dropped: {parts:?}"
        );
        let oldest = now
            .checked_sub_months(Months::new(30))
            .unwrap()
            .format("%Y%m")
            .to_string();
        assert!(!parts.iter().any(|p| p.ends_with(&oldest)), "{parts:?}");
        assert!(
            parts.iter().any(|p| p.ends_with(&boundary)),
            "the cutoff's month is kept: {parts:?}"
        );
    }
}

/// Retention is database-wide: site A's server prunes site B's trail too and leaves B's
/// checkpoint unsigned (it holds A's key, not B's); B's own server signs it at its next
/// retention, once it checked it, and B's chain then verifies signed.
async fn a_checkpoint_another_sites_retention_made_is_signed_by_the_sites_own_server(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDatabase::create(backend, dir.path()).await;
    let a = store::connect(&db.url, store::DEFAULT_SITE).await.unwrap();
    let b = a.for_site("site-b");
    let now = Utc::now();
    let cutoff = now.checked_sub_months(Months::new(24)).unwrap();
    for (store, tag) in [(&a, "a"), (&b, "b")] {
        let mut at = now.checked_sub_months(Months::new(26)).unwrap();
        let mut n = 0;
        while at < now {
            n += 1;
            let commit = format!("{tag}{n:039x}");
            let kind = if n == 1 {
                ChangeKind::Added
            } else {
                ChangeKind::Modified
            };
            let mut row = row_at(at, &commit, "edit", kind);
            row.file_sha256 = Some(format!("{n:064}"));
            store.insert_audit_rows(&[row]).await.unwrap();
            at += Duration::days(30);
        }
    }
    let keys = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(keys.path().join("a")).unwrap();
    std::fs::create_dir_all(keys.path().join("b")).unwrap();
    let key_a =
        config_backup_core::signing::Signer::load(&config_backup_tests::signing_key(&keys.path().join("a"), 0o600))
            .unwrap();
    let key_b =
        config_backup_core::signing::Signer::load(&config_backup_tests::signing_key(&keys.path().join("b"), 0o600))
            .unwrap();
    assert!(a.delete_audit_rows_before(cutoff, Some(&key_a)).await.unwrap() > 0);
    let mine = a.verify_audit_chain(Some(&key_a)).await.unwrap();
    assert!(
        mine.problems.is_empty() && mine.notes.is_empty() && mine.checkpoint.is_some(),
        "{mine:?}"
    );
    let theirs = b.verify_audit_chain(Some(&key_b)).await.unwrap();
    assert!(theirs.problems.is_empty() && theirs.checkpoint.is_some(), "{theirs:?}");
    assert!(
        theirs.notes.iter().any(|n| n.contains("the checkpoint is not signed")),
        "{theirs:?}"
    );
    // B's server's next retention (nothing left to prune) signs B's checkpoint.
    b.delete_audit_rows_before(cutoff, Some(&key_b)).await.unwrap();
    let signed = b.verify_audit_chain(Some(&key_b)).await.unwrap();
    assert!(signed.problems.is_empty() && signed.notes.is_empty(), "{signed:?}");
    // ... with B's key: A's does not verify it.
    assert_eq!(b.verify_audit_chain(Some(&key_a)).await.unwrap().problems.len(), 1);
}

/// A first backup whose commits hold more rows than one audit batch (8,192) is recorded
/// over several transactions, a domain's commit never split: every file has its row, and
/// the hash chain links every commit.
async fn a_first_backup_larger_than_an_audit_batch_records_every_file_and_a_whole_chain(backend: Backend) {
    let env = TestEnv::new(backend).await;
    // dns alone passes the batch's rows: gateway and dns make the first batch, radius and
    // kea the second.
    env.add_zone_files(9000);
    let app = env.spawn().await;
    let report = app.backup().await;
    let files: u64 = report.domains.iter().map(|d| d.files_added as u64).sum();
    assert!(files > 9000, "{files} files added");
    assert_eq!(
        count(&env.db, "SELECT COUNT(*) FROM config_file_changes").await as u64,
        files,
        "one row per file"
    );
    assert_eq!(count(&env.db, "SELECT COUNT(*) FROM config_commits").await, 4);
    let chain = app.engine.verify_audit_chain().await.unwrap();
    assert!(chain.problems.is_empty(), "{chain:?}");
    assert_eq!(chain.links, 4, "{chain:?}");
    app.stop().await;
}

on_both_backends!(
    a_first_backup_larger_than_an_audit_batch_records_every_file_and_a_whole_chain,
    a_checkpoint_another_sites_retention_made_is_signed_by_the_sites_own_server,
    the_view_has_exactly_the_spec_columns_and_types,
    a_no_change_run_stores_one_row_per_commit_and_the_view_still_lists_every_file,
    an_existing_database_is_migrated_in_place_and_loses_nothing,
    retention_keeps_every_younger_row_as_it_was_and_drops_whole_months
);

/// Every connection of the PostgreSQL store plans a statement once, when it is first
/// prepared (generic plans): left to choose, PostgreSQL plans History's statements anew
/// on every call, which over the monthly partitions costs more than running them, and
/// the plan one site gets then follows what the other sites hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_connections_plan_each_statement_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDatabase::create(Backend::Postgres, dir.path()).await;
    let store = store::PostgresStore::connect(&db.url, store::DEFAULT_SITE)
        .await
        .unwrap();
    // Held at once, so that the pool opens new connections: each is set, not only the first.
    let mut conns = Vec::new();
    for _ in 0..3 {
        conns.push(store.pool().acquire().await.unwrap());
    }
    for c in &mut conns {
        let mode: String = sqlx::query_scalar("SHOW plan_cache_mode")
            .fetch_one(&mut **c)
            .await
            .unwrap();
        assert_eq!(mode, "force_generic_plan");
    }
}
