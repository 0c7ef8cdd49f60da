//! The restore drill on its schedule: `CONFIG_BACKUP_DRILL_SCHEDULE` (a cron expression
//! in UTC, weekly by default) calls Verify on the server, with the backup's deadline and
//! retries. A drill that ran and failed is mailed by the server (its ALERT names the
//! commit and file); a drill the server could not run at all is alerted from here.

use config_backup_core::settings::{Env, SettingsError};
use config_backup_notify::Mailer;
use config_backup_proto::v1 as pb;
use tonic::Code;

use crate::{SchedulerSettings, client};

/// Sunday 05:30 UTC: after the daily 04:00 backup, once a week.
pub const DEFAULT_DRILL_SCHEDULE: &str = "0 30 5 * * Sun";

/// `CONFIG_BACKUP_DRILL_SCHEDULE`: a cron expression with seconds (`sec min hour
/// day-of-month month day-of-week`, UTC), or `off`; unset: [`DEFAULT_DRILL_SCHEDULE`].
pub fn drill_schedule(env: &Env) -> Result<Option<String>, SettingsError> {
    let parsed = env.parsed("CONFIG_BACKUP_DRILL_SCHEDULE", |v| {
        if v == "off" {
            return Ok(None);
        }
        tokio_cron_scheduler::Job::new(v, |_, _| {})
            .map(|_| Some(v.to_owned()))
            .map_err(|_| "is not a cron expression".to_owned())
    })?;
    Ok(parsed.unwrap_or_else(|| Some(DEFAULT_DRILL_SCHEDULE.to_owned())))
}

/// How one scheduled drill ended.
#[derive(Debug, Clone)]
pub enum DrillOutcome {
    /// The server ran it: PROVEN or FAILED per domain (the server mailed a failure).
    Ran(Box<pb::Drill>),
    /// The server could not run it; the scheduler alerted.
    Failed {
        /// Attempts made.
        attempts: u32,
        /// The last error.
        error: String,
    },
}

impl DrillOutcome {
    /// Whether this counts as a failure (`--drill-once` exits non-zero).
    pub fn is_failure(&self) -> bool {
        match self {
            DrillOutcome::Ran(d) => d.state != pb::DrillState::Proven as i32,
            DrillOutcome::Failed { .. } => true,
        }
    }
}

/// One drill: up to 1 + `retries` attempts, `retry_delay` apart (a backup running makes
/// the server answer ABORTED: the drill waits for it); the alert mail when none ran.
pub async fn drill_once(settings: &SchedulerSettings) -> DrillOutcome {
    let attempts = settings.retries + 1;
    let mut last = String::new();
    let mut made = 0;
    for n in 1..=attempts {
        made = n;
        let result = async {
            let mut c = client(settings).await.map_err(tonic::Status::unavailable)?;
            let req = settings
                .request(pb::VerifyRequest {})
                .map_err(tonic::Status::unauthenticated)?;
            c.verify(req).await
        }
        .await;
        match result.map(|r| r.into_inner().drill) {
            Ok(Some(drill)) => {
                tracing::info!(drill = %drill.id, state = drill.state, attempt = n, "scheduled restore drill done");
                return DrillOutcome::Ran(Box::new(drill));
            }
            Ok(None) => last = "the server answered without a drill".to_owned(),
            Err(s) => {
                last = format!("{:?}: {}", s.code(), s.message());
                tracing::warn!(attempt = n, of = attempts, error = %last, "scheduled restore drill attempt failed");
                if matches!(
                    s.code(),
                    Code::Unauthenticated | Code::PermissionDenied | Code::InvalidArgument
                ) {
                    break;
                }
            }
        }
        if n < attempts {
            tokio::time::sleep(settings.retry_delay).await;
        }
    }
    tracing::error!(attempts = made, error = %last, "the scheduled restore drill could not run");
    match &settings.mail {
        Some(mail) => {
            Mailer::new(mail.clone())
                .deliver(
                    None,
                    &config_backup_notify::scheduler_drill_alert(&settings.server, made, &last),
                )
                .await
        }
        None => tracing::warn!("no SMTP_HOST: the alert could not be mailed"),
    }
    DrillOutcome::Failed {
        attempts: made,
        error: last,
    }
}

/// A readable report for `--drill-once`.
pub fn render_drill(outcome: &DrillOutcome) -> String {
    let state = |s: i32| {
        pb::DrillState::try_from(s)
            .map(|s| s.as_str_name().trim_start_matches("DRILL_STATE_"))
            .unwrap_or("?")
    };
    match outcome {
        DrillOutcome::Failed { attempts, error } => {
            format!("restore drill could not run after {attempts} attempt(s): {error}\n")
        }
        DrillOutcome::Ran(d) => {
            let mut s = format!("restore drill {}: {}\n", d.id, state(d.state));
            if !d.error.is_empty() {
                s.push_str(&format!("  error: {}\n", d.error));
            }
            for x in &d.domains {
                let commit = &x.commit_hash[..7.min(x.commit_hash.len())];
                s.push_str(&format!(
                    "  {:<8} {:<7} {commit:<7} {} files\n",
                    x.domain,
                    state(x.state),
                    x.files
                ));
                for c in &x.causes {
                    s.push_str(&format!("    - {c}\n"));
                }
            }
            for n in &d.notes {
                s.push_str(&format!("  note: {n}\n"));
            }
            s
        }
    }
}

/// The drill's job, if drills are on.
pub(crate) fn job(settings: &SchedulerSettings) -> anyhow::Result<Option<tokio_cron_scheduler::Job>> {
    let Some(cron) = settings.drill.clone() else {
        return Ok(None);
    };
    let s = settings.clone();
    Ok(Some(tokio_cron_scheduler::Job::new_async(
        cron.as_str(),
        move |_id, _lock| {
            let s = s.clone();
            Box::pin(async move {
                let _ = drill_once(&s).await;
            })
        },
    )?))
}
