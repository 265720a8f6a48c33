//! What a gateway config file may say (`lightport serve --config lightport.yaml`): targets,
//! routes, gateway keys and their limits, retry and circuit-breaker defaults. serde + schemars
//! types, the one source of the parser and of `schemas/config.schema.json`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use crate::expr::ExprSpec;

/// The gateway config file.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Lightport gateway config")]
pub struct ConfigFile {
    /// Named upstream targets: a provider (a mapping file) and a model, with per-target
    /// overrides. Several targets may use one mapping (two regions, three servers).
    #[serde(default)]
    pub targets: BTreeMap<String, TargetSpec>,
    /// Routes, tried in order: the first whose `model` and `when` match a request decides where
    /// it goes. A request no route matches is routed as without a config (`provider/model`,
    /// `x-lightport-provider`, the mappings' model patterns, a client key's prefix).
    #[serde(default)]
    pub routes: Vec<RouteSpec>,
    /// Gateway keys. When any are configured (here or in `LIGHTPORT_API_KEYS`), every request
    /// must carry one.
    #[serde(default)]
    pub keys: Vec<KeySpec>,
    /// Retries, circuit breaker and timeouts for every route and target that does not set its own.
    #[serde(default)]
    pub defaults: DefaultsSpec,
    /// Where shared state (limits, circuit breakers) lives: process memory by default.
    #[serde(default)]
    pub state: Option<StateSpec>,
    /// Whether clients may name their own fallback order in `x-lightport-fallbacks` (a list of
    /// target names, checked against the route's `only`). Off by default: enable it only behind
    /// a proxy that controls the header.
    #[serde(default)]
    pub trust_fallback_header: bool,
}

/// One upstream target.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetSpec {
    /// The mapping id (the provider), e.g. `openai`.
    pub provider: String,
    /// The model sent upstream. Default: the model the client asked for (without a
    /// `provider/` prefix).
    #[serde(default)]
    pub model: Option<String>,
    /// Replaces the provider's base URL for this target.
    #[serde(default)]
    pub base_url: Option<String>,
    /// The environment variable holding this target's API key (default: `<PROVIDER>_API_KEY`).
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Extra headers sent upstream.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Request parameters set when the client did not send them (e.g. `temperature: 0.2`).
    #[serde(default)]
    pub params: BTreeMap<String, Value>,
    /// Timeouts for this target (default: `defaults.timeouts`).
    #[serde(default)]
    pub timeouts: Option<TimeoutsSpec>,
    /// Circuit breaker for this target (default: `defaults.breaker`).
    #[serde(default)]
    pub breaker: Option<BreakerSpec>,
}

/// Where requests for some models go.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    /// The route's name (in `x-lightport-route`, logs and metrics).
    pub name: String,
    /// Client-facing model names this route serves: glob patterns (`*` = any run), e.g.
    /// `fast`, `gpt-4o`, `claude-*`. Default: every model.
    #[serde(default)]
    pub model: Option<Patterns>,
    /// A condition on the request (a transform that holds or not). `$` is
    /// `{model, headers, key: {name, metadata}, client_key, user, metadata}` (header names in
    /// lower case, `key` the gateway key, `client_key` the client's own provider key) and
    /// `$request` the whole request.
    #[serde(default)]
    pub when: Option<ExprSpec>,
    /// Targets in the order they are tried: the first, then the next on a failure that a
    /// fallback may help.
    #[serde(default)]
    pub targets: Vec<String>,
    /// A weighted split instead of an order (A/B tests): one arm is chosen per request; the
    /// other arms follow it as fallbacks unless `fallback: false`.
    #[serde(default)]
    pub split: Vec<ArmSpec>,
    /// What keeps a client in one arm of a split: a header, a request field, or the
    /// conversation's stable prefix (its system prompt and first user message: the turns a
    /// provider's prompt cache holds).
    #[serde(default)]
    pub sticky: Option<StickySpec>,
    /// Where requests of this route may go, and nowhere else: target names and/or providers.
    /// When these fail the client gets an error; no fallback leaves the set.
    #[serde(default)]
    pub only: Option<OnlySpec>,
    /// Retries of one target (default: `defaults.retries`); `false` turns them off.
    #[serde(default)]
    pub retries: Option<RetriesOrOff>,
    /// Whether a failure moves on to the next target (default true).
    #[serde(default)]
    pub fallback: Option<bool>,
    /// Fallbacks by error class: on this class of error, try this target next.
    #[serde(default)]
    pub fallback_on: Vec<TypedFallbackSpec>,
    /// A target tried when every other target is cooling down (circuit open), ignoring its own
    /// cool-down.
    #[serde(default)]
    pub last_resort: Option<String>,
}

/// One or several glob patterns.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Patterns {
    One(String),
    Many(Vec<String>),
}

