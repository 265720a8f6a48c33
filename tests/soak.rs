//! Reload soak: under steady load, with streams open across all of it, 100 reloads of a mapping
//! (good, broken, fixed, a renamed model pattern), each written the documented way (a new file
//! renamed over the old one); not one request fails and not one stream is cut.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use common::*;
use futures_util::StreamExt;
use lightport::reload::{watch, Sources};
use lightport::Engine;
use serde_json::{json, Value};
use tokio::sync::Notify;

const CHUNK: &str = "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"part\"},\"finish_reason\":null}]}\n\n";
const LAST: &str = "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n";

/// An OpenAI-compatible upstream: JSON answers, and streams that send one chunk and then wait
/// for `release` before the rest.
async fn upstream(release: Arc<Notify>) -> String {
    let app = axum::Router::new().fallback(move |req: Request| {
        let release = Arc::clone(&release);
        async move {
            let bytes = axum::body::to_bytes(req.into_body(), 1 << 20).await.unwrap_or_default();
            let body: Value = serde_json::from_slice(&bytes).unwrap_or_default();
            if body["stream"] == true {
                let rest = async move {
                    release.notified().await;
                    Ok::<_, std::io::Error>(bytes::Bytes::from(format!("{CHUNK}{LAST}")))
                };
                let s = futures_util::stream::once(async { Ok(bytes::Bytes::from(CHUNK)) })
                    .chain(futures_util::stream::once(rest));
                Response::builder()
                    .header("content-type", "text/event-stream")
                    .body(Body::from_stream(s))
                    .unwrap()
            } else {
                let v = json!({"id": "c", "object": "chat.completion", "created": 1, "model": "m",
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}]});
                Response::builder()
                    .header("content-type", "application/json")
                    .body(Body::from(v.to_string()))
                    .unwrap()
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/v1")
}

fn chat(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_reloads_under_load_fail_no_request_and_cut_no_stream() {
    let _ = tracing_subscriber::fmt().with_max_level(tracing::Level::INFO).with_test_writer().try_init();
    let release = Arc::new(Notify::new());
    let base = upstream(Arc::clone(&release)).await;
    std::env::set_var("SOAK_API_KEY", "sk-soak-test");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("soak.yaml");
    let good = |extra: &str| {
        format!("extends: openai\nname: Soak\nbase_url: \"{base}\"\nmodels: {{ match: [\"soak-*\", \"{extra}-*\"] }}\n")
    };
    // The documented way to change a file: write a new one, rename it over the old.
    let write = |text: &str| {
        let tmp = dir.path().join(".soak.yaml.tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &file).unwrap();
    };
    write(&good("first"));
    let (engine, problems) = Engine::from_dir(Some(dir.path()), None).unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    // Streams stay open across the whole storm: a wait for their next chunk longer than it.
    let config = lightport::server::Config { upstream_timeout: Duration::from_secs(600), ..quick_config() };
    let gw = gateway_with(engine, config).await;
    let sources = Sources { mappings: Some(dir.path().to_path_buf()), ..Sources::default() };
    let _watcher = watch(sources, Arc::clone(&gw.engine), Arc::clone(&gw.router), Arc::clone(&gw.reloads)).unwrap();

    // Streams opened before the storm and held open across it.
    let mut streams = Vec::new();
    for _ in 0..4 {
        let r = client().post(gw.url("/v1/chat/completions")).json(&chat("soak-stream", true)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let mut body = r.bytes_stream();
        let first = body.next().await.expect("a first chunk").unwrap();
        assert!(String::from_utf8_lossy(&first).contains("part"));
        streams.push(tokio::spawn(async move {
            let mut rest = Vec::new();
            while let Some(chunk) = body.next().await {
                rest.extend_from_slice(&chunk.expect("the stream is not cut"));
            }
            String::from_utf8(rest).unwrap()
        }));
    }

    // Steady load on a model every version of the file serves.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (stop, ok, failed, url) =
            (Arc::clone(&stop), Arc::clone(&ok), Arc::clone(&failed), gw.url("/v1/chat/completions"));
        load.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let r = client().post(&url).json(&chat("soak-steady", false)).send().await;
                match r {
                    Ok(r) if r.status() == 200 => ok.fetch_add(1, Ordering::Relaxed),
                    Ok(r) => {
                        failures.push(format!("{} {}", r.status(), r.text().await.unwrap_or_default()));
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                    Err(e) => {
                        failures.push(e.to_string());
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
            failures
        }));
    }

    // 100 reloads, each one waited for: good, broken, fixed, a renamed pattern.
    let broken = "extends: openai\nname: Soak\nbase_url: 3\n";
    for i in 0..100u32 {
        let text = match i % 4 {
            0 => good(&format!("renamed{i}")),
            1 => broken.to_string(),
            2 => good("fixed"),
            _ => good(&format!("pattern{i}")),
        };
        let (s0, f0) = gw.reloads.counts();
        write(&text);
        let deadline = Instant::now() + Duration::from_secs(20);
        while gw.reloads.counts() == (s0, f0) {
            assert!(Instant::now() < deadline, "reload {i} was never done");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let (good_reloads, failed_reloads) = gw.reloads.counts();
    assert_eq!(good_reloads + failed_reloads, 100);
    assert_eq!(failed_reloads, 25, "each broken version was reported");

    stop.store(true, Ordering::Relaxed);
    let mut failures = Vec::new();
    for l in load {
        failures.extend(l.await.unwrap());
    }
    assert!(
        failures.is_empty(),
        "{} of {} requests failed: {failures:?}",
        failures.len(),
        ok.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed)
    );
    assert!(ok.load(Ordering::Relaxed) >= 100, "the load was steady: {} requests", ok.load(Ordering::Relaxed));

    // The last version's pattern serves.
    let r = client().post(gw.url("/v1/chat/completions")).json(&chat("pattern99-x", false)).send().await.unwrap();
    assert_eq!(r.status(), 200);

    // Release the streams (each waits for its release; one notification may precede a wait).
    let deadline = Instant::now() + Duration::from_secs(20);
    while streams.iter().any(|s| !s.is_finished()) {
        assert!(Instant::now() < deadline, "the held streams never finished");
        release.notify_waiters();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for s in streams {
        let rest = s.await.unwrap();
        assert!(rest.contains("\"finish_reason\":\"stop\""), "a stream was cut: {rest}");
        assert!(rest.trim_end().ends_with("data: [DONE]"), "a stream was cut: {rest}");
    }
}
