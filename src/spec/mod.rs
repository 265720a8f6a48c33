//! What a mapping file may say: serde + schemars types mirroring the YAML.
//! These types are the single source of truth for the parser and for `schemas/mapping.schema.json`
//! (transforms are the expression engine's own spec type, [`ExprSpec`]).

pub(crate) mod location;

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::expr::DefSpec;
pub use crate::expr::ExprSpec;

/// One provider: the file `mappings/<id>.yaml`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Lightport provider mapping")]
pub struct MappingFile {
    /// Start from another mapping (by id) and override what this file says. Objects merge
    /// key by key; lists and transforms are replaced whole.
    /// (Read by the loader, which merges the files before this type is parsed.)
    #[serde(default)]
    #[allow(dead_code)]
    pub extends: Option<String>,
    /// A base for other files to extend (shared transforms): never served, routed or listed.
    #[serde(default, rename = "abstract")]
    #[schemars(extend("x-inherit" = false))]
    pub is_abstract: bool,
    /// Human-readable provider name.
    pub name: String,
    /// Default base URL; `<ID>_BASE_URL` in the environment overrides it. Without either, calls
    /// to this provider fail with a clear error (there is never a silent fallback).
    #[serde(default)]
    pub base_url: Option<String>,
    /// How the API key is sent. The key comes from `<ID>_API_KEY`, else the client's bearer token.
    #[serde(default)]
    pub auth: AuthSpec,
    /// The client's own keys for this provider: how to recognise them, and whether they are
    /// passed upstream when the gateway holds no key.
    #[serde(default)]
    #[schemars(extend("x-inherit" = false))]
    pub client_keys: ClientKeysSpec,
    /// Fixed headers sent on every upstream call (values are templates).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Named values for templates (`{{ vars.api_version }}`); `<ID>_<NAME>` in the environment
    /// overrides each one.
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
    /// Named, reusable transforms: `{ $use: name }` runs one. Inherited through `extends`
    /// (a child replaces a definition by giving one of the same name).
    #[serde(default)]
    pub defs: BTreeMap<String, DefSpec>,
    /// Which models this provider serves.
    #[serde(default)]
    pub models: ModelsSpec,
    /// Prices of the provider's models, by model name or glob pattern (the most specific
    /// pattern wins), in US dollars per million tokens. A model no pattern matches is unpriced:
    /// its answers report no cost, and a spend budget refuses it. Not inherited through
    /// `extends`: a host's prices are its own.
    #[serde(default)]
    #[schemars(extend("x-inherit" = false))]
    pub prices: BTreeMap<String, PriceSpec>,
    /// Error translation shared by all endpoints (an endpoint may override it).
    #[serde(default)]
    pub errors: Option<ErrorSpec>,
    /// `POST /v1/chat/completions`.
    #[serde(default)]
    pub chat: Option<EndpointSpec>,
    /// `POST /v1/embeddings`.
    #[serde(default)]
    pub embeddings: Option<EndpointSpec>,
}

/// How upstream calls prove who sent them.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
#[schemars(extend("x-merge" = "replace"))]
pub enum AuthSpec {
    /// `none`: the provider takes no key.
    None(NoAuth),
    /// A key in a header, e.g. `{ header: Authorization, prefix: "Bearer " }` or
    /// `{ header: x-api-key }`. The key is `<ID>_API_KEY` (or the variable `env` names), else
    /// the client's own key where `client_keys` lets it through.
    Header {
        header: String,
        #[serde(default)]
        prefix: Option<String>,
        /// The environment variable holding the key (default `<ID>_API_KEY`).
        #[serde(default)]
        env: Option<String>,
    },
    /// A key in a query parameter, e.g. `{ query: key }`.
    Query {
        query: String,
        /// The environment variable holding the key (default `<ID>_API_KEY`).
        #[serde(default)]
        env: Option<String>,
    },
    /// Sign every request with AWS Signature Version 4.
    AwsSigV4 { aws_sigv4: AwsSigV4Spec },
    /// A bearer token from the OAuth 2.0 JWT bearer grant (RFC 7523): a JWT signed with a
    /// service account's private key, exchanged at the account's token endpoint.
    OAuthJwtBearer { oauth_jwt_bearer: JwtBearerSpec },
    /// A bearer token from the OAuth 2.0 client credentials grant (RFC 6749 §4.4).
    OAuthClientCredentials { oauth_client_credentials: ClientCredentialsSpec },
    /// Several ways, in order of preference: the first one whose credentials the gateway holds
    /// is used. The first key scheme (`header`/`query`) also carries the client's own key and a
    /// target's `api_key` when the gateway holds none.
    FirstOf(Vec<AuthSpec>),
}

