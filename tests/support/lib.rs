//! Test support: the real server on port 0 over a fresh database (SQLite file or a new
//! PostgreSQL database), a copy of the sample site, a bare remote, and clients.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub mod smtp;
pub mod ssh;
pub mod wait;
pub mod webdriver;

pub use wait::{Gate, wait_for, wait_for_blocking};

use config_backup_proto::v1::config_backup_client::ConfigBackupClient;
use config_backup_server::auth::{self, Role, Secret};
use config_backup_server::{Application, ServerSettings};
use tonic::transport::Channel;

/// The secret every test server signs with.
pub const SECRET: &str = "test-secret-0123456789abcdef0123456789";
/// The subject of test tokens.
pub const ADMIN_SUB: &str = "7e0c5a52-3d5e-4a53-9f6b-2a1c7c2d9e01";

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A fresh SQLite file.
    Sqlite,
    /// A fresh PostgreSQL database.
    Postgres,
}

/// The PostgreSQL server tests create their databases on.
pub fn postgres_admin_url() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A database that exists for one test.
#[derive(Debug)]
pub struct TestDatabase {
    /// Its URL.
    pub url: String,
    name: Option<String>,
}

impl TestDatabase {
    /// A fresh database on `backend`. Fails loudly when PostgreSQL is unreachable.
    pub async fn create(backend: Backend, dir: &Path) -> TestDatabase {
        match backend {
            Backend::Sqlite => TestDatabase {
                url: format!("sqlite://{}?mode=rwc", dir.join("audit.db").display()),
                name: None,
            },
            Backend::Postgres => {
                use sqlx::Connection;
                let admin = postgres_admin_url();
                let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap_or_else(|e| {
                    panic!(
                        "PostgreSQL is not reachable at {admin}: {e}. The test command starts it \
                         (scripts/test.sh); or set TEST_DATABASE_URL to a server where databases can be created."
                    )
                });
                let name = format!("cb_test_{}", uuid::Uuid::new_v4().simple());
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .expect("create database");
                let base = admin.rsplit_once('/').map(|(b, _)| b.to_owned()).unwrap_or(admin);
                TestDatabase {
                    url: format!("{base}/{name}"),
                    name: Some(name),
                }
            }
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some(name) = self.name.take() {
            // Best effort, off the test's runtime.
            let admin = postgres_admin_url();
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    use sqlx::Connection;
                    if let Ok(mut c) = sqlx::PgConnection::connect(&admin).await {
                        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                            .execute(&mut c)
                            .await;
                    }
                });
            })
            .join();
        }
    }
}

/// The repository's sample site.
pub fn sample_site() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/site")
}

/// Copies a directory tree, keeping file modes and symlinks (as links).
pub fn copy_tree(from: &Path, to: &Path) {
    for entry in walkdir::WalkDir::new(from) {
        let entry = entry.unwrap();
        let rel = entry.path().strip_prefix(from).unwrap();
        let dest = to.join(rel);
        if entry.file_type().is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(entry.path()).unwrap(), &dest).unwrap();
        } else if entry.file_type().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
        } else {
            std::fs::copy(entry.path(), &dest).unwrap();
        }
    }
}

/// Gives a copy of the sample site the owners and modes a real site has, which git does
/// not keep (`examples/site-modes`: `MODE OWNER:GROUP PATH` lines). An owner or group
/// this machine does not have is left as it is.
pub fn apply_sample_modes(site: &Path) {
    let list = std::fs::read_to_string(sample_site().with_file_name("site-modes")).unwrap();
    for line in list.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let mut parts = line.splitn(3, ' ');
        let (Some(mode), Some(owners), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            panic!("examples/site-modes: a bad line {line:?}");
        };
        let path = site.join(path);
        let (owner, group) = owners.split_once(':').unwrap();
        let id = |file: &str, name: &str| -> Option<u32> {
            std::fs::read_to_string(file).ok()?.lines().find_map(|l| {
                let mut f = l.split(':');
                (f.next()? == name).then(|| f.nth(1)?.parse().ok())?
            })
        };
        let _ = std::os::unix::fs::chown(&path, id("/etc/passwd", owner), id("/etc/group", group));
        let mode = u32::from_str_radix(mode, 8).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
    }
}

