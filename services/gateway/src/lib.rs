//! The REST shim for the NOC web UI, in the style of grpc-gateway: the routes are the
//! proto's `google.api.http` options, every call goes through a tonic client to the gRPC
//! service (so REST callers get exactly its auth, validation and errors), JSON is the
//! proto3 mapping with proto field names, gRPC codes map to HTTP statuses in one table,
//! and server streams become newline-delimited JSON.

// Handlers bail out with the error response itself (`Result<_, Response>`), as axum
// extractors do; boxing it would only add noise at every call site.
#![allow(clippy::result_large_err)]

pub mod errors;
pub mod json;
pub mod memo;
pub mod routes;
pub mod wire;

pub mod console;
use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use config_backup_core::domain::quote_input;
use config_backup_proto::v1 as pb;
use config_backup_proto::v1::config_backup_client::ConfigBackupClient;
use futures::{Stream, StreamExt};
use serde::Serialize;
use serde_json::json;

use crate::errors::{bad_parameter, error_body, error_response};
use crate::json::to_json;
use crate::routes::{HEALTH_PATH, OPENAPI_PATH, ROUTES, Route};

#[derive(Clone, Debug)]
struct Gateway {
    client: ConfigBackupClient<GrpcService>,
    health: tonic_health::pb::health_client::HealthClient<GrpcService>,
    /// The same service, for calls whose answers stay as the bytes it sent
    /// ([`wire::WireAnswer`]).
    wire: tonic::client::Grpc<GrpcService>,
    /// The JSON of the last History pages, by their bytes, for a page polled again
    /// unchanged.
    history_json: Arc<memo::JsonMemo<pb::HistoryResponse>>,
}

/// The gRPC service the shim calls: the server's own service stack, in process (the same
/// layers, auth, validation and error map as a gRPC client gets, without a TCP or HTTP/2
/// hop), or any channel to it.
pub type GrpcService = tower::util::BoxCloneSyncService<
    axum::http::Request<tonic::body::Body>,
    axum::http::Response<tonic::body::Body>,
    std::convert::Infallible,
>;

/// Parses `HTTP_CORS_ALLOWED_ORIGINS`: comma-separated exact origins
/// (`scheme://host[:port]`, http or https, no path, no wildcard). The error says which
/// entry is wrong and what is allowed.
pub fn parse_cors_origins(text: &str) -> Result<Vec<axum::http::HeaderValue>, String> {
    let mut out = Vec::new();
    for raw in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let bad = |why: &str| {
            format!(
                "{} {why}: give exact origins such as https://noc.example.net or http://noc.rgz.local:8443",
                quote_input(raw)
            )
        };
        let rest = raw
            .strip_prefix("https://")
            .or_else(|| raw.strip_prefix("http://"))
            .ok_or_else(|| bad("is not an http:// or https:// origin"))?;
        if rest.is_empty() || rest.contains(['/', '*', '?', '#', '@', ' ']) {
            return Err(bad("is not an exact origin (no path, wildcard, query or user)"));
        }
        let uri: axum::http::Uri = raw.parse().map_err(|_| bad("is not a valid origin"))?;
        if uri.host().is_none_or(str::is_empty) {
            return Err(bad("has no host"));
        }
        out.push(axum::http::HeaderValue::from_str(raw).map_err(|_| bad("is not a valid header value"))?);
    }
    Ok(out)
}

/// The header (and gRPC metadata) that names the shim's route of a call.
const ROUTE_HEADER: &str = "x-config-backup-route";

/// Names the route the shim serves a request on, in [`ROUTE_HEADER`] (replacing one the
/// caller may have sent), so the server's log of a refused call says it.
async fn tag_route(mut req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    req.headers_mut().remove(ROUTE_HEADER);
    if let Some(route) = route_label(req.uri().path()) {
        req.headers_mut()
            .insert(ROUTE_HEADER, axum::http::HeaderValue::from_static(route));
    }
    next.run(req).await
}

/// The route a request path names, as a fixed label for metrics; `None` for a path the
/// shim does not serve.
pub fn route_label(path: &str) -> Option<&'static str> {
    const OTHERS: &[&str] = &[HEALTH_PATH, OPENAPI_PATH, "/", "/console/app.js", "/console/style.css"];
    routes::ROUTES
        .iter()
        .map(|r| r.path)
        .chain(OTHERS.iter().copied())
        .find(|p| *p == path)
}

