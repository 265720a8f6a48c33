//! The HTTP server: OpenAI's routes, thin handlers over the proxy (routing, attempts, each a
//! [`crate::Call`]), and one error shape for every refusal (ours, the HTTP layer's, and the
//! upstream's).

pub mod access;
mod admission;
mod body;
pub mod limits;
pub mod listener;
pub mod metrics;
mod proxy;
pub mod traces;
mod validate;

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};

use crate::engine::Engine;
use crate::error::Error;
use crate::plan::Endpoint;
use crate::stream::StreamLimits;
use crate::upstream::Upstream;

/// Server settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Largest request body accepted, in bytes (after decompression).
    pub max_body_bytes: usize,
    /// Largest non-stream upstream body read, in bytes.
    pub max_upstream_body_bytes: usize,
    /// The wait for an upstream's headers, its whole non-stream body, or its next stream chunk,
    /// where a target sets no timeouts of its own.
    pub upstream_timeout: Duration,
    /// The longest a stream may last, however steadily it trickles.
    pub max_stream_duration: Duration,
    /// Requests handled at once; beyond it, 503 with Retry-After.
    pub max_in_flight: usize,
    /// Bounds on what one stream's translation may buffer.
    pub stream_limits: StreamLimits,
    /// What `/metrics` reports.
    pub metrics: metrics::MetricsConfig,
    /// Make a span per request and per attempt (exported when an OTLP endpoint is set).
    pub traces: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_body_bytes: 16 << 20,
            max_upstream_body_bytes: 32 << 20,
            upstream_timeout: Duration::from_secs(600),
            max_stream_duration: Duration::from_secs(3600),
            max_in_flight: 4096,
            stream_limits: StreamLimits::default(),
            metrics: metrics::MetricsConfig::default(),
            traces: false,
        }
    }
}

pub struct AppState {
    pub engine: Arc<ArcSwap<Engine>>,
    pub router: Arc<ArcSwap<crate::route::Router>>,
    upstream: Upstream,
    config: Config,
    /// Requests in flight, bounded by `config.max_in_flight`.
    in_flight: Arc<tokio::sync::Semaphore>,
    /// Gateway keys' limits and targets' circuit breakers: process memory, or shared in Redis.
    pub store: limits::Store,
    /// How the mapping and config loads went (for `/ready` and `/metrics`).
    pub reloads: Arc<crate::reload::ReloadStatus>,
    metrics: metrics::Metrics,
}

impl AppState {
    /// A gateway without a config file: routing by the mappings alone.
    pub fn new(engine: Arc<ArcSwap<Engine>>, config: Config) -> Arc<AppState> {
        AppState::with_router(engine, Arc::new(ArcSwap::from_pointee(crate::route::Router::default())), config)
    }

    pub fn with_router(
        engine: Arc<ArcSwap<Engine>>,
        router: Arc<ArcSwap<crate::route::Router>>,
        config: Config,
    ) -> Arc<AppState> {
        AppState::with_store(engine, router, limits::Store::memory(), config)
    }

    /// With a shared store (Redis) for limits and circuit breakers.
    pub fn with_store(
        engine: Arc<ArcSwap<Engine>>,
        router: Arc<ArcSwap<crate::route::Router>>,
        store: limits::Store,
        config: Config,
    ) -> Arc<AppState> {
        let in_flight = Arc::new(tokio::sync::Semaphore::new(config.max_in_flight));
        let reloads = Arc::new(crate::reload::ReloadStatus::default());
        reloads.loaded();
        let metrics = metrics::Metrics::new(config.metrics.clone(), &reloads);
        Arc::new(AppState { engine, router, upstream: Upstream::new(), config, in_flight, store, reloads, metrics })
    }

    /// A configured target's circuit breaker, as the proxy keeps it.
    async fn breaker(&self, t: &crate::route::Target) -> Result<limits::BreakerState, limits::StoreError> {
        self.store.breaker_state(&proxy::breaker_key(&t.name), &proxy::breaker_config(t.breaker)).await
    }
}

/// The gateway's routes; `/metrics` too unless `with_metrics` is false (metrics served on an
/// address of their own: [`metrics_router`]).
pub fn router(state: Arc<AppState>) -> Router {
    router_with(state, true)
}

pub fn router_with(state: Arc<AppState>, with_metrics: bool) -> Router {
    let r = Router::new();
    let r = if with_metrics { r.route("/metrics", get(metrics_text)) } else { r };
    r.route("/v1/chat/completions", post(chat))
        .route("/chat/completions", post(chat))
        .route("/v1/embeddings", post(embeddings))
        .route("/embeddings", post(embeddings))
        .route("/v1/models", get(models))
        .route("/models", get(models))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/admin/targets", get(targets))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// Serve `app` on `listener` with the default client limits until `shutdown` completes (then
/// drain; see [`listener`]).
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    listener::serve(listener, app, listener::Limits::default(), shutdown).await
}

