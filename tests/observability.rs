//! What an operator sees: `/metrics` (parsed with a Prometheus text parser), `/ready`, the
//! request id, and the JSON access log, which carries every request's facts and no key, prompt
//! or answer.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

fn anthropic_stream() -> Reply {
    let c = fixtures().join("anthropic").join("stream_text_include_usage");
    let text = std::fs::read_to_string(c.join("upstream_response.txt")).unwrap();
    let pieces = text.split_inclusive("\n\n").map(|s| s.as_bytes().to_vec()).collect();
    Reply::Stream {
        pieces,
        gate_at: usize::MAX,
        gate: Arc::new(tokio::sync::Notify::new()),
        content_type: "text/event-stream",
    }
}

fn openai_answer() -> Value {
    json!({
        "id": "c", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ANSWER-MARKER"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15,
                  "prompt_tokens_details": {"cached_tokens": 4}}
    })
}

fn chat(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "stream_options": {"include_usage": true},
           "messages": [{"role": "user", "content": "PROMPT-MARKER"}]})
}

/// Every sample of a scrape: (metric name, labels, value).
fn scrape(text: &str) -> Vec<(String, HashMap<String, String>, f64)> {
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let parsed = prometheus_parse::Scrape::parse(lines).expect("/metrics parses as Prometheus text");
    parsed
        .samples
        .into_iter()
        .map(|s| {
            let v = match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                prometheus_parse::Value::Histogram(h) => h.iter().map(|b| b.count).fold(0.0, f64::max),
                prometheus_parse::Value::Summary(_) => f64::NAN,
            };
            let labels = s.labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            (s.metric, labels, v)
        })
        .collect()
}

fn sum(samples: &[(String, HashMap<String, String>, f64)], name: &str, want: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|(n, l, _)| n == name && want.iter().all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v)))
        .map(|(_, _, v)| v)
        .sum()
}

#[tokio::test]
async fn metrics_count_requests_tokens_and_streams_and_random_models_add_no_series() {
    let openai = mock(Reply::Json(200, openai_answer())).await;
    let anthropic = mock(anthropic_stream()).await;
    let gw = gateway(
        &[
            ("OPENAI_BASE_URL", format!("{}/v1", openai.url())),
            ("OPENAI_API_KEY", "sk-test".into()),
            ("ANTHROPIC_BASE_URL", anthropic.url()),
            ("ANTHROPIC_API_KEY", "sk-ant-test".into()),
        ],
        quick_config(),
    )
    .await;
    let before = scrape(&client().get(gw.url("/metrics")).send().await.unwrap().text().await.unwrap());
    assert_eq!(sum(&before, "lightport_requests_total", &[]), 0.0);

    for _ in 0..3 {
        let r = client()
            .post(gw.url("/v1/chat/completions"))
            .json(&chat("openai/gpt-4o-mini", false))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    for _ in 0..2 {
        let r = client()
            .post(gw.url("/v1/chat/completions"))
            .json(&chat("anthropic/claude-sonnet-4-5", true))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let events = sse_body(r).await;
        assert_eq!(events.last().unwrap(), "[DONE]");
    }
    // Random model names: refused, counted, but no label takes them.
    for i in 0..20 {
        let r = client()
            .post(gw.url("/v1/chat/completions"))
            .json(&chat(&format!("random-model-{i}"), false))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_client_error());
    }

    let resp = client().get(gw.url("/metrics")).send().await.unwrap();
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("application/openmetrics-text"));
    let text = resp.text().await.unwrap();
    let s = scrape(&text);
    assert_eq!(sum(&s, "lightport_requests_total", &[]), 25.0, "{text}");
    assert_eq!(
        sum(
            &s,
            "lightport_requests_total",
            &[("gen_ai_provider_name", "openai"), ("http_response_status_code", "200")]
        ),
        3.0
    );
    assert_eq!(sum(&s, "lightport_requests_total", &[("gen_ai_provider_name", "anthropic")]), 2.0);
    assert!(!text.contains("random-model"), "a client's random model name became a label:\n{text}");

    // The GenAI series, by their semantic-convention names.
    let duration = "gen_ai_client_operation_duration_seconds_count";
    let chat_gpt = [
        ("gen_ai_operation_name", "chat"),
        ("gen_ai_request_model", "openai/gpt-4o-mini"),
        ("gen_ai_response_model", "gpt-4o-mini"),
    ];
    assert_eq!(sum(&s, duration, &chat_gpt), 3.0, "{text}");
    let ttfc = "gen_ai_client_operation_time_to_first_chunk_seconds_count";
    assert_eq!(sum(&s, ttfc, &[("gen_ai_provider_name", "anthropic")]), 2.0, "{text}");
    assert_eq!(sum(&s, ttfc, &[("gen_ai_provider_name", "openai")]), 0.0, "no first chunk for a non-stream call");
    assert!(sum(&s, "gen_ai_client_operation_time_per_output_chunk_seconds_count", &[]) > 0.0, "{text}");
    let usage = "gen_ai_client_token_usage_sum";
    assert_eq!(sum(&s, usage, &[("gen_ai_provider_name", "openai"), ("gen_ai_token_type", "input")]), 36.0, "{text}");
    assert_eq!(sum(&s, usage, &[("gen_ai_provider_name", "openai"), ("gen_ai_token_type", "output")]), 9.0);
    assert_eq!(sum(&s, "lightport_tokens_total", &[("gen_ai_provider_name", "openai"), ("type", "cache_read")]), 12.0);
    // The Anthropic stream's usage (its golden vector's numbers), twice.
    let want = read_json(&fixtures().join("anthropic/stream_text_include_usage/response.json"));
    let usage_chunk = want["chunks"].as_array().unwrap().iter().rev().find(|c| c["usage"].is_object()).unwrap();
    let prompt = usage_chunk["usage"]["prompt_tokens"].as_f64().unwrap();
    assert_eq!(
        sum(&s, "lightport_tokens_total", &[("gen_ai_provider_name", "anthropic"), ("type", "input")]),
        2.0 * prompt
    );
    assert!(sum(&s, "lightport_cost_usd_total", &[("gen_ai_provider_name", "anthropic")]) > 0.0, "{text}");
    assert_eq!(sum(&s, "lightport_streams_in_flight", &[]), 0.0, "every stream closed");
    assert_eq!(sum(&s, "lightport_upstream_attempts_total", &[("outcome", "200")]), 5.0, "{text}");
}

