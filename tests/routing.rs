//! Routing and resilience through the real server: a gateway config file's targets and routes
//! (conditions, key prefixes, compliance sets, weighted and sticky splits), retries, fallbacks,
//! and what the answer's headers report. Every upstream is a mock on 127.0.0.1.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use lightport::route::Router;
use lightport::{builtin_sources, Engine};
use serde_json::{json, Value};
use tokio::sync::Notify;

/// A chat completion naming who answered.
fn answer(who: &str) -> Value {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": who}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
    })
}

fn ok(who: &str) -> Reply {
    Reply::Json(200, answer(who))
}

fn status(code: u16) -> Reply {
    Reply::Json(
        code,
        json!({"error": {"message": format!("upstream says {code}"), "type": "server_error", "code": null}}),
    )
}

/// The engine with the built-in mappings and the given environment.
fn engine(env: &HashMap<String, String>) -> Engine {
    let (engine, errors) = Engine::load(&builtin_sources(), &|k| env.get(k).cloned(), None);
    assert!(errors.is_empty(), "{errors:?}");
    engine
}

/// A gateway with `config` (YAML), where `{a}`, `{b}`... in the text are the mocks' base URLs.
async fn gateway_for(config: &str, mocks: &[(&str, &Mock)], env: &[(&str, &str)]) -> Gateway {
    let mut text = config.to_string();
    for (name, m) in mocks {
        text = text.replace(&format!("{{{name}}}"), &format!("{}/v1", m.url()));
    }
    let mut env: HashMap<String, String> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    env.entry("OPENAI_API_KEY".into()).or_insert_with(|| "sk-gateway-openai".into());
    let engine = engine(&env);
    let router = Router::load("test.yaml", &text, &engine, &|k| env.get(k).cloned())
        .unwrap_or_else(|e| panic!("{}", e.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n")));
    gateway_routed(engine, router, quick_config()).await
}

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})
}

async fn send(gw: &Gateway, body: &Value, headers: &[(&str, &str)]) -> (u16, HashMap<String, String>, Value) {
    let mut req = client().post(gw.url("/v1/chat/completions")).json(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().iter().map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string())).collect();
    let body = r.json().await.unwrap_or(Value::Null);
    (status, headers, body)
}

fn content(v: &Value) -> &str {
    v["choices"][0]["message"]["content"].as_str().unwrap_or("")
}

/// A port nothing listens on.
async fn closed_port_url() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}/v1")
}

#[tokio::test]
async fn header_conditions_choose_the_route_and_compliance_never_leaves_its_set() {
    let (eu1, eu2, fast) = (mock(status(503)).await, mock(status(500)).await, mock(ok("fast")).await);
    let config = r#"
targets:
  eu-1: { provider: openai, model: gpt-4o, base_url: "{eu1}" }
  eu-2: { provider: openai, model: gpt-4o, base_url: "{eu2}" }
  fast: { provider: openai, model: gpt-4o-mini, base_url: "{fast}" }
routes:
  - name: patient-data
    when: { $eq: ["$.headers['x-data-class']", phi] }
    targets: [eu-1, eu-2]
    only: { targets: [eu-1, eu-2] }
    retries: false
  - name: everything-else
    targets: [fast]
"#;
    let gw = gateway_for(config, &[("eu1", &eu1), ("eu2", &eu2), ("fast", &fast)], &[]).await;
    let (s, h, v) = send(&gw, &chat("assistant"), &[]).await;
    assert_eq!((s, content(&v)), (200, "fast"));
    assert_eq!(h["x-lightport-route"], "everything-else");
    assert_eq!(h["x-lightport-target"], "fast");
    assert_eq!(fast.requests()[0].body["model"], "gpt-4o-mini");

    // Both compliant targets are down: the client gets an error, and nothing reaches `fast`.
    let (s, h, v) = send(&gw, &chat("assistant"), &[("x-data-class", "phi")]).await;
    assert_eq!(s, 502, "{v}");
    assert_eq!(h["x-lightport-route"], "patient-data");
    assert_eq!(h["x-lightport-attempts"], "eu-1:503,eu-2:500");
    assert!(v["error"]["message"].as_str().unwrap().contains("eu-1"), "{v}");
    assert_eq!((eu1.requests().len(), eu2.requests().len(), fast.requests().len()), (1, 1, 1));
}

