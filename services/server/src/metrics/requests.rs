//! Per-call metrics for both transports in one tower layer: a count of calls by
//! transport, method (gRPC) or route (REST) and code, and a latency histogram, both kept
//! with prometheus-client.
//!
//! Invariants:
//! - a call is counted once, when its answer has been sent in full (or dropped), so a
//!   streamed answer (RollbackStatus watch, NDJSON) counts for its whole length;
//! - labels come from fixed lists (the service's methods, the shim's routes, gRPC code
//!   names, HTTP status codes): a caller cannot grow the label sets; anything else is
//!   `other`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::http::{Request, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Which side of the server answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// The gRPC service (health and reflection included).
    Grpc,
    /// The REST shim and the console.
    Rest,
}

impl Transport {
    fn as_str(self) -> &'static str {
        match self {
            Transport::Grpc => "grpc",
            Transport::Rest => "rest",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    transport: &'static str,
    method: &'static str,
    code: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    transport: &'static str,
    method: &'static str,
}

/// The request count and latency families.
#[derive(Debug, Clone)]
pub struct RequestMetrics {
    calls: Family<CallLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
}

impl Default for RequestMetrics {
    fn default() -> Self {
        RequestMetrics {
            calls: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
        }
    }
}

/// 1 ms to about 33 s, doubling.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

impl RequestMetrics {
    /// Registers the families in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "config_backup_requests",
            "Calls answered, by transport, method (gRPC) or route (REST), and code (gRPC code name or HTTP status)",
            self.calls.clone(),
        );
        registry.register(
            "config_backup_request_duration_seconds",
            "Time from a call's arrival to the end of its answer, by transport and method or route",
            self.latency.clone(),
        );
    }

    /// The layer for one transport.
    pub fn layer(&self, transport: Transport) -> RequestMetricsLayer {
        RequestMetricsLayer {
            metrics: Arc::new(self.clone()),
            transport,
        }
    }

    fn record(&self, transport: Transport, method: &'static str, code: &'static str, started: Instant) {
        let transport = transport.as_str();
        self.calls
            .get_or_create(&CallLabels {
                transport,
                method,
                code,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels { transport, method })
            .observe(started.elapsed().as_secs_f64());
    }
}

/// The gRPC methods this server answers, as labels.
const GRPC_METHODS: &[&str] = &[
    "/configbackup.v1.ConfigBackup/Backup",
    "/configbackup.v1.ConfigBackup/Status",
    "/configbackup.v1.ConfigBackup/History",
    "/configbackup.v1.ConfigBackup/Diff",
    "/configbackup.v1.ConfigBackup/Rollback",
    "/configbackup.v1.ConfigBackup/RollbackStatus",
    "/configbackup.v1.ConfigBackup/ListSites",
    "/configbackup.v1.ConfigBackup/Verify",
    "/configbackup.v1.ConfigBackup/ListDrills",
    "/grpc.health.v1.Health/Check",
    "/grpc.health.v1.Health/Watch",
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
];

fn label_of(transport: Transport, path: &str) -> &'static str {
    match transport {
        Transport::Grpc => GRPC_METHODS.iter().find(|m| **m == path).copied().unwrap_or("other"),
        Transport::Rest => config_backup_gateway::route_label(path).unwrap_or("other"),
    }
}

/// A gRPC status code's name, from its number.
fn grpc_code(value: &[u8]) -> &'static str {
    let code = std::str::from_utf8(value)
        .ok()
        .and_then(|v| v.parse::<i32>().ok())
        .map(tonic::Code::from_i32)
        .unwrap_or(tonic::Code::Unknown);
    match code {
        tonic::Code::Ok => "ok",
        tonic::Code::Cancelled => "cancelled",
        tonic::Code::Unknown => "unknown",
        tonic::Code::InvalidArgument => "invalid_argument",
        tonic::Code::DeadlineExceeded => "deadline_exceeded",
        tonic::Code::NotFound => "not_found",
        tonic::Code::AlreadyExists => "already_exists",
        tonic::Code::PermissionDenied => "permission_denied",
        tonic::Code::ResourceExhausted => "resource_exhausted",
        tonic::Code::FailedPrecondition => "failed_precondition",
        tonic::Code::Aborted => "aborted",
        tonic::Code::OutOfRange => "out_of_range",
        tonic::Code::Unimplemented => "unimplemented",
        tonic::Code::Internal => "internal",
        tonic::Code::Unavailable => "unavailable",
        tonic::Code::DataLoss => "data_loss",
        tonic::Code::Unauthenticated => "unauthenticated",
    }
}