/// An error as the client sees it.
pub fn error_response(e: &Error) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut resp = (status, axum::Json(e.body())).into_response();
    if e.status == 405 {
        resp.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, POST"));
    }
    if let Some(wait) = e.retry_after.filter(|_| matches!(e.status, 429 | 503)) {
        resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(wait.as_secs_f64().ceil() as u64));
    }
    resp
}

async fn not_found(req: Request) -> Response {
    error_response(&Error::not_found(format!("no route for {} {}", req.method(), req.uri().path()), "not_found"))
}

async fn method_not_allowed(req: Request) -> Response {
    error_response(
        &Error::new(
            405,
            "invalid_request_error",
            format!("method {} is not allowed on {}", req.method(), req.uri().path()),
        )
        .with_code("method_not_allowed"),
    )
}

/// `/metrics` alone, for a listener of its own.
pub fn metrics_router(state: Arc<AppState>) -> Router {
    Router::new().route("/metrics", get(metrics_text)).fallback(not_found).with_state(state)
}

async fn health() -> Response {
    axum::Json(json!({"status": "ok"})).into_response()
}

/// Ready to take requests: plans are loaded (the server listens only once they are) and no
/// drain has begun. A failed reload keeps the last good plans, so it is reported, not a 503:
/// one bad ConfigMap must not take every replica out of its Service.
async fn ready(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let draining = req.extensions().get::<listener::Shutdown>().is_some_and(|s| s.is_draining());
    let (problems, last_good) = state.reloads.last();
    let body = json!({
        "status": if draining { "draining" } else { "ready" },
        "providers": state.engine.load().providers().len(),
        "last_reload": {"ok": problems == 0, "problems": problems, "last_good_unix": last_good as u64},
    });
    let status = if draining { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
    (status, axum::Json(body)).into_response()
}

/// The metrics, with each target's circuit breaker read now.
async fn metrics_text(State(state): State<Arc<AppState>>) -> Response {
    let router = state.router.load();
    for t in router.targets() {
        let open = matches!(state.breaker(t).await, Ok(limits::BreakerState::Open { .. }));
        state.metrics.breaker_open(&t.name, open);
    }
    let mut resp = state.metrics.render().into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    resp
}

/// The configured targets and their circuit breakers (read-only; behind a gateway key when
/// keys are configured).
async fn targets(State(state): State<Arc<AppState>>, headers: axum::http::HeaderMap) -> Response {
    let router = state.router.load();
    if router.requires_key() {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .or_else(|| headers.get(crate::names::X_API_KEY).and_then(|v| v.to_str().ok()));
        if presented.and_then(|k| router.authenticate(k.trim())).is_none() {
            return error_response(
                &Error::new(401, "authentication_error", "a gateway key is required").with_code("invalid_api_key"),
            );
        }
    }
    let mut list: Vec<&Arc<crate::route::Target>> = router.targets().collect();
    list.sort_by(|a, b| a.name.cmp(&b.name));
    let mut data = Vec::with_capacity(list.len());
    for t in list {
        let breaker = match state.breaker(t).await {
            Ok(limits::BreakerState::Closed { failures }) => json!({"state": "closed", "failures": failures}),
            Ok(limits::BreakerState::HalfOpen) => json!({"state": "half_open"}),
            Ok(limits::BreakerState::Open { until }) => {
                let secs = until.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
                json!({"state": "open", "until": secs})
            }
            Err(e) => json!({"state": "unknown", "error": e.to_string()}),
        };
        data.push(json!({"name": t.name, "provider": t.provider, "model": t.model, "breaker": breaker}));
    }
    axum::Json(json!({"object": "list", "shared": state.store.backend_healthy(), "data": data})).into_response()
}

async fn models(State(state): State<Arc<AppState>>) -> Response {
    let engine = state.engine.load();
    let data: Vec<Value> = engine
        .providers()
        .iter()
        .flat_map(|p| {
            p.models().iter().map(
                move |m| json!({"id": format!("{}/{m}", p.id()), "object": "model", "created": 0, "owned_by": p.id()}),
            )
        })
        .collect();
    axum::Json(json!({"object": "list", "data": data})).into_response()
}

async fn chat(State(state): State<Arc<AppState>>, req: Request) -> Response {
    proxy::handle(state, req, Endpoint::Chat).await
}

async fn embeddings(State(state): State<Arc<AppState>>, req: Request) -> Response {
    proxy::handle(state, req, Endpoint::Embeddings).await
}
