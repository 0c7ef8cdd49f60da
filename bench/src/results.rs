//! The figures one run measures, typed: what the workloads return, what `report.rs` writes
//! as `docs/benchmarks.md`, and, serialised as they are, `docs/benchmarks.json`. Times are
//! in milliseconds (two decimals), sizes in MB.

use std::collections::BTreeMap;

use serde::Serialize;

/// A whole run.
#[derive(Debug, Serialize)]
pub struct Report {
    pub machine: Machine,
    pub date: String,
    pub seed: u64,
    pub rounds: usize,
    /// By size name (S, M, L).
    pub sizes: BTreeMap<String, SizeFigures>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<HistoryFigures>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fleet: Option<FleetFigures>,
    pub elapsed_s: f64,
    /// Issue 25's goals against the figures above.
    pub goals: Vec<crate::goals::Goal>,
}

/// Where it ran.
#[derive(Debug, Serialize)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub memory_gb: f64,
    pub git: String,
}

/// Backups of one synthetic site: the engine in-process, through the server, the git CLI
/// and the read+hash floor.
#[derive(Debug, Serialize)]
pub struct SizeFigures {
    pub files: usize,
    pub mb: f64,
    pub floor_ms: f64,
    pub engine_first_ms: f64,
    pub engine_nochange_ms: f64,
    pub engine_change_ms: f64,
    pub grpc_first_ms: f64,
    pub grpc_nochange_ms: f64,
    pub grpc_change_ms: f64,
    pub engine_nochange_full_rehash_ms: f64,
    pub git_first_ms: f64,
    pub git_nochange_ms: f64,
    pub git_change_ms: f64,
    pub git_first_push_ms: f64,
    pub ratio_first_vs_git: f64,
    pub ratio_first_vs_git_with_push: f64,
    pub ratio_nochange_full_rehash_vs_floor: f64,
    pub ratio_nochange_vs_git: f64,
    pub ratio_change_vs_git: f64,
    pub ratio_nochange_vs_floor: f64,
    pub server_peak_rss_mb_first_backup: f64,
    pub server_peak_rss_mb_steady: f64,
    /// Not measured at L.
    pub sealing: Option<SealingFigures>,
    pub nochange_phases: Phases,
}

/// What sealing costs: the same runs with and without secret rules.
#[derive(Debug, Serialize)]
pub struct SealingFigures {
    pub rounds: usize,
    pub sealed_nochange_ms: f64,
    pub plain_nochange_ms: f64,
    pub sealed_change_ms: f64,
    pub plain_change_ms: f64,
    pub nochange_ratio: f64,
    pub change_ratio: f64,
}

/// Where a no-change run's time goes (the engine's `RunTimings`, medians).
#[derive(Debug, Serialize)]
pub struct Phases {
    pub start_ms: f64,
    pub sync_ms: f64,
    pub domains_ms: f64,
    pub push_ms: f64,
    pub audit_ms: f64,
    pub finish_ms: f64,
    pub total_ms: f64,
    pub audit_share: f64,
}

/// History, Diff, a rollback and throughput over long daily history.
#[derive(Debug, Serialize)]
pub struct HistoryFigures {
    pub days: usize,
    pub build_s: f64,
    pub repo_mb: f64,
    pub audit_db_mb: f64,
    pub bytes_per_file_per_day: f64,
    pub queries: Vec<QueryLatency>,
    pub git_log: GitLogLatency,
    pub diff: DiffLatency,
    pub rollback: RollbackFigure,
    pub throughput: Vec<Throughput>,
    /// REST History under wrk while backups run back to back; `None` without wrk.
    pub rest_load: Option<RestLoad>,
}

/// `wrk` against REST History (domain=dns, page 1) while backups run back to back
/// through gRPC.
#[derive(Debug, Serialize)]
pub struct RestLoad {
    pub connections: usize,
    pub seconds: u64,
    pub requests_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Non-2xx answers and socket errors.
    pub errors: u64,
    /// Bytes of one answer.
    pub answer_bytes: usize,
    pub backups_run: u64,
    pub backups_failed: u64,
}

/// One History query over both transports.
#[derive(Debug, Serialize)]
pub struct QueryLatency {
    pub query: String,
    /// gRPC, the page read from the trail: each call made after the page kept expired
    /// (`HISTORY_MAX_AGE`), median of 3. The p50/p99 below are of calls repeated
    /// back to back, which the pages kept answer.
    pub grpc_read_ms: f64,
    pub grpc_p50_ms: f64,
    pub grpc_p99_ms: f64,
    pub rest_p50_ms: f64,
    pub rest_p99_ms: f64,
}

/// `git log` equivalents on the same repository.
#[derive(Debug, Serialize)]
pub struct GitLogLatency {
    pub domain_p50_ms: f64,
    pub domain_p99_ms: f64,
    pub file_p50_ms: f64,
    pub file_p99_ms: f64,
    pub page20_p50_ms: f64,
    pub page20_p99_ms: f64,
}

/// Diff of a domain's first and last commit, and `git diff --stat`.
#[derive(Debug, Serialize)]
pub struct DiffLatency {
    /// gRPC, the first call: the one that makes the diff (later calls get the answer kept).
    pub grpc_first_ms: f64,
    pub grpc_p50_ms: f64,
    pub grpc_p99_ms: f64,
    pub rest_p50_ms: f64,
    pub rest_p99_ms: f64,
    pub git_p50_ms: f64,
    pub git_p99_ms: f64,
}

/// One rollback, request to its end.
#[derive(Debug, Serialize)]
pub struct RollbackFigure {
    pub ms: f64,
    pub state: String,
}

/// Concurrent clients of one RPC.
#[derive(Debug, Serialize)]
pub struct Throughput {
    pub rpc: String,
    pub requests_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub errors: u64,
}

/// Many sites on one PostgreSQL, and one of them alone on its own.
#[derive(Debug, Serialize)]
pub struct FleetFigures {
    pub sites: usize,
    pub days: i64,
    pub files_per_site: usize,
    pub calls: usize,
    pub db_mb: f64,
    pub commits: i64,
    pub file_rows: i64,
    pub view_rows: i64,
    pub bytes_per_file_per_day: f64,
    pub history_domain_p50_ms: f64,
    pub history_domain_p99_ms: f64,
    pub history_file_p50_ms: f64,
    pub history_file_p99_ms: f64,
    pub history_other_site_p50_ms: f64,
    pub history_other_site_p99_ms: f64,
    pub list_sites_p50_ms: f64,
    pub list_sites_p99_ms: f64,
    pub alone: AloneFigures,
    /// Building the fleet (set by the caller, which timed it).
    pub build_s: f64,
}

/// Site-00 alone on its own database.
#[derive(Debug, Serialize)]
pub struct AloneFigures {
    pub history_domain_p50_ms: f64,
    pub history_domain_p99_ms: f64,
    pub history_file_p50_ms: f64,
    pub history_file_p99_ms: f64,
    pub build_s: f64,
}
