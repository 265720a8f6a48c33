//! Traces: a gateway process exporting over OTLP/HTTP (JSON) to a mock collector. A client's
//! `traceparent` becomes the request span's parent, each upstream attempt is a child span, and
//! the attempt's context goes upstream as `traceparent`.

#![cfg(unix)]

mod common;

use std::sync::{Arc, Mutex};

use axum::extract::Request;
use common::*;
use serde_json::{json, Value};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

/// An OTLP/HTTP collector: keeps each JSON export it receives.
async fn collector() -> (String, Arc<Mutex<Vec<Value>>>) {
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let keep = Arc::clone(&got);
    let app = axum::Router::new().fallback(move |req: Request| {
        let keep = Arc::clone(&keep);
        async move {
            let path = req.uri().path().to_string();
            let bytes = axum::body::to_bytes(req.into_body(), 16 << 20).await.unwrap_or_default();
            let mut v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            v["_path"] = json!(path);
            keep.lock().unwrap().push(v);
            axum::Json(json!({}))
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), got)
}

fn attr<'a>(span: &'a Value, key: &str) -> Option<&'a Value> {
    span["attributes"].as_array()?.iter().find(|a| a["key"] == key).map(|a| &a["value"])
}

#[tokio::test]
async fn spans_reach_the_collector_with_the_clients_parent_and_a_child_per_attempt() {
    let (collector_url, exports) = collector().await;
    let upstream = mock(Reply::Json(
        200,
        json!({"id": "c", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
               "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
               "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}}),
    ))
    .await;
    let child = GatewayProcess::start(
        &["--otlp-endpoint", &collector_url],
        &[
            ("OPENAI_BASE_URL", format!("{}/v1", upstream.url())),
            ("OPENAI_API_KEY", "sk-test".into()),
            ("LIGHTPORT_DRAIN_TIMEOUT", "5".into()),
        ],
        std::process::Stdio::null(),
    )
    .await;
    let url = child.url.clone();
    let r = client()
        .post(format!("{url}/v1/chat/completions"))
        .header("traceparent", format!("00-{TRACE_ID}-{CLIENT_SPAN}-01"))
        .json(&json!({"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // A clean stop flushes the spans not yet exported.
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.pid() as libc::pid_t, libc::SIGTERM) }, 0);
    let status = tokio::task::spawn_blocking(move || child.wait()).await.unwrap();
    assert!(status.success(), "{status}");

    let exports = exports.lock().unwrap().clone();
    assert!(!exports.is_empty(), "nothing reached the collector");
    assert!(exports.iter().all(|e| e["_path"] == "/v1/traces"), "{exports:?}");
    let spans: Vec<Value> = exports
        .iter()
        .flat_map(|e| e["resourceSpans"].as_array().cloned().unwrap_or_default())
        .flat_map(|r| r["scopeSpans"].as_array().cloned().unwrap_or_default())
        .flat_map(|s| s["spans"].as_array().cloned().unwrap_or_default())
        .collect();
    let request = spans
        .iter()
        .find(|s| s["name"] == "chat openai/gpt-4o-mini" && s["kind"] == 2)
        .unwrap_or_else(|| panic!("no server span named after the operation and model: {spans:#?}"));
    assert_eq!(request["traceId"].as_str().unwrap().to_lowercase(), TRACE_ID, "{request:#}");
    assert_eq!(request["parentSpanId"].as_str().unwrap().to_lowercase(), CLIENT_SPAN, "{request:#}");
    assert_eq!(attr(request, "gen_ai.provider.name").unwrap()["stringValue"], "openai", "{request:#}");
    let input = attr(request, "gen_ai.usage.input_tokens").expect("input tokens");
    let input = input.get("intValue").or(input.get("stringValue")).map(|v| v.to_string());
    assert_eq!(input.as_deref().map(|v| v.trim_matches('"')), Some("7"), "{request:#}");
    let attempt = spans
        .iter()
        .find(|s| s["kind"] == 3)
        .unwrap_or_else(|| panic!("no client span for the upstream attempt: {spans:#?}"));
    assert_eq!(attempt["traceId"], request["traceId"]);
    assert_eq!(attempt["parentSpanId"], request["spanId"], "the attempt is the request's child");
    assert_eq!(attempt["name"], "chat gpt-4o-mini");

    // The upstream got the attempt's context.
    let seen = upstream.requests();
    let tp = seen[0].headers.get("traceparent").expect("traceparent upstream");
    let attempt_id = attempt["spanId"].as_str().unwrap().to_lowercase();
    assert_eq!(tp, &format!("00-{TRACE_ID}-{attempt_id}-01"));
}
