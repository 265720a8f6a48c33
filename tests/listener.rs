//! Real sockets on 127.0.0.1:0 with short limits. Every wait is on an observable event (a read,
//! a channel, a task ending) under one generous bound, never a sleep taken as the pass condition;
//! timing assertions are lower bounds only (a timer never fires early, however loaded the host).

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{to_bytes, Body};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use bytes::Bytes;
use lightport::server::listener::{is_body_timeout, Limits, Server, Shutdown, Stats};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, Mutex};
use tokio::task::JoinHandle;
use tokio::time::{sleep, timeout, Instant};

/// The upper bound on any single wait; reaching it fails the test instead of hanging it.
const BOUND: Duration = Duration::from_secs(30);

async fn bounded<F: Future>(what: &str, f: F) -> F::Output {
    match timeout(BOUND, f).await {
        Ok(v) => v,
        Err(_) => panic!("gave up after {BOUND:?} waiting for {what}"),
    }
}

/// Limits long enough to stay out of the way; each test shortens the one it exercises.
fn relaxed() -> Limits {
    Limits {
        max_connections: 100,
        header_read_timeout: Duration::from_secs(20),
        body_read_timeout: Duration::from_secs(20),
        idle_timeout: Duration::from_secs(20),
        drain_timeout: Duration::from_secs(20),
        deadline_grace: Duration::from_secs(1),
    }
}

/// What the handlers report to the test.
struct Probe {
    /// `/hold` sends its release switch here, then waits on it.
    held: mpsc::UnboundedSender<oneshot::Sender<()>>,
    /// `/read` sends `is_body_timeout(&err)` here when its body read fails.
    body_errors: mpsc::UnboundedSender<bool>,
}

struct Events {
    held: Mutex<mpsc::UnboundedReceiver<oneshot::Sender<()>>>,
    body_errors: Mutex<mpsc::UnboundedReceiver<bool>>,
}

const FINAL_EVENT: &str = "event: error\ndata: {\"error\":\"server shutting down\"}\n\n";

fn app() -> (Router, Events) {
    let (held, held_rx) = mpsc::unbounded_channel();
    let (body_errors, body_rx) = mpsc::unbounded_channel();
    let probe = Arc::new(Probe { held, body_errors });
    let router = Router::new()
        .route("/", get(|| async { "ok" }))
        .route("/hold", get(hold))
        .route("/read", post(read))
        .route("/extract", post(|body: Bytes| async move { format!("{} bytes", body.len()) }))
        .route("/big", get(|| async { vec![b'x'; 64 << 20] }))
        .route("/stream", get(stream))
        .route("/endless", get(endless))
        .with_state(probe);
    (router, Events { held: Mutex::new(held_rx), body_errors: Mutex::new(body_rx) })
}

async fn hold(State(probe): State<Arc<Probe>>) -> &'static str {
    let (tx, rx) = oneshot::channel();
    probe.held.send(tx).expect("the test listens");
    let _ = rx.await;
    "released"
}

async fn read(State(probe): State<Arc<Probe>>, body: Body) -> Response {
    match to_bytes(body, 1 << 20).await {
        Ok(b) => format!("{} bytes", b.len()).into_response(),
        Err(e) => {
            let timed_out = is_body_timeout(&e);
            let _ = probe.body_errors.send(timed_out);
            if timed_out {
                (StatusCode::REQUEST_TIMEOUT, "mapped by the handler").into_response()
            } else {
                (StatusCode::BAD_REQUEST, "other body error").into_response()
            }
        }
    }
}

/// One event, then, at the drain deadline, a final error event and the end of the stream.
async fn stream(Extension(shutdown): Extension<Shutdown>) -> Response {
    let events = futures_util::stream::unfold(0u8, move |step| {
        let shutdown = shutdown.clone();
        async move {
            match step {
                0 => Some((Ok::<_, Infallible>(Bytes::from_static(b"data: first\n\n")), 1)),
                1 => {
                    shutdown.deadline().await;
                    Some((Ok(Bytes::from_static(FINAL_EVENT.as_bytes())), 2))
                }
                _ => None,
            }
        }
    });
    Response::builder().header("content-type", "text/event-stream").body(Body::from_stream(events)).unwrap()
}

/// One event, then nothing, forever (it ignores the shutdown).
async fn endless() -> Response {
    let first = futures_util::stream::iter([Ok::<_, Infallible>(Bytes::from_static(b"data: first\n\n"))]);
    let events = futures_util::StreamExt::chain(first, futures_util::stream::pending());
    Response::builder().header("content-type", "text/event-stream").body(Body::from_stream(events)).unwrap()
}