/// The span of one REST call: its request id, method and route (a fixed label; `other`
/// for a path the shim does not serve).
fn http_span<B>(req: &axum::http::Request<B>) -> tracing::Span {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(|s| config_backup_core::domain::bounded(s, 64))
        .unwrap_or_default();
    let route = route_label(req.uri().path()).unwrap_or("other");
    tracing::info_span!("http_request", request_id = %id, method = %req.method(), route)
}

/// The shim's router over the gRPC service, answering CORS for `origins` (none: no CORS
/// headers at all).
pub fn router(grpc: GrpcService, origins: Vec<axum::http::HeaderValue>) -> Router {
    let state = Gateway {
        // A first backup of a large site reports every file: allow big answers.
        client: ConfigBackupClient::new(grpc.clone()).max_decoding_message_size(256 << 20),
        health: tonic_health::pb::health_client::HealthClient::new(grpc.clone()),
        wire: tonic::client::Grpc::new(grpc).max_decoding_message_size(256 << 20),
        history_json: Default::default(),
    };
    Router::new()
        .route(route("Backup").path, post(run))
        .route(route("Status").path, get(status))
        .route(route("History").path, get(history))
        .route(route("Diff").path, get(diff))
        .route(route("Rollback").path, post(rollback))
        .route(route("RollbackStatus").path, get(rollback_status))
        .route(route("ListSites").path, get(list_sites))
        .route(route("Verify").path, post(verify))
        .route(route("ListDrills").path, get(list_drills))
        .route(HEALTH_PATH, get(healthz))
        .route("/", get(console::index))
        .route("/console/app.js", get(console::app_js))
        .route("/console/style.css", get(console::style))
        .route(OPENAPI_PATH, get(|| async { axum::Json(routes::openapi()) }))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .layer(axum::middleware::from_fn(tag_route))
        .layer(axum::middleware::from_fn(header_limits))
        // One span per call (request id, method, route), inside the request id layer so
        // the id is known; one INFO line per answer with its latency.
        .layer(
            tower_http::trace::TraceLayer::new_for_http()
                .make_span_with(http_span)
                .on_request(())
                .on_response(tower_http::trace::DefaultOnResponse::new().level(tracing::Level::INFO))
                .on_failure(tower_http::trace::DefaultOnFailure::new().level(tracing::Level::WARN)),
        )
        // A request id per call: the caller's `x-request-id`, or a new UUID; returned in
        // the answer and passed on to the gRPC service, whose log lines carry it.
        .layer(tower_http::request_id::PropagateRequestIdLayer::x_request_id())
        .layer(tower_http::request_id::SetRequestIdLayer::x_request_id(
            tower_http::request_id::MakeRequestUuid,
        ))
        // Outermost: preflights are answered here, and every answer (errors and the
        // NDJSON stream included) carries the headers a browser needs to read it.
        .layer(cors(origins))
}

/// CORS for the NOC's own web UI: exact origins only; the API's methods; the
/// `Authorization` and `Content-Type` request headers. No credentials mode: the token
/// travels in `Authorization`, never in a cookie. An origin not listed gets no CORS
/// header, so the browser keeps the answer from it.
fn cors(origins: Vec<axum::http::HeaderValue>) -> tower_http::cors::CorsLayer {
    use axum::http::Method;
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if origins.is_empty() {
        return CorsLayer::new();
    }
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .expose_headers([header::WWW_AUTHENTICATE])
        .max_age(std::time::Duration::from_secs(600))
}

/// Refuses a request whose headers are too large with 431, before anything else: an
/// oversize `Authorization` (more than the service would ever read) or header section.
async fn header_limits(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let auth = req.headers().get(header::AUTHORIZATION).map_or(0, |v| v.len());
    let total: usize = req.headers().iter().map(|(k, v)| k.as_str().len() + v.len() + 32).sum();
    use config_backup_core::domain::{MAX_AUTHORIZATION_BYTES as max_auth, MAX_HEADER_BYTES};
    if auth > max_auth || total > MAX_HEADER_BYTES {
        let message = if auth > max_auth {
            format!("the Authorization header is {auth} bytes: at most {max_auth} are accepted")
        } else {
            format!("the request headers are {total} bytes: at most {MAX_HEADER_BYTES} are accepted")
        };
        return errors::headers_too_large(message);
    }
    next.run(req).await
}