impl Patterns {
    pub fn list(&self) -> Vec<&str> {
        match self {
            Patterns::One(p) => vec![p.as_str()],
            Patterns::Many(ps) => ps.iter().map(String::as_str).collect(),
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ArmSpec {
    pub target: String,
    /// A relative weight (the share of requests is weight / the sum of weights).
    pub weight: u32,
}

/// What makes a split sticky.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum StickySpec {
    /// A request header, e.g. `x-user-id`.
    Header(String),
    /// A request field, as a dotted path, e.g. `user` or `metadata.user_id`.
    Field(String),
    /// The conversation's stable prefix: its system prompt and first user message.
    Conversation(bool),
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OnlySpec {
    #[serde(default)]
    pub targets: Vec<String>,
    #[serde(default)]
    pub providers: Vec<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RetriesOrOff {
    Off(bool),
    On(RetriesSpec),
}

/// Retries of one target, with exponential backoff and full jitter.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetriesSpec {
    /// Attempts per target, the first included (1 = no retry).
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    /// The first backoff, in milliseconds; each retry doubles it (with full jitter).
    #[serde(default = "default_base_delay")]
    pub base_delay_ms: u64,
    /// The longest backoff, in milliseconds.
    #[serde(default = "default_max_delay")]
    pub max_delay_ms: u64,
    /// The longest `Retry-After` honoured, in seconds; an upstream asking for more is not
    /// retried (the next target is tried instead).
    #[serde(default = "default_retry_after_cap")]
    pub retry_after_cap_s: u64,
}

fn default_attempts() -> u32 {
    2
}
fn default_base_delay() -> u64 {
    200
}
fn default_max_delay() -> u64 {
    5_000
}
fn default_retry_after_cap() -> u64 {
    30
}

impl Default for RetriesSpec {
    fn default() -> Self {
        RetriesSpec {
            attempts: default_attempts(),
            base_delay_ms: default_base_delay(),
            max_delay_ms: default_max_delay(),
            retry_after_cap_s: default_retry_after_cap(),
        }
    }
}

/// A fallback for one class of error.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TypedFallbackSpec {
    /// The class of error.
    pub error: ErrorClass,
    /// The target to try next.
    pub target: String,
}

/// Classes of upstream error, read from the translated error's `code` and `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// The prompt is longer than the model's context window (`context_length_exceeded`).
    ContextWindow,
    /// The request or answer was refused by a content policy (`content_filter`,
    /// `content_policy_violation`).
    ContentPolicy,
    /// The account's quota or balance is exhausted (`insufficient_quota`).
    Quota,
    /// Rate limited (429).
    RateLimit,
}

/// Timeouts, in seconds.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TimeoutsSpec {
    /// Establishing the connection.
    #[serde(default)]
    pub connect: Option<f64>,
    /// From sending the request to the answer's headers (and, for a stream, its first event).
    #[serde(default)]
    pub first_byte: Option<f64>,
    /// The whole call (a stream's whole duration).
    #[serde(default)]
    pub total: Option<f64>,
    /// Between two chunks of a stream.
    #[serde(default)]
    pub idle: Option<f64>,
}

/// A circuit breaker: after `failures` consecutive failures a target is skipped for
/// `cooldown_s` seconds, then tried with one request.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BreakerSpec {
    #[serde(default = "default_failures")]
    pub failures: u32,
    #[serde(default = "default_cooldown")]
    pub cooldown_s: f64,
}

fn default_failures() -> u32 {
    5
}
fn default_cooldown() -> f64 {
    30.0
}

impl Default for BreakerSpec {
    fn default() -> Self {
        BreakerSpec { failures: default_failures(), cooldown_s: default_cooldown() }
    }
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DefaultsSpec {
    #[serde(default)]
    pub retries: Option<RetriesSpec>,
    #[serde(default)]
    pub breaker: Option<BreakerSpec>,
    #[serde(default)]
    pub timeouts: Option<TimeoutsSpec>,
}

/// A gateway key: who a client is, what it may reach, and its limits.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeySpec {
    /// The key's name (in logs, metrics, route conditions).
    pub name: String,
    /// The SHA-256 of the key, in hex (`printf %s "$KEY" | sha256sum`): the file holds no secret.
    pub sha256: String,
    /// Free-form facts for route conditions (`$.key.metadata.team`).
    #[serde(default)]
    pub metadata: BTreeMap<String, Value>,
    /// Routes this key may use (default: all).
    #[serde(default)]
    pub routes: Option<Vec<String>>,
    /// Where this key's requests may go, and nowhere else (as a route's `only`).
    #[serde(default)]
    pub only: Option<OnlySpec>,
    #[serde(default)]
    pub limits: Option<LimitsSpec>,
}

/// Limits of one gateway key; each is shared by every replica when state is in Redis.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitsSpec {
    /// Requests per minute.
    #[serde(default)]
    pub rpm: Option<u64>,
    /// Tokens (prompt + completion) per minute, counted from the answers' usage.
    #[serde(default)]
    pub tpm: Option<u64>,
    /// Requests in flight at once.
    #[serde(default)]
    pub concurrent: Option<u64>,
    /// A spend budget: the estimated cost is reserved before the request is sent and settled
    /// from the real usage, so concurrent requests cannot overrun it.
    #[serde(default)]
    pub budget: Option<BudgetSpec>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BudgetSpec {
    /// US dollars per period.
    pub usd: f64,
    pub period: Period,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    Hour,
    Day,
    Month,
}

/// Shared state.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StateSpec {
    /// A Redis URL (`redis://host:6379`); `--redis` / `LIGHTPORT_REDIS_URL` override it.
    #[serde(default)]
    pub redis: Option<String>,
    /// When Redis is unreachable: `open` keeps serving with per-process limits (default),
    /// `closed` answers 503.
    #[serde(default)]
    pub on_failure: Option<FailMode>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FailMode {
    #[default]
    Open,
    Closed,
}
