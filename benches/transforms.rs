//! Hot-path micro-benchmarks: request transform, response transform and one stream chunk, for
//! Anthropic and Gemini translation and OpenAI pass-through, on the golden vectors' data.
//! Run: `cargo bench --bench transforms`.

use std::path::Path;
use std::sync::Arc;

use bytes::BytesMut;
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion};

/// The allocator the server runs with.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use serde_json::Value;

use lightport::vectors::engine_for_vectors;
use lightport::{builtin_sources, Call, Endpoint, Provider, StreamInput};

fn fixture(provider: &str, case: &str, file: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(provider).join(case).join(file))
        .unwrap_or_else(|e| panic!("{provider}/{case}/{file}: {e}"))
}

fn json(provider: &str, case: &str, file: &str) -> Value {
    serde_json::from_slice(&fixture(provider, case, file)).unwrap()
}

/// A call as the server makes it, once per request.
fn call(provider: &Arc<Provider>, request: &Value) -> Call {
    Call::new(Arc::clone(provider), Endpoint::Chat, request)
        .unwrap()
        .with_id("chatcmpl-bench")
        .with_created(1_700_000_000)
}

/// One SSE event of a fixture stream, as the upstream sends it.
fn one_event(raw: &[u8], contains: &str) -> Vec<u8> {
    let text = String::from_utf8_lossy(raw);
    let ev = text
        .split_inclusive("\n\n")
        .find(|e| e.contains(contains))
        .unwrap_or_else(|| panic!("no event with {contains}"));
    ev.as_bytes().to_vec()
}

fn bench(c: &mut Criterion) {
    let (engine, errors) = engine_for_vectors(&builtin_sources());
    assert!(errors.is_empty());
    let provider = |id: &str| engine.provider(id).unwrap();

    // (provider, request case, response case, stream case, marker of a content delta event)
    let cases = [
        (
            "anthropic",
            "tools_tool_choice_auto",
            "response_text_and_parallel_tool_use",
            "stream_text_include_usage",
            "text_delta",
        ),
        (
            "gemini",
            "tools_required_parallel_calls_thought_signature",
            "tools_required_parallel_calls_thought_signature",
            "stream_text_include_usage",
            "\"text\"",
        ),
        ("openai", "tools_tool_calls", "tools_tool_calls", "stream_include_usage", "\"content\""),
    ];
    for (id, req_case, resp_case, stream_case, marker) in cases {
        let p = provider(id);
        let request = json(id, req_case, "request.json");
        // The server owns the parsed request, so the clone is setup, not measured. Making the
        // call (and its $ctx) is part of the request's cost.
        c.bench_function(&format!("{id}/request"), |b| {
            b.iter_batched(
                || request.clone(),
                |body| {
                    let mut call = call(p, &body);
                    black_box(call.request(body, None).unwrap())
                },
                BatchSize::SmallInput,
            )
        });
        let reply = serde_json::to_vec(&json(id, resp_case, "upstream_response.json")["body"]).unwrap();
        let mut resp_call = call(p, &json(id, resp_case, "request.json"));
        resp_call.request(json(id, resp_case, "request.json"), None).unwrap();
        c.bench_function(&format!("{id}/response"), |b| b.iter(|| black_box(resp_call.response(&reply).unwrap())));
        let raw = fixture(id, stream_case, "upstream_response.txt");
        let event = one_event(&raw, marker);
        let mut stream_request = request.clone();
        stream_request["stream"] = Value::Bool(true);
        stream_request["stream_options"] = serde_json::json!({"include_usage": true});
        let mut t = call(p, &stream_request).stream().unwrap();
        let mut out = BytesMut::with_capacity(4096);
        c.bench_function(&format!("{id}/stream_chunk"), |b| {
            b.iter(|| {
                out.clear();
                t.step(StreamInput::Data(black_box(&event)), &mut out);
                black_box(out.len())
            })
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
