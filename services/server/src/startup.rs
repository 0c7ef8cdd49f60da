//! Building and running the server: the listener is bound here and its real port
//! reported, so tests pass port 0 and run many servers side by side.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use config_backup_core::engine::BackupParams;
use config_backup_core::store::{self, Trigger};
use config_backup_core::{Actor, Engine};
use config_backup_proto::v1::config_backup_server::ConfigBackupServer;
use tokio::net::TcpListener;
use tokio_stream::StreamExt;
use tonic::transport::Server;
use tonic_health::server::HealthReporter;

use crate::auth::{Authenticator, Caller};
use crate::config::ServerSettings;
use crate::refusals::{CallContext, Refusal, Refusals};
use crate::service::ConfigBackupService;

/// A built server, bound and ready to run.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    http_listener: TcpListener,
    metrics_listener: TcpListener,
    engine: Engine,
    auth: Arc<Authenticator>,
    initial_backup: bool,
    cors_origins: Vec<axum::http::HeaderValue>,
}

/// Puts the call's [`CallContext`] on each request for the auth interceptor, which sees
/// no URI, to log a refusal with.
fn called_method(mut req: axum::http::Request<tonic::body::Body>) -> axum::http::Request<tonic::body::Body> {
    let context = CallContext::of(&req);
    req.extensions_mut().insert(context);
    req
}

/// The span of one gRPC call: its request id and method. Every log line made while the
/// call is served (the handler, the engine's async work) carries them.
fn request_span<B>(req: &axum::http::Request<B>) -> tracing::Span {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(|s| config_backup_core::domain::bounded(s, 64))
        .unwrap_or_default();
    let method = config_backup_core::domain::bounded(req.uri().path(), 128);
    tracing::info_span!("request", request_id = %id, method = %method)
}

