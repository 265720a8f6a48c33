//! The gateway's edges under hostile or broken peers: upstreams that never end a line, lie about
//! a frame's length or invent table keys; bodies that inflate; redirects; streams that trickle
//! forever; path-moving model names; special files in the mappings directory; oversized
//! declared bodies. Each reproduces a finding against a real server on 127.0.0.1 and checks the
//! bound that now holds.

mod common;

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use lightport::server::Config;
use lightport::StreamLimits;
use serde_json::{json, Value};

fn small_limits() -> Config {
    Config { stream_limits: StreamLimits { max_event_bytes: 64 << 10, max_table_entries: 64 }, ..quick_config() }
}

fn stream_body(model: &str) -> Value {
    json!({"model": model, "stream": true, "messages": [{"role": "user", "content": "hi"}]})
}

async fn stream_through(gw: &Gateway, body: &Value) -> (u16, Vec<Value>) {
    let r = client().post(gw.url("/v1/chat/completions")).json(body).send().await.unwrap();
    let status = r.status().as_u16();
    if r.headers().get("content-type").is_some_and(|c| c == "text/event-stream") {
        (status, sse_body(r).await)
    } else {
        (status, vec![r.json().await.unwrap_or(Value::Null)])
    }
}

/// The stream's last event (or the error answer): its error object.
fn last_error(events: &[Value]) -> &Value {
    &events.last().expect("something")["error"]
}

#[tokio::test]
async fn an_upstream_line_that_never_ends_is_cut_at_the_limit() {
    // `data: ` then 1 MiB without a line end: the decoder holds at most 64 KiB of it.
    let mut endless = b"data: ".to_vec();
    endless.extend(std::iter::repeat_n(b'x', 1 << 20));
    let up = mock(Reply::Raw(200, "text/event-stream", endless)).await;
    let gw =
        gateway(&[("OPENAI_BASE_URL", format!("{}/v1", up.url())), ("OPENAI_API_KEY", "sk-x".into())], small_limits())
            .await;
    let (_, events) = stream_through(&gw, &stream_body("gpt-4o")).await;
    let e = last_error(&events);
    assert_eq!(e["code"], "bad_upstream_stream", "{events:?}");
    assert!(e["message"].as_str().unwrap().contains("longer than 65536 bytes"), "{e}");

    // Lines that never make an event (no blank line): the event is cut at the limit.
    let up = mock(Reply::Raw(200, "text/event-stream", b"data: xxxxxxxxxxxxxxxx\n".repeat(10_000))).await;
    let gw =
        gateway(&[("OPENAI_BASE_URL", format!("{}/v1", up.url())), ("OPENAI_API_KEY", "sk-x".into())], small_limits())
            .await;
    let (_, events) = stream_through(&gw, &stream_body("gpt-4o")).await;
    assert!(last_error(&events)["message"].as_str().unwrap().contains("event larger than"), "{events:?}");
}

#[tokio::test]
async fn an_ndjson_line_that_never_ends_is_cut_at_the_limit() {
    let up = mock(Reply::Raw(200, "application/x-ndjson", vec![b'{'; 1 << 20])).await;
    let gw = gateway(&[("OLLAMA_BASE_URL", up.url())], small_limits()).await;
    let (_, events) = stream_through(&gw, &stream_body("ollama/llama3.2")).await;
    assert!(last_error(&events)["message"].as_str().unwrap().contains("longer than"), "{events:?}");
}

#[tokio::test]
async fn an_event_stream_prelude_claiming_4_gib_is_refused_at_once() {
    let mut prelude = Vec::new();
    prelude.extend_from_slice(&u32::MAX.to_be_bytes());
    prelude.extend_from_slice(&0u32.to_be_bytes());
    let crc = crc32(&prelude);
    prelude.extend_from_slice(&crc.to_be_bytes());
    prelude.extend(vec![0u8; 4096]);
    let up = mock(Reply::Raw(200, "application/vnd.amazon.eventstream", prelude)).await;
    let gw = gateway(&[("BEDROCK_BASE_URL", up.url()), ("BEDROCK_API_KEY", "ABSKtest".into())], small_limits()).await;
    let (_, events) = stream_through(&gw, &stream_body("bedrock/amazon.nova-pro-v1:0")).await;
    assert!(last_error(&events)["message"].as_str().unwrap().contains("frame larger than"), "{events:?}");
}

