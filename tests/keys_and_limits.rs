//! Gateway keys and their limits, and circuit breakers, through the real server: 401 without a
//! key, 429 with Retry-After from each limit, a budget that concurrent requests cannot overrun,
//! and (with a real redis-server) one limit and one breaker shared by two gateway processes.

mod common;

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::redis::RedisServer;
use common::*;
use lightport::route::Router;
use lightport::{builtin_sources, Engine};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const KEY: &str = "lp-test-gateway-key-0001";
const KEY2: &str = "lp-ops-gateway-key-00002";

fn sha(key: &str) -> String {
    Sha256::digest(key.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

fn answer(tokens: u64) -> Value {
    json!({
        "id": "c", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": tokens - 1, "completion_tokens": 1, "total_tokens": tokens}
    })
}

async fn gateway_with_config(config: &str, upstream: &Mock) -> Gateway {
    let text = config.replace("{up}", &format!("{}/v1", upstream.url())).replace("{hash}", &sha(KEY));
    let env: HashMap<String, String> =
        [("OPENAI_API_KEY", "sk-upstream-key"), ("ANTHROPIC_API_KEY", "sk-ant-upstream")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    let (engine, errors) = Engine::load(&builtin_sources(), &|k| env.get(k).cloned(), None);
    assert!(errors.is_empty());
    let router =
        Router::load("keys.yaml", &text, &engine, &|k| env.get(k).cloned()).unwrap_or_else(|e| panic!("{e:?}"));
    gateway_routed(engine, router, quick_config()).await
}

async fn ask(gw: &Gateway, key: Option<&str>, body: &Value) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut req = client().post(gw.url("/v1/chat/completions")).json(body);
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let r = req.send().await.unwrap();
    let (status, headers) = (r.status().as_u16(), r.headers().clone());
    (status, headers, r.json().await.unwrap_or(Value::Null))
}

fn chat() -> Value {
    json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]})
}

#[tokio::test]
async fn a_gateway_key_is_required_and_never_sent_upstream() {
    let up = mock(Reply::Json(200, answer(4))).await;
    let gw = gateway_with_config("keys:\n  - { name: team, sha256: \"{hash}\" }\n", &up).await;
    let (s, _, v) = ask(&gw, None, &chat()).await;
    assert_eq!(s, 401);
    assert_eq!(v["error"]["code"], "invalid_api_key");
    let (s, _, _) = ask(&gw, Some("lp-wrong-key-000000000"), &chat()).await;
    assert_eq!(s, 401);
    assert!(up.requests().is_empty());
    // The model routes to OpenAI (OPENAI_BASE_URL is not set here: the target below is).
    let gw = gateway_with_config(
        "keys:\n  - { name: team, sha256: \"{hash}\" }\ntargets:\n  t: { provider: openai, base_url: \"{up}\" }\nroutes:\n  - { name: r, targets: [t] }\n",
        &up,
    )
    .await;
    let (s, _, _) = ask(&gw, Some(KEY), &chat()).await;
    assert_eq!(s, 200);
    let seen = &up.requests()[0];
    assert_eq!(seen.headers["authorization"], "Bearer sk-upstream-key", "the gateway key went upstream");
    assert!(!seen.headers.values().any(|v| v.contains(KEY)));
}

