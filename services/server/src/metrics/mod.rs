//! `/metrics` on its own listener (`METRICS_LISTEN_ADDR`), in the OpenMetrics text format,
//! written by prometheus-client. Two kinds of figures:
//! - from the audit trail, read at each scrape (`figures`): every replica reports the
//!   same and a restart loses nothing;
//! - of this process (`requests`, `stages`): per-call counts and latencies of both
//!   transports, and the durations of backup phases, domains and rollback stages.

pub mod requests;
pub mod stages;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use config_backup_core::Engine;
use config_backup_core::store::MetricsSnapshot;
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::Registry;

use crate::refusals::{Refusal, Refusals};
pub use requests::{RequestMetrics, Transport};
pub use stages::StageMetrics;

const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// This process's instruments, shared by the layers, the engine's observer and `/metrics`.
#[derive(Debug, Clone)]
pub struct Instruments {
    /// Per-call counts and latencies.
    pub requests: RequestMetrics,
    /// The engine's durations.
    pub stages: StageMetrics,
    registry: Arc<Registry>,
}

impl Default for Instruments {
    fn default() -> Self {
        let requests = RequestMetrics::default();
        let stages = StageMetrics::default();
        let mut registry = Registry::default();
        requests.register(&mut registry);
        stages.register(&mut registry);
        Instruments {
            requests,
            stages,
            registry: Arc::new(registry),
        }
    }
}

#[derive(Debug, Clone)]
struct Exposition {
    engine: Engine,
    refusals: Refusals,
    instruments: Instruments,
}

/// The metrics router.
pub fn router(engine: Engine, refusals: Refusals, instruments: Instruments) -> Router {
    Router::new().route("/metrics", get(metrics)).with_state(Exposition {
        engine,
        refusals,
        instruments,
    })
}

async fn metrics(State(x): State<Exposition>) -> Response {
    let figures = match (x.engine.store().metrics().await, x.engine.status().await) {
        (Ok(m), Ok(s)) => figures(&x.engine, &x.refusals, &m, &s),
        (Err(e), _) => {
            tracing::error!(error = %e, "metrics: the database is unavailable");
            return unavailable();
        }
        (_, Err(e)) => {
            tracing::error!(error = %e, "metrics: status unavailable");
            return unavailable();
        }
    };
    let mut out = String::new();
    let written = encode_registry(&mut out, &figures)
        .and_then(|()| encode_registry(&mut out, &x.instruments.registry))
        .and_then(|()| encode_eof(&mut out));
    if let Err(e) = written {
        tracing::error!(error = %e, "metrics: encoding failed");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    (StatusCode::OK, [(header::CONTENT_TYPE, CONTENT_TYPE)], out).into_response()
}

/// `config_backup_up 0`, with 503: the audit database does not answer.
fn unavailable() -> Response {
    let mut registry = Registry::default();
    registry.register("config_backup_up", UP_HELP, ConstGauge::new(0i64));
    let mut out = String::new();
    let _ = encode_registry(&mut out, &registry).and_then(|()| encode_eof(&mut out));
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        out,
    )
        .into_response()
}