fn route(rpc: &str) -> &'static Route {
    ROUTES.iter().find(|r| r.rpc == rpc).expect("every RPC has a route")
}

async fn not_found(uri: axum::http::Uri) -> Response {
    errors::route_not_found(uri.path())
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    errors::method_not_allowed(&method, uri.path())
}

/// The request to the gRPC service, with the caller's `Authorization` as metadata.
fn grpc<T>(headers: &HeaderMap, msg: T) -> Result<tonic::Request<T>, Response> {
    let mut req = tonic::Request::new(msg);
    if let Some(v) = headers.get(header::AUTHORIZATION) {
        let v = v.to_str().ok().and_then(|s| s.parse().ok()).ok_or_else(|| {
            error_response(&tonic::Status::unauthenticated(
                "malformed authorization: expected `Bearer <JWT>`",
            ))
        })?;
        req.metadata_mut().insert("authorization", v);
    }
    // The route, for the server's log of a refused call (set by `tag_route`).
    if let Some(route) = headers
        .get(ROUTE_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse().ok())
    {
        req.metadata_mut().insert(ROUTE_HEADER, route);
    }
    if let Some(id) = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse().ok())
    {
        req.metadata_mut().insert("x-request-id", id);
    }
    Ok(req)
}

fn json_response<T: Serialize>(status: StatusCode, msg: &T) -> Response {
    json_body(status, json::to_json_vec(msg))
}

/// An answer's serialised JSON, or the error of serialising it.
fn json_body(status: StatusCode, body: Result<impl Into<axum::body::Body>, serde_json::Error>) -> Response {
    match body {
        Ok(body) => (status, [(header::CONTENT_TYPE, "application/json")], body.into()).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot serialise a response");
            error_response(&tonic::Status::internal("cannot serialise the response"))
        }
    }
}

fn answer<T: Serialize>(result: Result<tonic::Response<T>, tonic::Status>, ok: StatusCode) -> Response {
    match result {
        Ok(r) => json_response(ok, r.get_ref()),
        Err(s) => error_response(&s),
    }
}

/// camelCase → snake_case.
fn snake(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 4);
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

type QueryPairs = Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>;

/// Query parameters checked against the route: known names only (snake or camel
/// case), required ones present.
struct Params(HashMap<&'static str, String>);

impl Params {
    fn parse(route: &Route, query: QueryPairs) -> Result<Params, Response> {
        let Query(pairs) =
            query.map_err(|e| bad_parameter("query", config_backup_core::domain::bounded(&e.body_text(), 160)))?;
        let mut map: HashMap<&'static str, String> = HashMap::new();
        for (key, value) in pairs {
            let key = snake(&key);
            let Some(param) = route.params.iter().find(|p| p.name == key) else {
                let allowed: Vec<&str> = route.params.iter().map(|p| p.name).collect();
                let allowed = if allowed.is_empty() {
                    "none".to_owned()
                } else {
                    allowed.join(", ")
                };
                return Err(bad_parameter(
                    &key,
                    format!("unknown query parameter: allowed are {allowed}"),
                ));
            };
            match map.get_mut(param.name) {
                Some(existing) if param.name == "domains" => {
                    existing.push(',');
                    existing.push_str(&value);
                }
                _ => {
                    map.insert(param.name, value);
                }
            }
        }
        if let Some(missing) = route.params.iter().find(|p| p.required && !map.contains_key(p.name)) {
            return Err(bad_parameter(
                missing.name,
                format!("required: {}", missing.description),
            ));
        }
        Ok(Params(map))
    }

    fn text(&self, name: &str) -> String {
        self.0.get(name).cloned().unwrap_or_default()
    }

    fn bool(&self, name: &'static str) -> Result<bool, Response> {
        match self.0.get(name).map(|s| s.as_str()) {
            None | Some("") => Ok(false),
            Some("true" | "1") => Ok(true),
            Some("false" | "0") => Ok(false),
            Some(other) => Err(bad_parameter(
                name,
                format!("{} is not a boolean: use true or false", quote_input(other)),
            )),
        }
    }

    fn int(&self, name: &'static str) -> Result<i32, Response> {
        match self.0.get(name).map(|s| s.as_str()) {
            None | Some("") => Ok(0),
            Some(v) => v
                .parse()
                .map_err(|_| bad_parameter(name, format!("{} is not an integer", quote_input(v)))),
        }
    }

    fn timestamp(&self, name: &'static str) -> Result<Option<pbjson_types::Timestamp>, Response> {
        match self.0.get(name).map(|s| s.as_str()) {
            None | Some("") => Ok(None),
            Some(v) => {
                let t = chrono::DateTime::parse_from_rfc3339(v).map_err(|_| {
                    bad_parameter(
                        name,
                        format!("{} is not an RFC 3339 time, e.g. 2026-11-26T04:00:00Z", quote_input(v)),
                    )
                })?;
                Ok(Some(pbjson_types::Timestamp {
                    seconds: t.timestamp(),
                    nanos: t.timestamp_subsec_nanos() as i32,
                }))
            }
        }
    }
}

macro_rules! tri {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(resp) => return resp,
        }
    };
}