struct Running {
    addr: SocketAddr,
    shutdown: Shutdown,
    stats: Stats,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<io::Result<()>>,
    events: Events,
}

async fn start(limits: Limits) -> Running {
    let (router, events) = app();
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let server = Server::new(limits);
    let (shutdown, stats) = (server.shutdown(), server.stats());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.serve(tcp, router, async move {
        let _ = stopped.await;
    }));
    Running { addr, shutdown, stats, stop: Some(stop), task, events }
}

impl Running {
    async fn connect(&self) -> TcpStream {
        TcpStream::connect(self.addr).await.expect("connect")
    }

    async fn next_held(&self) -> oneshot::Sender<()> {
        bounded("a /hold request to reach its handler", self.events.held.lock().await.recv()).await.unwrap()
    }
}

/// Reads until the peer closes (EOF or reset); returns what arrived and whether it was a reset.
async fn read_to_close(r: &mut (impl AsyncRead + Unpin)) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 16 << 10];
    loop {
        match r.read(&mut buf).await {
            Ok(0) => return (out, false),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return (out, true),
            Err(e) => panic!("read failed: {e}"),
        }
    }
}

/// Reads until `needle` has arrived; returns everything read.
async fn read_until(r: &mut (impl AsyncRead + Unpin), needle: &str) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&out).contains(needle) {
        let n = r.read(&mut buf).await.expect("read");
        assert!(n > 0, "closed before {needle:?} arrived; got {:?}", String::from_utf8_lossy(&out));
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(out).unwrap()
}

/// Reads one response with a Content-Length body; returns the head and the body.
async fn read_response(r: &mut (impl AsyncRead + Unpin)) -> (String, String) {
    let mut out = Vec::new();
    let mut byte = [0u8; 1];
    while !out.ends_with(b"\r\n\r\n") {
        let n = r.read(&mut byte).await.expect("read");
        assert!(n > 0, "closed mid-head: {:?}", String::from_utf8_lossy(&out));
        out.push(byte[0]);
    }
    let head = String::from_utf8(out).unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
        .expect("a content-length");
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await.expect("the body");
    (head, String::from_utf8(body).unwrap())
}

async fn get_ok(s: &mut TcpStream, path: &str) -> String {
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes()).await.unwrap();
    let (head, body) = bounded("a response", read_response(s)).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body
}