const UP_HELP: &str = "1 when the server and its database answer";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DomainLabel {
    domain: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabel {
    code: &'static str,
}

/// Finished rollbacks' total duration and count, from the audit trail: a histogram with
/// only its `+Inf` bucket (`_sum` and `_count`, the figures kept there).
#[derive(Debug)]
struct Totals {
    sum: f64,
    count: u64,
}

impl EncodeMetric for Totals {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_histogram::<NoLabelSet>(self.sum, self.count, &[(f64::INFINITY, self.count)], None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

fn by_outcome(rows: &[(String, i64)], outcomes: &[&'static str]) -> Family<OutcomeLabel, Counter> {
    let family = Family::<OutcomeLabel, Counter>::default();
    // Every outcome, zero included: an alert on `increase()` sees the first failure.
    for o in outcomes {
        let n = rows.iter().find(|(s, _)| s == o).map_or(0, |(_, n)| *n);
        family
            .get_or_create(&OutcomeLabel { outcome: o })
            .inc_by(n.max(0) as u64);
    }
    family
}

/// The figures of the audit trail and the engine, as they are now.
fn figures(
    engine: &Engine,
    refusals: &Refusals,
    m: &MetricsSnapshot,
    status: &config_backup_core::engine::EngineStatus,
) -> Registry {
    let (unpushed, running, interrupted) = (
        status.unpushed as u64,
        status.running.is_some(),
        status.interrupted.is_some(),
    );
    let mut r = Registry::default();
    r.register("config_backup_up", UP_HELP, ConstGauge::new(1i64));

    let last_success = Family::<DomainLabel, Gauge>::default();
    for (d, at) in &m.last_success {
        last_success
            .get_or_create(&DomainLabel { domain: d.as_str() })
            .set(at.timestamp());
    }
    r.register(
        "config_backup_last_success_timestamp_seconds",
        "When the domain was last committed by a successful backup",
        last_success,
    );
    let changed = Family::<DomainLabel, Gauge>::default();
    for (d, n) in &m.last_changed_files {
        changed.get_or_create(&DomainLabel { domain: d.as_str() }).set(*n);
    }
    r.register(
        "config_backup_files_changed",
        "Files changed in the domain's last commit",
        changed,
    );

    let warnings = Family::<DomainLabel, Counter>::default();
    let counts = engine.security_warnings();
    for d in engine.settings().domains.iter().map(|s| s.domain) {
        warnings
            .get_or_create(&DomainLabel { domain: d.as_str() })
            .inc_by(counts.get(&d).copied().unwrap_or(0));
    }
    r.register(
        "config_backup_security_warnings",
        "Files holding secrets that a backup of this process found opened to group or others",
        warnings,
    );
    r.register(
        "config_backup_duration_seconds",
        "Duration of the last backup run",
        ConstGauge::new(m.last_run_duration.unwrap_or(0.0)),
    );
    r.register(
        "config_backup_runs",
        "Backup runs by outcome",
        by_outcome(
            &m.runs_by_outcome,
            &["success", "partial", "failed", "interrupted", "running"],
        ),
    );
    r.register(
        "config_backup_push_failures",
        "Backup runs whose push failed or diverged",
        ConstCounter::new(m.push_failures.max(0) as u64),
    );
    r.register(
        "config_backup_unpushed_commits",
        "Commits in the working copy that the remote lacks",
        ConstGauge::new(unpushed as i64),
    );
    r.register(
        "config_backup_running",
        "1 while a backup or rollback runs (its holder renews the lock and, on this host, its process exists)",
        ConstGauge::new(i64::from(running)),
    );
    r.register(
        "config_backup_interrupted",
        "1 when a backup or rollback stopped without ending (until the next run takes over)",
        ConstGauge::new(i64::from(interrupted)),
    );
    r.register(
        "config_backup_rollbacks",
        "Finished rollbacks by outcome",
        by_outcome(&m.rollbacks_by_outcome, &["success", "failed"]),
    );
    let finished: i64 = m.rollbacks_by_outcome.iter().map(|(_, n)| n).sum();
    r.register(
        "config_backup_rollback_duration_seconds",
        "Durations of finished rollbacks (from the audit trail: sum and count)",
        Totals {
            sum: m.rollback_seconds_sum,
            count: finished.max(0) as u64,
        },
    );
    if let Some((available, size)) = config_backup_core::fs::space(&engine.settings().git.working_dir) {
        r.register(
            "config_backup_filesystem_avail_bytes",
            "Space available to the server on the working copy's filesystem",
            ConstGauge::new(available as i64),
        );
        r.register(
            "config_backup_filesystem_size_bytes",
            "Size of the working copy's filesystem",
            ConstGauge::new(size as i64),
        );
    }
    let refused = Family::<CodeLabel, Counter>::default();
    for code in [Refusal::Unauthenticated, Refusal::PermissionDenied] {
        refused
            .get_or_create(&CodeLabel { code: code.as_str() })
            .inc_by(refusals.count(code));
    }
    r.register(
        "config_backup_auth_refusals",
        "Calls refused by this server: no usable token (unauthenticated) or a role that may not make the call (permission_denied)",
        refused,
    );
    r.register(
        "config_backup_signing_enabled",
        "1 when this server signs its commits (CONFIG_BACKUP_SIGNING_KEY), 0 when they are unsigned",
        ConstGauge::new(i64::from(status.signing_key.is_some())),
    );
    // Restore drills: per configured domain, so a domain never drilled is a 0 the
    // alert can see, not a missing series.
    let (proven_at, drill_failed) = (
        Family::<DomainLabel, Gauge>::default(),
        Family::<DomainLabel, Gauge>::default(),
    );
    for d in engine.settings().domains.iter().map(|s| s.domain) {
        let label = DomainLabel { domain: d.as_str() };
        let proof = status.proofs.get(&d);
        proven_at
            .get_or_create(&label)
            .set(proof.and_then(|p| p.last_proven_at).map_or(0, |t| t.timestamp()));
        drill_failed
            .get_or_create(&label)
            .set(i64::from(proof.is_some_and(|p| !p.last_proven)));
    }
    r.register(
        "config_backup_last_proven_restorable_timestamp_seconds",
        "When a restore drill last proved the domain restorable from the remote (0: never)",
        proven_at,
    );
    r.register(
        "config_backup_drill_failed",
        "1 when the domain's last restore drill failed",
        drill_failed,
    );
    r.register(
        "config_backup_mail_failures",
        "Mails to the NOC that could not be sent",
        ConstCounter::new(m.mail_failures.max(0) as u64),
    );
    r
}
