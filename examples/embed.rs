//! Lightport as a library, without its server: translate an OpenAI-format request for a
//! provider, and the provider's streamed answer back into OpenAI chunks. Your application does
//! the HTTP; Lightport does the translation. `cargo run --example embed` prints what it does;
//! `cargo test` runs it too.
//!
//! Only the translation core is needed: `lightport = { version = "0.1", default-features = false }`.

use lightport::{builtin_sources, Endpoint, Engine, StreamInput};
use serde_json::json;

fn run() -> Result<Vec<String>, lightport::Error> {
    // The built-in mappings; keys and base URLs would come from this lookup (here: none).
    let (engine, problems) = Engine::load(&builtin_sources(), &|_| None, None);
    assert!(problems.is_empty(), "{problems:?}");

    let mut body = json!({
        "model": "anthropic/claude-haiku-4-5",
        "stream": true,
        "stream_options": {"include_usage": true},
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Say hello"}
        ]
    });
    let mut call = engine.call(Endpoint::Chat, &mut body, None)?;
    let upstream = call.request(body, Some("sk-ant-your-key"))?;
    let sent: serde_json::Value = serde_json::from_slice(&upstream.body).expect("a JSON body");
    println!("{} {}", upstream.method, upstream.url);
    println!("{sent:#}");
    assert_eq!(upstream.url.as_str(), "https://api.anthropic.com/v1/messages");
    assert_eq!(sent["system"][0]["text"], "Be brief.");

    // The provider's Server-Sent Events, as they might arrive: split anywhere.
    let upstream_stream = concat!(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"claude-haiku-4-5\",\"usage\":{\"input_tokens\":9,\"output_tokens\":1}}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":2}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    );
    let mut stream = call.stream().expect("a stream was asked for");
    let mut out = bytes::BytesMut::new();
    let mut over = false;
    for piece in upstream_stream.as_bytes().chunks(37) {
        over = stream.step(StreamInput::Data(piece), &mut out);
        if over {
            break;
        }
    }
    if !over {
        stream.step(StreamInput::End, &mut out);
    }
    let chunks: Vec<String> = String::from_utf8_lossy(&out)
        .split("\n\n")
        .filter_map(|f| f.strip_prefix("data: "))
        .map(str::to_string)
        .collect();
    for c in &chunks {
        println!("data: {c}");
    }
    Ok(chunks)
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

#[test]
fn translates_a_request_and_a_stream_without_a_server() {
    let chunks = run().unwrap();
    assert!(chunks[0].contains(r#""role":"assistant""#), "{chunks:?}");
    assert!(chunks.iter().any(|c| c.contains(r#""content":"Hello""#)), "{chunks:?}");
    assert!(chunks.iter().any(|c| c.contains(r#""finish_reason":"stop""#)), "{chunks:?}");
    assert!(chunks.iter().any(|c| c.contains(r#""prompt_tokens":9"#)), "{chunks:?}");
    assert_eq!(chunks.last().map(String::as_str), Some("[DONE]"));
}