/// AWS Signature Version 4. Credentials come from the environment: `AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY` and, for temporary credentials, `AWS_SESSION_TOKEN` (each name can be
/// changed here). The signature covers the exact bytes sent and is made again for each attempt.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AwsSigV4Spec {
    /// The service's signing name (its API description's `signingName`).
    pub service: String,
    /// The region signed for (a template: `"{{ vars.region }}"`).
    pub region: String,
    #[serde(default = "aws_access_key_id")]
    pub access_key_id_env: String,
    #[serde(default = "aws_secret_access_key")]
    pub secret_access_key_env: String,
    #[serde(default = "aws_session_token")]
    pub session_token_env: String,
}

fn aws_access_key_id() -> String {
    "AWS_ACCESS_KEY_ID".into()
}
fn aws_secret_access_key() -> String {
    "AWS_SECRET_ACCESS_KEY".into()
}
fn aws_session_token() -> String {
    "AWS_SESSION_TOKEN".into()
}

/// The JWT bearer grant with a service-account credentials file (the JSON file Google Cloud
/// issues). Tokens are cached and refreshed before they expire.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JwtBearerSpec {
    /// The environment variable holding the credentials file's path.
    #[serde(default = "google_application_credentials")]
    pub credentials_env: String,
    /// The scopes asked for.
    pub scopes: Vec<String>,
}

fn google_application_credentials() -> String {
    "GOOGLE_APPLICATION_CREDENTIALS".into()
}

/// The client credentials grant. Tokens are cached and refreshed before they expire.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientCredentialsSpec {
    /// The token endpoint (a template over `vars`, e.g. a tenant id). `<ID>_TOKEN_URL` in the
    /// environment replaces it.
    pub token_url: String,
    /// The environment variable holding the client id.
    pub client_id_env: String,
    /// The environment variable holding the client secret.
    pub client_secret_env: String,
    /// The scopes asked for.
    #[serde(default)]
    pub scopes: Vec<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum NoAuth {
    None,
}

impl Default for AuthSpec {
    fn default() -> Self {
        AuthSpec::Header { header: "authorization".into(), prefix: Some("Bearer ".into()), env: None }
    }
}

/// A model's price: US dollars per million tokens (and per request).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("x-merge" = "replace"))]
pub struct PriceSpec {
    /// Input (prompt) tokens not read from or written to a cache.
    pub input: f64,
    /// Output (completion) tokens.
    pub output: f64,
    /// Input tokens read from the prompt cache (default: `input`).
    #[serde(default)]
    pub cache_read: Option<f64>,
    /// Input tokens written to the prompt cache (a 5-minute cache where there are two; default:
    /// `input`).
    #[serde(default)]
    pub cache_write: Option<f64>,
    /// Input tokens written to a 1-hour cache (usage `prompt_tokens_details.cache_write_1h_tokens`).
    #[serde(default)]
    pub cache_write_1h: Option<f64>,
    /// Reasoning tokens, when priced apart from output (default: `output`).
    #[serde(default)]
    pub reasoning: Option<f64>,
    /// A fee per request, in US dollars.
    #[serde(default)]
    pub request: Option<f64>,
    /// Higher prices above a prompt length: the tier with the largest `above` that the prompt
    /// exceeds replaces the prices it names.
    #[serde(default)]
    pub tiers: Vec<PriceTierSpec>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PriceTierSpec {
    /// Prompt tokens (cached included) above which this tier applies.
    pub above: u64,
    #[serde(default)]
    pub input: Option<f64>,
    #[serde(default)]
    pub output: Option<f64>,
    #[serde(default)]
    pub cache_read: Option<f64>,
    #[serde(default)]
    pub cache_write: Option<f64>,
}

/// The client's own provider keys.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("x-merge" = "replace"))]
pub struct ClientKeysSpec {
    /// How this provider's keys begin (`sk-ant-`, `AIza`): a client that sends such a key with
    /// a bare model name reaches this provider, and such a key goes to no other provider.
    #[serde(default)]
    pub prefixes: Vec<String>,
    /// Which client keys are sent upstream when the gateway holds no key for the provider:
    /// `prefixed` (only keys with one of the prefixes; the default when prefixes are declared),
    /// `any`, or `never` (the default otherwise). A gateway key is never sent upstream.
    #[serde(default)]
    pub pass: Option<ClientKeyPass>,
}

/// Which client keys may go upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClientKeyPass {
    Prefixed,
    Any,
    Never,
}