#[tokio::test]
async fn requests_per_minute_refused_with_retry_after_and_ratelimit_headers() {
    let up = mock(Reply::Json(200, answer(4))).await;
    let config = "keys:\n  - { name: team, sha256: \"{hash}\", limits: { rpm: 3 } }\ntargets:\n  t: { provider: openai, base_url: \"{up}\" }\nroutes:\n  - { name: r, targets: [t] }\n";
    let gw = gateway_with_config(config, &up).await;
    for left in [2, 1, 0] {
        let (s, h, _) = ask(&gw, Some(KEY), &chat()).await;
        assert_eq!(s, 200);
        assert_eq!(h["x-ratelimit-limit-requests"], "3");
        assert_eq!(h["x-ratelimit-remaining-requests"], left.to_string().as_str());
        assert!(h.contains_key("x-ratelimit-reset-requests"));
    }
    let (s, h, v) = ask(&gw, Some(KEY), &chat()).await;
    assert_eq!(s, 429, "{v}");
    assert_eq!(v["error"]["code"], "requests_limit_exceeded");
    let wait: u64 = h["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait));
    assert_eq!(up.requests().len(), 3);
}

#[tokio::test]
async fn tokens_per_minute_count_the_answers_usage() {
    let up = mock(Reply::Json(200, answer(4))).await;
    let config = "keys:\n  - { name: team, sha256: \"{hash}\", limits: { tpm: 10 } }\ntargets:\n  t: { provider: openai, base_url: \"{up}\" }\nroutes:\n  - { name: r, targets: [t] }\n";
    let gw = gateway_with_config(config, &up).await;
    // 4 tokens each: 0, 4, 8 used before the first three; 12 >= 10 before the fourth.
    for _ in 0..3 {
        assert_eq!(ask(&gw, Some(KEY), &chat()).await.0, 200);
    }
    let (s, h, v) = ask(&gw, Some(KEY), &chat()).await;
    assert_eq!(s, 429, "{v}");
    assert_eq!(v["error"]["code"], "tokens_limit_exceeded");
    assert!(h.contains_key("retry-after"));
}

#[tokio::test]
async fn concurrent_requests_are_bounded() {
    let dropped = Arc::new(tokio::sync::Notify::new());
    let chunk = b"data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"x\"},\"finish_reason\":null}]}\n\n".to_vec();
    let mut pieces = vec![chunk; 3];
    pieces.push(b"data: [DONE]\n\n".to_vec());
    let up = mock(Reply::Drip { pieces, every: Duration::from_millis(300), dropped: Arc::clone(&dropped) }).await;
    let config = "keys:\n  - { name: team, sha256: \"{hash}\", limits: { concurrent: 1 } }\ntargets:\n  t: { provider: openai, base_url: \"{up}\" }\nroutes:\n  - { name: r, targets: [t] }\n";
    let gw = gateway_with_config(config, &up).await;
    let mut body = chat();
    body["stream"] = json!(true);
    let first = client().post(gw.url("/v1/chat/completions")).bearer_auth(KEY).json(&body).send().await.unwrap();
    assert_eq!(first.status(), 200);
    let (s, h, v) = ask(&gw, Some(KEY), &chat()).await;
    assert_eq!(s, 429, "{v}");
    assert_eq!(v["error"]["code"], "concurrency_limit_exceeded");
    assert_eq!(h["retry-after"], "1");
    // Once the stream is over, its slot is free again.
    let _ = first.bytes().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut status = 0;
    while Instant::now() < deadline {
        status = ask(&gw, Some(KEY), &chat()).await.0;
        if status != 429 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_ne!(status, 429, "the finished stream's slot was not given back");
    assert!(up.requests().len() >= 2, "the second request reached the upstream once admitted");
}

/// Claude Haiku 4.5 at 1 $/M input and 5 $/M output: an answer of 10 input and 100 output tokens
/// costs 0.00051 $.
fn claude_answer() -> Value {
    json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-haiku-4-5",
        "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn",
        "usage": {"input_tokens": 10, "output_tokens": 100}})
}

#[tokio::test]
async fn the_answer_carries_its_cost() {
    let up = mock(Reply::Json(200, claude_answer())).await;
    let config = "targets:\n  c: { provider: anthropic, model: claude-haiku-4-5, base_url: \"{up}\" }\nroutes:\n  - { name: r, targets: [c] }\n";
    let gw = gateway_with_config(config, &up).await;
    let (s, h, _) = ask(&gw, None, &chat()).await;
    assert_eq!(s, 200);
    let cost: f64 = h["x-lightport-cost"].to_str().unwrap().parse().unwrap();
    assert!((cost - 0.000_51).abs() < 1e-9, "{cost}");
    // An unpriced model says so.
    let up2 = mock(Reply::Json(200, answer(4))).await;
    let gw = gateway_with_config("targets:\n  t: { provider: openai, model: unpriced-model, base_url: \"{up}\" }\nroutes:\n  - { name: r, targets: [t] }\n", &up2).await;
    let (_, h, _) = ask(&gw, None, &chat()).await;
    assert_eq!(h["x-lightport-cost"], "unpriced");
}