/// CRC-32 (IEEE), as AWS event streams use it.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for b in bytes {
        crc ^= u32::from(*b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

#[tokio::test]
async fn an_upstream_inventing_table_keys_ends_its_stream() {
    // Anthropic-format tool-call blocks with ever new indexes: the per-stream table is capped.
    let mut events = String::from("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"c\",\"usage\":{\"input_tokens\":1}}}\n\n");
    for i in 0..500 {
        events.push_str(&format!("event: content_block_start\ndata: {{\"type\":\"content_block_start\",\"index\":{i},\"content_block\":{{\"type\":\"tool_use\",\"id\":\"t{i}\",\"name\":\"f\",\"input\":{{}}}}}}\n\n"));
    }
    let up = mock(Reply::Raw(200, "text/event-stream", events.into_bytes())).await;
    let gw =
        gateway(&[("ANTHROPIC_BASE_URL", up.url()), ("ANTHROPIC_API_KEY", "sk-ant-x".into())], small_limits()).await;
    let (_, events) = stream_through(&gw, &stream_body("anthropic/claude-haiku-4-5")).await;
    let e = last_error(&events);
    assert!(e["message"].as_str().unwrap().contains("more than 64 distinct"), "{e}");
    let tool_chunks = events.iter().filter(|c| c["choices"][0]["delta"]["tool_calls"].is_array()).count();
    assert_eq!(tool_chunks, 64);
}

#[tokio::test]
async fn a_non_stream_answer_larger_than_the_limit_is_a_502() {
    let big = json!({"id": "x", "choices": [], "padding": "y".repeat(4096)});
    let up = mock(Reply::Json(200, big)).await;
    let config = Config { max_upstream_body_bytes: 1024, ..quick_config() };
    let gw =
        gateway(&[("OPENAI_BASE_URL", format!("{}/v1", up.url())), ("OPENAI_API_KEY", "sk-x".into())], config).await;
    let r = client()
        .post(gw.url("/v1/chat/completions"))
        .json(&json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"]["message"].as_str().unwrap().contains("more than 1024 bytes"), "{v}");
}

#[tokio::test]
async fn a_gzip_bomb_is_refused_by_its_inflation() {
    let up = mock(Reply::Hang).await;
    let gw = gateway(&[("OPENAI_BASE_URL", format!("{}/v1", up.url()))], quick_config()).await;
    // 8 MiB of `[0,0,...` compress to a few KB: far beyond 64 times.
    let mut doc = b"{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"x\":[".to_vec();
    doc.extend(b"0,".repeat(4 << 20));
    doc.extend(b"0]}");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&doc).unwrap();
    let compressed = gz.finish().unwrap();
    assert!(compressed.len() < 64 << 10);
    let r = client()
        .post(gw.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(compressed)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"]["message"].as_str().unwrap().contains("64 times"), "{v}");
    assert!(up.requests().is_empty());
}

#[tokio::test]
async fn beyond_the_in_flight_bound_the_gateway_answers_503_with_retry_after() {
    let up = mock(Reply::Hang).await;
    let config = Config { max_in_flight: 1, ..quick_config() };
    let gw = Arc::new(
        gateway(&[("OPENAI_BASE_URL", format!("{}/v1", up.url())), ("OPENAI_API_KEY", "sk-x".into())], config).await,
    );
    let body = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]});
    let held = {
        let (gw, body) = (Arc::clone(&gw), body.clone());
        tokio::spawn(async move { client().post(gw.url("/v1/chat/completions")).json(&body).send().await })
    };
    // Wait until the first request is in flight (it reached the upstream).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while up.requests().is_empty() {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = client().post(gw.url("/v1/chat/completions")).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "overloaded");
    held.abort();
}