/// The interceptor: every ConfigBackup call must carry a valid bearer token; the
/// caller is attached to the request for the handler's role check.
fn authenticate(
    auth: Arc<Authenticator>,
    refusals: Refusals,
) -> impl FnMut(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Clone {
    move |mut req: tonic::Request<()>| {
        let header = req.metadata().get("authorization").and_then(|v| v.to_str().ok());
        let caller: Caller = auth.verify(header).map_err(|e| {
            let call = req.extensions().get::<CallContext>().cloned().unwrap_or_default();
            refusals.record(Refusal::Unauthenticated, &call, None, &e.to_string());
            tonic::Status::from(crate::ApiError::from(e))
        })?;
        req.extensions_mut().insert(caller);
        Ok(req)
    }
}

impl Application {
    /// Connects the store (migrating it) and binds the listener.
    pub async fn build(settings: ServerSettings) -> anyhow::Result<Application> {
        let store = store::connect(&settings.engine.database_url, &settings.engine.site)
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "DATABASE_URL {}: {e}",
                    config_backup_core::remote::redact_url(&settings.engine.database_url)
                )
            })?;
        let listener = TcpListener::bind(settings.grpc_listen)
            .await
            .map_err(|e| anyhow::anyhow!("GRPC_LISTEN_ADDR {}: {e}", settings.grpc_listen))?;
        let http_listener = TcpListener::bind(settings.http_listen)
            .await
            .map_err(|e| anyhow::anyhow!("HTTP_LISTEN_ADDR {}: {e}", settings.http_listen))?;
        let metrics_listener = TcpListener::bind(settings.metrics_listen)
            .await
            .map_err(|e| anyhow::anyhow!("METRICS_LISTEN_ADDR {}: {e}", settings.metrics_listen))?;
        let engine = Engine::new(settings.engine, store)?;
        match settings.mail {
            Some(mail) => {
                let mailer = config_backup_notify::Mailer::new(mail);
                engine.add_observer(Arc::new(config_backup_notify::MailObserver::new(mailer)));
            }
            None => tracing::warn!("SMTP_HOST is not set: no mail will be sent to the NOC"),
        }
        Ok(Application {
            listener,
            http_listener,
            metrics_listener,
            engine,
            auth: Arc::new(Authenticator::new(&settings.secret)),
            initial_backup: settings.initial_backup,
            cors_origins: settings.cors_origins,
        })
    }

    /// The bound address (with the real port).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener has an address")
    }

    /// The REST shim's bound address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_listener.local_addr().expect("bound listener has an address")
    }

    /// The metrics listener's bound address.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_listener
            .local_addr()
            .expect("bound listener has an address")
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Serves until `shutdown` resolves, then stops accepting, lets running calls
    /// and backups finish, and returns.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let (health, health_service) = tonic_health::server::health_reporter();
        health
            .set_not_serving::<ConfigBackupServer<ConfigBackupService>>()
            .await;

        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(config_backup_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(config_backup_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()?;

        let refusals = Refusals::default();
        let instruments = crate::metrics::Instruments::default();
        self.engine.add_observer(Arc::new(instruments.stages.clone()));
        let service = ConfigBackupServer::with_interceptor(
            ConfigBackupService::new(self.engine.clone(), refusals.clone()),
            authenticate(self.auth.clone(), refusals.clone()),
        );

        let readiness = tokio::spawn(become_ready(self.engine.clone(), health.clone(), self.initial_backup));

        // One stop signal for both listeners.
        let stop = tokio_util::sync::CancellationToken::new();
        let on_signal = stop.clone();
        tokio::spawn(async move {
            shutdown.await;
            on_signal.cancel();
        });

        // The layers every gRPC call passes, over TCP and in process.
        let layers = tower::ServiceBuilder::new()
            // Outermost: every call is counted and timed, refused ones included.
            .layer(instruments.requests.layer(crate::metrics::Transport::Grpc))
            // A request id per call (the caller's `x-request-id`, or a new UUID), returned
            // in the answer's metadata; every log line of the call carries it in its span.
            .layer(tower_http::request_id::SetRequestIdLayer::x_request_id(
                tower_http::request_id::MakeRequestUuid,
            ))
            .layer(tower_http::request_id::PropagateRequestIdLayer::x_request_id())
            .layer(
                tower_http::trace::TraceLayer::new_for_grpc()
                    .make_span_with(request_span as fn(&axum::http::Request<tonic::body::Body>) -> tracing::Span)
                    .on_request(())
                    .on_response(tower_http::trace::DefaultOnResponse::new().level(tracing::Level::INFO))
                    .on_failure(tower_http::trace::DefaultOnFailure::new().level(tracing::Level::WARN)),
            )
            .layer(tower::util::MapRequestLayer::new(
                called_method as fn(axum::http::Request<tonic::body::Body>) -> axum::http::Request<tonic::body::Body>,
            ));
        let routes = tonic::service::Routes::new(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(service);

        // The REST shim calls the same service stack in process: the same auth,
        // validation, error map, request ids and metrics as a gRPC client, without a
        // serialised HTTP/2 hop over loopback.
        let in_process: config_backup_gateway::GrpcService = tower::util::BoxCloneSyncService::new(
            tower::ServiceBuilder::new()
                .map_response(|r: axum::http::Response<_>| r.map(tonic::body::Body::new))
                .service(layers.clone().service(routes.clone())),
        );
        let http_stop = stop.clone();
        use axum::serve::ListenerExt;
        // Small request/response pairs: no Nagle delay (40 ms with delayed ACKs).
        let nodelay = |tcp: &mut tokio::net::TcpStream| {
            let _ = tcp.set_nodelay(true);
        };
        let http = axum::serve(
            self.http_listener.tap_io(nodelay),
            config_backup_gateway::router(in_process, self.cors_origins.clone())
                .layer(instruments.requests.layer(crate::metrics::Transport::Rest)),
        )
        .with_graceful_shutdown(async move { http_stop.cancelled().await });
        let http = tokio::spawn(async move { http.await });
        let metrics_stop = stop.clone();
        let metrics = axum::serve(
            self.metrics_listener.tap_io(nodelay),
            crate::metrics::router(self.engine.clone(), refusals, instruments.clone()),
        )
        .with_graceful_shutdown(async move { metrics_stop.cancelled().await });
        let metrics = tokio::spawn(async move { metrics.await });

        let incoming = tokio_stream::wrappers::TcpListenerStream::new(self.listener).map(|s| {
            s.inspect(|tcp| {
                let _ = tcp.set_nodelay(true);
            })
        });
        let grpc_stop = stop.clone();
        let result = Server::builder()
            .http2_max_header_list_size(config_backup_core::domain::MAX_HEADER_BYTES as u32)
            .layer(layers)
            .add_routes(routes)
            .serve_with_incoming_shutdown(incoming, async move { grpc_stop.cancelled().await })
            .await;
        stop.cancel();
        readiness.abort();
        if let Ok(Err(e)) = http.await {
            tracing::error!(error = %e, "the REST listener failed");
        }
        if let Ok(Err(e)) = metrics.await {
            tracing::error!(error = %e, "the metrics listener failed");
        }
        tracing::info!("stopped accepting calls; waiting for running backups to finish");
        self.engine.shutdown().await;
        result?;
        Ok(())
    }
}

/// Prepares the engine (database, remote, working copy), retrying until it works,
/// then reports SERVING and makes the first backup if the repository is empty.
async fn become_ready(engine: Engine, health: HealthReporter, initial_backup: bool) {
    let mut delay = Duration::from_secs(1);
    loop {
        match engine.prepare().await {
            Ok(()) => break,
            Err(e) => {
                tracing::error!(error = %e, retry_in_s = delay.as_secs(), "not ready: the database or the working copy is unavailable");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(60));
            }
        }
    }
    match engine.recover_interrupted_rollbacks().await {
        Ok(0) => {}
        Ok(n) => tracing::warn!(
            tasks = n,
            "rollbacks interrupted by a stop were recovered and marked failed"
        ),
        Err(e) => tracing::error!(error = %e, "could not recover interrupted rollbacks; retried at the next start"),
    }
    health.set_serving::<ConfigBackupServer<ConfigBackupService>>().await;
    tracing::info!("ready: ConfigBackup is SERVING");
    if initial_backup && matches!(engine.has_commits().await, Ok(false)) {
        tracing::info!("the backup repository has no commit yet: making the first backup");
        let params = BackupParams::new(Trigger::Scheduled, Actor::System, Vec::new());
        match engine.backup(params).await {
            Ok(r) => {
                tracing::info!(run_id = %r.run.id, outcome = r.run.outcome.as_str(), "first backup done")
            }
            Err(e) => tracing::error!(error = %e, "first backup failed"),
        }
    }
}