/// Everything a test server uses on disk.
#[derive(Debug)]
pub struct TestEnv {
    /// Holds every path below.
    pub dir: tempfile::TempDir,
    /// The database.
    pub db: TestDatabase,
    /// Extra or overriding environment variables.
    pub vars: HashMap<String, String>,
}

impl TestEnv {
    /// A copy of the sample site with its owners and modes, an empty bare remote, a fresh
    /// database.
    pub async fn new(backend: Backend) -> TestEnv {
        let dir = tempfile::tempdir().unwrap();
        copy_tree(&sample_site(), &dir.path().join("site"));
        apply_sample_modes(&dir.path().join("site"));
        git2::Repository::init_opts(
            dir.path().join("remote.git"),
            git2::RepositoryInitOptions::new().bare(true).initial_head("main"),
        )
        .unwrap();
        let db = TestDatabase::create(backend, dir.path()).await;
        TestEnv {
            dir,
            db,
            vars: HashMap::new(),
        }
    }

    /// The source root.
    pub fn site(&self) -> PathBuf {
        self.dir.path().join("site")
    }

    /// Adds `n` zone files of about 1.9 KB to the site's dns domain, so that the next backup
    /// takes a while (for tests of concurrent or interrupted runs).
    pub fn add_zone_files(&self, n: usize) {
        let dir = self.site().join("config/unbound/unbound.conf.d");
        let zone = format!("server:\n{}", "    local-zone: \"x.example.\" static\n".repeat(50));
        for i in 0..n {
            std::fs::write(dir.join(format!("zone-{i:05}.conf")), &zone).unwrap();
        }
    }

    /// The bare remote.
    pub fn remote(&self) -> PathBuf {
        self.dir.path().join("remote.git")
    }

    /// The working copy.
    pub fn working_dir(&self) -> PathBuf {
        self.dir.path().join("working-copy")
    }

    /// Runs one statement with one text argument on the test database (to stage a
    /// state the service itself would never produce, such as a crash's aftermath).
    pub async fn execute(&self, sql: &str, arg: &str) {
        if self.db.name.is_some() {
            let pool = sqlx::PgPool::connect(&self.db.url).await.unwrap();
            sqlx::query(sql).bind(arg).execute(&pool).await.unwrap();
        } else {
            let pool = sqlx::SqlitePool::connect(&self.db.url).await.unwrap();
            sqlx::query(sql).bind(arg).execute(&pool).await.unwrap();
        }
    }

    /// The `config_rollback_history` row of a task: (status, requested_by, domain,
    /// target_hash, reason, completed_at and duration set).
    pub async fn query_rollback_history(&self, task_id: &str) -> (String, String, String, String, String, bool) {
        let task: uuid::Uuid = task_id.parse().unwrap();
        let sql = "SELECT rollback_status, requested_by, domain, target_hash, reason, \
                   completed_at IS NOT NULL AND duration_seconds IS NOT NULL AS done \
                   FROM config_rollback_history WHERE task_id = $1";
        macro_rules! fetch {
            ($pool:expr) => {{
                use sqlx::Row;
                let row = sqlx::query(sql).bind(task).fetch_one(&$pool).await.unwrap();
                let by: uuid::Uuid = row.get("requested_by");
                (
                    row.get("rollback_status"),
                    by.to_string(),
                    row.get("domain"),
                    row.get("target_hash"),
                    row.get("reason"),
                    row.get("done"),
                )
            }};
        }
        if self.db.name.is_some() {
            fetch!(sqlx::PgPool::connect(&self.db.url).await.unwrap())
        } else {
            fetch!(sqlx::SqlitePool::connect(&self.db.url).await.unwrap())
        }
    }