/// Polls a counter until it reaches `want` (the event), within the bound.
async fn counter_reaches(what: &str, want: u64, read: impl Fn() -> u64) {
    bounded(what, async {
        while read() != want {
            sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert_eq!(read(), want, "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_head_must_arrive_within_header_read_timeout() {
    let head_timeout = Duration::from_millis(300);
    let srv = start(Limits { header_read_timeout: head_timeout, ..relaxed() }).await;
    let t0 = Instant::now();

    // A partial head, then silence.
    let mut partial = srv.connect().await;
    partial.write_all(b"GET / HTTP/1.1\r\nHost: test\r\n").await.unwrap();
    // Nothing at all.
    let mut silent = srv.connect().await;
    // Half an h2 preface (the protocol sniffing must be bounded too).
    let mut preface = srv.connect().await;
    preface.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    // A head trickled one header line per 50 ms: activity must not extend the deadline.
    let trickle = srv.connect().await;
    let (mut trickle_r, mut trickle_w) = trickle.into_split();
    let trickler = tokio::spawn(async move {
        trickle_w.write_all(b"GET / HTTP/1.1\r\nHost: test\r\n").await?;
        for i in 0..1000 {
            sleep(Duration::from_millis(50)).await;
            trickle_w.write_all(format!("x-slow-{i}: 1\r\n").as_bytes()).await?;
        }
        Ok::<_, io::Error>(())
    });

    for (name, r) in [
        ("partial head", &mut partial as &mut (dyn AsyncRead + Unpin + Send)),
        ("silent", &mut silent),
        ("half preface", &mut preface),
        ("trickled head", &mut trickle_r),
    ] {
        let mut r = r;
        let (got, _reset) = bounded(name, read_to_close(&mut r)).await;
        let got = String::from_utf8_lossy(&got);
        assert!(got.is_empty() || got.starts_with("HTTP/1.1 408"), "{name}: {got}");
        assert!(t0.elapsed() >= head_timeout, "{name} closed after {:?}", t0.elapsed());
    }
    assert!(!trickler.is_finished() || trickler.await.unwrap().is_err(), "the trickle ran to its end");
    assert_eq!(srv.stats.header_timeouts(), 4);

    // A prompt request on a fresh connection is unaffected.
    let mut s = srv.connect().await;
    assert_eq!(get_ok(&mut s, "/").await, "ok");
}

/// Sends a head with `Content-Length: 100` and one body byte, then one byte per 50 ms until the
/// response starts; returns the response bytes.
async fn trickle_body(srv: &Running, path: &str) -> String {
    let mut s = srv.connect().await;
    s.write_all(format!("POST {path} HTTP/1.1\r\nHost: test\r\nContent-Length: 100\r\n\r\nx").as_bytes())
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let mut sent = 1;
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    bounded("the body timeout response", async {
        loop {
            tokio::select! {
                biased;
                n = s.read(&mut buf) => match n {
                    Ok(0) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break,
                    Err(e) => panic!("read: {e}"),
                },
                _ = tick.tick(), if got.is_empty() => {
                    assert!(sent < 100, "the whole body went through");
                    if s.write_all(b"x").await.is_err() {
                        continue;
                    }
                    sent += 1;
                }
            }
        }
    })
    .await;
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickled_body_is_cut_at_body_read_timeout() {
    let srv = start(Limits { body_read_timeout: Duration::from_millis(300), ..relaxed() }).await;

    // A handler that reads the body itself sees the error and maps it to 408.
    let got = trickle_body(&srv, "/read").await;
    assert!(got.starts_with("HTTP/1.1 408"), "{got}");
    assert!(got.ends_with("mapped by the handler"), "{got}");
    assert!(got.to_ascii_lowercase().contains("connection: close"), "{got}");
    let seen = bounded("the handler's body error", srv.events.body_errors.lock().await.recv()).await;
    assert_eq!(seen, Some(true), "the handler's error is a BodyTimeout");

    // A handler that uses an extractor: its rejection is turned into a 408.
    let got = trickle_body(&srv, "/extract").await;
    assert!(got.starts_with("HTTP/1.1 408"), "{got}");
    assert!(got.to_ascii_lowercase().contains("connection: close"), "{got}");
    assert_eq!(srv.stats.body_timeouts(), 2);

    // A whole body in time is fine.
    let mut s = srv.connect().await;
    s.write_all(b"POST /read HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n\r\nhello").await.unwrap();
    let (head, body) = bounded("a response", read_response(&mut s)).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, "5 bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_connection_is_closed_but_a_busy_one_is_not() {
    let idle = Duration::from_millis(400);
    let srv = start(Limits { idle_timeout: idle, ..relaxed() }).await;

    // The busy connection: a request in flight for longer than the idle timeout.
    let mut busy = srv.connect().await;
    busy.write_all(b"GET /hold HTTP/1.1\r\nHost: test\r\n\r\n").await.unwrap();
    let release = srv.next_held().await;

    // The idle one: one request, then nothing.
    let mut quiet = srv.connect().await;
    // The server's idle clock starts after it has written the response: after this instant.
    let idle_from = Instant::now();
    assert_eq!(get_ok(&mut quiet, "/").await, "ok");
    let (rest, _) = bounded("the idle connection to close", read_to_close(&mut quiet)).await;
    assert!(rest.is_empty());
    assert!(idle_from.elapsed() >= idle, "closed after {:?}", idle_from.elapsed());
    assert_eq!(srv.stats.idle_timeouts(), 1);

    // The busy connection has outlived the idle timeout; it answers and stays usable.
    release.send(()).unwrap();
    let (head, body) = bounded("the held response", read_response(&mut busy)).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, "released");
    assert_eq!(get_ok(&mut busy, "/").await, "ok");
    counter_reaches("one open connection", 1, || srv.stats.open_connections() as u64).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_h2c_connection_is_closed() {
    use http_body_util::{BodyExt, Empty};
    use hyper_util::rt::{TokioExecutor, TokioIo};

    let idle = Duration::from_millis(400);
    let srv = start(Limits { idle_timeout: idle, ..relaxed() }).await;
    let tcp = srv.connect().await;
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake::<_, _, Empty<Bytes>>(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .expect("h2c handshake");
    let conn = tokio::spawn(conn);
    let mut idle_from = Instant::now();
    for _ in 0..2 {
        // The server's idle clock starts after its last response: after this instant.
        idle_from = Instant::now();
        let res = bounded("an h2 response", sender.send_request(http::Request::get("/").body(Empty::new()).unwrap()))
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.version(), http::Version::HTTP_2);
        assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "ok");
    }
    let _ = bounded("the idle h2 connection to close", conn).await.unwrap();
    assert!(idle_from.elapsed() >= idle, "closed after {:?}", idle_from.elapsed());
    assert_eq!(srv.stats.idle_timeouts(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_writes_close_the_connection() {
    let idle = Duration::from_millis(300);
    let srv = start(Limits { idle_timeout: idle, ..relaxed() }).await;
    let mut s = srv.connect().await;
    // Ask for 64 MiB and read none of it: the socket buffers fill and writes stop progressing.
    s.write_all(b"GET /big HTTP/1.1\r\nHost: test\r\n\r\n").await.unwrap();
    counter_reaches("the write timeout", 1, || srv.stats.write_timeouts()).await;
    let (got, _) = bounded("the connection to close", read_to_close(&mut s)).await;
    assert!(got.len() < 64 << 20, "the whole body arrived");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_that_keeps_reading_is_not_cut() {
    // hyper lets go of a response body as soon as it holds the last frame, long before a slow
    // client has read it: flushing the rest must count as activity, not idleness.
    let idle = Duration::from_millis(1000);
    let srv = start(Limits { idle_timeout: idle, ..relaxed() }).await;
    let mut s = srv.connect().await;
    s.write_all(b"GET /big HTTP/1.1\r\nHost: test\r\n\r\n").await.unwrap();
    let t0 = Instant::now();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0usize;
    bounded("the whole slow download", async {
        // 64 MiB with a 40 ms pause after each MiB: longer than the idle timeout in all.
        while total < (64 << 20) {
            let n = s.read(&mut buf).await.expect("read");
            assert!(n > 0, "closed after {total} bytes and {:?}", t0.elapsed());
            if (total + n) >> 20 > total >> 20 {
                sleep(Duration::from_millis(40)).await;
            }
            total += n;
        }
    })
    .await;
    assert!(t0.elapsed() > idle, "the download was too fast to test anything");
    assert_eq!(srv.stats.idle_timeouts() + srv.stats.write_timeouts(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_wait_until_one_closes() {
    let srv = start(Limits { max_connections: 2, ..relaxed() }).await;
    let mut first = srv.connect().await;
    let mut second = srv.connect().await;
    assert_eq!(get_ok(&mut first, "/").await, "ok");
    assert_eq!(get_ok(&mut second, "/").await, "ok");
    assert_eq!(srv.stats.open_connections(), 2);

    // The third connects (the kernel's backlog completes the handshake) but is not served.
    let mut third = srv.connect().await;
    third.write_all(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n").await.unwrap();
    let mut byte = [0u8; 1];
    assert!(
        timeout(Duration::from_millis(300), third.read(&mut byte)).await.is_err(),
        "the third connection was served while two were open"
    );
    assert_eq!(srv.stats.accepted(), 2);

    // Closing one lets the third in.
    drop(first);
    let (head, body) = bounded("the third connection's response", read_response(&mut third)).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, "ok");
    assert_eq!(srv.stats.accepted(), 3);
    assert_eq!(get_ok(&mut second, "/").await, "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_finishes_in_flight_requests_and_ends_streams_at_the_deadline() {
    let limits =
        Limits { drain_timeout: Duration::from_millis(1500), deadline_grace: Duration::from_millis(500), ..relaxed() };
    let deadline_after = limits.drain_timeout - limits.deadline_grace;
    let mut srv = start(limits).await;

    let mut slow = srv.connect().await;
    slow.write_all(b"GET /hold HTTP/1.1\r\nHost: test\r\n\r\n").await.unwrap();
    let release = srv.next_held().await;
    let mut sse = srv.connect().await;
    sse.write_all(b"GET /stream HTTP/1.1\r\nHost: test\r\n\r\n").await.unwrap();
    bounded("the first event", read_until(&mut sse, "data: first")).await;
    // An idle keep-alive connection is closed at once by the drain.
    let mut idle = srv.connect().await;
    assert_eq!(get_ok(&mut idle, "/").await, "ok");

    let t0 = Instant::now();
    srv.stop.take().unwrap().send(()).unwrap();
    bounded("the drain to start", srv.shutdown.draining()).await;
    assert!(srv.shutdown.is_draining());
    let refused = TcpStream::connect(srv.addr).await;
    assert_eq!(refused.err().map(|e| e.kind()), Some(io::ErrorKind::ConnectionRefused));
    let (rest, _) = bounded("the idle connection to close", read_to_close(&mut idle)).await;
    assert!(rest.is_empty());

    // The in-flight request completes normally, and its connection then closes.
    release.send(()).unwrap();
    let (head, body) = bounded("the held response", read_response(&mut slow)).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, "released");
    let (rest, _) = bounded("the drained connection to close", read_to_close(&mut slow)).await;
    assert!(rest.is_empty());

    // The stream ends itself with a final event at the deadline, cleanly (chunked terminator).
    let (tail, reset) = bounded("the stream to end", read_to_close(&mut sse)).await;
    let tail = String::from_utf8(tail).unwrap();
    assert!(t0.elapsed() >= deadline_after, "the stream ended after {:?}", t0.elapsed());
    assert!(!reset);
    assert!(tail.contains(FINAL_EVENT), "{tail:?}");
    assert!(tail.ends_with("0\r\n\r\n"), "{tail:?}");

    let served = bounded("serve to return", &mut srv.task).await.unwrap();
    assert!(served.is_ok(), "{served:?}");
    assert_eq!(srv.stats.forced_closes(), 0);
    assert_eq!(srv.stats.open_connections(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_closes_what_is_left_at_drain_timeout() {
    let drain = Duration::from_millis(800);
    let limits = Limits { drain_timeout: drain, deadline_grace: Duration::from_millis(200), ..relaxed() };
    let mut srv = start(limits).await;
    let mut sse = srv.connect().await;
    sse.write_all(b"GET /endless HTTP/1.1\r\nHost: test\r\n\r\n").await.unwrap();
    bounded("the first event", read_until(&mut sse, "data: first")).await;

    let t0 = Instant::now();
    srv.stop.take().unwrap().send(()).unwrap();
    let served = bounded("serve to return", &mut srv.task).await.unwrap();
    assert!(served.is_ok(), "{served:?}");
    assert!(t0.elapsed() >= drain, "serve returned after {:?}", t0.elapsed());
    assert!(srv.shutdown.is_past_deadline());
    assert_eq!(srv.stats.forced_closes(), 1);
    assert_eq!(srv.stats.open_connections(), 0);

    let (tail, _) = bounded("the stream to be cut", read_to_close(&mut sse)).await;
    assert!(!String::from_utf8_lossy(&tail).ends_with("0\r\n\r\n"), "the endless stream ended cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_the_gateway_ends_its_streams_and_exits_zero() {
    use tokio::io::AsyncBufReadExt;

    // An upstream that streams forever, one chunk every 100 ms.
    let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream_addr = upstream.local_addr().unwrap();
    let chunk = "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"tick\"},\"finish_reason\":null}]}\n\n";
    let app = Router::new().fallback(move || async move {
        let ticks = futures_util::stream::unfold((), move |()| async move {
            sleep(Duration::from_millis(100)).await;
            Some((Ok::<_, Infallible>(Bytes::from(chunk)), ()))
        });
        Response::builder().header("content-type", "text/event-stream").body(Body::from_stream(ticks)).unwrap()
    });
    tokio::spawn(async move { axum::serve(upstream, app).await });

    let port = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_lightport"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--drain-timeout", "1.5"])
        .env("OPENAI_BASE_URL", format!("http://{upstream_addr}/v1"))
        .env("OPENAI_API_KEY", "sk-test-drain")
        .env("LIGHTPORT_LOG", "warn")
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start lightport");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut s = bounded("the gateway to listen", async {
        loop {
            if let Ok(s) = TcpStream::connect(addr).await {
                return s;
            }
            sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let body = r#"{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    s.write_all(
        format!("POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len())
            .as_bytes(),
    )
    .await
    .unwrap();
    bounded("the first chunk", read_until(&mut s, "tick")).await;

    let pid = child.id().expect("a running child") as libc::pid_t;
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = bounded("the gateway to exit", child.wait()).await.unwrap();
    assert_eq!(status.code(), Some(0), "{status:?}");
    let (tail, _) = bounded("the stream to end", read_to_close(&mut s)).await;
    let tail = String::from_utf8_lossy(&tail);
    assert!(tail.contains("shutting_down"), "the open stream did not end with an error event: {tail:?}");
    assert!(tail.ends_with("0\r\n\r\n"), "the stream was cut, not ended: {tail:?}");
    let mut stderr = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    while let Ok(Some(line)) = stderr.next_line().await {
        assert!(!line.contains("sk-test-drain"), "a key in the log: {line}");
    }
}