/// Routing patterns and the models listed by `/v1/models`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelsSpec {
    /// Glob patterns (`*` matches any run of characters) of model names routed here when the
    /// request does not name a provider.
    #[serde(default, rename = "match")]
    pub patterns: Vec<String>,
    /// Model ids listed by `GET /v1/models` as `<id>/<model>`.
    #[serde(default)]
    pub list: Vec<String>,
}

/// One endpoint of a provider: how to build the upstream call and read its answer.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointSpec {
    /// HTTP method (default POST).
    #[serde(default)]
    pub method: Option<String>,
    /// Path template appended to the base URL, e.g. `/v1beta/models/{{ model }}:generateContent`.
    /// Interpolated values are percent-encoded. Starts with `/`.
    #[schemars(regex(pattern = "^/"))]
    pub path: String,
    /// Path template used when the client asked for a stream (default: `path`).
    #[serde(default)]
    #[schemars(regex(pattern = "^/"))]
    pub stream_path: Option<String>,
    /// Query parameters (values are templates).
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// Query parameters added only for streams, e.g. `alt: sse`.
    #[serde(default)]
    pub stream_query: BTreeMap<String, String>,
    /// Extra headers for this endpoint (values are templates).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// What to do with request parameters the provider does not take. The key `"*"` sets the
    /// policy for every top-level field the request transform does not read (default `drop`).
    #[serde(default)]
    pub params: BTreeMap<String, ParamPolicy>,
    /// Canonical request → upstream body.
    pub request: ExprSpec,
    /// Upstream body → canonical response.
    pub response: ExprSpec,
    /// How to translate a streamed answer.
    #[serde(default)]
    pub stream: Option<StreamSpec>,
    /// Error translation for this endpoint (default: the provider's `errors`).
    #[serde(default)]
    pub errors: Option<ErrorSpec>,
    /// Requests the provider cannot serve, refused by the gateway before any upstream call
    /// (checked in order on the canonical request; the first that holds answers).
    #[serde(default)]
    pub refuse: Vec<GuardSpec>,
    /// Successful upstream answers that are really failures (checked in order on the upstream
    /// body; the first that holds becomes the client's error).
    #[serde(default)]
    pub fail_on: Vec<GuardSpec>,
}

/// A condition that turns a call into an OpenAI error (`refuse`, `fail_on`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GuardSpec {
    pub when: ExprSpec,
    /// HTTP status (default 400 for `refuse`, 502 for `fail_on`).
    #[serde(default)]
    pub status: Option<ExprSpec>,
    pub message: ExprSpec,
    #[serde(default, rename = "type")]
    pub kind: Option<ExprSpec>,
    #[serde(default)]
    pub code: Option<ExprSpec>,
    #[serde(default)]
    pub param: Option<ExprSpec>,
}

impl GuardSpec {
    /// The error fields of the guard.
    pub(crate) fn fields(&self) -> ErrorSpecRef<'_> {
        ErrorSpecRef {
            status: self.status.as_ref(),
            message: Some(&self.message),
            kind: self.kind.as_ref(),
            code: self.code.as_ref(),
            param: self.param.as_ref(),
        }
    }
}

