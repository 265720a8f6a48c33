//! The real server on 127.0.0.1, driven over HTTP, in front of mock upstreams that speak the
//! providers' documented wire formats (the golden vectors' upstream replies).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use lightport::server::Config;
use lightport::Engine;
use serde_json::{json, Value};

const KEY: &str = "sk-ant-secret-key-123";

fn case(provider: &str, name: &str) -> std::path::PathBuf {
    fixtures().join(provider).join(name)
}

async fn anthropic_gateway(mock: &Mock) -> Gateway {
    gateway(&[("ANTHROPIC_BASE_URL", mock.url()), ("ANTHROPIC_API_KEY", KEY.to_string())], quick_config()).await
}

fn with_prefix(mut request: Value, provider: &str) -> Value {
    let model = request["model"].as_str().unwrap().to_string();
    request["model"] = Value::String(format!("{provider}/{model}"));
    request
}

async fn post(gw: &Gateway, body: &Value) -> reqwest::Response {
    client().post(gw.url("/v1/chat/completions")).json(body).send().await.unwrap()
}

fn reply_of(case: &std::path::Path) -> Reply {
    let r = read_json(&case.join("upstream_response.json"));
    Reply::Json(r["status"].as_u64().unwrap() as u16, r["body"].clone())
}

#[tokio::test]
async fn anthropic_non_stream_round_trip() {
    let c = case("anthropic", "response_text_and_parallel_tool_use");
    let upstream = mock(reply_of(&c)).await;
    let gw = anthropic_gateway(&upstream).await;
    let resp = post(&gw, &with_prefix(read_json(&c.join("request.json")), "anthropic")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-lightport-provider"], "anthropic");
    assert!(resp.headers()["x-lightport-overhead-us"].to_str().unwrap().parse::<u64>().is_ok());
    let body: Value = resp.json().await.unwrap();
    Schemas::load().completion(&body);
    let want = read_json(&c.join("response.json"))["body"].clone();
    assert_eq!(body["choices"], want["choices"]);
    assert_eq!(body["usage"], want["usage"]);
    // What the upstream saw: the documented Messages request, with the operator's key.
    let seen = upstream.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path_and_query, "/v1/messages");
    assert_eq!(seen[0].headers["x-api-key"], KEY);
    assert_eq!(seen[0].headers["anthropic-version"], "2023-06-01");
    assert_eq!(seen[0].body, read_json(&c.join("upstream_request.json"))["body"]);
}