    /// The variables the server reads.
    pub fn lookup(&self) -> HashMap<String, String> {
        let mut vars: HashMap<String, String> = [
            (
                "CONFIG_BACKUP_DATA_DIR",
                self.dir.path().join("data").display().to_string(),
            ),
            ("CONFIG_BACKUP_SOURCE_ROOT", self.site().display().to_string()),
            ("GIT_BACKUP_REPO", self.remote().display().to_string()),
            ("GIT_WORKING_DIR", self.working_dir().display().to_string()),
            ("GIT_USER_NAME", "Config Backup".to_owned()),
            ("GIT_USER_EMAIL", "config-backup@rgz.local".to_owned()),
            ("DATABASE_URL", self.db.url.clone()),
            ("GRPC_LISTEN_ADDR", "127.0.0.1:0".to_owned()),
            ("HTTP_LISTEN_ADDR", "127.0.0.1:0".to_owned()),
            ("METRICS_LISTEN_ADDR", "127.0.0.1:0".to_owned()),
            ("AUTH_JWT_SECRET", SECRET.to_owned()),
            // The tests' radius domain is the three files a NOC edits most, so that counts
            // of files stay small; the sample site's whole raddb (the product's default,
            // `config/radius/**`) is backed up and rolled back by metadata.rs and
            // services.rs, which name their own patterns.
            (
                "CONFIG_BACKUP_PATHS__radius",
                "config/radius/radiusd.conf,config/radius/clients.conf,config/radius/dictionary".to_owned(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        vars.extend(self.vars.clone());
        vars
    }

    /// Starts a server over this environment.
    pub async fn spawn(&self) -> TestApp {
        let vars = self.lookup();
        let mut settings = ServerSettings::from_env(&vars.clone().into_iter().collect()).expect("test settings");
        settings.initial_backup = false;
        let app = Application::build(settings).await.expect("build server");
        let addr = app.local_addr();
        let http_addr = app.http_addr();
        let metrics_addr = app.metrics_addr();
        let engine = app.engine().clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(app.run_until_stopped(async move {
            let _ = rx.await;
        }));
        let channel = Channel::from_shared(format!("http://{addr}")).unwrap().connect_lazy();
        let app = TestApp {
            addr,
            http_addr,
            metrics_addr,
            channel,
            engine,
            stop: Some(tx),
            handle: Some(handle),
        };
        app.wait_until_serving().await;
        app
    }
}

/// A running server.
#[derive(Debug)]
pub struct TestApp {
    /// Where it listens (gRPC).
    pub addr: std::net::SocketAddr,
    /// Where the REST shim listens.
    pub http_addr: std::net::SocketAddr,
    /// Where /metrics is served.
    pub metrics_addr: std::net::SocketAddr,
    /// A channel to it.
    pub channel: Channel,
    /// Its engine (for store access in assertions).
    pub engine: config_backup_core::Engine,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// A token for a role.
pub fn token(role: Role) -> String {
    auth::mint(
        &Secret::from_bytes(SECRET.as_bytes().to_vec()),
        role,
        ADMIN_SUB,
        Duration::from_secs(600),
    )
    .unwrap()
}

/// Adds a bearer token to a request.
pub fn with_token<T>(msg: T, role: Role) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    req.metadata_mut()
        .insert("authorization", format!("Bearer {}", token(role)).parse().unwrap());
    req
}

impl TestApp {
    /// The URL of a REST path.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http_addr)
    }

    /// A ConfigBackup client.
    pub fn client(&self) -> ConfigBackupClient<Channel> {
        ConfigBackupClient::new(self.channel.clone())
    }

    /// Runs a backup as an admin and returns its report.
    pub async fn backup(&self) -> config_backup_proto::v1::BackupReport {
        let req = with_token(config_backup_proto::v1::BackupRequest::default(), Role::Admin);
        self.client()
            .backup(req)
            .await
            .expect("Backup")
            .into_inner()
            .report
            .expect("a report")
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        let url = format!("http://{}/metrics", self.metrics_addr);
        reqwest::get(url)
            .await
            .expect("/metrics")
            .text()
            .await
            .expect("/metrics text")
    }

    /// The Status, as a NOC user.
    pub async fn status(&self) -> config_backup_proto::v1::StatusResponse {
        let req = with_token(config_backup_proto::v1::StatusRequest::default(), Role::Noc);
        self.client().status(req).await.expect("Status").into_inner()
    }

    /// Waits until health says SERVING.
    pub async fn wait_until_serving(&self) {
        wait_serving(&self.channel).await;
    }

    /// Stops the server and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.unwrap().unwrap();
        }
    }
}

