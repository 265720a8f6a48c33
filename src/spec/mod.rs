//! What a mapping file may say: serde + schemars types mirroring the YAML.
//! These types are the single source of truth for the parser and for `schemas/mapping.schema.json`.

mod expr;
pub mod location;
pub mod ops;

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use expr::ExprSpec;

/// One provider: the file `mappings/<id>.yaml`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Lightport provider mapping")]
pub struct MappingFile {
    /// Start from another mapping (by id) and override what this file says. Objects merge
    /// key by key; lists and transforms are replaced whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extends: Option<String>,
    /// A base for other files to extend (shared transforms): never served, routed or listed.
    #[serde(default, rename = "abstract", skip_serializing_if = "std::ops::Not::not")]
    pub is_abstract: bool,
    /// Human-readable provider name.
    pub name: String,
    /// Default base URL; `<ID>_BASE_URL` in the environment overrides it. Without either, calls
    /// to this provider fail with a clear error (there is never a silent fallback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// How the API key is sent. The key comes from `<ID>_API_KEY`, else the client's bearer token.
    #[serde(default)]
    pub auth: AuthSpec,
    /// Fixed headers sent on every upstream call (values are templates).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Named values for templates (`{{ vars.api_version }}`); `<ID>_<NAME>` in the environment
    /// overrides each one.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub vars: BTreeMap<String, String>,
    /// Which models this provider serves.
    #[serde(default)]
    pub models: ModelsSpec,
    /// Error translation shared by all endpoints (an endpoint may override it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<ErrorSpec>,
    /// `POST /v1/chat/completions`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat: Option<EndpointSpec>,
    /// `POST /v1/embeddings`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embeddings: Option<EndpointSpec>,
}

/// How the key is attached to upstream calls.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum AuthSpec {
    /// `none`: the provider takes no key.
    None(NoAuth),
    /// A header, e.g. `{ header: Authorization, prefix: "Bearer " }` or `{ header: x-api-key }`.
    Header {
        header: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prefix: Option<String>,
    },
    /// A query parameter, e.g. `{ query: key }`.
    Query { query: String },
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum NoAuth {
    None,
}

impl Default for AuthSpec {
    fn default() -> Self {
        AuthSpec::Header { header: "authorization".into(), prefix: Some("Bearer ".into()) }
    }
}

/// Routing patterns and the models listed by `/v1/models`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelsSpec {
    /// Glob patterns (`*` matches any run of characters) of model names routed here when the
    /// request does not name a provider.
    #[serde(default, rename = "match", skip_serializing_if = "Vec::is_empty")]
    pub patterns: Vec<String>,
    /// Model ids listed by `GET /v1/models` as `<id>/<model>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub list: Vec<String>,
}

/// One endpoint of a provider: how to build the upstream call and read its answer.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointSpec {
    /// HTTP method (default POST).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Path template appended to the base URL, e.g. `/v1beta/models/{{ model }}:generateContent`.
    /// Interpolated values are percent-encoded.
    pub path: String,
    /// Path template used when the client asked for a stream (default: `path`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_path: Option<String>,
    /// Query parameters (values are templates).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub query: BTreeMap<String, String>,
    /// Query parameters added only for streams, e.g. `alt: sse`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub stream_query: BTreeMap<String, String>,
    /// Extra headers for this endpoint (values are templates).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// What to do with request parameters the provider does not take. The key `"*"` sets the
    /// policy for every top-level field the request transform does not read (default `drop`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, ParamPolicy>,
    /// Canonical request → upstream body.
    pub request: ExprSpec,
    /// Upstream body → canonical response.
    pub response: ExprSpec,
    /// How to translate a streamed answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<StreamSpec>,
    /// Error translation for this endpoint (default: the provider's `errors`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<ErrorSpec>,
    /// Requests the provider cannot serve, refused by the gateway before any upstream call
    /// (checked in order on the canonical request; the first that holds answers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refuse: Vec<GuardSpec>,
    /// Successful upstream answers that are really failures (checked in order on the upstream
    /// body; the first that holds becomes the client's error).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fail_on: Vec<GuardSpec>,
}