#[tokio::test]
async fn base_url_keeps_its_path_prefix() {
    let c = case("anthropic", "text_simple");
    let upstream = mock(reply_of(&c)).await;
    let gw = gateway(
        &[("ANTHROPIC_BASE_URL", format!("{}/x", upstream.url())), ("ANTHROPIC_API_KEY", KEY.into())],
        quick_config(),
    )
    .await;
    let resp = post(&gw, &with_prefix(read_json(&c.join("request.json")), "anthropic")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(upstream.requests()[0].path_and_query, "/x/v1/messages");
}

#[tokio::test]
async fn stream_chunks_arrive_before_the_upstream_finishes() {
    let c = case("anthropic", "stream_text_include_usage");
    let raw = std::fs::read(c.join("upstream_response.txt")).unwrap();
    // Hold the upstream after its first two events until the client has seen chunks.
    let text = String::from_utf8(raw).unwrap();
    let events: Vec<Vec<u8>> = text.split_inclusive("\n\n").map(|s| s.as_bytes().to_vec()).collect();
    let gate = Arc::new(tokio::sync::Notify::new());
    let upstream =
        mock(Reply::Stream { pieces: events, gate_at: 4, gate: Arc::clone(&gate), content_type: "text/event-stream" })
            .await;
    let gw = anthropic_gateway(&upstream).await;
    let resp = post(&gw, &with_prefix(read_json(&c.join("request.json")), "anthropic")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut body = resp.bytes_stream();
    let mut seen = String::new();
    while !seen.contains("\"content\":\"Hello\"") {
        let chunk = body.next().await.expect("the stream stays open while the upstream waits").unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(!seen.contains("[DONE]"), "the stream cannot be complete while the upstream is held");
    gate.notify_one();
    while let Some(chunk) = body.next().await {
        seen.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
    }
    let payloads = lightport::vectors::sse_payloads(seen.as_bytes());
    Schemas::load().stream(&payloads);
    let want = read_json(&c.join("response.json"))["chunks"].clone();
    assert_eq!(payloads.len(), want.as_array().unwrap().len());
    assert_eq!(payloads.last().unwrap(), "[DONE]");
    let usage = &payloads[payloads.len() - 2]["usage"];
    assert_eq!(usage, &want[payloads.len() - 2]["usage"]);
}

#[tokio::test]
async fn stream_tool_call_arguments_arrive_in_order() {
    let c = case("anthropic", "stream_tool_calls_parallel");
    let raw = std::fs::read(c.join("upstream_response.txt")).unwrap();
    // Split the upstream bytes at awkward places: inside events and inside lines.
    let pieces: Vec<Vec<u8>> = raw.chunks(7).map(<[u8]>::to_vec).collect();
    let upstream =
        mock(Reply::Stream { pieces, gate_at: usize::MAX, gate: Arc::default(), content_type: "text/event-stream" })
            .await;
    let gw = anthropic_gateway(&upstream).await;
    let resp = post(&gw, &with_prefix(read_json(&c.join("request.json")), "anthropic")).await;
    assert_eq!(resp.status(), 200);
    let payloads = sse_body(resp).await;
    Schemas::load().stream(&payloads);
    // Reassemble the tool calls as an SDK would.
    let mut calls: Vec<(String, String, String)> = Vec::new();
    for p in &payloads {
        for tc in p["choices"][0]["delta"]["tool_calls"].as_array().into_iter().flatten() {
            let i = tc["index"].as_u64().unwrap() as usize;
            if calls.len() <= i {
                calls.resize(i + 1, Default::default());
            }
            if let Some(id) = tc["id"].as_str() {
                calls[i].0 = id.to_string();
                calls[i].1 = tc["function"]["name"].as_str().unwrap().to_string();
            }
            calls[i].2.push_str(tc["function"]["arguments"].as_str().unwrap_or(""));
        }
    }
    assert_eq!(calls.len(), 2);
    for (_, name, args) in &calls {
        assert!(!name.is_empty());
        let parsed: Value = serde_json::from_str(args).expect("arguments reassemble into JSON");
        assert!(parsed.is_object());
    }
    let finish: Vec<&Value> = payloads
        .iter()
        .filter_map(|p| p["choices"][0]["finish_reason"].as_str().map(|_| &p["choices"][0]["finish_reason"]))
        .collect();
    assert_eq!(finish, vec!["tool_calls"]);
}

#[tokio::test]
async fn upstream_errors_are_translated_with_their_status() {
    let schemas = Schemas::load();
    for (name, status) in [
        ("error_400_invalid_request", 400),
        ("error_401_authentication", 401),
        ("error_403_permission", 403),
        ("error_404_not_found", 404),
        ("error_429_rate_limit", 429),
        ("error_529_overloaded_to_503", 503),
        ("error_500_api_error_to_502", 502),
    ] {
        let c = case("anthropic", name);
        let upstream = mock(reply_of(&c)).await;
        let gw = anthropic_gateway(&upstream).await;
        let resp = post(&gw, &with_prefix(read_json(&c.join("request.json")), "anthropic")).await;
        assert_eq!(resp.status(), status, "{name}");
        let body: Value = resp.json().await.unwrap();
        schemas.error(&body);
        assert_eq!(body, read_json(&c.join("response.json"))["body"], "{name}");
    }
}

#[tokio::test]
async fn mid_stream_error_becomes_an_error_event() {
    let c = case("anthropic", "stream_error_mid_stream");
    let raw = std::fs::read(c.join("upstream_response.txt")).unwrap();
    let upstream = mock(Reply::Raw(200, "text/event-stream", raw)).await;
    let gw = anthropic_gateway(&upstream).await;
    let payloads = sse_body(post(&gw, &with_prefix(read_json(&c.join("request.json")), "anthropic")).await).await;
    Schemas::load().stream(&payloads);
    let last = payloads.last().unwrap();
    assert!(last["error"]["message"].is_string(), "{last}");
    assert!(!payloads.iter().any(|p| p == "[DONE]"));
}

#[tokio::test]
async fn truncated_stream_ends_with_an_error_not_silence() {
    let c = case("anthropic", "stream_text_include_usage");
    let text = std::fs::read_to_string(c.join("upstream_response.txt")).unwrap();
    let cut = text.find("event: message_delta").unwrap();
    let upstream = mock(Reply::Raw(200, "text/event-stream", text.as_bytes()[..cut].to_vec())).await;
    let gw = anthropic_gateway(&upstream).await;
    let payloads = sse_body(post(&gw, &with_prefix(read_json(&c.join("request.json")), "anthropic")).await).await;
    Schemas::load().stream(&payloads);
    assert_eq!(payloads.last().unwrap()["error"]["code"], "stream_truncated");
}

#[tokio::test]
async fn openai_stream_passes_through_verbatim() {
    let c = case("openai", "stream_include_usage");
    let raw = std::fs::read(c.join("upstream_response.txt")).unwrap();
    let upstream = mock(Reply::Raw(200, "text/event-stream", raw)).await;
    let gw = gateway(
        &[("OPENAI_BASE_URL", format!("{}/v1", upstream.url())), ("OPENAI_API_KEY", "sk-test".into())],
        quick_config(),
    )
    .await;
    let resp = post(&gw, &with_prefix(read_json(&c.join("request.json")), "openai")).await;
    assert_eq!(resp.status(), 200);
    let payloads = sse_body(resp).await;
    Schemas::load().stream(&payloads);
    assert_eq!(Value::Array(payloads), read_json(&c.join("response.json"))["chunks"]);
    let seen = &upstream.requests()[0];
    assert_eq!(seen.path_and_query, "/v1/chat/completions");
    assert_eq!(seen.headers["authorization"], "Bearer sk-test");
    assert_eq!(seen.body["model"], "gpt-4o-mini", "the provider prefix is stripped");
}

#[tokio::test]
async fn bad_client_input_is_a_clear_4xx() {
    let upstream = mock(Reply::Json(200, json!({}))).await;
    let gw = anthropic_gateway(&upstream).await;
    let schemas = Schemas::load();
    let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
    let cases: Vec<(&str, String, u16, &str)> = vec![
        ("malformed JSON", "{\"model\": ".into(), 400, "not valid JSON"),
        ("not an object", "[1,2]".into(), 400, "JSON object"),
        ("NaN", "{\"model\":\"anthropic/claude-sonnet-4-6\",\"temperature\":NaN,\"messages\":[]}".into(), 400, "not valid JSON"),
        ("absurd nesting", format!("{{\"model\":\"anthropic/x\",\"messages\":{deep}}}"), 400, "not valid JSON"),
        ("missing model", json!({"messages": [{"role": "user", "content": "hi"}]}).to_string(), 400, "model"),
        ("missing messages", json!({"model": "anthropic/claude-sonnet-4-6"}).to_string(), 400, "messages"),
        ("messages not a list", json!({"model": "anthropic/claude-sonnet-4-6", "messages": "hi"}).to_string(), 400, "messages"),
        ("bad role", json!({"model": "anthropic/c", "messages": [{"role": "robot", "content": "hi"}]}).to_string(), 400, "messages[0].role"),
        ("content a number", json!({"model": "anthropic/c", "messages": [{"role": "user", "content": 5}]}).to_string(), 400, "messages[0].content"),
        ("part without text", json!({"model": "anthropic/c", "messages": [{"role": "user", "content": [{"type": "text"}]}]}).to_string(), 400, "messages[0].content[0].text"),
        ("tools not a list", json!({"model": "anthropic/c", "messages": [{"role": "user", "content": "x"}], "tools": {}}).to_string(), 400, "tools"),
        ("tool without name", json!({"model": "anthropic/c", "messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function", "function": {}}]}).to_string(), 400, "tools[0].function.name"),
        ("temperature a string", json!({"model": "anthropic/c", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"}).to_string(), 400, "temperature"),
        ("n=2 for anthropic", json!({"model": "anthropic/c", "messages": [{"role": "user", "content": "x"}], "n": 2}).to_string(), 400, "'n'"),
        ("unknown model", json!({"model": "no-such-model", "messages": [{"role": "user", "content": "x"}]}).to_string(), 404, "no-such-model"),
    ];
    for (what, body, status, needle) in cases {
        let resp = client()
            .post(gw.url("/v1/chat/completions"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), status, "{what}");
        let v: Value = resp.json().await.unwrap();
        schemas.error(&v);
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.contains(needle), "{what}: '{msg}' should mention {needle}");
    }
    assert!(upstream.requests().is_empty(), "no bad request reaches the upstream");
}

#[tokio::test]
async fn http_layer_refusals_use_the_openai_shape() {
    let gw = gateway(&[], Config { max_body_bytes: 1024, ..quick_config() }).await;
    let schemas = Schemas::load();
    let r = client().get(gw.url("/v1/nope")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    schemas.error(&r.json().await.unwrap());
    let r = client().get(gw.url("/v1/chat/completions")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    schemas.error(&r.json().await.unwrap());
    let big = json!({"model": "anthropic/c", "messages": [{"role": "user", "content": "x".repeat(4096)}]});
    let r = post(&gw, &big).await;
    assert_eq!(r.status(), 413);
    schemas.error(&r.json().await.unwrap());
    let r = client()
        .post(gw.url("/v1/chat/completions"))
        .header("content-encoding", "zstd-ish")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    schemas.error(&r.json().await.unwrap());
}

#[tokio::test]
async fn gzip_request_bodies_are_accepted() {
    use std::io::Write;
    let c = case("anthropic", "text_simple");
    let upstream = mock(reply_of(&c)).await;
    let gw = anthropic_gateway(&upstream).await;
    let body = serde_json::to_vec(&with_prefix(read_json(&c.join("request.json")), "anthropic")).unwrap();
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(&body).unwrap();
    let resp = client()
        .post(gw.url("/v1/chat/completions"))
        .header("content-encoding", "gzip")
        .header("content-type", "application/json")
        .body(enc.finish().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn upstream_down_is_502_and_slow_is_504() {
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let gw =
        gateway(&[("ANTHROPIC_BASE_URL", format!("http://{dead}")), ("ANTHROPIC_API_KEY", KEY.into())], quick_config())
            .await;
    let req = json!({"model": "anthropic/claude-sonnet-4-6", "messages": [{"role": "user", "content": "hi"}]});
    let r = post(&gw, &req).await;
    assert_eq!(r.status(), 502);
    let text = r.text().await.unwrap();
    assert!(!text.contains(KEY) && !text.contains(&dead.to_string()), "no key or upstream address in errors: {text}");

    let slow = mock(Reply::Hang).await;
    let gw = gateway(
        &[("ANTHROPIC_BASE_URL", slow.url()), ("ANTHROPIC_API_KEY", KEY.into())],
        Config { upstream_timeout: Duration::from_millis(300), ..Config::default() },
    )
    .await;
    let r = post(&gw, &req).await;
    assert_eq!(r.status(), 504);
    Schemas::load().error(&r.json().await.unwrap());
}

#[tokio::test]
async fn a_client_key_goes_only_to_a_provider_whose_keys_look_like_it() {
    let c = case("anthropic", "text_simple");
    let upstream = mock(reply_of(&c)).await;
    let gw = gateway(&[("ANTHROPIC_BASE_URL", upstream.url())], quick_config()).await;
    let req = with_prefix(read_json(&c.join("request.json")), "anthropic");
    let r = post(&gw, &req).await;
    assert_eq!(r.status(), 401, "no key anywhere: a clear 401 from the gateway");
    // A token that is not an Anthropic key (meant for a proxy in front of the gateway, say)
    // is not passed on: the mapping passes only keys with its declared prefixes.
    let r = client().post(gw.url("/v1/chat/completions")).bearer_auth("proxy-token").json(&req).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"]["message"].as_str().unwrap().contains("client_keys"), "{v}");
    assert!(!v.to_string().contains("proxy-token"));
    assert!(upstream.requests().is_empty());
    let r = client().post(gw.url("/v1/chat/completions")).bearer_auth("sk-ant-client").json(&req).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(upstream.requests()[0].headers["x-api-key"], "sk-ant-client");
}

#[tokio::test]
async fn routing_by_prefix_header_and_pattern() {
    let c = case("anthropic", "text_simple");
    let upstream = mock(reply_of(&c)).await;
    let gw = anthropic_gateway(&upstream).await;
    let msgs = json!([{"role": "user", "content": "hi"}]);
    // A model pattern (claude-*) routes without a prefix.
    let r = post(&gw, &json!({"model": "claude-sonnet-4-5", "messages": msgs})).await;
    assert_eq!(r.headers()["x-lightport-provider"], "anthropic");
    // The header picks the provider for a model no pattern knows.
    let r = client()
        .post(gw.url("/v1/chat/completions"))
        .header("x-lightport-provider", "anthropic")
        .json(&json!({"model": "my-custom-model", "messages": msgs}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen = upstream.requests();
    assert_eq!(seen[0].body["model"], "claude-sonnet-4-5");
    assert_eq!(seen[1].body["model"], "my-custom-model");
}

#[tokio::test]
async fn dropped_parameters_are_listed_in_a_header() {
    let c = case("anthropic", "dropped_params_header");
    let upstream = mock(reply_of(&c)).await;
    let gw = anthropic_gateway(&upstream).await;
    let r = post(&gw, &with_prefix(read_json(&c.join("request.json")), "anthropic")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["x-lightport-dropped-params"],
        read_json(&c.join("response.json"))["headers"]["x-lightport-dropped-params"].as_str().unwrap()
    );
}

#[tokio::test]
async fn models_lists_every_provider_as_provider_slash_model() {
    let gw = gateway(&[], quick_config()).await;
    let v: Value = client().get(gw.url("/v1/models")).send().await.unwrap().json().await.unwrap();
    assert_eq!(v["object"], "list");
    let data = v["data"].as_array().unwrap();
    assert!(data.iter().any(|m| m["id"] == "anthropic/claude-sonnet-4-6" && m["owned_by"] == "anthropic"));
    assert!(data.iter().all(|m| m["object"] == "model"
        && m["id"].as_str().unwrap().starts_with(&format!("{}/", m["owned_by"].as_str().unwrap()))));
}

const PATH_MAPPING: &str = r#"
name: Path test
base_url: http://placeholder
auth: none
chat:
  path: /models/{{ model }}:generate
  query: { fixed: "a b&c" }
  request: { text: "$.messages[0].content" }
  response: { choices: [{ index: 0, message: { role: assistant, content: $.text }, finish_reason: stop }] }
"#;

#[tokio::test]
async fn model_names_cannot_change_the_upstream_path_or_query() {
    let upstream = mock(Reply::Json(200, json!({"text": "ok"}))).await;
    let src =
        vec![lightport::SourceFile { id: "pathtest".into(), path: "pathtest.yaml".into(), text: PATH_MAPPING.into() }];
    let url = upstream.url();
    let (reg, errors) = Engine::load(&src, &|k| (k == "PATHTEST_BASE_URL").then(|| url.clone()), None);
    assert!(errors.is_empty(), "{errors:?}");
    let gw = gateway_with(reg, quick_config()).await;
    for model in ["x:generate?key=stolen", "../../admin", "a/b#frag"] {
        let r =
            post(&gw, &json!({"model": format!("pathtest/{model}"), "messages": [{"role": "user", "content": "hi"}]}))
                .await;
        assert_eq!(r.status(), 200, "{model}");
    }
    let seen = upstream.requests();
    assert_eq!(seen[0].path_and_query, "/models/x%3Agenerate%3Fkey%3Dstolen:generate?fixed=a%20b%26c");
    assert_eq!(seen[1].path_and_query, "/models/..%2F..%2Fadmin:generate?fixed=a%20b%26c");
    assert_eq!(seen[2].path_and_query, "/models/a%2Fb%23frag:generate?fixed=a%20b%26c");
    // A model that would be a path step of its own (`/models/../x`) is refused before any call.
    let segment = PATH_MAPPING.replace("/models/{{ model }}:generate", "/models/{{ model }}/generate");
    let src = vec![lightport::SourceFile { id: "pathtest".into(), path: "pathtest.yaml".into(), text: segment }];
    let (reg, errors) = Engine::load(&src, &|k| (k == "PATHTEST_BASE_URL").then(|| url.clone()), None);
    assert!(errors.is_empty(), "{errors:?}");
    let gw = gateway_with(reg, quick_config()).await;
    for model in ["..", "."] {
        let r =
            post(&gw, &json!({"model": format!("pathtest/{model}"), "messages": [{"role": "user", "content": "hi"}]}))
                .await;
        assert_eq!(r.status(), 400, "{model}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["param"], "model", "{v}");
    }
    assert_eq!(upstream.requests().len(), 3);
}

#[tokio::test]
async fn provider_without_base_url_fails_clearly() {
    let src = vec![lightport::SourceFile {
        id: "local".into(),
        path: "local.yaml".into(),
        text: PATH_MAPPING.replace("base_url: http://placeholder\n", ""),
    }];
    let (reg, errors) = Engine::load(&src, &|_| None, None);
    assert!(errors.is_empty(), "{errors:?}");
    let gw = gateway_with(reg, quick_config()).await;
    let r = post(&gw, &json!({"model": "local/m", "messages": [{"role": "user", "content": "hi"}]})).await;
    assert_eq!(r.status(), 502);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"]["message"].as_str().unwrap().contains("LOCAL_BASE_URL"));
}
