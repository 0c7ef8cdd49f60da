//! `/metrics` in the Prometheus text format, on its own listener (`METRICS_LISTEN_ADDR`).
//! Figures come from the audit trail, so every replica reports the same and a restart
//! loses nothing.

use std::fmt::Write;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use config_backup_core::Engine;

use crate::refusals::{Refusal, Refusals};

/// The metrics router: the engine's figures and the server's refusals.
pub fn router(engine: Engine, refusals: Refusals) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state((engine, refusals))
}

async fn metrics(State((engine, refusals)): State<(Engine, Refusals)>) -> Response {
    let (snapshot, status) = match (engine.store().metrics().await, engine.status().await) {
        (Ok(m), Ok(s)) => (m, s),
        (Err(e), _) => {
            tracing::error!(error = %e, "metrics: the database is unavailable");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "# the audit database is unavailable\nconfig_backup_up 0\n",
            )
                .into_response();
        }
        (_, Err(e)) => {
            tracing::error!(error = %e, "metrics: status unavailable");
            return (StatusCode::SERVICE_UNAVAILABLE, "config_backup_up 0\n").into_response();
        }
    };
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    family(
        "config_backup_up",
        "gauge",
        "1 when the server and its database answer.",
    );
    let mut lines = vec!["config_backup_up 1".to_owned()];
    let flush = |out: &mut String, lines: &mut Vec<String>| {
        for l in lines.drain(..) {
            out.push_str(&l);
            out.push('\n');
        }
    };
    flush(&mut out, &mut lines);

    let _ = writeln!(
        out,
        "# HELP config_backup_last_success_timestamp_seconds When the domain was last committed by a successful backup.\n# TYPE config_backup_last_success_timestamp_seconds gauge"
    );
    for (d, at) in &snapshot.last_success {
        let _ = writeln!(
            out,
            "config_backup_last_success_timestamp_seconds{{domain=\"{d}\"}} {}",
            at.timestamp()
        );
    }
    let _ = writeln!(
        out,
        "# HELP config_backup_files_changed Files changed in the domain's last commit.\n# TYPE config_backup_files_changed gauge"
    );
    for (d, n) in &snapshot.last_changed_files {
        let _ = writeln!(out, "config_backup_files_changed{{domain=\"{d}\"}} {n}");
    }
    let _ = writeln!(
        out,
        "# HELP config_backup_security_warnings_total Files holding secrets that a backup of this process found opened to group or others.\n# TYPE config_backup_security_warnings_total counter"
    );
    let warnings = engine.security_warnings();
    for d in engine.settings().domains.iter().map(|s| s.domain) {
        let n = warnings.get(&d).copied().unwrap_or(0);
        let _ = writeln!(out, "config_backup_security_warnings_total{{domain=\"{d}\"}} {n}");
    }
    let _ = writeln!(
        out,
        "# HELP config_backup_duration_seconds Duration of the last backup run.\n# TYPE config_backup_duration_seconds gauge"
    );
    let _ = writeln!(
        out,
        "config_backup_duration_seconds {}",
        snapshot.last_run_duration.unwrap_or(0.0)
    );
    let _ = writeln!(
        out,
        "# HELP config_backup_runs_total Backup runs by outcome.\n# TYPE config_backup_runs_total counter"
    );
    // Every outcome, zero included: an alert on `increase()` sees the first failure.
    for o in ["success", "partial", "failed", "interrupted", "running"] {
        let n = snapshot
            .runs_by_outcome
            .iter()
            .find(|(s, _)| s == o)
            .map(|(_, n)| *n)
            .unwrap_or(0);
        let _ = writeln!(out, "config_backup_runs_total{{outcome=\"{o}\"}} {n}");
    }
    let _ = writeln!(
        out,
        "# HELP config_backup_push_failures_total Backup runs whose push failed or diverged.\n# TYPE config_backup_push_failures_total counter"
    );
    let _ = writeln!(out, "config_backup_push_failures_total {}", snapshot.push_failures);
    let _ = writeln!(
        out,
        "# HELP config_backup_unpushed_commits Commits in the working copy that the remote lacks.\n# TYPE config_backup_unpushed_commits gauge"
    );
    let _ = writeln!(out, "config_backup_unpushed_commits {}", status.unpushed);
    let _ = writeln!(
        out,
        "# HELP config_backup_running 1 while a backup or rollback runs (its holder renews the lock and, on this host, its process exists).\n# TYPE config_backup_running gauge\nconfig_backup_running {}",
        u8::from(status.running.is_some())
    );
    let _ = writeln!(
        out,
        "# HELP config_backup_interrupted 1 when a backup or rollback stopped without ending (until the next run takes over).\n# TYPE config_backup_interrupted gauge\nconfig_backup_interrupted {}",
        u8::from(status.interrupted.is_some())
    );
    let _ = writeln!(
        out,
        "# HELP config_backup_rollbacks_total Finished rollbacks by outcome.\n# TYPE config_backup_rollbacks_total counter"
    );
    for o in ["success", "failed"] {
        let n = snapshot
            .rollbacks_by_outcome
            .iter()
            .find(|(s, _)| s == o)
            .map(|(_, n)| *n)
            .unwrap_or(0);
        let _ = writeln!(out, "config_backup_rollbacks_total{{outcome=\"{o}\"}} {n}");
    }
    let total: i64 = snapshot.rollbacks_by_outcome.iter().map(|(_, n)| n).sum();
    let _ = writeln!(
        out,
        "# HELP config_backup_rollback_duration_seconds Durations of finished rollbacks.\n# TYPE config_backup_rollback_duration_seconds summary"
    );
    let _ = writeln!(
        out,
        "config_backup_rollback_duration_seconds_sum {}",
        snapshot.rollback_seconds_sum
    );
    let _ = writeln!(out, "config_backup_rollback_duration_seconds_count {total}");
    if let Some((available, size)) = config_backup_core::fs::space(&engine.settings().git.working_dir) {
        let _ = writeln!(
            out,
            "# HELP config_backup_filesystem_avail_bytes Space available to the server on the working copy's filesystem.\n\
             # TYPE config_backup_filesystem_avail_bytes gauge\nconfig_backup_filesystem_avail_bytes {available}\n\
             # HELP config_backup_filesystem_size_bytes Size of the working copy's filesystem.\n\
             # TYPE config_backup_filesystem_size_bytes gauge\nconfig_backup_filesystem_size_bytes {size}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP config_backup_auth_refusals_total Calls refused by this server: no usable token (unauthenticated) or a role that may not make the call (permission_denied).\n\
         # TYPE config_backup_auth_refusals_total counter"
    );
    for r in [Refusal::Unauthenticated, Refusal::PermissionDenied] {
        let _ = writeln!(
            out,
            "config_backup_auth_refusals_total{{code=\"{}\"}} {}",
            r.as_str(),
            refusals.count(r)
        );
    }
    let _ = writeln!(
        out,
        "# HELP config_backup_mail_failures_total Mails to the NOC that could not be sent.\n# TYPE config_backup_mail_failures_total counter"
    );
    let _ = writeln!(out, "config_backup_mail_failures_total {}", snapshot.mail_failures);
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        out,
    )
        .into_response()
}
