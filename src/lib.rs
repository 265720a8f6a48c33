//! Lightport: an LLM gateway that speaks OpenAI's API to clients and any provider's API upstream.
//! Providers are YAML mapping files; this crate parses them (`spec`), compiles them into plans
//! (`plan`), and runs those plans on requests, responses and streams (`transform`, `stream`).

pub mod error;
pub mod plan;
pub mod registry;
pub mod server;
pub mod spec;
pub mod stream;
pub mod transform;
pub mod translate;
pub mod upstream;
pub mod vectors;