/// The policy for one request parameter.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
#[schemars(extend("x-merge" = "replace"))]
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

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ParamAction {
    Drop,
    Reject,
    Keep,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ParamUnless {
    #[serde(default)]
    pub reject_unless: Option<Vec<serde_json::Value>>,
    #[serde(default)]
    pub drop_unless: Option<Vec<serde_json::Value>>,
    /// Drop the parameter when this condition holds (`$` is the request, `$ctx.model` the model).
    #[serde(default)]
    pub drop_when: Option<ExprSpec>,
    /// Reject the request when this condition holds.
    #[serde(default)]
    pub reject_when: Option<ExprSpec>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ParamRename {
    pub rename: String,
}

/// The fields of an OpenAI error object, each a transform. In `errors`, `$` is the upstream body
/// (parsed JSON, else its text), `$ctx.status` the upstream status and `$ctx.headers` its
/// response headers (lower-case names); in a stream's `error:` step, `$` is the event.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("x-merge" = "replace"))]
pub struct ErrorSpec {
    /// The status answered to the client (default: the upstream status, with 5xx other than
    /// 503/504 becoming 502).
    #[serde(default)]
    pub status: Option<ExprSpec>,
    #[serde(default)]
    pub message: Option<ExprSpec>,
    #[serde(default, rename = "type")]
    pub kind: Option<ExprSpec>,
    #[serde(default)]
    pub code: Option<ExprSpec>,
    #[serde(default)]
    pub param: Option<ExprSpec>,
}

impl ErrorSpec {
    pub(crate) fn fields(&self) -> ErrorSpecRef<'_> {
        ErrorSpecRef {
            status: self.status.as_ref(),
            message: self.message.as_ref(),
            kind: self.kind.as_ref(),
            code: self.code.as_ref(),
            param: self.param.as_ref(),
        }
    }
}

/// The error fields of an `errors` table, a guard or a stream `error:` step, seen alike.
pub(crate) struct ErrorSpecRef<'a> {
    pub status: Option<&'a ExprSpec>,
    pub message: Option<&'a ExprSpec>,
    pub kind: Option<&'a ExprSpec>,
    pub code: Option<&'a ExprSpec>,
    pub param: Option<&'a ExprSpec>,
}

/// How the bytes of a stream are cut into events.
#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema, PartialEq, Eq)]
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
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("x-merge" = "replace"))]
pub struct StreamSpec {
    #[serde(default)]
    pub framing: Framing,
    /// Forward each event's data unchanged (an upstream that already speaks the canonical format).
    #[serde(default)]
    pub passthrough: bool,
    /// A data payload that marks the normal end of the stream, e.g. `"[DONE]"`.
    #[serde(default)]
    pub done: Option<String>,
    /// The name of an event, evaluated on its data (default: the SSE `event:` field).
    #[serde(default)]
    pub event: Option<ExprSpec>,
    /// Rules per event name; `"*"` applies to events without a rule of their own. An event
    /// with no rule is ignored.
    #[serde(default)]
    pub on: BTreeMap<String, Vec<StreamAction>>,
    /// Move the text between two tags out of each chunk's `delta.content` into another delta
    /// field (e.g. `<think>`…`</think>` into `reasoning_content`), a tag cut across two chunks
    /// included. Works on passthrough streams too (their chunks are then parsed).
    #[serde(default)]
    pub split_tag: Option<SplitTagSpec>,
}

/// Tagged text moved out of a stream's content.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SplitTagSpec {
    pub open: String,
    pub close: String,
    /// The delta field the tagged text goes to.
    pub into: String,
    /// Only for calls where this holds (evaluated once per stream, on `$ctx`), e.g. a model
    /// pattern; other streams are left as they are.
    #[serde(default)]
    pub when: Option<ExprSpec>,
}

/// One step run for an event. Its parts run in this order: `when`, `set`, `add`, `append`,
/// `enumerate`, `emit`, `error`, `end`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamAction {
    /// Run this step only when the condition holds.
    #[serde(default)]
    pub when: Option<ExprSpec>,
    /// Store values in the per-stream state (`$state.<name>`). `id` and `model` name every chunk.
    #[serde(default)]
    pub set: BTreeMap<String, ExprSpec>,
    /// Add numbers to state counters (absent counts as 0).
    #[serde(default)]
    pub add: BTreeMap<String, ExprSpec>,
    /// Append text to state strings (absent counts as empty), e.g. a thinking block's deltas:
    /// linear where `set` with `$join` would copy the whole text at every event. A string may
    /// grow to the stream's event limit (`--max-stream-event-bytes`); past it the stream fails.
    #[serde(default)]
    pub append: BTreeMap<String, ExprSpec>,
    /// Give the key a dense index in the state map `<name>` (0, 1, 2... in order of first sight).
    #[serde(default)]
    pub enumerate: BTreeMap<String, ExprSpec>,
    /// A choice fragment `{delta, finish_reason, usage}` (or a list of them) to send as chunks.
    /// `usage` is sent as OpenAI's final usage chunk, only when the client asked for it.
    #[serde(default)]
    pub emit: Option<ExprSpec>,
    /// A whole chunk to send as it is (for upstreams that speak the canonical format).
    #[serde(default)]
    pub forward: Option<ExprSpec>,
    /// Send an error event and end the stream (fields as in `errors`, `$` is the event).
    #[serde(default)]
    pub error: Option<ErrorSpec>,
    /// This event completes the answer: the stream ends normally.
    #[serde(default)]
    pub end: bool,
}
