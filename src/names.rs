//! The header names the gateway reads and writes, each parsed once: a name given as `&str`
//! is parsed and checked again on every insert and lookup.

use http::HeaderName;

pub(crate) const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub(crate) const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
pub(crate) const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");
pub(crate) const PROVIDER: HeaderName = HeaderName::from_static("x-lightport-provider");
pub(crate) const PROVIDER_KEY: HeaderName = HeaderName::from_static("x-lightport-provider-key");
pub(crate) const FALLBACKS: HeaderName = HeaderName::from_static("x-lightport-fallbacks");
pub(crate) const TARGET: HeaderName = HeaderName::from_static("x-lightport-target");
pub(crate) const ROUTE: HeaderName = HeaderName::from_static("x-lightport-route");
pub(crate) const ATTEMPTS: HeaderName = HeaderName::from_static("x-lightport-attempts");
pub(crate) const DROPPED_PARAMS: HeaderName = HeaderName::from_static("x-lightport-dropped-params");
pub(crate) const OVERHEAD_US: HeaderName = HeaderName::from_static("x-lightport-overhead-us");
pub(crate) const COST: HeaderName = HeaderName::from_static("x-lightport-cost");
// OpenAI's rate-limit headers.
pub(crate) const LIMIT_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-limit-requests");
pub(crate) const REMAINING_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-remaining-requests");
pub(crate) const RESET_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-reset-requests");
pub(crate) const LIMIT_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-limit-tokens");
pub(crate) const REMAINING_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-remaining-tokens");
pub(crate) const RESET_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-reset-tokens");
