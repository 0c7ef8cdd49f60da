//! How long the engine's work takes, as histograms: each backup run and its phases, each
//! domain's commit, each rollback stage. The engine tells its observers when a run or a
//! rollback ends (with its timings); this observer keeps them with prometheus-client.
//! The counts in these histograms are this process's since it started; the audit trail
//! keeps the lasting record.

use config_backup_core::Engine;
use config_backup_core::engine::{BackupReport, Observer};
use config_backup_core::store::RollbackTask;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    phase: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DomainLabels {
    domain: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabels {
    stage: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// 5 ms to about 160 s, doubling.
fn work_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 16))
}

/// The engine's durations.
#[derive(Debug, Clone)]
pub struct StageMetrics {
    backup: Histograms<PhaseLabels>,
    domain: Histograms<DomainLabels>,
    rollback: Histograms<StageLabels>,
}

impl Default for StageMetrics {
    fn default() -> Self {
        StageMetrics {
            backup: Family::new_with_constructor(work_histogram),
            domain: Family::new_with_constructor(work_histogram),
            rollback: Family::new_with_constructor(work_histogram),
        }
    }
}

impl StageMetrics {
    /// Registers the families in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "config_backup_backup_phase_duration_seconds",
            "Backup runs by phase: run (the whole), start, sync (working copy and remote), domains (every commit), push, audit (the trail), finish",
            self.backup.clone(),
        );
        registry.register(
            "config_backup_domain_duration_seconds",
            "One domain's part of a backup run: scan, read, hash, seal, stage and commit",
            self.domain.clone(),
        );
        registry.register(
            "config_backup_rollback_stage_duration_seconds",
            "Rollbacks by stage (validating, snapshot, applying, reloading, verifying, reverting) and as a whole (total)",
            self.rollback.clone(),
        );
    }
}

#[async_trait::async_trait]
impl Observer for StageMetrics {
    async fn backup_finished(&self, _engine: &Engine, report: &BackupReport) {
        let t = &report.timings;
        let phases = [
            ("start", t.start),
            ("sync", t.sync),
            ("domains", t.domains),
            ("push", t.push),
            ("audit", t.audit),
            ("finish", t.finish),
        ];
        let run: std::time::Duration = phases.iter().map(|(_, d)| *d).sum();
        for (phase, took) in phases.into_iter().chain([("run", run)]) {
            self.backup
                .get_or_create(&PhaseLabels { phase })
                .observe(took.as_secs_f64());
        }
        for d in &report.domains {
            if let Some(domain) = d.domain {
                self.domain
                    .get_or_create(&DomainLabels {
                        domain: domain.as_str(),
                    })
                    .observe(d.duration.as_secs_f64());
            }
        }
    }

    async fn rollback_finished(&self, _engine: &Engine, task: &RollbackTask) {
        for st in &task.stages {
            if let Some(end) = st.finished_at {
                let took = (end - st.started_at).to_std().unwrap_or_default();
                self.rollback
                    .get_or_create(&StageLabels {
                        stage: st.stage.as_str(),
                    })
                    .observe(took.as_secs_f64());
            }
        }
        if let Some(total) = task.duration_seconds {
            self.rollback
                .get_or_create(&StageLabels { stage: "total" })
                .observe(total);
        }
    }
}