async fn run(State(mut g): State<Gateway>, headers: HeaderMap, query: QueryPairs, body: Bytes) -> Response {
    let params = tri!(Params::parse(route("Backup"), query));
    let mut msg: pb::BackupRequest = if body.iter().all(u8::is_ascii_whitespace) {
        pb::BackupRequest::default()
    } else {
        tri!(serde_json::from_slice(&body).map_err(|e| bad_parameter("body", format!("invalid JSON: {e}"))))
    };
    let domains = params.text("domains");
    msg.domains.extend(
        domains
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned),
    );
    let req = tri!(grpc(&headers, msg));
    answer(g.client.backup(req).await, StatusCode::OK)
}

async fn status(State(mut g): State<Gateway>, headers: HeaderMap, query: QueryPairs) -> Response {
    let p = tri!(Params::parse(route("Status"), query));
    let req = tri!(grpc(&headers, pb::StatusRequest { site: p.text("site") }));
    answer(g.client.status(req).await, StatusCode::OK)
}

async fn list_sites(State(mut g): State<Gateway>, headers: HeaderMap, query: QueryPairs) -> Response {
    tri!(Params::parse(route("ListSites"), query));
    let req = tri!(grpc(&headers, pb::ListSitesRequest {}));
    answer(g.client.list_sites(req).await, StatusCode::OK)
}

async fn verify(State(mut g): State<Gateway>, headers: HeaderMap, query: QueryPairs) -> Response {
    tri!(Params::parse(route("Verify"), query));
    let req = tri!(grpc(&headers, pb::VerifyRequest {}));
    answer(g.client.verify(req).await, StatusCode::OK)
}

async fn list_drills(State(mut g): State<Gateway>, headers: HeaderMap, query: QueryPairs) -> Response {
    let p = tri!(Params::parse(route("ListDrills"), query));
    let req = tri!(grpc(
        &headers,
        pb::ListDrillsRequest {
            limit: tri!(p.int("limit"))
        }
    ));
    answer(g.client.list_drills(req).await, StatusCode::OK)
}

async fn history(State(mut g): State<Gateway>, headers: HeaderMap, query: QueryPairs) -> Response {
    let p = tri!(Params::parse(route("History"), query));
    let msg = pb::HistoryRequest {
        domain: p.text("domain"),
        path: p.text("path"),
        since: tri!(p.timestamp("since")),
        until: tri!(p.timestamp("until")),
        change_type: p.text("change_type"),
        include_unchanged: tri!(p.bool("include_unchanged")),
        page_size: tri!(p.int("page_size")),
        page_token: p.text("page_token"),
        site: p.text("site"),
    };
    let mut req = tri!(grpc(&headers, msg));
    // As the generated client does; the answer stays as its bytes, for the memo.
    req.extensions_mut()
        .insert(tonic::GrpcMethod::new("configbackup.v1.ConfigBackup", "History"));
    let Ok(()) = g.wire.ready().await;
    let path = axum::http::uri::PathAndQuery::from_static("/configbackup.v1.ConfigBackup/History");
    match g.wire.unary(req, path, wire::WireAnswer::default()).await {
        Ok(r) => match g.history_json.json(r.into_inner()) {
            Ok(body) => json_body(StatusCode::OK, Ok::<_, serde_json::Error>(body)),
            Err(e) => {
                tracing::error!(error = ?e, "cannot turn a History answer into JSON");
                error_response(&tonic::Status::internal("cannot serialise the response"))
            }
        },
        Err(s) => error_response(&s),
    }
}