#[tokio::test]
async fn a_trusted_fallback_header_cannot_leave_a_compliance_set() {
    let (eu, us) = (mock(status(503)).await, mock(ok("us")).await);
    let config = r#"
trust_fallback_header: true
targets:
  eu: { provider: openai, base_url: "{eu}" }
  us: { provider: openai, base_url: "{us}" }
routes:
  - name: eu-only
    targets: [eu]
    only: { targets: [eu] }
    retries: false
"#;
    let gw = gateway_for(config, &[("eu", &eu), ("us", &us)], &[]).await;
    let (s, h, _) = send(&gw, &chat("gpt-4o"), &[("x-lightport-fallbacks", "eu,us")]).await;
    assert_eq!(s, 503);
    assert_eq!(h["x-lightport-attempts"], "eu:503");
    assert!(us.requests().is_empty(), "a request outside the set was sent");
}

#[tokio::test]
async fn a_client_key_routes_by_its_prefix_and_goes_nowhere_else() {
    let (openai, groq) = (mock(ok("openai")).await, mock(ok("groq")).await);
    let env = [("OPENAI_BASE_URL", format!("{}/v1", openai.url())), ("GROQ_BASE_URL", format!("{}/v1", groq.url()))];
    let gw = gateway(&env.iter().map(|(k, v)| (*k, v.clone())).collect::<Vec<_>>(), quick_config()).await;
    // gpt-4o matches OpenAI's model patterns, but the client's key is a Groq key.
    let (s, h, v) = send(&gw, &chat("gpt-4o"), &[("authorization", "Bearer gsk_client_key")]).await;
    assert_eq!((s, content(&v)), (200, "groq"), "{h:?}");
    assert_eq!(h["x-lightport-provider"], "groq");
    assert_eq!(groq.requests()[0].headers["authorization"], "Bearer gsk_client_key");
    assert!(openai.requests().is_empty());
    // An OpenAI project key goes to OpenAI.
    let (s, _, v) = send(&gw, &chat("llama-3.3-70b-versatile"), &[("authorization", "Bearer sk-proj-abc")]).await;

    assert_eq!((s, content(&v)), (200, "openai"));
    assert_eq!(openai.requests()[0].headers["authorization"], "Bearer sk-proj-abc");
    // The Groq key never went to OpenAI.
    assert!(openai.requests().iter().all(|r| !r.headers["authorization"].contains("gsk_")));
}

#[tokio::test]
async fn fallbacks_after_a_429_a_500_a_refused_connection_and_a_first_byte_timeout() {
    let (limited, broken, hung, good) =
        (mock(status(429)).await, mock(status(500)).await, mock(Reply::Hang).await, mock(ok("good")).await);
    let refused = closed_port_url().await;
    let config = format!(
        r#"
targets:
  limited: {{ provider: openai, base_url: "{{limited}}" }}
  broken: {{ provider: openai, base_url: "{{broken}}" }}
  refused: {{ provider: openai, base_url: "{refused}" }}
  hung: {{ provider: openai, base_url: "{{hung}}", timeouts: {{ first_byte: 0.3 }} }}
  good: {{ provider: openai, base_url: "{{good}}" }}
routes:
  - name: chain
    targets: [limited, broken, refused, hung, good]
    retries: false
"#
    );
    let gw = gateway_for(&config, &[("limited", &limited), ("broken", &broken), ("hung", &hung), ("good", &good)], &[])
        .await;
    let (s, h, v) = send(&gw, &chat("gpt-4o"), &[]).await;
    assert_eq!((s, content(&v)), (200, "good"), "{h:?}");
    assert_eq!(h["x-lightport-attempts"], "limited:429,broken:500,refused:unreachable,hung:timeout,good:200");
    assert_eq!(h["x-lightport-target"], "good");
}

