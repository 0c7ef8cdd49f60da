//! Issue 25's speed goals, checked against one run's figures: each goal a typed result
//! (what was measured, the limit, which way it binds, met or not), printed by the binary
//! and written to `docs/benchmarks.md` and `docs/benchmarks.json`. A figure the run did
//! not measure (a size left out, wrk missing) is a goal `NotMeasured`, never met.

use serde::Serialize;

use crate::results::Report;

/// Which way a limit binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Bound {
    AtMost,
    AtLeast,
}

/// What a goal's figures are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// A ratio to a peer or a floor (×).
    Ratio,
    Ms,
    RequestsPerS,
    Mb,
}

/// The verdict on one goal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Met,
    NotMet,
    NotMeasured,
}

/// One goal and what this run measured of it.
#[derive(Debug, Clone, Serialize)]
pub struct Goal {
    pub goal: String,
    pub unit: Unit,
    pub bound: Bound,
    pub limit: f64,
    /// `None`: this run did not measure it.
    pub measured: Option<f64>,
    pub verdict: Verdict,
}

impl Goal {
    fn new(goal: impl Into<String>, unit: Unit, bound: Bound, limit: f64, measured: Option<f64>) -> Goal {
        let verdict = match measured {
            None => Verdict::NotMeasured,
            Some(m) if m.is_nan() => Verdict::NotMeasured,
            Some(m) => {
                let met = match bound {
                    Bound::AtMost => m <= limit,
                    Bound::AtLeast => m >= limit,
                };
                if met { Verdict::Met } else { Verdict::NotMet }
            }
        };
        Goal {
            goal: goal.into(),
            unit,
            bound,
            limit,
            measured: measured.filter(|m| !m.is_nan()),
            verdict,
        }
    }

    fn show(unit: Unit, v: f64) -> String {
        match unit {
            Unit::Ratio => format!("{v:.2}×"),
            Unit::Ms => format!("{v:.1} ms"),
            Unit::RequestsPerS => format!("{v:.0} req/s"),
            Unit::Mb => format!("{v:.0} MB"),
        }
    }

    /// "≤ 1.50×", "≥ 2000 req/s".
    pub fn limit_text(&self) -> String {
        let sign = match self.bound {
            Bound::AtMost => "≤",
            Bound::AtLeast => "≥",
        };
        format!("{sign} {}", Goal::show(self.unit, self.limit))
    }

    /// The figure, or "not measured".
    pub fn measured_text(&self) -> String {
        self.measured
            .map_or_else(|| "not measured".to_owned(), |m| Goal::show(self.unit, m))
    }

    pub fn verdict_text(&self) -> &'static str {
        match self.verdict {
            Verdict::Met => "met",
            Verdict::NotMet => "not met",
            Verdict::NotMeasured => "not measured",
        }
    }
}

/// The goals, in the order, against `r`.
pub fn evaluate(r: &Report) -> Vec<Goal> {
    use Bound::*;
    use Unit::*;
    let size = |n: &str| r.sizes.get(n);
    let mut goals = Vec::new();
    for n in ["M", "L"] {
        goals.push(Goal::new(
            format!("full re-hash ÷ read+hash floor, {n}"),
            Ratio,
            AtMost,
            1.5,
            size(n).map(|s| s.ratio_nochange_full_rehash_vs_floor),
        ));
    }
    for n in ["M", "L"] {
        goals.push(Goal::new(
            format!("first backup (push included) ÷ `git add -A && git commit`, {n}"),
            Ratio,
            AtMost,
            1.0,
            size(n).map(|s| s.ratio_first_vs_git),
        ));
    }
    goals.push(Goal::new(
        "no-change through gRPC ÷ read+hash floor, M",
        Ratio,
        AtMost,
        0.5,
        size("M").map(|s| s.grpc_nochange_ms / s.floor_ms),
    ));
    goals.push(Goal::new(
        "no-change through gRPC, S",
        Ms,
        AtMost,
        10.0,
        size("S").map(|s| s.grpc_nochange_ms),
    ));
    let h = r.history.as_ref();
    goals.push(Goal::new(
        "rollback of one domain at M, request to SUCCESS, no reload",
        Ms,
        AtMost,
        300.0,
        h.filter(|h| h.rollback.state == "ROLLBACK_STATE_SUCCESS")
            .map(|h| h.rollback.ms),
    ));
    goals.push(Goal::new(
        "Diff first ↔ last p99 ÷ `git diff --stat` p99",
        Ratio,
        AtMost,
        0.5,
        h.map(|h| h.diff.grpc_p99_ms / h.diff.git_p99_ms),
    ));
    goals.push(Goal::new(
        "REST History p50 ÷ gRPC p50 (domain=dns, page 1: 100 rows)",
        Ratio,
        AtMost,
        1.15,
        h.and_then(|h| h.queries.first()).map(|q| q.rest_p50_ms / q.grpc_p50_ms),
    ));
    let load = h.and_then(|h| h.rest_load.as_ref());
    goals.push(Goal::new(
        "REST History under back-to-back backups, 32 connections (wrk), 0 errors",
        RequestsPerS,
        AtLeast,
        2000.0,
        // A run with errors does not count, whatever its rate.
        load.map(|l| if l.errors == 0 { l.requests_per_s } else { 0.0 }),
    ));
    goals.push(Goal::new(
        "server's peak RSS at L: the larger of its first backup and of a server's no-change and 1 % backups",
        Mb,
        AtMost,
        150.0,
        size("L").map(|s| s.server_peak_rss_mb_first_backup.max(s.server_peak_rss_mb_steady)),
    ));
    goals
}

/// The goals as a markdown table.
pub fn markdown(goals: &[Goal]) -> String {
    let mut s = String::from("| goal | limit | this run | verdict |\n|---|---|---|---|\n");
    for g in goals {
        s.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            g.goal,
            g.limit_text(),
            g.measured_text(),
            g.verdict_text()
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_binds_its_way_and_a_missing_figure_is_never_met() {
        assert_eq!(
            Goal::new("a", Unit::Ratio, Bound::AtMost, 1.5, Some(1.5)).verdict,
            Verdict::Met
        );
        assert_eq!(
            Goal::new("a", Unit::Ratio, Bound::AtMost, 1.5, Some(1.51)).verdict,
            Verdict::NotMet
        );
        assert_eq!(
            Goal::new("a", Unit::RequestsPerS, Bound::AtLeast, 2000.0, Some(1999.0)).verdict,
            Verdict::NotMet
        );
        assert_eq!(
            Goal::new("a", Unit::RequestsPerS, Bound::AtLeast, 2000.0, Some(2000.0)).verdict,
            Verdict::Met
        );
        assert_eq!(
            Goal::new("a", Unit::Ms, Bound::AtMost, 300.0, None).verdict,
            Verdict::NotMeasured
        );
        assert_eq!(
            Goal::new("a", Unit::Ms, Bound::AtMost, 300.0, Some(f64::NAN)).verdict,
            Verdict::NotMeasured
        );
        assert_eq!(
            Goal::new("a", Unit::Ratio, Bound::AtMost, 1.5, Some(2.0)).measured_text(),
            "2.00×"
        );
    }
}
