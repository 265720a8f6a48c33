//! Lightport: an LLM gateway that speaks OpenAI's API to clients and any provider's API
//! upstream. Providers are YAML mapping files; this crate parses them, compiles them into plans,
//! and runs those plans on requests, answers, errors and streams.
//!
//! The translation core builds without the server (`default-features = false`): no async
//! runtime, no HTTP client, no file watching. An application, a serverless function or a
//! WebAssembly host can embed it and do its own I/O:
//!
//! ```
//! use lightport::{Endpoint, Engine, SourceFile, StreamInput};
//!
//! // A provider is a mapping file: here one written inline (the built-in ones come with
//! // `Engine::builtin()`), speaking a made-up API with a `prompt` and an NDJSON stream.
//! let acme = SourceFile {
//!     id: "acme".into(),
//!     path: "acme.yaml".into(),
//!     text: r#"
//! name: Acme
//! base_url: https://api.acme.test
//! auth: { header: x-api-key }
//! client_keys: { pass: any }   # the client's own key goes upstream
//! chat:
//!   path: /generate
//!   request: { model: $.model, prompt: "$.messages[0].content", stream: $.stream }
//!   response:
//!     id: $.id
//!     object: chat.completion
//!     created: $ctx.created
//!     model: $ctx.model
//!     choices: [{ index: 0, message: { role: assistant, content: $.text }, finish_reason: stop }]
//!   stream:
//!     framing: ndjson
//!     on:
//!       "*":
//!         - when: { $exists: $.text }
//!           emit: { delta: { content: $.text } }
//!         - when: $.done
//!           emit: { delta: {}, finish_reason: stop }
//!           end: true
//! "#.into(),
//! };
//! let (engine, problems) = Engine::load(&[acme], &|_| None, None);
//! assert!(problems.is_empty(), "{problems:?}");
//!
//! let mut body = serde_json::json!({
//!     "model": "acme/large",
//!     "stream": true,
//!     "messages": [{"role": "user", "content": "Say hello"}]
//! });
//! // Route by model name and make the call: one per request.
//! let mut call = engine.call(Endpoint::Chat, &mut body, None)?;
//! // 1. The canonical request → the provider's request (send it with any HTTP client).
//! let upstream = call.request(body, Some("the-client-key"))?;
//! assert_eq!(upstream.url.as_str(), "https://api.acme.test/generate");
//! assert_eq!(upstream.headers["x-api-key"], "the-client-key");
//! // 4. The provider's stream → OpenAI chunks, fed as the bytes arrive.
//! let mut stream = call.stream().expect("a stream was asked for");
//! let mut out = bytes::BytesMut::new();
//! stream.step(StreamInput::Data(b"{\"text\":\"Hi\"}\n{\"done\":true}\n"), &mut out);
//! stream.step(StreamInput::End, &mut out);
//! let sse = String::from_utf8_lossy(&out);
//! assert!(sse.contains(r#""delta":{"content":"Hi"}"#));
//! assert!(sse.ends_with("data: [DONE]\n\n"));
//! # Ok::<(), lightport::Error>(())
//! ```
//!
//! With the default `server` feature it is also the gateway itself ([`server`]).

// The core reads credentials when it compiles a plan; only the server uses all of them.
#[cfg_attr(not(feature = "server"), allow(dead_code, unused_imports))]
mod auth;
mod call;
mod engine;
mod error;
mod expr;
#[cfg_attr(not(feature = "server"), allow(dead_code))]
mod names;
mod plan;
pub mod route;
mod spec;
mod stream;
pub mod vectors;

#[cfg(feature = "server")]
pub mod reload;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "server")]
pub mod upstream;

pub use call::{Call, Capabilities, UpstreamRequest};
pub use engine::{
    builtin_sources, provider_table, read_sources, with_builtin, Engine, MAX_FILES as MAX_MAPPING_FILES,
    MAX_FILE_BYTES as MAX_MAPPING_FILE_BYTES,
};
pub use error::{Cause, Error, LoadError, ProblemKind};
pub use plan::load::SourceFile;
pub use plan::{BaseUrl, Endpoint, EnvLookup, Provider};
pub use stream::{StreamInput, StreamLimits, StreamTranslator};

/// The JSON Schema of a mapping file (`schemas/mapping.schema.json`), generated from the types
/// the loader parses with.
pub fn mapping_schema() -> serde_json::Value {
    plan::load::schema()
}

/// The operation reference of `docs/mappings.md`, generated from the table of operations.
pub fn operation_reference() -> String {
    expr::registry::reference_table()
}