/// A condition that turns a call into an OpenAI error.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GuardSpec {
    pub when: ExprSpec,
    /// HTTP status (default 400 for `refuse`, 502 for `fail_on`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    pub message: ExprSpec,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<ExprSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<ExprSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub param: Option<ExprSpec>,
}

/// The policy for one request parameter.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum ParamPolicy {
    /// `drop` (removed, and listed in the `x-lightport-dropped-params` response header),
    /// `reject` (400 naming the parameter), or `keep` (pass it on untouched).
    Simple(ParamAction),
    /// Drop or reject unless the value is one of these (e.g. `n` is fine when it is 1), or when
    /// a condition on the request holds (e.g. only for some models: `$ctx.model`).
    Unless(ParamUnless),
    /// Rename the field before the request transform runs.
    Rename(ParamRename),
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ParamAction {
    Drop,
    Reject,
    Keep,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ParamUnless {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reject_unless: Option<Vec<serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_unless: Option<Vec<serde_json::Value>>,
    /// Drop the parameter when this condition holds (`$` is the request, `$ctx.model` the model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_when: Option<ExprSpec>,
    /// Reject the request when this condition holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reject_when: Option<ExprSpec>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ParamRename {
    pub rename: String,
}

/// How an upstream error becomes an OpenAI error object. Each field is a transform evaluated with
/// `$` = the upstream body (parsed JSON, else its text) and `$ctx.status` = the upstream status.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorSpec {
    /// The status answered to the client (default: the upstream status, with 5xx other than
    /// 503/504 becoming 502).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ExprSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<ExprSpec>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<ExprSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<ExprSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub param: Option<ExprSpec>,
}

/// How the bytes of a stream are cut into events.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Framing {
    /// Server-Sent Events (`event:` / `data:` lines).
    #[default]
    Sse,
    /// One JSON document per line.
    Ndjson,
    /// AWS event stream: binary frames (prelude, headers, payload, CRCs). The event name is the
    /// `:event-type` (or `:exception-type`) header; the data is the payload.
    #[serde(rename = "aws-eventstream")]
    AwsEventstream,
}

/// How a streamed answer is translated, event by event.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamSpec {
    #[serde(default)]
    pub framing: Framing,
    /// Forward each event's data unchanged (an upstream that already speaks the canonical format).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub passthrough: bool,
    /// A data payload that marks the normal end of the stream, e.g. `"[DONE]"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done: Option<String>,
    /// The name of an event, evaluated on its data (default: the SSE `event:` field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<ExprSpec>,
    /// Rules per event name; `"*"` applies to events without a rule of their own. An event
    /// with no rule is ignored.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub on: BTreeMap<String, Vec<StreamAction>>,
}

/// One step run for an event. Its parts run in this order: `when`, `set`, `add`, `enumerate`,
/// `emit`, `error`, `end`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamAction {
    /// Run this step only when the condition holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<ExprSpec>,
    /// Store values in the per-stream state (`$state.<name>`). `id` and `model` name every chunk.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub set: BTreeMap<String, ExprSpec>,
    /// Add numbers to state counters (absent counts as 0).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub add: BTreeMap<String, ExprSpec>,
    /// Give the key a dense index in the state map `<name>` (0, 1, 2... in order of first sight).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub enumerate: BTreeMap<String, ExprSpec>,
    /// A choice fragment `{delta, finish_reason, usage}` (or a list of them) to send as chunks.
    /// `usage` is sent as OpenAI's final usage chunk, only when the client asked for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emit: Option<ExprSpec>,
    /// A whole chunk to send as it is (for upstreams that speak the canonical format).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward: Option<ExprSpec>,
    /// Send an error event `{message, type, code, param}` and end the stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ExprSpec>,
    /// This event completes the answer: the stream ends normally.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub end: bool,
}

/// One problem in a mapping file, at a JSON pointer inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub pointer: String,
    pub message: String,
}

impl Problem {
    pub fn new(pointer: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem { pointer: pointer.into(), message: message.into() }
    }
}