/// An HTTP status as a label (the codes this shim answers with; others are `other`).
fn http_code(status: axum::http::StatusCode) -> &'static str {
    const CODES: &[&str] = &[
        "200", "202", "204", "304", "400", "401", "403", "404", "405", "409", "413", "415", "429", "431", "500", "501",
        "502", "503", "504",
    ];
    CODES
        .iter()
        .find(|c| **c == status.as_str())
        .copied()
        .unwrap_or("other")
}

/// Counts and times every call of the service it wraps.
#[derive(Debug, Clone)]
pub struct RequestMetricsLayer {
    metrics: Arc<RequestMetrics>,
    transport: Transport,
}

impl<S> tower::Layer<S> for RequestMetricsLayer {
    type Service = RequestMetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestMetricsService {
            inner,
            metrics: self.metrics.clone(),
            transport: self.transport,
        }
    }
}

/// See [`RequestMetricsLayer`].
#[derive(Debug, Clone)]
pub struct RequestMetricsService<S> {
    inner: S,
    metrics: Arc<RequestMetrics>,
    transport: Transport,
}

/// One call being answered: recorded when dropped, that is when its answer has been
/// sent in full, or abandoned.
#[derive(Debug)]
struct Call {
    metrics: Arc<RequestMetrics>,
    transport: Transport,
    method: &'static str,
    code: Option<&'static str>,
    started: Instant,
}

impl Call {
    fn answered(&mut self, code: Option<&'static str>) {
        self.code = code;
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        // A gRPC answer that ends without its status trailer was cut off.
        let code = self.code.unwrap_or("cancelled");
        self.metrics.record(self.transport, self.method, code, self.started);
    }
}

impl<S, ReqBody, ResBody> tower::Service<Request<ReqBody>> for RequestMetricsService<S>
where
    S: tower::Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: 'static,
    ResBody: 'static,
{
    type Response = Response<MeteredBody<ResBody>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let mut call = Call {
            metrics: self.metrics.clone(),
            transport: self.transport,
            method: label_of(self.transport, req.uri().path()),
            code: None,
            started: Instant::now(),
        };
        let future = self.inner.call(req);
        Box::pin(async move {
            let response = match future.await {
                Ok(r) => r,
                Err(e) => {
                    call.answered(Some("error"));
                    return Err(e);
                }
            };
            let code = match call.transport {
                Transport::Rest => Some(http_code(response.status())),
                // A trailers-only answer (an error before any message) has its status
                // in the headers; otherwise it comes in the trailers.
                Transport::Grpc => response.headers().get("grpc-status").map(|v| grpc_code(v.as_bytes())),
            };
            call.answered(code);
            Ok(response.map(|inner| MeteredBody { inner, call }))
        })
    }
}

pin_project_lite::pin_project! {
    /// An answer's body, which records its call when it is dropped.
    pub struct MeteredBody<B> {
        #[pin]
        inner: B,
        call: Call,
    }
}

impl<B> http_body::Body for MeteredBody<B>
where
    B: http_body::Body,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(status) = frame.trailers_ref().and_then(|t| t.get("grpc-status"))
        {
            this.call.code = Some(grpc_code(status.as_bytes()));
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_come_from_fixed_lists() {
        assert_eq!(
            label_of(Transport::Grpc, "/configbackup.v1.ConfigBackup/History"),
            "/configbackup.v1.ConfigBackup/History"
        );
        assert_eq!(label_of(Transport::Grpc, "/configbackup.v1.ConfigBackup/Drop"), "other");
        assert_eq!(
            label_of(Transport::Rest, "/api/v1/backups/config/history"),
            "/api/v1/backups/config/history"
        );
        assert_eq!(label_of(Transport::Rest, "/api/v1/backups/config/../../etc"), "other");
        assert_eq!(grpc_code(b"3"), "invalid_argument");
        assert_eq!(grpc_code(b"x"), "unknown");
        assert_eq!(http_code(axum::http::StatusCode::IM_A_TEAPOT), "other");
    }
}
