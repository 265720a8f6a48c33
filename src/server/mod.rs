//! The HTTP server: OpenAI's routes, thin handlers over a [`Call`], and one error shape for
//! every refusal (ours, the HTTP layer's, and the upstream's).

mod validate;

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::call::Call;
use crate::engine::Engine;
use crate::error::Error;
use crate::plan::Endpoint;
use crate::stream::{StreamInput, StreamTranslator};
use crate::upstream::{request_error, Upstream};

/// Server settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Largest request body accepted, in bytes (after decompression).
    pub max_body_bytes: usize,
    /// Largest non-stream upstream body read, in bytes.
    pub max_upstream_body_bytes: usize,
    pub upstream_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_body_bytes: 32 << 20,
            max_upstream_body_bytes: 64 << 20,
            upstream_timeout: Duration::from_secs(600),
        }
    }
}

pub struct AppState {
    pub engine: Arc<ArcSwap<Engine>>,
    upstream: Upstream,
    config: Config,
}

impl AppState {
    pub fn new(engine: Arc<ArcSwap<Engine>>, config: Config) -> Arc<AppState> {
        Arc::new(AppState { engine, upstream: Upstream::new(config.upstream_timeout), config })
    }
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/chat/completions", post(chat))
        .route("/v1/embeddings", post(embeddings))
        .route("/embeddings", post(embeddings))
        .route("/v1/models", get(models))
        .route("/models", get(models))
        .route("/health", get(health))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// Serve `app` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Token-sized stream writes must leave at once: without TCP_NODELAY, Nagle's algorithm and
    // the client's delayed ACK hold a small write for up to ~40 ms.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp: &mut tokio::net::TcpStream| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}

/// An error as the client sees it.
pub fn error_response(e: &Error) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut resp = (status, axum::Json(e.body())).into_response();
    if e.status == 405 {
        resp.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, POST"));
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

async fn health() -> Response {
    axum::Json(json!({"status": "ok"})).into_response()
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

async fn read_body(state: &AppState, headers: &HeaderMap, body: Body) -> Result<Bytes, Error> {
    let limit = state.config.max_body_bytes;
    let too_large = || {
        Error::new(413, "invalid_request_error", format!("the request body is larger than {limit} bytes"))
            .with_code("request_too_large")
    };
    let raw = axum::body::to_bytes(body, limit).await.map_err(|_| too_large())?;
    let encoding = headers.get(header::CONTENT_ENCODING).map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase());
    match encoding.as_deref() {
        None | Some("") | Some("identity") => Ok(raw),
        Some("gzip") | Some("x-gzip") => {
            use std::io::Read;
            let mut out = Vec::new();
            let mut dec = flate2::read::GzDecoder::new(&raw[..]).take(limit as u64 + 1);
            dec.read_to_end(&mut out).map_err(|_| Error::invalid("the body is not valid gzip"))?;
            if out.len() > limit {
                return Err(too_large());
            }
            Ok(out.into())
        }
        Some(other) => Err(Error::new(
            415,
            "invalid_request_error",
            format!("unsupported Content-Encoding '{other}': send identity or gzip"),
        )
        .with_code("unsupported_media_type")),
    }
}

fn parse_object(bytes: &[u8]) -> Result<Value, Error> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(Error::invalid("the request body must be a JSON object")),
        Err(e) => Err(Error::invalid(format!("the request body is not valid JSON: {e}")).with_code("invalid_json")),
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let v = v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer "))?.trim();
    (!v.is_empty()).then_some(v)
}

/// Headers every answer carries: request id, provider, the gateway's own time, dropped params.
fn decorate(resp: &mut Response, rid: &str, provider: Option<&str>, dropped: &[String], overhead: Option<Duration>) {
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(rid) {
        h.insert("x-request-id", v);
    }
    if let Some(p) = provider.and_then(|p| HeaderValue::from_str(p).ok()) {
        h.insert("x-lightport-provider", p);
    }
    if !dropped.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&dropped.join(",")) {
            h.insert("x-lightport-dropped-params", v);
        }
    }
    if let Some(d) = overhead {
        h.insert("x-lightport-overhead-us", HeaderValue::from(d.as_micros() as u64));
    }
}

async fn chat(State(state): State<Arc<AppState>>, req: Request) -> Response {
    handle(state, req, Endpoint::Chat).await
}

async fn embeddings(State(state): State<Arc<AppState>>, req: Request) -> Response {
    handle(state, req, Endpoint::Embeddings).await
}

/// Everything a call learned before failing, so its error carries the same headers.
struct Failure {
    error: Error,
    provider: Option<String>,
    dropped: Vec<String>,
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure { error, provider: None, dropped: Vec::new() }
    }
}