async fn diff(State(mut g): State<Gateway>, headers: HeaderMap, query: QueryPairs) -> Response {
    let p = tri!(Params::parse(route("Diff"), query));
    let patch = match p.text("format").as_str() {
        "" | "json" => false,
        "patch" => true,
        other => {
            return bad_parameter(
                "format",
                format!("{} is not a format: allowed are json, patch", quote_input(other)),
            );
        }
    };
    let msg = pb::DiffRequest {
        commit1: p.text("commit1"),
        commit2: p.text("commit2"),
        domain: p.text("domain"),
        path: p.text("path"),
        reveal_secrets: tri!(p.bool("reveal_secrets")),
    };
    let req = tri!(grpc(&headers, msg));
    let result = g.client.diff(req).await;
    if !patch {
        return answer(result, StatusCode::OK);
    }
    match result {
        Ok(r) => {
            let mut text = String::new();
            for f in &r.get_ref().files {
                if f.binary {
                    text.push_str(&format!("Binary files a/{0} and b/{0} differ\n", f.path));
                } else {
                    text.push_str(&f.patch);
                }
            }
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "text/x-diff; charset=utf-8")],
                text,
            )
                .into_response()
        }
        Err(s) => error_response(&s),
    }
}

async fn rollback(State(mut g): State<Gateway>, headers: HeaderMap, query: QueryPairs) -> Response {
    let p = tri!(Params::parse(route("Rollback"), query));
    let msg = pb::RollbackRequest {
        commit: p.text("commit"),
        domain: p.text("domain"),
        dry_run: tri!(p.bool("dry_run")),
        remove_extra: tri!(p.bool("remove_extra")),
        reason: p.text("reason"),
        allow_unsigned: tri!(p.bool("allow_unsigned")),
    };
    let req = tri!(grpc(&headers, msg));
    answer(g.client.rollback(req).await, StatusCode::ACCEPTED)
}

async fn rollback_status(State(mut g): State<Gateway>, headers: HeaderMap, query: QueryPairs) -> Response {
    let p = tri!(Params::parse(route("RollbackStatus"), query));
    let watch = tri!(p.bool("watch"));
    let req = tri!(grpc(
        &headers,
        pb::RollbackStatusRequest {
            task_id: p.text("task_id")
        }
    ));
    let stream = match g.client.rollback_status(req).await {
        Ok(r) => r.into_inner(),
        Err(s) => return error_response(&s),
    };
    if watch {
        ndjson(stream).await
    } else {
        let mut stream = stream;
        match stream.message().await {
            Ok(Some(m)) => json_response(StatusCode::OK, &m),
            Ok(None) => error_response(&tonic::Status::internal("the status stream ended without a state")),
            Err(s) => error_response(&s),
        }
    }
}

async fn healthz(State(mut g): State<Gateway>) -> Response {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    let req = HealthCheckRequest {
        service: "configbackup.v1.ConfigBackup".to_owned(),
    };
    match g.health.check(req).await {
        Ok(r) if r.get_ref().status == ServingStatus::Serving as i32 => {
            (StatusCode::OK, axum::Json(json!({"status": "SERVING"}))).into_response()
        }
        Ok(r) => {
            let name = ServingStatus::try_from(r.get_ref().status)
                .map(|s| s.as_str_name())
                .unwrap_or("UNKNOWN");
            (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({"status": name}))).into_response()
        }
        Err(s) => error_response(&s),
    }
}

