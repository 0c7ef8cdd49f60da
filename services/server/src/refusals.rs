//! Refused calls: every 401 (no usable token) and 403 (a role that may not make the call)
//! is logged with the method, the REST route when the shim made the call, the caller's
//! subject when the token was valid, and the reason, never the token itself, and counted for `/metrics`
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

/// Where a call came in: the gRPC method's name, and the REST route when the shim made
/// the call (its `x-config-backup-route` metadata, kept only when it names one of the
/// shim's routes). Put on each request for the auth checks, which log it with a refusal.
#[derive(Debug, Clone, Default)]
pub struct CallContext {
    /// The method's name (the last segment of the gRPC path), bounded.
    pub method: String,
    /// The REST route, when the call came through the shim.
    pub route: Option<&'static str>,
}

/// The metadata the shim names its route in.
pub const ROUTE_METADATA: &str = "x-config-backup-route";

impl CallContext {
    /// From a gRPC request's path and metadata.
    pub fn of<B>(req: &axum::http::Request<B>) -> CallContext {
        let method = req.uri().path().rsplit('/').next().unwrap_or_default();
        CallContext {
            method: config_backup_core::domain::bounded(method, 64),
            route: req
                .headers()
                .get(ROUTE_METADATA)
                .and_then(|v| v.to_str().ok())
                .and_then(config_backup_gateway::route_label),
        }
    }
}

/// The server's refusal counters.
#[derive(Debug, Clone, Default)]
pub struct Refusals(Arc<[AtomicU64; 2]>);

impl Refusals {
    /// Logs a refusal and counts it. `reason` is the message the caller gets, which never
    /// holds the token.
    pub fn record(&self, refusal: Refusal, call: &CallContext, subject: Option<&str>, reason: &str) {
        self.0[refusal as usize].fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            code = refusal.as_str(),
            method = %call.method,
            route = call.route.unwrap_or("-"),
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
        let call = CallContext {
            method: "Status".into(),
            route: None,
        };
        r.record(Refusal::Unauthenticated, &call, None, "invalid token: expired");
        r.record(
            Refusal::PermissionDenied,
            &CallContext {
                method: "Rollback".into(),
                route: Some("/api/v1/backups/config/rollback"),
            },
            Some("u1"),
            "role noc may not call Rollback",
        );
        r.record(
            Refusal::PermissionDenied,
            &CallContext {
                method: "Rollback".into(),
                route: Some("/api/v1/backups/config/rollback"),
            },
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