#[tokio::test]
async fn a_redirect_is_never_followed() {
    let elsewhere = mock(Reply::Json(200, json!({"stolen": true}))).await;
    let up =
        mock(Reply::JsonWithHeaders(307, vec![("location".into(), format!("{}/steal", elsewhere.url()))], json!({})))
            .await;
    let gw =
        gateway(&[("ANTHROPIC_BASE_URL", up.url()), ("ANTHROPIC_API_KEY", "sk-ant-secret-key".into())], quick_config())
            .await;
    let r = client()
        .post(gw.url("/v1/chat/completions"))
        .json(&json!({"model": "anthropic/claude-haiku-4-5", "messages": [{"role": "user", "content": "the prompt"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    assert!(elsewhere.requests().is_empty(), "the key and the prompt went to the redirect's target");
}

#[tokio::test]
async fn a_stream_that_trickles_forever_ends_at_its_time_limit() {
    let dropped = Arc::new(tokio::sync::Notify::new());
    let chunk = b"data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"x\"},\"finish_reason\":null}]}\n\n".to_vec();
    let up = mock(Reply::Drip {
        pieces: vec![chunk; 100_000],
        every: Duration::from_millis(50),
        dropped: Arc::clone(&dropped),
    })
    .await;
    let config = Config { max_stream_duration: Duration::from_millis(600), ..quick_config() };
    let gw =
        gateway(&[("OPENAI_BASE_URL", format!("{}/v1", up.url())), ("OPENAI_API_KEY", "sk-x".into())], config).await;
    let (_, events) = stream_through(&gw, &stream_body("gpt-4o")).await;
    let e = last_error(&events);
    assert!(e["message"].as_str().unwrap().contains("time limit"), "{e}");
    tokio::time::timeout(Duration::from_secs(10), dropped.notified()).await.expect("the upstream was let go");
}

#[tokio::test]
async fn dot_segments_as_model_names_are_refused() {
    let up = mock(Reply::Json(200, json!({}))).await;
    let gw = gateway(&[("BEDROCK_BASE_URL", up.url()), ("BEDROCK_API_KEY", "ABSKtest".into())], quick_config()).await;
    for model in ["bedrock/..", "bedrock/."] {
        let r = client()
            .post(gw.url("/v1/chat/completions"))
            .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{model}");
    }
    assert!(up.requests().is_empty());
}

#[tokio::test]
async fn a_declared_length_over_the_limit_is_refused_before_the_body_is_sent() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let gw = gateway(&[], quick_config()).await;
    let mut s = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 2000000000\r\nExpect: 100-continue\r\n\r\n").await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await.expect("an answer").unwrap();
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 413"), "{head:?}");
}

#[cfg(unix)]
#[tokio::test]
async fn special_files_in_the_mappings_directory_are_reported_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let good = "name: Good\nbase_url: https://good.test\nmodels: { list: [one] }\nchat: { path: /c, request: $, response: $ }\n";
    std::fs::write(dir.path().join("good.yaml"), good).unwrap();
    std::os::unix::fs::symlink("/dev/zero", dir.path().join("zero.yaml")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("missing"), dir.path().join("dangling.yaml")).unwrap();
    let fifo = dir.path().join("fifo.yaml");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo(3) on a path in our own temporary directory.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let (engine, problems) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::task::spawn_blocking({
            let d = dir.path().to_path_buf();
            move || lightport::Engine::from_dir(Some(&d), None).unwrap()
        }),
    )
    .await
    .expect("reading a FIFO or /dev/zero must not hang")
    .unwrap();
    assert!(engine.provider("good").is_some());
    let shown: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
    for name in ["zero.yaml", "dangling.yaml", "fifo.yaml"] {
        assert!(shown.iter().any(|p| p.contains(name)), "{name} not reported: {shown:?}");
    }
}

#[test]
fn vars_never_read_a_variable_named_like_a_secret() {
    let file = "name: Sneaky\nbase_url: https://s.test\nvars: { secret_access_key: none }\nchat: { path: /c, request: $, response: $ }\n";
    let src = lightport::SourceFile { id: "aws".into(), path: "aws.yaml".into(), text: file.into() };
    let env = |k: &str| (k == "AWS_SECRET_ACCESS_KEY").then(|| "wJalrXUtnFEMI-not-for-you".to_string());
    let (engine, problems) = lightport::Engine::load(&[src], &env, None);
    assert!(engine.provider("aws").is_none());
    assert!(problems[0].message.contains("AWS_SECRET_ACCESS_KEY"), "{problems:?}");
    assert!(!problems[0].message.contains("wJalr"));
}

#[test]
fn a_schema_error_does_not_print_what_the_file_holds() {
    let secret = "sk-live-0123456789abcdefghijklmnopqrstuvwxyz";
    let file = format!("name: X\nbase_url: https://x.test\nmodels: {{ list: \"{secret}\" }}\n");
    let src = lightport::SourceFile { id: "x".into(), path: "x.yaml".into(), text: file };
    let (_, problems) = lightport::Engine::load(&[src], &|_| None, None);
    assert!(!problems.is_empty());
    assert!(problems.iter().all(|p| !p.message.contains(secret)), "{problems:?}");
}

#[test]
fn a_directory_of_too_many_files_is_read_up_to_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..1_050 {
        std::fs::write(dir.path().join(format!("p{i:04}.yaml")), "name: P\nbase_url: https://p.test\n").unwrap();
    }
    let (sources, problems) = lightport::read_sources(dir.path()).unwrap();
    assert_eq!(sources.len(), lightport::MAX_MAPPING_FILES);
    assert!(problems[0].message.contains("more than 1000 mapping files"), "{problems:?}");
}

/// Logs written by the reload, captured.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_reload_that_moves_a_providers_host_says_so_at_warn_level() {
    use lightport::reload::Sources;
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("moving.yaml");
    std::fs::write(&file, "name: M\nbase_url: https://first.test\nchat: { path: /c, request: $, response: $ }\n")
        .unwrap();
    let sources = Sources { mappings: Some(dir.path().to_path_buf()), ..Sources::default() };
    let (engine, _) = sources.engine(None);
    let router = sources.router(&engine).unwrap();
    let (engine, router) = (arc_swap::ArcSwap::from_pointee(engine), arc_swap::ArcSwap::from_pointee(router));
    std::fs::write(&file, "name: M\nbase_url: https://elsewhere.test\nchat: { path: /c, request: $, response: $ }\n")
        .unwrap();
    sources.reload(&engine, &router);
    assert_eq!(engine.load().provider("moving").unwrap().base_url(), Some("https://elsewhere.test"));
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let line = text.lines().find(|l| l.contains("host or auth changed")).unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains("WARN") && line.contains("first.test") && line.contains("elsewhere.test"), "{line}");
}

/// Finding 14: text a client sends (here a model name) reaches the log as an escaped field,
/// so a newline in it cannot forge a log line.
#[cfg(unix)]
#[tokio::test]
async fn a_newline_in_a_model_name_cannot_forge_a_log_line() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stderr.log");
    let gw =
        GatewayProcess::start(&[], &[("LIGHTPORT_LOG", "debug".into())], std::fs::File::create(&log).unwrap().into())
            .await;
    let url = gw.url.clone();
    for model in ["no-such-model\nFORGED level=ERROR admin logged in", "openai/..\nFORGED line"] {
        let r = client()
            .post(format!("{url}/v1/chat/completions"))
            .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_client_error(), "{model:?}: {}", r.status());
    }
    drop(gw);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("request refused"), "the refusals were not logged:\n{text}");
    assert!(text.contains("FORGED"), "the model name was not logged at all:\n{text}");
    for line in text.lines() {
        assert!(!line.starts_with("FORGED"), "a forged line:\n{text}");
    }
}