/// A server stream as newline-delimited JSON, grpc-gateway style: one
/// `{"result": ...}` line per message and a final `{"error": ...}` line on failure. The
/// HTTP status comes from the first item: an error there is an ordinary error response.
pub async fn ndjson<T, S>(mut stream: S) -> Response
where
    T: Serialize + Send + 'static,
    S: Stream<Item = Result<T, tonic::Status>> + Send + Unpin + 'static,
{
    let first = match stream.next().await {
        Some(Err(s)) => return error_response(&s),
        Some(Ok(m)) => Some(m),
        None => None,
    };
    let line = |v: serde_json::Value| {
        let mut b = serde_json::to_vec(&v).unwrap_or_default();
        b.push(b'\n');
        Ok::<Bytes, std::convert::Infallible>(Bytes::from(b))
    };
    let result = |m: T| json!({"result": to_json(&m).unwrap_or_default()});
    let head = futures::stream::iter(first.map(|m| line(result(m))));
    let rest = futures::stream::unfold(Some(stream), move |state| async move {
        let mut stream = state?;
        match stream.next().await {
            Some(Ok(m)) => Some((line(result(m)), Some(stream))),
            Some(Err(s)) => Some((line(json!({"error": error_body(&s)})), None)),
            None => None,
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .body(Body::from_stream(head.chain(rest)))
        .unwrap_or_else(|_| error_response(&tonic::Status::internal("cannot build the stream")))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines(resp: Response) -> Vec<serde_json::Value> {
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
        body.split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect()
    }

    #[tokio::test]
    async fn ndjson_streams_results_and_ends_with_the_terminal_message() {
        let items: Vec<Result<serde_json::Value, tonic::Status>> = vec![
            Ok(json!({"state": "VALIDATING"})),
            Ok(json!({"state": "APPLYING"})),
            Ok(json!({"state": "SUCCESS"})),
        ];
        let resp = ndjson(futures::stream::iter(items)).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/x-ndjson");
        let l = lines(resp).await;
        assert_eq!(l.len(), 3);
        assert_eq!(l[2], json!({"result": {"state": "SUCCESS"}}));
    }

    #[tokio::test]
    async fn ndjson_ends_with_an_error_line_on_failure() {
        let items: Vec<Result<serde_json::Value, tonic::Status>> = vec![
            Ok(json!({"state": "VALIDATING"})),
            Err(tonic::Status::unavailable("gone")),
        ];
        let l = lines(ndjson(futures::stream::iter(items)).await).await;
        assert_eq!(l.len(), 2);
        assert_eq!(l[1]["error"]["code"], 14);
        assert_eq!(l[1]["error"]["message"], "gone");
    }

    #[tokio::test]
    async fn ndjson_first_item_error_is_an_ordinary_error_response() {
        let items: Vec<Result<serde_json::Value, tonic::Status>> = vec![Err(tonic::Status::not_found("no task"))];
        let resp = ndjson(futures::stream::iter(items)).await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn camel_case_becomes_snake_case() {
        assert_eq!(snake("pageSize"), "page_size");
        assert_eq!(snake("includeUnchanged"), "include_unchanged");
        assert_eq!(snake("commit1"), "commit1");
    }
}

/// Generated query strings on every route: parsing never panics, and a refusal is a 400
/// naming the parameter (or a quoted, bounded name), whose body quotes no value beyond
/// the echo bound.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    fn name() -> impl Strategy<Value = String> {
        let known: Vec<String> = ROUTES
            .iter()
            .flat_map(|r| r.params.iter().map(|p| p.name.to_owned()))
            .collect();
        prop_oneof![
            proptest::sample::select(known),
            "[a-zA-Z_]{1,12}",
            (65usize..3000).prop_map(|n| "p".repeat(n)),
        ]
    }

    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            ".{0,40}",
            Just("true".to_owned()),
            Just("2026-11-26T04:00:00Z".to_owned()),
            (65usize..6000).prop_map(|n| "v".repeat(n)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

        #[test]
        fn query_parameters(route in 0..ROUTES.len(), pairs in proptest::collection::vec((name(), value()), 0..5)) {
            let route = &ROUTES[route];
            let Err(resp) = Params::parse(route, Ok(Query(pairs.clone()))) else {
                return Ok(());
            };
            prop_assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
            let body = futures::executor::block_on(axum::body::to_bytes(resp.into_body(), usize::MAX)).unwrap();
            let text = String::from_utf8_lossy(&body);
            prop_assert!(text.len() < 2048, "{} bytes", text.len());
            for (k, v) in &pairs {
                for long in [k, v] {
                    if long.len() > 64 && long.bytes().all(|b| b.is_ascii_alphanumeric()) {
                        prop_assert!(!text.contains(&long[..65]), "echoed beyond the bound: {text}");
                    }
                }
            }
        }
    }
}
