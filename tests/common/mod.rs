//! Shared test harness: a real gateway on 127.0.0.1:0 in front of in-process mock upstreams,
//! and the JSON Schemas of what OpenAI clients parse.
#![allow(dead_code)]

pub mod redis;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use bytes::Bytes;
use serde_json::Value;
use tokio::sync::Notify;

use lightport::server::{router, AppState, Config};
use lightport::{builtin_sources, Engine};

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("fixtures")
}

pub fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// What a mock upstream saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path_and_query: String,
    pub headers: HashMap<String, String>,
    pub body: Value,
}

/// How a mock upstream answers.
#[derive(Clone)]
pub enum Reply {
    Json(u16, Value),
    /// JSON with extra response headers.
    JsonWithHeaders(u16, Vec<(String, String)>, Value),
    Raw(u16, &'static str, Vec<u8>),
    /// Stream these pieces; before piece `gate_at`, wait until the gate is opened.
    Stream {
        pieces: Vec<Vec<u8>>,
        gate_at: usize,
        gate: Arc<Notify>,
        content_type: &'static str,
    },
    /// Never answer.
    Hang,
    /// Never answer; notify when the gateway gives up the request (closes the connection).
    HangNotify(Arc<Notify>),
    /// Send these pieces, one every `every`; notify `dropped` when the response is dropped
    /// (the gateway closed the connection).
    Drip {
        pieces: Vec<Vec<u8>>,
        every: Duration,
        dropped: Arc<Notify>,
    },
    /// Answer with the next reply of a script (the last one repeats).
    Script(Arc<Mutex<std::collections::VecDeque<Reply>>>),
    /// A provider with a prompt cache: a chat answer whose usage reports the prompt as cached
    /// when this mock has seen the conversation's first turns (system and first user message)
    /// before.
    PromptCache(Arc<Mutex<std::collections::HashSet<String>>>),
}

/// A script of replies, one per request (the last one repeats).
pub fn script(replies: Vec<Reply>) -> Reply {
    Reply::Script(Arc::new(Mutex::new(replies.into())))
}

/// Notifies when dropped.
struct OnDrop(Arc<Notify>);

impl Drop for OnDrop {
    fn drop(&mut self) {
        self.0.notify_one();
    }
}

pub struct Mock {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl Mock {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// A mock upstream answering every request with `reply`.
pub async fn mock(reply: Reply) -> Mock {
    mock_switchable(Arc::new(Mutex::new(reply))).await
}

/// A mock upstream whose reply can be changed between requests.
pub async fn mock_switchable(reply: Arc<Mutex<Reply>>) -> Mock {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let log = Arc::clone(&seen);
    let app = axum::Router::new().fallback(move |req: Request| {
        let mut reply = reply.lock().unwrap().clone();
        if let Reply::Script(queue) = reply.clone() {
            let mut q = queue.lock().unwrap();
            let next = if q.len() > 1 { q.pop_front() } else { q.front().cloned() };
            reply = next.expect("a script has at least one reply");
        }
        let log = Arc::clone(&log);
        async move {
            let (parts, body) = req.into_parts();
            let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
            log.lock().unwrap().push(Seen {
                method: parts.method.to_string(),
                path_and_query: parts.uri.path_and_query().map(|p| p.to_string()).unwrap_or_default(),
                headers: parts
                    .headers
                    .iter()
                    .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
                    .collect(),
                body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            });
            match reply {
                Reply::Json(status, v) => Response::builder()
                    .status(status)
                    .header("content-type", "application/json")
                    .body(Body::from(serde_json::to_vec(&v).unwrap()))
                    .unwrap(),
                Reply::JsonWithHeaders(status, headers, v) => {
                    let mut r = Response::builder().status(status).header("content-type", "application/json");
                    for (k, val) in headers {
                        r = r.header(k, val);
                    }
                    r.body(Body::from(serde_json::to_vec(&v).unwrap())).unwrap()
                }
                Reply::Raw(status, ct, bytes) => {
                    Response::builder().status(status).header("content-type", ct).body(Body::from(bytes)).unwrap()
                }
                Reply::Stream { pieces, gate_at, gate, content_type } => {
                    let stream = futures_util::stream::iter(pieces.into_iter().enumerate()).then(move |(i, p)| {
                        let gate = Arc::clone(&gate);
                        async move {
                            if i == gate_at {
                                gate.notified().await;
                            }
                            Ok::<Bytes, std::io::Error>(Bytes::from(p))
                        }
                    });
                    Response::builder()
                        .status(200)
                        .header("content-type", content_type)
                        .body(Body::from_stream(stream))
                        .unwrap()
                }
                Reply::Hang => {
                    std::future::pending::<()>().await;
                    unreachable!()
                }
                Reply::HangNotify(dropped) => {
                    let _guard = OnDrop(dropped);
                    std::future::pending::<()>().await;
                    unreachable!()
                }
                Reply::Drip { pieces, every, dropped } => {
                    let guard = Arc::new(OnDrop(dropped));
                    let stream = futures_util::stream::iter(pieces).then(move |p| {
                        let _keep = Arc::clone(&guard);
                        async move {
                            tokio::time::sleep(every).await;
                            Ok::<Bytes, std::io::Error>(Bytes::from(p))
                        }
                    });
                    Response::builder()
                        .status(200)
                        .header("content-type", "text/event-stream")
                        .body(Body::from_stream(stream))
                        .unwrap()
                }
                Reply::Script(_) => unreachable!("resolved above"),
                Reply::PromptCache(seen) => {
                    let body = log.lock().unwrap().last().map(|s| s.body.clone()).unwrap_or(Value::Null);
                    let mut prefix = String::new();
                    for m in body["messages"].as_array().into_iter().flatten() {
                        prefix.push_str(&m.to_string());
                        if m["role"] == "user" {
                            break;
                        }
                    }
                    let hit = !seen.lock().unwrap().insert(prefix);
                    let v = serde_json::json!({
                        "id": "c", "object": "chat.completion", "created": 1, "model": "m",
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": 100, "completion_tokens": 1, "total_tokens": 101,
                                  "prompt_tokens_details": {"cached_tokens": if hit { 90 } else { 0 }}}
                    });
                    Response::builder()
                        .status(200)
                        .header("content-type", "application/json")
                        .body(Body::from(serde_json::to_vec(&v).unwrap()))
                        .unwrap()
                }
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Mock { addr, seen }
}

use futures_util::StreamExt;

pub struct Gateway {
    pub addr: SocketAddr,
    pub engine: Arc<ArcSwap<Engine>>,
    pub router: Arc<ArcSwap<lightport::route::Router>>,
    pub reloads: Arc<lightport::reload::ReloadStatus>,
}

impl Gateway {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

/// A gateway with the built-in mappings, whose environment is `env` (e.g. ANTHROPIC_BASE_URL).
pub async fn gateway(env: &[(&str, String)], config: Config) -> Gateway {
    let env: HashMap<String, String> = env.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    let (engine, errors) = Engine::load(&builtin_sources(), &|k| env.get(k).cloned(), None);
    assert!(errors.is_empty(), "built-in mappings must load: {errors:?}");
    gateway_with(engine, config).await
}

pub async fn gateway_with(engine: Engine, config: Config) -> Gateway {
    gateway_routed(engine, lightport::route::Router::default(), config).await
}

/// A gateway with a compiled config (routes, targets, keys).
pub async fn gateway_routed(engine: Engine, routes: lightport::route::Router, config: Config) -> Gateway {
    let engine = Arc::new(ArcSwap::from_pointee(engine));
    let routes = Arc::new(ArcSwap::from_pointee(routes));
    let state = AppState::with_router(Arc::clone(&engine), Arc::clone(&routes), config);
    let reloads = Arc::clone(&state.reloads);
    let app = router(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(lightport::server::serve(listener, app, std::future::pending()));
    Gateway { addr, engine, router: routes, reloads }
}

pub fn quick_config() -> Config {
    Config { upstream_timeout: Duration::from_secs(30), ..Config::default() }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// The JSON Schemas of OpenAI's chat objects, kept in tests/schemas.
pub struct Schemas {
    completion: jsonschema::Validator,
    chunk: jsonschema::Validator,
    error: jsonschema::Validator,
}

impl Schemas {
    pub fn load() -> Schemas {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("schemas");
        let v = |name: &str| jsonschema::validator_for(&read_json(&dir.join(name))).unwrap();
        Schemas {
            completion: v("chat.completion.schema.json"),
            chunk: v("chat.completion.chunk.schema.json"),
            error: v("error.schema.json"),
        }
    }

    fn check(v: &jsonschema::Validator, what: &str, value: &Value) {
        let errors: Vec<String> = v.iter_errors(value).map(|e| format!("{} at {}", e, e.instance_path())).collect();
        assert!(errors.is_empty(), "{what} does not match OpenAI's schema: {errors:?}\n{value}");
    }

    pub fn completion(&self, v: &Value) {
        Self::check(&self.completion, "chat.completion", v)
    }

    pub fn error(&self, v: &Value) {
        Self::check(&self.error, "error", v)
    }

    /// A whole stream: every chunk valid, role on the first delta, `index` on every tool-call
    /// delta, and `[DONE]` (or an error) last.
    pub fn stream(&self, payloads: &[Value]) {
        assert!(!payloads.is_empty(), "an empty stream");
        let mut first = true;
        for (i, p) in payloads.iter().enumerate() {
            if p == "[DONE]" {
                assert_eq!(i, payloads.len() - 1, "[DONE] must be last");
                continue;
            }
            if p.get("error").is_some() {
                Self::check(&self.error, "stream error", p);
                assert_eq!(i, payloads.len() - 1, "an error event ends the stream");
                continue;
            }
            Self::check(&self.chunk, "chat.completion.chunk", p);
            for c in p["choices"].as_array().into_iter().flatten() {
                if first {
                    assert_eq!(c["delta"]["role"], "assistant", "the first delta carries the role: {p}");
                    first = false;
                }
                for tc in c["delta"]["tool_calls"].as_array().into_iter().flatten() {
                    assert!(tc["index"].is_u64(), "every tool-call delta has an index: {p}");
                }
            }
        }
    }
}

/// Read an SSE response body into its data payloads.
pub async fn sse_body(resp: reqwest::Response) -> Vec<Value> {
    let bytes = resp.bytes().await.unwrap();
    lightport::vectors::sse_payloads(&bytes)
}

/// A `lightport serve` process on a free port of 127.0.0.1, killed when dropped.
pub struct GatewayProcess {
    child: Option<std::process::Child>,
    pub url: String,
}

impl GatewayProcess {
    /// Start it with these extra arguments and environment, its stderr into `stderr` (a log
    /// file, or null), and wait until `/health` answers.
    pub async fn start(args: &[&str], env: &[(&str, String)], stderr: std::process::Stdio) -> GatewayProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_lightport"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(std::process::Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start lightport");
        let gw = GatewayProcess { child: Some(child), url: format!("http://127.0.0.1:{port}") };
        for _ in 0..200 {
            if client().get(format!("{}/health", gw.url)).send().await.is_ok() {
                return gw;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the gateway did not start");
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Wait for it to exit by itself (after a signal).
    pub fn wait(mut self) -> std::process::ExitStatus {
        self.child.take().expect("running").wait().unwrap()
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
