//! Randomised (and deterministic: a fixed seed) tests of the stream translators: every golden
//! stream vector, its upstream bytes cut at random places, translates to the vector's chunks;
//! cut short anywhere, it gives a prefix of them and then a clean end ([DONE] or an error
//! event), never a panic or a hang. Random bytes through every framing end cleanly too.

use lightport::builtin_sources;
use lightport::vectors::{call_for, cases, diff, drive_stream, engine_for_vectors, sse_payloads, upstream_stream};
use serde_json::Value;

#[path = "common/rng.rs"]
mod rng;
use rng::Rng;

fn fixtures() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn read_json(p: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[test]
fn any_split_gives_the_vectors_answer_and_any_truncation_a_clean_end() {
    let (engine, errors) = engine_for_vectors(&builtin_sources());
    assert!(errors.is_empty());
    let mut rng = Rng(0x5EED_1234);
    let mut streams = 0;
    for provider in engine.providers() {
        for case in cases(&fixtures().join(provider.id())) {
            let request = read_json(&case.join("request.json"));
            let Ok(Some(raw)) = upstream_stream(provider, lightport::vectors::endpoint_of(&request), &case) else {
                continue;
            };
            let Some(want) = read_json(&case.join("response.json")).get("chunks").cloned() else { continue };
            let want = want.as_array().unwrap().clone();
            streams += 1;
            for round in 0..20 {
                let mut call = call_for(provider, &request).unwrap();
                call.request(request.clone(), None).unwrap();
                let mut cuts: Vec<usize> = (0..rng.below(12)).map(|_| rng.below(raw.len() + 1)).collect();
                cuts.sort_unstable();
                let got = sse_payloads(&drive_stream(&mut call.stream().unwrap(), &raw, &cuts));
                if let Some(d) = diff(&Value::Array(want.clone()), &Value::Array(got)) {
                    panic!("{}: split at {cuts:?} (round {round}): {d}", case.display());
                }
                // Cut short: a prefix of the answer, then [DONE] or an error event.
                let end = rng.below(raw.len());
                let mut call = call_for(provider, &request).unwrap();
                call.request(request.clone(), None).unwrap();
                let got = sse_payloads(&drive_stream(&mut call.stream().unwrap(), &raw[..end], &[end / 2]));
                let (last, body) = got.split_last().unwrap_or_else(|| panic!("{}: nothing at all", case.display()));
                assert!(
                    last == "[DONE]" || last.get("error").is_some(),
                    "{}: cut at {end}: ends with {last}",
                    case.display()
                );
                for (i, chunk) in body.iter().enumerate() {
                    assert!(
                        want.get(i).is_some_and(|w| diff(w, chunk).is_none()),
                        "{}: cut at {end}: chunk {i} {chunk} is not the vector's",
                        case.display()
                    );
                }
            }
        }
    }
    assert!(streams >= 60, "only {streams} stream vectors");
}

#[test]
fn random_bytes_through_every_framing_end_cleanly() {
    let (engine, _) = engine_for_vectors(&builtin_sources());
    let mut rng = Rng(0xF00D);
    // A provider per framing: SSE pass-through, SSE rules, NDJSON, AWS event stream.
    for id in ["openai", "anthropic", "ollama", "bedrock", "gemini", "cohere"] {
        let provider = engine.provider(id).unwrap();
        let request =
            serde_json::json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
        for _ in 0..300 {
            let len = rng.below(600);
            let alphabet = b"data: event:{}[]\":,\n\r\\x0123 ";
            let bytes: Vec<u8> = (0..len)
                .map(|_| if rng.below(4) == 0 { rng.next() as u8 } else { alphabet[rng.below(alphabet.len())] })
                .collect();
            let mut call = call_for(provider, &request).unwrap();
            call.request(request.clone(), None).unwrap();
            let cuts: Vec<usize> = {
                let mut c: Vec<usize> = (0..rng.below(5)).map(|_| rng.below(len + 1)).collect();
                c.sort_unstable();
                c
            };
            let out = sse_payloads(&drive_stream(&mut call.stream().unwrap(), &bytes, &cuts));
            let last = out.last().unwrap_or_else(|| panic!("{id}: no end for {bytes:?}"));
            assert!(last == "[DONE]" || last.get("error").is_some(), "{id}: {bytes:?} ended with {last}");
        }
    }
}

/// `append` gathers a text across events, and a text that would outgrow the stream's event
/// limit ends the stream with an error instead of growing without bound.
#[test]
fn appended_state_is_gathered_and_bounded() {
    use lightport::{Endpoint, Engine, SourceFile, StreamInput, StreamLimits};
    let file = SourceFile {
        id: "gather".into(),
        path: "gather.yaml".into(),
        text: r#"
name: Gather
base_url: https://api.gather.test
auth: none
chat:
  path: /chat
  request: { model: $.model, stream: $.stream, messages: $.messages }
  response: $
  stream:
    framing: ndjson
    on:
      "*":
        - when: { $exists: $.t }
          append: { text: $.t }
        - when: $.done
          emit: { delta: { content: $state.text }, finish_reason: stop }
          end: true
"#
        .into(),
    };
    let (engine, problems) = Engine::load(&[file], &|_| None, None);
    assert!(problems.is_empty(), "{problems:?}");
    let run = |limit: usize| {
        let mut body =
            serde_json::json!({"model": "gather/m", "stream": true, "messages": [{"role": "user", "content": "x"}]});
        let call = engine
            .call(Endpoint::Chat, &mut body, None)
            .unwrap()
            .with_stream_limits(StreamLimits { max_event_bytes: limit, ..Default::default() });
        let mut stream = call.stream().unwrap();
        let mut out = bytes::BytesMut::new();
        let events = b"{\"t\":\"abc\"}\n{\"t\":\"def\"}\n{\"t\":\"ghi\"}\n{\"t\":\"jkl\"}\n{\"t\":\"mno\"}\n{\"t\":\"pqr\"}\n{\"done\":true}\n";
        stream.step(StreamInput::Data(events), &mut out);
        stream.step(StreamInput::End, &mut out);
        String::from_utf8(out.to_vec()).unwrap()
    };
    let whole = run(1 << 20);
    assert!(whole.contains(r#""delta":{"content":"abcdefghijklmnopqr"}"#), "{whole}");
    assert!(whole.ends_with("data: [DONE]\n\n"));
    // Every line fits in 16 bytes; the gathered text (18) does not.
    let bounded = run(16);
    assert!(bounded.contains("grew past 16 bytes") && bounded.contains("bad_upstream_stream"), "{bounded}");
    assert!(!bounded.contains("[DONE]"));
}
