//! A fast mock LLM upstream for the benchmark: OpenAI `/v1/chat/completions` and Anthropic
//! `/v1/messages`, non-stream JSON or a realistic SSE stream (`"stream":true` in the body). A
//! body containing `"hold"` gets its first stream event and then nothing until the client
//! leaves (for the open-streams memory test).
//!
//!     cargo run --release --example bench_mock -- 127.0.0.1:9100

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::response::Response;
use futures_util::StreamExt;

const OPENAI_JSON: &str = r#"{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! How can I help you today? I can answer questions, write, summarise and more.","refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":20,"total_tokens":32,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},"service_tier":"default","system_fingerprint":"fp_bench"}"#;

const ANTHROPIC_JSON: &str = r#"{"id":"msg_bench","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[{"type":"text","text":"Hello! How can I help you today? I can answer questions, write, summarise and more."}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":12,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":20,"service_tier":"standard"}}"#;

const WORDS: &[&str] =
    &["Hello", "!", " How", " can", " I", " help", " you", " today", "?", " Ask", " me", " anything", "."];

fn openai_events() -> Vec<String> {
    let chunk = |delta: &str, finish: &str| {
        format!(
            "data: {{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"gpt-4o-mini-2024-07-18\",\"system_fingerprint\":\"fp_bench\",\"choices\":[{{\"index\":0,\"delta\":{delta},\"logprobs\":null,\"finish_reason\":{finish}}}]}}\n\n"
        )
    };
    let mut ev = vec![chunk(r#"{"role":"assistant","content":"","refusal":null}"#, "null")];
    ev.extend(WORDS.iter().map(|w| chunk(&format!("{{\"content\":\"{w}\"}}"), "null")));
    ev.push(chunk("{}", "\"stop\""));
    ev.push("data: [DONE]\n\n".into());
    ev
}

fn anthropic_events() -> Vec<String> {
    let ev = |name: &str, data: &str| format!("event: {name}\ndata: {data}\n\n");
    let mut out = vec![
        ev(
            "message_start",
            r#"{"type":"message_start","message":{"id":"msg_bench","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":12,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1}}}"#,
        ),
        ev(
            "content_block_start",
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
        ),
        ev("ping", r#"{"type": "ping"}"#),
    ];
    out.extend(WORDS.iter().map(|w| {
        ev(
            "content_block_delta",
            &format!(r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":"{w}"}}}}"#),
        )
    }));
    out.push(ev("content_block_stop", r#"{"type":"content_block_stop","index":0}"#));
    out.push(ev("message_delta", r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":20}}"#));
    out.push(ev("message_stop", r#"{"type":"message_stop"}"#));
    out
}

fn find(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

async fn handle(req: Request) -> Result<Response, Infallible> {
    let anthropic = req.uri().path().ends_with("/messages");
    let body = axum::body::to_bytes(req.into_body(), 64 << 20).await.unwrap_or_default();
    let stream = find(&body, b"\"stream\":true") || find(&body, b"\"stream\": true");
    let hold = find(&body, b"\"hold\"");
    let resp = Response::builder().status(StatusCode::OK);
    if !stream {
        let json = if anthropic { ANTHROPIC_JSON } else { OPENAI_JSON };
        return Ok(resp.header(header::CONTENT_TYPE, "application/json").body(Body::from(json)).unwrap());
    }
    let events = if anthropic { anthropic_events() } else { openai_events() };
    let body = if hold {
        let first = Bytes::from(events.into_iter().next().unwrap_or_default());
        Body::from_stream(
            futures_util::stream::once(async move { Ok::<_, Infallible>(first) })
                .chain(futures_util::stream::pending()),
        )
    } else {
        // One write per event, as a model emits tokens.
        Body::from_stream(futures_util::stream::iter(events.into_iter().map(|e| Ok::<_, Infallible>(Bytes::from(e)))))
    };
    Ok(resp.header(header::CONTENT_TYPE, "text/event-stream").body(body).unwrap())
}

fn main() {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:9100".into());
    let threads = std::env::var("MOCK_THREADS").ok().and_then(|t| t.parse().ok()).unwrap_or(1);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build().unwrap();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
        println!("mock listening on {}", listener.local_addr().unwrap());
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp: &mut tokio::net::TcpStream| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(listener, axum::Router::new().fallback(handle)).await.unwrap();
    });
}