#[tokio::test]
async fn metric_labels_can_be_switched_off_and_model_names_are_capped() {
    let openai = mock(Reply::Json(200, openai_answer())).await;
    let config = lightport::server::Config {
        metrics: lightport::server::metrics::MetricsConfig {
            max_models: 2,
            omit_labels: ["lightport_route".to_string()].into(),
        },
        ..quick_config()
    };
    let gw =
        gateway(&[("OPENAI_BASE_URL", format!("{}/v1", openai.url())), ("OPENAI_API_KEY", "sk-test".into())], config)
            .await;
    // The OpenAI mapping takes any model name: each is placed, so only the cap bounds them.
    for m in ["gpt-a", "gpt-b", "gpt-c", "gpt-d"] {
        let r = client()
            .post(gw.url("/v1/chat/completions"))
            .json(&chat(&format!("openai/{m}"), false))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let text = client().get(gw.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let s = scrape(&text);
    assert_eq!(sum(&s, "lightport_requests_total", &[("gen_ai_request_model", "other")]), 2.0, "{text}");
    assert!(!text.contains("gpt-c") && !text.contains("gpt-d"), "{text}");
    assert!(!text.contains("lightport_route="), "a switched-off label is still there:\n{text}");
    // These made-up models have no price: their cost is counted as unknown, not as zero.
    assert_eq!(sum(&s, "lightport_unpriced_requests_total", &[]), 4.0, "{text}");
    assert_eq!(sum(&s, "lightport_cost_usd_total", &[]), 0.0, "{text}");
}

#[tokio::test]
async fn the_request_id_is_kept_returned_and_passed_upstream() {
    let openai = mock(Reply::Json(200, openai_answer())).await;
    let gw = gateway(
        &[("OPENAI_BASE_URL", format!("{}/v1", openai.url())), ("OPENAI_API_KEY", "sk-test".into())],
        quick_config(),
    )
    .await;
    let r = client()
        .post(gw.url("/v1/chat/completions"))
        .header("x-request-id", "trace-abc-123")
        .json(&chat("openai/gpt-4o-mini", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "trace-abc-123");
    // An unsafe one is replaced with one of our own, which goes upstream too.
    let r2 = client()
        .post(gw.url("/v1/chat/completions"))
        .header("x-request-id", "a b")
        .json(&chat("openai/gpt-4o-mini", false))
        .send()
        .await
        .unwrap();
    let made = r2.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_ne!(made, "a b");
    let seen = openai.requests();
    let ids: Vec<&str> = seen
        .iter()
        .map(|s| s.headers.iter().find(|(k, _)| *k == "x-request-id").map(|(_, v)| v.as_str()).unwrap_or(""))
        .collect();
    assert_eq!(ids, ["trace-abc-123", made.as_str()]);
}

#[tokio::test]
async fn ready_says_ready_with_its_reload_state() {
    let gw = gateway(&[], quick_config()).await;
    let r = client().get(gw.url("/ready")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], "ready");
    assert_eq!(v["last_reload"]["ok"], true);
    assert!(v["last_reload"]["last_good_unix"].as_u64().unwrap() > 1_700_000_000);
}

/// A gateway process with JSON logs at debug level; keys planted in every place a key can
/// travel (the gateway's environment, the client's Authorization and x-api-key headers, a query
/// parameter, the body), a prompt and an answer with markers: none reaches the log, and the
/// access line carries the request's facts.
#[cfg(unix)]
#[tokio::test]
async fn json_logs_carry_each_requests_facts_and_no_key_prompt_or_answer() {
    let openai = mock(Reply::Json(200, openai_answer())).await;
    let anthropic = mock(anthropic_stream()).await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stderr.log");
    let child = GatewayProcess::start(
        &["--log-format", "json"],
        &[
            ("LIGHTPORT_LOG", "debug".into()),
            ("OPENAI_BASE_URL", format!("{}/v1", openai.url())),
            ("OPENAI_API_KEY", "sk-GATEWAY-SECRET-0001".into()),
            ("ANTHROPIC_BASE_URL", anthropic.url()),
            ("ANTHROPIC_API_KEY", "sk-ant-GATEWAY-SECRET-0002".into()),
        ],
        std::fs::File::create(&log).unwrap().into(),
    )
    .await;
    let url = child.url.clone();
    let mut body = chat("openai/gpt-4o-mini", false);
    body["api_key"] = json!("sk-BODY-SECRET-0003");
    let r = client()
        .post(format!("{url}/v1/chat/completions?key=sk-QUERY-SECRET-0004"))
        .header("authorization", "Bearer sk-CLIENT-SECRET-0005")
        .header("x-api-key", "sk-HEADER-SECRET-0006")
        .header("x-request-id", "req-one")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let r = client()
        .post(format!("{url}/v1/chat/completions"))
        .header("x-request-id", "req-two")
        .json(&chat("anthropic/claude-sonnet-4-5", true))
        .send()
        .await
        .unwrap();
    let events = sse_body(r).await;
    assert_eq!(events.last().unwrap(), "[DONE]");
    let r = client()
        .post(format!("{url}/v1/chat/completions"))
        .header("x-request-id", "req-three")
        .header("authorization", "Bearer sk-CLIENT-SECRET-0007")
        .json(&chat("no-such-model", false))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error());
    // The stream's line is written when it ends, which the client saw: wait for the third
    // access line (not just any line naming req-three: its refusal is logged before it).
    for _ in 0..200 {
        let text = std::fs::read_to_string(&log).unwrap();
        if text.lines().any(|l| l.contains("lightport::access") && l.contains("req-three")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    drop(child);
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    let access = |rid: &str| {
        lines
            .iter()
            .find(|l| l["target"] == "lightport::access" && l["request_id"] == rid)
            .unwrap_or_else(|| panic!("no access line for {rid} in:\n{text}"))
    };
    let one = access("req-one");
    assert_eq!(one["provider"], "openai");
    assert_eq!(one["model"], "openai/gpt-4o-mini");
    assert_eq!(one["upstream_model"], "gpt-4o-mini");
    assert_eq!(one["status"], 200);
    assert_eq!(one["prompt_tokens"], 12);
    assert_eq!(one["completion_tokens"], 3);
    assert_eq!(one["stream"], false);
    for f in ["duration_ms", "upstream_ms", "overhead_us", "attempts"] {
        assert!(!one[f].is_null(), "{f} missing: {one}");
    }
    let two = access("req-two");
    assert_eq!(two["provider"], "anthropic");
    assert_eq!(two["stream"], true);
    assert!(two["ttfc_ms"].as_f64().is_some(), "{two}");
    assert!(two["prompt_tokens"].as_u64().is_some_and(|n| n > 0), "{two}");
    assert!(two["cost_usd"].as_f64().is_some_and(|c| c > 0.0), "{two}");
    let three = access("req-three");
    assert_eq!(three["status"], 404, "{three}");
    assert!(three["error_type"].is_string(), "{three}");
    for secret in [
        "GATEWAY-SECRET",
        "BODY-SECRET",
        "QUERY-SECRET",
        "CLIENT-SECRET",
        "HEADER-SECRET",
        "PROMPT-MARKER",
        "ANSWER-MARKER",
    ] {
        assert!(!text.contains(secret), "{secret} reached the log:\n{text}");
    }
}

/// `--metrics-listen` serves `/metrics` on an address of its own, and the main address no
/// longer does.
#[cfg(unix)]
#[tokio::test]
async fn metrics_can_listen_on_an_address_of_their_own() {
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let gw = GatewayProcess::start(
        &[],
        &[("LIGHTPORT_METRICS_LISTEN", format!("127.0.0.1:{metrics_port}"))],
        std::process::Stdio::null(),
    )
    .await;
    let main = gw.url.clone();
    let r = client().get(format!("http://127.0.0.1:{metrics_port}/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    scrape(&text);
    assert!(text.contains("# TYPE lightport_streams_in_flight gauge"), "{text}");
    assert_eq!(client().get(format!("{main}/metrics")).send().await.unwrap().status(), 404);
}
