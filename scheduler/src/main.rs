//! `config-backup-scheduler`: runs the daily backup and the weekly restore drill, or one
//! now with `--once` / `--drill-once`.

use clap::Parser;
use config_backup_scheduler::{
    SchedulerSettings, catch_up, drill_once, jobs, next_fire, render, render_drill, run_once,
};

#[derive(Parser)]
#[command(
    version,
    about = "Calls the config-backup server's Backup every day at the configured UTC time, and Verify (a restore drill) weekly"
)]
struct Cli {
    /// Run one backup now, print its report, exit non-zero on failure.
    #[arg(long)]
    once: bool,
    /// Print when the daily backup fires next (UTC) and exit.
    #[arg(long)]
    print_next: bool,
    /// Run one restore drill now, print it, exit non-zero unless every domain is proven.
    #[arg(long)]
    drill_once: bool,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // The environment is read once, here; every setting comes from this snapshot.
    let env = config_backup_core::settings::Env::from_process();
    if let Err(e) = config_backup_server::telemetry::init(&env) {
        eprintln!("config-backup-scheduler: {e}");
        return std::process::ExitCode::FAILURE;
    }
    match run(cli, &env).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("config-backup-scheduler: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli, env: &config_backup_core::settings::Env) -> anyhow::Result<std::process::ExitCode> {
    let settings = SchedulerSettings::from_env(env)?;
    if cli.print_next {
        println!(
            "{}",
            next_fire(&settings)
                .await?
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
        return Ok(std::process::ExitCode::SUCCESS);
    }
    if cli.once {
        let outcome = run_once(&settings).await;
        print!("{}", render(&outcome));
        return Ok(if outcome.is_failure() {
            std::process::ExitCode::FAILURE
        } else {
            std::process::ExitCode::SUCCESS
        });
    }
    if cli.drill_once {
        let outcome = drill_once(&settings).await;
        print!("{}", render_drill(&outcome));
        return Ok(if outcome.is_failure() {
            std::process::ExitCode::FAILURE
        } else {
            std::process::ExitCode::SUCCESS
        });
    }
    // From here on SIGTERM and SIGINT stop the scheduler cleanly, also while the catch-up's
    // call is still waiting for its answer (the server finishes the run either way).
    let mut stop = std::pin::pin!(shutdown());
    let Some(mut sched) = jobs(&settings).await? else {
        tracing::info!(
            "CONFIG_BACKUP_ENABLED=false and CONFIG_BACKUP_DRILL_SCHEDULE=off: nothing is scheduled; idling until stopped"
        );
        stop.await;
        return Ok(std::process::ExitCode::SUCCESS);
    };
    if !settings.schedule.enabled {
        tracing::info!("CONFIG_BACKUP_ENABLED=false: scheduled backups are off; the restore drill stays on");
    }
    sched.start().await?;
    tracing::info!(
        backup = %if settings.schedule.enabled { settings.schedule.cron() } else { "off".to_owned() },
        next_backup = %next_fire(&settings).await?.to_rfc3339(),
        drill = %settings.drill.as_deref().unwrap_or("off"),
        server = %settings.server,
        "scheduler started (UTC)"
    );
    // Catch up a run missed while the machine was down (the server skips it otherwise).
    let stopped = settings.schedule.enabled
        && tokio::select! {
            _ = catch_up(&settings, chrono::Utc::now()) => false,
            () = &mut stop => true,
        };
    if !stopped {
        stop.await;
    }
    sched.shutdown().await?;
    Ok(std::process::ExitCode::SUCCESS)
}

/// Resolves at SIGTERM or SIGINT. Both handlers are in place when this returns, before
/// the future is first polled: a signal that comes before then is not the default's
/// (the process killed, exit status 143).
fn shutdown() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
    }
}
