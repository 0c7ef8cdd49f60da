//! Refused calls: every 401 (no usable token) and 403 (a role that may not make the call)
//! is logged with the method, the caller's subject when the token was valid, and the
//! reason, never the token itself, and counted for `/metrics`
//! (`config_backup_auth_refusals_total{code}`). One counter set per server.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Why a call was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No usable token: UNAUTHENTICATED, 401.
    Unauthenticated,
    /// A valid token whose role may not make the call: PERMISSION_DENIED, 403.
    PermissionDenied,
}

impl Refusal {
    /// The label in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Unauthenticated => "unauthenticated",
            Refusal::PermissionDenied => "permission_denied",
        }
    }
}

/// The server's refusal counters.
#[derive(Debug, Clone, Default)]
pub struct Refusals(Arc<[AtomicU64; 2]>);

impl Refusals {
    /// Logs a refusal and counts it. `reason` is the message the caller gets, which never
    /// holds the token.
    pub fn record(&self, refusal: Refusal, method: &str, subject: Option<&str>, reason: &str) {
        self.0[refusal as usize].fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            code = refusal.as_str(),
            method,
            subject = subject.unwrap_or("-"),
            reason,
            "request refused"
        );
    }

    /// How many calls were refused so.
    pub fn count(&self, refusal: Refusal) -> u64 {
        self.0[refusal as usize].load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_is_counted_on_its_own() {
        let r = Refusals::default();
        r.record(Refusal::Unauthenticated, "Status", None, "invalid token: expired");
        r.record(
            Refusal::PermissionDenied,
            "Rollback",
            Some("u1"),
            "role noc may not call Rollback",
        );
        r.record(
            Refusal::PermissionDenied,
            "Rollback",
            Some("u1"),
            "role noc may not call Rollback",
        );
        assert_eq!(r.count(Refusal::Unauthenticated), 1);
        assert_eq!(r.count(Refusal::PermissionDenied), 2);
        assert_eq!(
            r.clone().count(Refusal::PermissionDenied),
            2,
            "clones share the counters"
        );
    }
}