async fn handle(state: Arc<AppState>, req: Request, endpoint: Endpoint) -> Response {
    let (parts, body) = req.into_parts();
    let rid = parts
        .headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty() && s.len() <= 128)
        .map(str::to_owned)
        .unwrap_or_else(crate::call::unique_id);
    match call(&state, &parts.headers, body, endpoint, &rid).await {
        Ok(resp) => resp,
        Err(f) => {
            tracing::debug!(request_id = %rid, status = f.error.status, "{}", f.error.message);
            let mut resp = error_response(&f.error);
            decorate(&mut resp, &rid, f.provider.as_deref(), &f.dropped, None);
            resp
        }
    }
}

async fn call(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    endpoint: Endpoint,
    rid: &str,
) -> Result<Response, Failure> {
    let bytes = read_body(state, headers, body).await?;
    // The gateway's own time starts once the client's body is in: upload time is not ours.
    let started = Instant::now();
    let mut body = parse_object(&bytes)?;
    let obj = body.as_object().expect("parse_object gives an object");
    match endpoint {
        Endpoint::Chat => validate::chat(obj)?,
        Endpoint::Embeddings => validate::embeddings(obj)?,
    }
    let engine = state.engine.load();
    let provider_header = headers.get("x-lightport-provider").and_then(|v| v.to_str().ok());
    let (provider, model) = engine.route(validate::model(obj)?, provider_header)?;
    body["model"] = Value::String(model);
    let provider_id = provider.id().to_string();
    let failure = |error: Error, dropped: &[String]| Failure {
        error,
        provider: Some(provider_id.clone()),
        dropped: dropped.to_vec(),
    };
    let mut call =
        Call::new(provider, endpoint, &body).map_err(|e| failure(e, &[]))?.with_id(format!("chatcmpl-{rid}"));
    let translator = call.stream();
    let up = call.request(body, bearer(headers)).map_err(|e| failure(e, call.dropped()))?;
    let fail = |e: Error| failure(e, call.dropped());
    let prepared = started.elapsed();
    let resp = state.upstream.send(&provider_id, up).await.map_err(fail)?;
    let status = resp.status();
    if !status.is_success() {
        let upstream_headers = resp.headers().clone();
        let body = state.upstream.body(&provider_id, resp, 1 << 20).await.unwrap_or_default();
        tracing::debug!(request_id = %rid, provider = %provider_id, upstream_status = status.as_u16(), "upstream error");
        return Err(fail(call.error(status.as_u16(), &upstream_headers, &body)));
    }
    if let Some(translator) = translator {
        let body = stream_body(resp.bytes_stream(), translator, state.upstream.timeout, provider_id.clone());
        let mut resp = Response::new(Body::from_stream(body));
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        decorate(&mut resp, rid, Some(&provider_id), call.dropped(), Some(prepared));
        return Ok(resp);
    }
    let reply = state.upstream.body(&provider_id, resp, state.config.max_upstream_body_bytes).await.map_err(fail)?;
    let translated_at = Instant::now();
    let bytes: Bytes = if call.forwards_response_as_is() {
        // The answer is already canonical: check it is JSON, and pass the bytes on.
        serde_json::from_slice::<serde::de::IgnoredAny>(&reply).map_err(|e| {
            fail(Error::bad_gateway(format!("provider '{provider_id}' answered with invalid JSON: {e}")))
        })?;
        reply
    } else {
        let out = call.response(&reply).map_err(fail)?;
        serde_json::to_vec(&out).expect("JSON values serialise").into()
    };
    let overhead = prepared + translated_at.elapsed();
    let mut resp = Response::new(Body::from(bytes));
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    decorate(&mut resp, rid, Some(&provider_id), call.dropped(), Some(overhead));
    Ok(resp)
}

/// Drive an upstream byte stream through the translator, one upstream read at a time, so every
/// translated chunk is written as soon as its bytes arrive. A read slower than `timeout` ends
/// the stream with an error event.
fn stream_body<S>(
    upstream: S,
    translator: StreamTranslator,
    timeout: Duration,
    provider: String,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send
where
    S: futures_util::Stream<Item = Result<Bytes, reqwest::Error>> + Send + Unpin + 'static,
{
    struct Pump<S> {
        upstream: S,
        translator: StreamTranslator,
        done: bool,
        timeout: Duration,
        provider: String,
    }
    let pump = Pump { upstream, translator, done: false, timeout, provider };
    futures_util::stream::unfold(pump, |mut p| async move {
        loop {
            if p.done {
                return None;
            }
            let read = tokio::time::timeout(p.timeout, p.upstream.next()).await;
            let mut out = BytesMut::new();
            p.done = match read {
                Err(_) => {
                    let secs = p.timeout.as_secs_f64();
                    let e = Error::timeout(format!("provider '{}' sent nothing for {secs} s", p.provider));
                    p.translator.step(StreamInput::Failed(e), &mut out)
                }
                Ok(None) => p.translator.step(StreamInput::End, &mut out),
                Ok(Some(Ok(bytes))) => p.translator.step(StreamInput::Data(&bytes), &mut out),
                Ok(Some(Err(e))) => p.translator.step(StreamInput::Failed(request_error(&p.provider, e)), &mut out),
            };
            if !out.is_empty() {
                return Some((Ok(out.freeze()), p));
            }
        }
    })
}