#[tokio::test]
async fn fifty_concurrent_requests_cannot_overrun_a_budget() {
    // Each request reserves an estimate (its size as prompt tokens, max_tokens 100 as output)
    // and settles 0.00051 $; the budget is 0.003 $ a day.
    let slow = mock(script(vec![Reply::Json(200, claude_answer())])).await;
    let config = "keys:\n  - { name: team, sha256: \"{hash}\", limits: { budget: { usd: 0.003, period: day } } }\ntargets:\n  c: { provider: anthropic, model: claude-haiku-4-5, base_url: \"{up}\" }\nroutes:\n  - { name: r, targets: [c] }\n";
    let gw = Arc::new(gateway_with_config(config, &slow).await);
    let mut body = chat();
    body["max_tokens"] = json!(100);
    let results = Arc::new(Mutex::new(Vec::new()));
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (gw, body, results) = (Arc::clone(&gw), body.clone(), Arc::clone(&results));
            tokio::spawn(async move {
                let (s, h, v) = ask(&gw, Some(KEY), &body).await;
                let cost = h.get("x-lightport-cost").and_then(|c| c.to_str().ok()?.parse::<f64>().ok()).unwrap_or(0.0);
                results.lock().unwrap().push((s, cost, v["error"]["code"].clone()));
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let results = results.lock().unwrap();
    let spent: f64 = results.iter().map(|(_, c, _)| c).sum();
    let served = results.iter().filter(|(s, _, _)| *s == 200).count();
    assert!(spent <= 0.003 + 1e-9, "the budget was overrun: {spent} $ over {served} answers");
    assert!(served >= 1, "nothing was served");
    eprintln!("budget 0.003 $: {served} of 50 concurrent requests served, {spent:.6} $ spent");
    assert!(results.iter().filter(|(s, _, _)| *s != 200).all(|(s, _, code)| *s == 429 && code == "budget_exceeded"));
    assert_eq!(slow.requests().len(), served);
}

#[tokio::test]
async fn a_circuit_breaker_opens_and_closes_again() {
    let reply = Arc::new(Mutex::new(Reply::Json(500, json!({"error": {"message": "down"}}))));
    let up = mock_switchable(Arc::clone(&reply)).await;
    let config = "targets:\n  t: { provider: openai, base_url: \"{up}\", breaker: { failures: 2, cooldown_s: 1 } }\nroutes:\n  - { name: r, targets: [t], retries: false }\n";
    let gw = gateway_with_config(config, &up).await;
    for _ in 0..2 {
        let (s, h, _) = ask(&gw, None, &chat()).await;
        assert_eq!((s, h["x-lightport-attempts"].to_str().unwrap()), (502, "t:500"));
    }
    // Open: the target is not even tried.
    let (s, h, v) = ask(&gw, None, &chat()).await;
    assert_eq!(s, 503, "{v}");
    assert_eq!(h["x-lightport-attempts"], "t:open");
    assert_eq!(v["error"]["code"], "targets_unavailable");
    assert!(h.contains_key("retry-after"));
    assert_eq!(up.requests().len(), 2);
    let listed: Value = client().get(gw.url("/admin/targets")).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed["data"][0]["breaker"]["state"], "open", "{listed}");
    // The target recovers; after the cool-down one probe goes through and closes the breaker.
    *reply.lock().unwrap() = Reply::Json(200, answer(4));
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (s, h, _) = ask(&gw, None, &chat()).await;
        if s == 200 {
            assert_eq!(h["x-lightport-attempts"], "t:200");
            break;
        }
        assert!(Instant::now() < deadline, "the breaker never closed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let listed: Value = client().get(gw.url("/admin/targets")).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed["data"][0]["breaker"]["state"], "closed", "{listed}");
}

/// A `lightport serve` process, stopped on drop.
struct Process {
    child: Child,
    url: String,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn spawn_gateway(config: &std::path::Path) -> Process {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_lightport"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--config", config.to_str().unwrap()])
        .env("OPENAI_API_KEY", "sk-upstream-key")
        .env("LIGHTPORT_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while client().get(format!("{url}/health")).send().await.is_err() {
        assert!(Instant::now() < deadline, "the gateway did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Process { child, url }
}

async fn ask_process(p: &Process, key: Option<&str>) -> (u16, reqwest::header::HeaderMap) {
    let mut req = client().post(format!("{}/v1/chat/completions", p.url)).json(&chat());
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.headers().clone())
}

#[tokio::test]
async fn two_gateway_processes_share_one_limit_and_one_breaker_through_redis() {
    let redis = RedisServer::start();
    let up = mock(Reply::Json(200, answer(4))).await;
    let down = mock(Reply::Json(500, json!({"error": {"message": "down"}}))).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("lightport.yaml");
    std::fs::write(
        &config,
        format!(
            "state: {{ redis: \"{}\" }}\nkeys:\n  - {{ name: team, sha256: \"{}\", limits: {{ rpm: 10 }} }}\n  - {{ name: ops, sha256: \"{}\" }}\ntargets:\n  t: {{ provider: openai, base_url: \"{}/v1\" }}\n  flaky: {{ provider: openai, base_url: \"{}/v1\", breaker: {{ failures: 2, cooldown_s: 60 }} }}\nroutes:\n  - {{ name: flaky, model: flaky, targets: [flaky], retries: false }}\n  - {{ name: r, targets: [t] }}\n",
            redis.url(),
            sha(KEY),
            sha(KEY2),
            up.url(),
            down.url()
        ),
    )
    .unwrap();
    let (a, b) = (spawn_gateway(&config).await, spawn_gateway(&config).await);
    // 20 requests, alternating between the replicas: the limit is 10 in all, not 10 each.
    let mut served = 0;
    for i in 0..20 {
        let (s, _) = ask_process(if i % 2 == 0 { &a } else { &b }, Some(KEY)).await;
        assert!(s == 200 || s == 429, "{s}");
        served += usize::from(s == 200);
    }
    assert_eq!(served, 10, "two replicas must share one limit of 10");
    assert_eq!(up.requests().len(), 10);

    // The breaker opened by one replica's failures is open in the other.
    let flaky = |p: &Process| {
        let body = json!({"model": "flaky", "messages": [{"role": "user", "content": "hi"}]});
        let req = client().post(format!("{}/v1/chat/completions", p.url)).bearer_auth(KEY2).json(&body);
        async move {
            let r = req.send().await.unwrap();
            let attempts = r.headers().get("x-lightport-attempts").map(|v| v.to_str().unwrap().to_string());
            (r.status().as_u16(), attempts)
        }
    };
    for _ in 0..2 {
        assert_eq!(flaky(&a).await, (502, Some("flaky:500".to_string())));
    }
    assert_eq!(flaky(&b).await, (503, Some("flaky:open".to_string())), "replica b does not see the open breaker");
    assert_eq!(down.requests().len(), 2);
}