/// Waits until the server's health says ConfigBackup is SERVING (the database and the
/// working copy are ready).
pub async fn wait_serving(channel: &Channel) {
    use tonic_health::pb::health_client::HealthClient;
    let health = HealthClient::new(channel.clone());
    let serving = tonic_health::pb::health_check_response::ServingStatus::Serving as i32;
    wait_for("the server to say SERVING", Duration::from_secs(30), || {
        let mut health = health.clone();
        async move {
            let req = tonic_health::pb::HealthCheckRequest {
                service: "configbackup.v1.ConfigBackup".to_owned(),
            };
            match health.check(req).await {
                Ok(r) if r.get_ref().status == serving => Ok(()),
                Ok(r) => Err(format!("status {}", r.get_ref().status)),
                Err(e) => Err(e.message().to_owned()),
            }
        }
    })
    .await
}

/// A child process killed (and reaped) when the test ends, even by a panic.
#[derive(Debug)]
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Subjects of the remote branch, newest first.
pub fn log_subjects(repo: &Path, branch: &str) -> Vec<String> {
    log_messages(repo, branch)
        .iter()
        .map(|m| m.lines().next().unwrap_or_default().to_owned())
        .collect()
}

/// Full messages of a branch, newest first.
pub fn log_messages(repo: &Path, branch: &str) -> Vec<String> {
    let repo = git2::Repository::open(repo).unwrap();
    let Ok(r) = repo.find_reference(&format!("refs/heads/{branch}")) else {
        return Vec::new();
    };
    let mut walk = repo.revwalk().unwrap();
    walk.push(r.target().unwrap()).unwrap();
    walk.map(|id| repo.find_commit(id.unwrap()).unwrap().message().unwrap().to_owned())
        .collect()
}

/// The content of `path` as stored at the tip of `branch` (secret values sealed).
pub fn stored(repo: &Path, branch: &str, path: &str) -> Vec<u8> {
    let r = git2::Repository::open(repo).unwrap();
    let tree = r
        .find_branch(branch, git2::BranchType::Local)
        .unwrap()
        .get()
        .peel_to_tree()
        .unwrap();
    let entry = tree.get_path(Path::new(path)).unwrap();
    r.find_blob(entry.id()).unwrap().content().to_vec()
}

/// Someone else commits `content` as `path` to the remote's branch (a clone in `scratch`,
/// a commit by "Operator", a push); returns the commit's hash.
pub fn foreign_commit(remote: &Path, scratch: &Path, path: &str, content: &str) -> String {
    let git = |dir: &Path, args: &[&str]| ssh::run(std::process::Command::new("git").arg("-C").arg(dir).args(args));
    ssh::run(
        std::process::Command::new("git")
            .arg("clone")
            .arg("-q")
            .arg(remote)
            .arg(scratch),
    );
    std::fs::create_dir_all(scratch.join(path).parent().unwrap()).unwrap();
    std::fs::write(scratch.join(path), content).unwrap();
    git(scratch, &["add", path]);
    git(
        scratch,
        &[
            "-c",
            "user.name=Operator",
            "-c",
            "user.email=op@rgz.local",
            "commit",
            "-q",
            "-m",
            "hand edit",
        ],
    );
    git(scratch, &["push", "-q", "origin", "main"]);
    git(scratch, &["rev-parse", "HEAD"]).trim().to_owned()
}

/// An ed25519 signing key made by OpenSSH's ssh-keygen in `dir`, with `mode`.
pub fn signing_key(dir: &Path, mode: u32) -> PathBuf {
    let path = dir.join("signing_ed25519");
    let made = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "config-backup signing", "-f"])
        .arg(&path)
        .status()
        .expect("ssh-keygen (openssh-client) is needed: the test command installs it");
    assert!(made.success());
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
    path
}
