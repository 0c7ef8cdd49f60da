//! `config-backup-server`: serve the API, or mint a token for operators.

use clap::{Parser, Subcommand};
use config_backup_core::settings::Env;
use config_backup_server::auth::{self, Role, Secret};
use config_backup_server::{Application, ServerSettings, telemetry};

/// mimalloc, set up by `allocator::return_freed_memory_at_once` (see that module).
#[global_allocator]
static ALLOCATOR: config_backup_server::allocator::MiMalloc = config_backup_server::allocator::MiMalloc;

#[derive(Parser)]
#[command(
    version,
    about = "Backs up network-service configuration into git, with an audit trail"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the gRPC API (the default).
    Serve {
        /// Back up the bundled sample site (examples/site) when CONFIG_BACKUP_SOURCE_ROOT is not set.
        #[arg(long)]
        sample_site: bool,
    },
    /// Print the effective configuration (every setting in force, defaults included), one
    /// `VARIABLE=value` per line, secrets redacted; a bad setting fails naming it.
    Config,
    /// Print the allowed-signers line that trusts the signing key (CONFIG_BACKUP_SIGNING_KEY)
    /// for GIT_USER_EMAIL, for `git -c gpg.format=ssh -c gpg.ssh.allowedSignersFile=FILE
    /// verify-commit`.
    AllowedSigners,
    /// Check this site's audit hash chain against the audit database: prints what does
    /// not hold (the link, the commit and what differs) and exits non-zero, or says the
    /// trail is as recorded.
    VerifyAudit,
    /// Print a bearer token signed with the server's secret.
    Token {
        /// admin, noc or scheduler.
        #[arg(long)]
        role: Role,
        /// The user's id (a UUID).
        #[arg(long)]
        sub: uuid::Uuid,
        /// Lifetime, e.g. 15m, 1h, 7d.
        #[arg(long, default_value = "1h", value_parser = auth::parse_ttl)]
        ttl: std::time::Duration,
    },
    /// Unseal a plain checkout of the backup repository in place (the manual runbook):
    /// every sealed secret is decrypted with the secrets key and the files get their
    /// original bytes back.
    Unseal {
        /// The checkout's top directory (where `.config-backup/` is).
        dir: std::path::PathBuf,
        /// Only these files, relative to DIR as in the repository (default: every file).
        paths: Vec<String>,
        /// The secrets key file (default: CONFIG_BACKUP_SECRETS_KEY_FILE, else <data dir>/secrets.key).
        #[arg(long)]
        key_file: Option<std::path::PathBuf>,
    },
    /// Create a secrets key file (mode 0600) for CONFIG_BACKUP_SECRETS_KEY_FILE; never
    /// replaces an existing file. Back it up apart from the backup repository.
    NewSecretsKey {
        /// Where to create it (default: CONFIG_BACKUP_SECRETS_KEY_FILE, else <data dir>/secrets.key).
        #[arg(long)]
        key_file: Option<std::path::PathBuf>,
    },
    /// Rotate the secrets key: a new key first in the key file (it seals from the next
    /// backup on, which commits every file holding a secret re-sealed), the old keys kept
    /// after it to open older commits. Back the key file up again afterwards.
    RotateSecretsKey {
        /// The secrets key file (default: CONFIG_BACKUP_SECRETS_KEY_FILE, else <data dir>/secrets.key).
        #[arg(long)]
        key_file: Option<std::path::PathBuf>,
    },
}

/// `--key-file`, else `CONFIG_BACKUP_SECRETS_KEY_FILE`, else `<data dir>/secrets.key`.
fn key_file(given: Option<std::path::PathBuf>, env: &Env) -> anyhow::Result<std::path::PathBuf> {
    if let Some(f) = given {
        return Ok(f);
    }
    match env.path("CONFIG_BACKUP_SECRETS_KEY_FILE")? {
        Some(f) => Ok(f),
        None => Ok(env.data_dir()?.join("secrets.key")),
    }
}

