//! Hot-path micro-benchmarks: request transform, response transform and one stream chunk, for
//! Anthropic and Gemini translation and OpenAI pass-through, on the golden vectors' data.
//! Run: `cargo bench --bench transforms`.

use std::path::Path;

use bytes::BytesMut;
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion};

/// The allocator the server runs with.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use serde_json::Value;

use lightport::plan::ProviderPlan;
use lightport::registry::builtin_sources;
use lightport::translate::{self, CallContext, Endpoint};
use lightport::vectors::plans_for_vectors;

fn fixture(provider: &str, case: &str, file: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(provider).join(case).join(file))
        .unwrap_or_else(|e| panic!("{provider}/{case}/{file}: {e}"))
}

fn json(provider: &str, case: &str, file: &str) -> Value {
    serde_json::from_slice(&fixture(provider, case, file)).unwrap()
}

fn ctx(plan: &ProviderPlan, request: &Value) -> CallContext {
    CallContext {
        provider: plan.id.clone(),
        model: request["model"].as_str().unwrap_or("m").to_string(),
        stream: request["stream"].as_bool().unwrap_or(false),
        include_usage: true,
        id: "chatcmpl-bench".into(),
        created: 1_700_000_000,
    }
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
    let (plans, errors) = plans_for_vectors(&builtin_sources());
    assert!(errors.is_empty());
    let plan = |id: &str| plans.iter().find(|p| p.id == id).unwrap();

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
        let p = plan(id);
        let request = json(id, req_case, "request.json");
        let cx = ctx(p, &request);
        // The server owns the parsed request, so the clone is setup, not measured.
        c.bench_function(&format!("{id}/request"), |b| {
            b.iter_batched(
                || request.clone(),
                |mut body| black_box(translate::build_request(p, Endpoint::Chat, &mut body, &cx, None).unwrap()),
                BatchSize::SmallInput,
            )
        });
        let reply = serde_json::to_vec(&json(id, resp_case, "upstream_response.json")["body"]).unwrap();
        let resp_request = json(id, resp_case, "request.json");
        c.bench_function(&format!("{id}/response"), |b| {
            b.iter(|| black_box(translate::translate_response(p, Endpoint::Chat, &resp_request, &reply, &cx).unwrap()))
        });
        let raw = fixture(id, stream_case, "upstream_response.txt");
        let event = one_event(&raw, marker);
        let mut stream_cx = cx.clone();
        stream_cx.stream = true;
        let mut t = translate::stream_translator(p, Endpoint::Chat, &stream_cx).unwrap();
        let mut out = BytesMut::with_capacity(4096);
        c.bench_function(&format!("{id}/stream_chunk"), |b| {
            b.iter(|| {
                out.clear();
                t.feed(black_box(&event), &mut out);
                black_box(out.len())
            })
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