#[tokio::test]
async fn retries_honour_retry_after_and_a_long_one_moves_on() {
    let once = mock(script(vec![
        Reply::JsonWithHeaders(
            429,
            vec![("retry-after".into(), "1".into())],
            json!({"error": {"message": "slow down"}}),
        ),
        ok("retried"),
    ]))
    .await;
    let config = r#"
targets:
  once: { provider: openai, base_url: "{once}" }
routes:
  - name: r
    targets: [once]
    retries: { attempts: 3, base_delay_ms: 10, retry_after_cap_s: 5 }
"#;
    let gw = gateway_for(config, &[("once", &once)], &[]).await;
    let t = Instant::now();
    let (s, h, v) = send(&gw, &chat("gpt-4o"), &[]).await;
    assert_eq!((s, content(&v)), (200, "retried"));
    assert_eq!(h["x-lightport-attempts"], "once:429,once:200");
    assert!(t.elapsed() >= Duration::from_secs(1), "the retry came before Retry-After: {:?}", t.elapsed());

    // Retry-After beyond the cap: no wait, the next target instead.
    let (patient, other) = (
        mock(Reply::JsonWithHeaders(
            429,
            vec![("retry-after".into(), "3600".into())],
            json!({"error": {"message": "x"}}),
        ))
        .await,
        mock(ok("other")).await,
    );
    let config = r#"
targets:
  patient: { provider: openai, base_url: "{patient}" }
  other: { provider: openai, base_url: "{other}" }
routes:
  - name: r
    targets: [patient, other]
    retries: { attempts: 3, retry_after_cap_s: 5 }
"#;
    let gw = gateway_for(config, &[("patient", &patient), ("other", &other)], &[]).await;
    let t = Instant::now();
    let (s, h, _) = send(&gw, &chat("gpt-4o"), &[]).await;
    assert_eq!(s, 200);
    assert_eq!(h["x-lightport-attempts"], "patient:429,other:200");
    assert!(t.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_client_error_is_not_retried_elsewhere_but_a_typed_fallback_is_taken() {
    let too_long = json!({"error": {"message": "maximum context length exceeded", "type": "invalid_request_error",
        "code": "context_length_exceeded"}});
    let (small, big, other) = (mock(Reply::Json(400, too_long)).await, mock(ok("big")).await, mock(ok("other")).await);
    let config = r#"
targets:
  small: { provider: openai, model: gpt-4o-mini, base_url: "{small}" }
  big: { provider: openai, model: gpt-4.1, base_url: "{big}" }
  other: { provider: openai, base_url: "{other}" }
routes:
  - name: with-typed
    model: long-*
    targets: [small, other]
    fallback_on: [{ error: context_window, target: big }]
  - name: without
    targets: [small, other]
"#;
    let gw = gateway_for(config, &[("small", &small), ("big", &big), ("other", &other)], &[]).await;
    let (s, h, v) = send(&gw, &chat("long-context"), &[]).await;
    assert_eq!((s, content(&v)), (200, "big"), "{h:?}");
    assert_eq!(h["x-lightport-attempts"], "small:400,big:200");
    assert_eq!(big.requests()[0].body["model"], "gpt-4.1");
    // Without a typed fallback, a 400 is the client's answer: another target would refuse it too.
    let (s, h, v) = send(&gw, &chat("short"), &[]).await;
    assert_eq!(s, 400);
    assert_eq!(v["error"]["code"], "context_length_exceeded");
    assert_eq!(h["x-lightport-attempts"], "small:400");
    assert!(other.requests().is_empty());
}

#[tokio::test]
async fn a_weighted_split_keeps_its_weights_and_a_sticky_one_keeps_its_users() {
    let (a, b) = (mock(ok("a")).await, mock(ok("b")).await);
    let config = r#"
targets:
  a: { provider: openai, base_url: "{a}" }
  b: { provider: openai, base_url: "{b}" }
routes:
  - name: ab
    model: fraud-*
    split: [{ target: a, weight: 70 }, { target: b, weight: 30 }]
  - name: sticky
    split: [{ target: a, weight: 50 }, { target: b, weight: 50 }]
    sticky: { header: x-user-id }
"#;
    let gw = gateway_for(config, &[("a", &a), ("b", &b)], &[]).await;
    let n = 2000;
    let mut to_a = 0;
    for _ in 0..n {
        let (s, h, _) = send(&gw, &chat("fraud-detector"), &[]).await;
        assert_eq!(s, 200);
        to_a += usize::from(h["x-lightport-target"] == "a");
    }
    let share = to_a as f64 / n as f64;
    assert!((share - 0.70).abs() <= 0.03, "arm a got {share:.3} of the requests, not 0.70 ± 0.03");

    let mut arms = HashMap::new();
    for round in 0..5 {
        for user in 0..40 {
            let id = format!("user-{user}");
            let (_, h, _) = send(&gw, &chat("anything"), &[("x-user-id", &id)]).await;
            let arm = h["x-lightport-target"].clone();
            let first = arms.entry(id.clone()).or_insert_with(|| arm.clone());
            assert_eq!(*first, arm, "{id} moved between arms in round {round}");
        }
    }
    let in_a = arms.values().filter(|a| *a == "a").count();
    assert!((5..=35).contains(&in_a), "users spread over both arms: {in_a} of 40 in a");
}

#[tokio::test]
async fn an_unknown_or_broken_config_is_reported_with_its_line() {
    let engine = engine(&HashMap::new());
    let text =
        "targets:\n  a: { provider: opeanai }\nroutes:\n  - name: r\n    targets: [b]\n    when: { $eqq: [1, 1] }\n";
    let errors = Router::load("cfg.yaml", text, &engine, &|_| None).unwrap_err();
    let shown: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    assert!(
        shown.iter().any(|e| e.starts_with("cfg.yaml:2: no mapping named 'opeanai' (did you mean 'openai'?)")),
        "{shown:?}"
    );
    assert!(shown.iter().any(|e| e.starts_with("cfg.yaml:5: no target named 'b'")), "{shown:?}");
    assert!(shown.iter().any(|e| e.starts_with("cfg.yaml:6: unknown operation '$eqq'")), "{shown:?}");
    let errors = Router::load("cfg.yaml", "routes:\n  - name: r\n    targets: oops\n", &engine, &|_| None).unwrap_err();
    assert_eq!(errors[0].line, 3, "{errors:?}");
}

#[tokio::test]
async fn a_stream_is_not_retried_once_content_reached_the_client() {
    let piece =
        b"data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hel\"},\"finish_reason\":null}]}\n\n".to_vec();
    // The upstream sends content, then the connection ends without [DONE].
    let (first, second) = (mock(Reply::Raw(200, "text/event-stream", piece)).await, mock(ok("second")).await);
    let config = r#"
targets:
  first: { provider: openai, base_url: "{first}" }
  second: { provider: openai, base_url: "{second}" }
routes:
  - name: r
    targets: [first, second]
    retries: { attempts: 3, base_delay_ms: 1 }
"#;
    let gw = gateway_for(config, &[("first", &first), ("second", &second)], &[]).await;
    let mut body = chat("gpt-4o");
    body["stream"] = json!(true);
    let r = client().post(gw.url("/v1/chat/completions")).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-lightport-attempts"], "first:200");
    let chunks = sse_body(r).await;
    assert_eq!(chunks[0]["choices"][0]["delta"]["content"], "Hel");
    assert_eq!(chunks.last().unwrap()["error"]["code"], "stream_truncated");
    assert_eq!(first.requests().len(), 1);
    assert!(second.requests().is_empty());
}

#[tokio::test]
async fn an_error_inside_a_stream_before_any_content_falls_back() {
    // Anthropic sends overloaded_error as an SSE event after a 200.
    let overloaded = concat!(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"claude-haiku-4-5\",\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\n",
        "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n",
    );
    let (claude, backup) = (
        mock(Reply::Raw(200, "text/event-stream", overloaded.as_bytes().to_vec())).await,
        mock(Reply::Raw(
            200,
            "text/event-stream",
            b"data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"backup\"},\"finish_reason\":null}]}\n\ndata: [DONE]\n\n".to_vec(),
        ))
        .await,
    );
    let config = r#"
targets:
  claude: { provider: anthropic, model: claude-haiku-4-5, base_url: "{claude}" }
  backup: { provider: openai, base_url: "{backup}" }
routes:
  - name: r
    targets: [claude, backup]
    retries: false
"#;
    let gw =
        gateway_for(config, &[("claude", &claude), ("backup", &backup)], &[("ANTHROPIC_API_KEY", "sk-ant-test")]).await;
    let mut body = chat("assistant");
    body["stream"] = json!(true);
    let r = client().post(gw.url("/v1/chat/completions")).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-lightport-attempts"], "claude:502,backup:200");
    let chunks = sse_body(r).await;
    assert_eq!(chunks[0]["choices"][0]["delta"]["content"], "backup");
    assert!(chunks.iter().all(|c| c.get("error").is_none()), "{chunks:?}");
}

#[tokio::test]
async fn a_client_that_disconnects_mid_stream_cancels_the_upstream_request() {
    let dropped = Arc::new(Notify::new());
    let chunk = b"data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"x\"},\"finish_reason\":null}]}\n\n".to_vec();
    let upstream = mock(Reply::Drip {
        pieces: vec![chunk; 10_000],
        every: Duration::from_millis(20),
        dropped: Arc::clone(&dropped),
    })
    .await;
    let gw = gateway(
        &[("OPENAI_BASE_URL", format!("{}/v1", upstream.url())), ("OPENAI_API_KEY", "sk-test".into())],
        quick_config(),
    )
    .await;
    let mut body = chat("gpt-4o");
    body["stream"] = json!(true);
    let mut r = client().post(gw.url("/v1/chat/completions")).json(&body).send().await.unwrap();
    assert!(r.chunk().await.unwrap().is_some(), "the stream started");
    drop(r);
    tokio::time::timeout(Duration::from_secs(20), dropped.notified())
        .await
        .expect("the upstream request was not cancelled after the client went away");
}

/// The share of second turns whose prompt the answering provider had cached.
async fn second_turn_cache_hits(gw: &Gateway, model: &str, conversations: usize) -> f64 {
    let mut hits = 0;
    for c in 0..conversations {
        let first = json!({"model": model, "messages": [
            {"role": "system", "content": format!("You are a fraud analyst ({model}).")},
            {"role": "user", "content": format!("Case {c}: review these transactions.")}
        ]});
        let (s, _, _) = send(gw, &first, &[]).await;
        assert_eq!(s, 200);
        let mut second = first.clone();
        let messages = second["messages"].as_array_mut().unwrap();
        messages.push(json!({"role": "assistant", "content": "Looks fine."}));
        messages.push(json!({"role": "user", "content": "And the third one?"}));
        let (_, _, v) = send(gw, &second, &[]).await;
        hits += usize::from(v["usage"]["prompt_tokens_details"]["cached_tokens"].as_u64().unwrap_or(0) > 0);
    }
    hits as f64 / conversations as f64
}

#[tokio::test]
async fn a_split_sticky_on_the_conversation_prefix_keeps_hitting_the_prompt_cache() {
    let caches: Vec<Mock> =
        futures_util::future::join_all((0..4).map(|_| mock(Reply::PromptCache(Arc::default())))).await;
    let config = r#"
targets:
  a: { provider: openai, base_url: "{a}" }
  b: { provider: openai, base_url: "{b}" }
  c: { provider: openai, base_url: "{c}" }
  d: { provider: openai, base_url: "{d}" }
routes:
  - name: sticky
    model: sticky
    split: [{ target: a, weight: 1 }, { target: b, weight: 1 }, { target: c, weight: 1 }, { target: d, weight: 1 }]
    sticky: { conversation: true }
  - name: random
    model: random
    split: [{ target: a, weight: 1 }, { target: b, weight: 1 }, { target: c, weight: 1 }, { target: d, weight: 1 }]
"#;
    let named: Vec<(&str, &Mock)> = ["a", "b", "c", "d"].into_iter().zip(caches.iter()).collect();
    let gw = gateway_for(config, &named, &[]).await;
    let sticky = second_turn_cache_hits(&gw, "sticky", 40).await;
    let random = second_turn_cache_hits(&gw, "random", 40).await;
    eprintln!("second-turn prompt-cache hits: sticky on the conversation {sticky:.2}, random split {random:.2}");
    assert_eq!(sticky, 1.0, "a conversation left the arm that holds its cache");
    assert!(random < 0.75, "a random split over 4 arms should miss the cache most of the time: {random}");
}

#[tokio::test]
async fn a_client_that_disconnects_while_waiting_cancels_the_upstream_request() {
    let dropped = Arc::new(Notify::new());
    let upstream = mock(Reply::HangNotify(Arc::clone(&dropped))).await;
    let gw = gateway(
        &[("OPENAI_BASE_URL", format!("{}/v1", upstream.url())), ("OPENAI_API_KEY", "sk-test".into())],
        quick_config(),
    )
    .await;
    let request = client().post(gw.url("/v1/chat/completions")).json(&chat("gpt-4o")).send();
    // The client gives up (its connection closes) while the gateway waits for the upstream.
    let waited = tokio::time::timeout(Duration::from_millis(500), request).await;
    assert!(waited.is_err(), "the upstream hangs, so the client cannot have an answer");
    tokio::time::timeout(Duration::from_secs(20), dropped.notified())
        .await
        .expect("the upstream request was not cancelled after the client went away");
}