fn sample_site() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/site")
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    config_backup_server::allocator::return_freed_memory_at_once();
    config_backup_core::parallel::limit_malloc_arenas();
    let cli = Cli::parse();
    // The environment is read once, here; every setting comes from this snapshot.
    let mut env = Env::from_process();
    if matches!(cli.command, Some(Command::Serve { sample_site: true }))
        && env.get("CONFIG_BACKUP_SOURCE_ROOT").is_none()
    {
        env = env.with("CONFIG_BACKUP_SOURCE_ROOT", sample_site().display().to_string());
    }
    if let Err(e) = telemetry::init(&env) {
        eprintln!("config-backup-server: {e}");
        return std::process::ExitCode::FAILURE;
    }
    match run(cli, env).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("config-backup-server: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli, env: Env) -> anyhow::Result<()> {
    match cli.command {
        Some(Command::Unseal {
            dir,
            paths,
            key_file: file,
        }) => {
            use config_backup_core::secrets::{Keyring, Sealer, checkout};
            let file = key_file(file, &env)?;
            let keys = Keyring::load(&file).map_err(|e| anyhow::anyhow!("secrets key: {e}"))?;
            let sealer = Sealer::new(keys, Default::default());
            let done = checkout::unseal_checkout(&sealer, &dir, &paths).map_err(anyhow::Error::msg)?;
            for f in &done.unsealed {
                println!("unsealed {f}");
            }
            println!(
                "{} files unsealed, {} held nothing sealed",
                done.unsealed.len(),
                done.plain
            );
            Ok(())
        }
        Some(Command::NewSecretsKey { key_file: file }) => {
            let file = key_file(file, &env)?;
            let keys = config_backup_core::secrets::Keyring::generate(&file)
                .map_err(|e| anyhow::anyhow!("secrets key: {e} (an existing key file is never replaced)"))?;
            println!(
                "new secrets key {} in {}; back this file up apart from the backup repository",
                keys.sealing().id(),
                file.display()
            );
            Ok(())
        }
        Some(Command::RotateSecretsKey { key_file: file }) => {
            let file = key_file(file, &env)?;
            let id =
                config_backup_core::secrets::Keyring::rotate(&file).map_err(|e| anyhow::anyhow!("secrets key: {e}"))?;
            println!(
                "new secrets key {id} in {}; the next backup re-seals every secret with it",
                file.display()
            );
            Ok(())
        }
        Some(Command::Config) => {
            let settings = ServerSettings::from_env(&env)?;
            for (var, value) in settings.effective() {
                println!("{var}={value}");
            }
            Ok(())
        }
        Some(Command::AllowedSigners) => {
            let settings = ServerSettings::from_env(&env)?;
            let signer = settings.engine.signer()?.ok_or_else(|| {
                anyhow::anyhow!("CONFIG_BACKUP_SIGNING_KEY is not set: this server's commits are unsigned")
            })?;
            println!("{}", signer.allowed_signers_line(&settings.engine.git.user_email));
            Ok(())
        }
        Some(Command::VerifyAudit) => {
            let settings = ServerSettings::from_env(&env)?;
            let store = config_backup_core::store::connect(&settings.engine.database_url, &settings.engine.site)
                .await
                .map_err(|e| anyhow::anyhow!("DATABASE_URL: {e}"))?;
            let engine = config_backup_core::Engine::new(settings.engine.clone(), store)?;
            let report = engine.verify_audit_chain().await?;
            for p in &report.problems {
                println!("FAILED: {p}");
            }
            for n in &report.notes {
                println!("note: {n}");
            }
            println!(
                "{} links checked{}; head {}",
                report.links,
                report
                    .checkpoint
                    .map(|c| format!(" from the checkpoint at link {c}"))
                    .unwrap_or_default(),
                report.head.as_deref().unwrap_or("(none)")
            );
            if report.problems.is_empty() {
                println!("the audit trail of site {} is as recorded", settings.engine.site);
                Ok(())
            } else {
                anyhow::bail!(
                    "{} problem(s) in the audit chain of site {}",
                    report.problems.len(),
                    settings.engine.site
                )
            }
        }
        Some(Command::Token { role, sub, ttl }) => {
            let (secret, _) = Secret::load(&env, &env.data_dir()?)?;
            println!(
                "{}",
                auth::mint(&secret, role, &sub.to_string(), ttl).map_err(anyhow::Error::msg)?
            );
            Ok(())
        }
        None | Some(Command::Serve { .. }) => {
            let settings = ServerSettings::from_env(&env)?;
            log_start(&settings);
            let app = Application::build(settings).await?;
            tracing::info!(
                addr = %app.local_addr(),
                http = %app.http_addr(),
                metrics = %app.metrics_addr(),
                "listening (gRPC, health, reflection; REST; metrics)"
            );
            app.run_until_stopped(shutdown_signal()).await
        }
    }
}

fn log_start(s: &ServerSettings) {
    use config_backup_server::auth::SecretSource;
    let e = &s.engine;
    tracing::info!(
        source_root = %e.source_root.display(),
        domains = %e.configured_domains(),
        remote = %config_backup_core::remote::redact_url(&e.git.remote),
        working_dir = %e.git.working_dir.display(),
        database = %config_backup_core::remote::redact_url(&e.database_url),
        "starting config-backup-server"
    );
    if let SecretSource::Generated(path) | SecretSource::DataDir(path) = &s.secret_source {
        tracing::info!(
            secret = %path.display(),
            "no AUTH_JWT_SECRET set: tokens are signed with the generated secret in the data directory; \
             mint one with `config-backup-server token --role admin --sub <uuid> --ttl 1h`"
        );
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {},
        _ = tokio::signal::ctrl_c() => {},
    }
    tracing::info!("shutdown requested");
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_servers_allocations_are_mimallocs() {
        let b = Box::new([7u8; 64]);
        // SAFETY: asks whether an address lies in mimalloc's heap; nothing is written.
        #[allow(unsafe_code)]
        let ours = unsafe { libmimalloc_sys::mi_is_in_heap_region(b.as_ptr().cast()) };
        assert!(ours);
    }
}
