//! A call: one canonical request to one provider, made once per request (or per attempt), with
//! its `$ctx` built once. Its four steps are the whole translation: [`Call::request`] (canonical
//! request → upstream request), [`Call::response`] (upstream answer → canonical answer),
//! [`Call::error`] (upstream error → OpenAI error) and [`Call::stream`] (upstream stream →
//! canonical chunks). The server, `lightport check` and embedders all run these same steps.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderValue, Method};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::{Map, Value};
use url::Url;

use crate::auth::sigv4;
use crate::error::{Cause, Error};
use crate::expr::{Ctx, Report, Scope};
use crate::plan::errors::Guard;
use crate::plan::template::TemplateVars;
use crate::plan::{env_prefix, Auth, BaseUrl, Credentials, Endpoint, EndpointPlan, Policy, Provider, Secret};
use crate::stream::{StreamLimits, StreamTranslator};

const QUERY: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// A request ready to send upstream.
#[derive(Debug)]
pub struct UpstreamRequest {
    pub method: Method,
    pub url: Url,
    /// Where the path after the base URL's own path begins in `url`'s path.
    base_path_len: usize,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// Authentication still to do once the request is final: a signature, or a bearer token
    /// from an OAuth grant (see [`UpstreamRequest::sign`] and [`UpstreamRequest::needs_token`]).
    pub(crate) pending: Option<Credentials>,
}

impl UpstreamRequest {
    /// The path and query after the base URL (for tests and logs; holds no key unless the
    /// provider's auth is a query parameter).
    pub fn path_and_query(&self) -> &str {
        let whole = &self.url[url::Position::BeforePath..];
        // A mapping's own path may climb out of the base's (`/../x`): then it is all there is.
        whole.get(self.base_path_len..).unwrap_or(whole)
    }

    /// Sign the request for `now`, when its provider signs requests (AWS Signature Version 4):
    /// call it after the last header is set, and again for each attempt. Does nothing otherwise.
    pub fn sign(&mut self, now: SystemTime) -> Result<(), Error> {
        let Some(Credentials::AwsSigV4(plan)) = &self.pending else { return Ok(()) };
        let params = sigv4::SigningParams::new(&plan.region, &plan.service, now);
        sigv4::sign(&self.method, self.url.as_str(), &mut self.headers, &self.body, &plan.credentials, &params)
            .map_err(|e| Error::setup(502, "upstream_error", e.to_string()).with_code("auth_failed"))
    }

    /// Whether the request still needs a bearer token from an OAuth grant, which the gateway's
    /// server fetches and caches (an embedder without the server has to supply its own).
    pub fn needs_token(&self) -> bool {
        matches!(self.pending, Some(Credentials::Token(_)))
    }
}

/// What a configured target changes about calls to its provider.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// Replaces the provider's base URL.
    pub base_url: Option<BaseUrl>,
    /// Replaces the provider's key.
    pub(crate) key: Option<Secret>,
    /// Added to the upstream request's headers.
    pub headers: Vec<(http::HeaderName, HeaderValue)>,
    /// Request parameters set when the client did not send them.
    pub params: Map<String, Value>,
}

/// One call of an endpoint of a provider.
#[derive(Debug)]
pub struct Call {
    provider: Arc<Provider>,
    endpoint: Endpoint,
    model: String,
    stream: bool,
    include_usage: bool,
    /// `$ctx`: model, provider, stream, include_usage, id, created, vars.
    ctx: Ctx,
    /// The canonical request as sent (after parameter policies): `$request` in answers.
    request: Value,
    dropped: Vec<String>,
    limits: StreamLimits,
    overrides: Option<Arc<Overrides>>,
    /// The client's key, when the request carried it upstream: redacted from any upstream text
    /// passed on (the gateway's own keys are redacted from the plan).
    client_key_sent: Option<Secret>,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A short id, unique within the process and unlikely to repeat across processes.
pub(crate) fn unique_id() -> String {
    static SEED: std::sync::LazyLock<u64> =
        std::sync::LazyLock::new(|| SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64));
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let x = (*SEED ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    format!("{:016x}", x ^ (x >> 31))
}

impl Call {
    /// A call of `endpoint` on `provider` for the canonical request `body`, whose `model` is
    /// the provider's model name (without a `provider/` prefix). Fails when the provider does
    /// not offer the endpoint, or a stream when one is asked for.
    pub fn new(provider: Arc<Provider>, endpoint: Endpoint, body: &Value) -> Result<Call, Error> {
        let ep = provider.endpoint(endpoint).ok_or_else(|| {
            Error::invalid(format!("provider '{}' does not offer {}", provider.id, endpoint.name()))
                .with_code("unsupported_endpoint")
        })?;
        let model = body.get("model").and_then(Value::as_str).unwrap_or_default().to_string();
        // A model name is a path segment in many APIs: `.` and `..` would move the path (URL
        // parsers treat them, percent-encoded or not, as dot segments).
        if model == "." || model == ".." {
            return Err(Error::invalid(format!("'{model}' is not a model name")).with_param("model"));
        }
        let stream = endpoint == Endpoint::Chat && body.get("stream").and_then(Value::as_bool).unwrap_or(false);
        if stream && ep.stream.is_none() {
            return Err(
                Error::invalid(format!("provider '{}' does not support streaming", provider.id)).with_param("stream")
            );
        }
        let include_usage = body.pointer("/stream_options/include_usage").and_then(Value::as_bool).unwrap_or(false);
        let created = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let ctx = Ctx {
            provider: Arc::clone(&provider.id_value),
            model: Value::String(model.clone()),
            stream: Value::Bool(stream),
            include_usage: Value::Bool(include_usage),
            id: Value::Null,
            created: Value::from(created),
            vars: Arc::clone(&provider.vars_value),
            status: Value::Null,
            headers: Value::Null,
        };
        Ok(Call {
            provider,
            endpoint,
            model,
            stream,
            include_usage,
            ctx,
            request: Value::Null,
            dropped: Vec::new(),
            limits: StreamLimits::default(),
            overrides: None,
            client_key_sent: None,
        })
    }

    /// The completion id answers carry when the upstream gives none (default `chatcmpl-<random>`,
    /// made when the request is built).
    pub fn with_id(mut self, id: impl Into<String>) -> Call {
        self.ctx.id = Value::String(id.into());
        self
    }

    /// The `created` time of answers, in Unix seconds (default: now).
    pub fn with_created(mut self, created: u64) -> Call {
        self.ctx.created = Value::from(created);
        self
    }

    /// Bounds on what the stream translation may buffer.
    pub fn with_stream_limits(mut self, limits: StreamLimits) -> Call {
        self.limits = limits;
        self
    }

    /// A configured target's overrides: base URL, key, extra headers, default parameters.
    pub fn with_overrides(mut self, overrides: Arc<Overrides>) -> Call {
        self.overrides = Some(overrides);
        self
    }

    pub fn provider(&self) -> &Arc<Provider> {
        &self.provider
    }

    /// The provider's model name.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// Whether the client asked for a stream.
    pub fn is_stream(&self) -> bool {
        self.stream
    }

    /// The parameters the provider does not take that [`Call::request`] dropped, in name order
    /// (the server lists them in `x-lightport-dropped-params`).
    pub fn dropped(&self) -> &[String] {
        &self.dropped
    }

    fn plan(&self) -> &EndpointPlan {
        self.provider.endpoint(self.endpoint).expect("Call::new checked the endpoint")
    }

    /// Step 1: the canonical request → the upstream request. `client_key` is the client's own
    /// provider key, used when the gateway holds none for the provider and the provider's
    /// mapping accepts client keys of that form (`client_keys`).
    pub fn request(&mut self, mut body: Value, client_key: Option<&str>) -> Result<UpstreamRequest, Error> {
        let Value::Object(fields) = &mut body else {
            return Err(Error::invalid("the request body must be a JSON object"));
        };
        let overrides = self.overrides.clone();
        if let Some(o) = &overrides {
            for (k, v) in &o.params {
                if fields.get(k).is_none_or(Value::is_null) {
                    fields.insert(k.clone(), v.clone());
                }
            }
        }
        if self.ctx.id.is_null() {
            self.ctx.id = Value::String(format!("chatcmpl-{}", unique_id()));
        }
        let provider = Arc::clone(&self.provider);
        let ep = provider.endpoint(self.endpoint).expect("Call::new checked the endpoint");
        self.dropped = apply_params(ep, &provider.id, &mut body, &self.ctx)?;
        let report = Report::default();
        let scope = Scope::new(&body, &self.ctx, &Value::Null).with_report(&report);
        if let Some(e) = Guard::first(&ep.refuse, &scope, Cause::Client) {
            return Err(e);
        }
        let upstream_body = ep.request.eval_owned(&scope).unwrap_or(Value::Object(Map::new()));
        for u in report.take() {
            if u.refuse {
                return Err(Error::invalid(format!(
                    "{}: '{}' is not supported by provider '{}'",
                    u.path, u.value, provider.id
                ))
                .with_param(u.path)
                .with_code("unsupported_value"));
            }
            self.dropped.push(u.path);
        }
        self.request = body;
        let base = overrides.as_ref().and_then(|o| o.base_url.as_ref()).or(provider.base_url.as_ref());
        let base = base.ok_or_else(|| {
            Error::setup(
                502,
                "upstream_error",
                format!("provider '{}' has no base URL: set {}_BASE_URL", provider.id, env_prefix(&provider.id)),
            )
            .with_code("no_base_url")
        })?;
        // A path segment of `.` or `..` (even percent-encoded) is a step of the path: a model so
        // named would move a templated path (`/deployments/{{ model }}/chat`) elsewhere.
        if matches!(self.model.as_str(), "." | "..") {
            return Err(Error::invalid(format!("'{}' is not a model name", self.model)).with_param("model"));
        }
        let vars = TemplateVars { model: &self.model, stream: self.stream, vars: &provider.vars };
        let path = match (&ep.stream_path, self.stream) {
            (Some(p), true) => p,
            _ => &ep.path,
        };
        // The URL's path and query, after the base's own path.
        let mut pq = String::with_capacity(base.path().len() + 64);
        pq.push_str(base.path());
        path.render(&vars, true, &mut pq);
        let mut query: Vec<(&str, String)> =
            ep.query.iter().map(|(k, t)| (k.as_str(), t.render_string(&vars, false))).collect();
        if self.stream {
            query.extend(ep.stream_query.iter().map(|(k, t)| (k.as_str(), t.render_string(&vars, false))));
        }
        let client_key = client_key.filter(|k| !k.is_empty());
        let own_key = overrides.as_ref().and_then(|o| o.key.as_ref()).or(provider.key.as_ref());
        // The gateway's key first, then its other credentials, then the client's own key.
        let pending = match (own_key, &provider.credentials) {
            (None, Some(Credentials::Broken(message))) => {
                return Err(Error::setup(502, "upstream_error", message.clone()).with_code("auth_misconfigured"));
            }
            (None, Some(c)) => Some(c.clone()),
            _ => None,
        };
        let key = match pending {
            Some(_) => None,
            None => own_key.map(|s| s.expose()).or(client_key.filter(|k| provider.accepts_client_key(k))),
        };
        if own_key.is_none() {
            self.client_key_sent = key.map(|k| Secret(k.to_string()));
        }
        let mut headers = HeaderMap::with_capacity(provider.headers.len() + ep.headers.len() + 2);
        headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        match (&provider.auth, key) {
            _ if pending.is_some() => {}
            (Auth::None, _) => {}
            (Auth::Keyless, _) | (_, None) => {
                let how = match client_key {
                    Some(_) => "the client's key is not one this provider's mapping passes on (`client_keys`)",
                    None => "send the provider's key as 'Authorization: Bearer <key>'",
                };
                return Err(Error::setup(
                    401,
                    "authentication_error",
                    format!(
                        "no credentials for provider '{}': set {} on the gateway, or {how}",
                        provider.id,
                        provider.auth_wanted.join(", or ")
                    ),
                )
                .with_code("missing_api_key"));
            }
            (Auth::Header { name, prefix }, Some(k)) => {
                let mut v = HeaderValue::from_str(&format!("{prefix}{k}"))
                    .map_err(|_| Error::invalid("the API key contains characters a header cannot carry"))?;
                v.set_sensitive(true);
                headers.insert(name.clone(), v);
            }
            (Auth::Query { name }, Some(k)) => query.push((name.as_str(), k.to_string())),
        }
        let mut first = true;
        for (k, v) in &query {
            pq.push(if first { '?' } else { '&' });
            first = false;
            pq.extend(utf8_percent_encode(k, QUERY));
            pq.push('=');
            pq.extend(utf8_percent_encode(v, QUERY));
        }
        for h in provider.headers.iter().chain(&ep.headers) {
            let value = match &h.fixed {
                Some(v) => v.clone(),
                None => match HeaderValue::from_str(&h.template.render_string(&vars, false)) {
                    Ok(v) => v,
                    Err(_) => continue,
                },
            };
            headers.insert(h.name.clone(), value);
        }
        for (name, value) in overrides.iter().flat_map(|o| &o.headers) {
            headers.insert(name.clone(), value.clone());
        }
        let url = base.join(&pq).map_err(|e| {
            Error::setup(
                502,
                "upstream_error",
                format!("provider '{}': the request's URL is not valid: {e}", provider.id),
            )
        })?;
        Ok(UpstreamRequest {
            method: ep.method.clone(),
            url,
            base_path_len: base.path().len(),
            headers,
            body: serde_json::to_vec(&upstream_body).expect("JSON values serialise"),
            pending,
        })
    }

    /// Whether a successful answer is forwarded byte for byte: the response transform is the
    /// identity and no `fail_on` rule needs to read it. The caller should still check it is JSON.
    pub fn forwards_response_as_is(&self) -> bool {
        let ep = self.plan();
        ep.response.is_identity() && ep.fail_on.is_empty()
    }

    /// Step 2: the upstream's successful (2xx) body → the canonical answer.
    pub fn response(&self, body: &[u8]) -> Result<Value, Error> {
        let ep = self.plan();
        let id = &self.provider.id;
        let upstream: Value = serde_json::from_slice(body)
            .map_err(|e| Error::bad_gateway(format!("provider '{id}' answered with invalid JSON: {e}")))?;
        let scope = Scope::new(&upstream, &self.ctx, &Value::Null).with_request(&self.request);
        if let Some(e) = Guard::first(&ep.fail_on, &scope, Cause::Upstream(502)) {
            return Err(e);
        }
        ep.response
            .eval_owned(&scope)
            .ok_or_else(|| Error::bad_gateway(format!("provider '{id}' answered with a body the mapping cannot read")))
    }

    /// Step 3: an upstream error (status, response headers, body) → the error the client gets.
    /// The headers are visible to the error table as `$ctx.headers` (lower-case names).
    pub fn error(&self, status: u16, headers: &HeaderMap, body: &[u8]) -> Error {
        let upstream: Value =
            serde_json::from_slice(body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()));
        let mut ctx = self.ctx.clone();
        ctx.status = Value::from(status);
        ctx.headers = Value::Object(
            headers
                .iter()
                .filter_map(|(k, v)| Some((k.as_str().to_string(), Value::String(v.to_str().ok()?.to_string()))))
                .collect(),
        );
        let scope = Scope::new(&upstream, &ctx, &Value::Null).with_request(&self.request);
        let default_status = match status {
            400..=499 | 503 | 504 => status,
            _ => 502,
        };
        let id = &self.provider.id;
        let mut error = self.plan().errors.eval(
            &scope,
            default_status,
            || {
                let text: String = upstream.as_str().map(|s| s.chars().take(200).collect()).unwrap_or_default();
                let sep = if text.trim().is_empty() { "" } else { ": " };
                format!("provider '{id}' returned HTTP {status}{sep}{}", text.trim())
            },
            Cause::Upstream(status),
        );
        error.retry_after = retry_after(headers);
        // An upstream that echoes the credential must not hand it to the client.
        let keys = [
            self.provider.key.as_ref(),
            self.overrides.as_ref().and_then(|o| o.key.as_ref()),
            self.client_key_sent.as_ref(),
        ];
        for key in keys.into_iter().flatten().filter(|k| k.0.len() >= 8) {
            for text in [Some(&mut error.message), error.code.as_mut(), error.param.as_mut(), Some(&mut error.kind)]
                .into_iter()
                .flatten()
            {
                if text.contains(&key.0) {
                    *text = text.replace(&key.0, "[redacted]");
                }
            }
        }
        error
    }

    /// Step 4: a translator for the streamed answer (`None` when the call is not a stream).
    pub fn stream(&self) -> Option<StreamTranslator> {
        if !self.stream {
            return None;
        }
        let plan = self.plan().stream.clone()?;
        let id = self.ctx.id.as_str().unwrap_or_default();
        let created = self.ctx.created.as_u64().unwrap_or(0);
        Some(StreamTranslator::new(plan, self.ctx.clone(), id, &self.model, created, self.include_usage, self.limits))
    }
}

/// The wait an upstream asks for: `retry-after-ms`, else `retry-after` in seconds.
fn retry_after(headers: &HeaderMap) -> Option<std::time::Duration> {
    let number = |name: &str| {
        headers.get(name)?.to_str().ok()?.trim().parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0)
    };
    number("retry-after-ms")
        .map(|ms| std::time::Duration::from_secs_f64(ms / 1000.0))
        .or_else(|| number("retry-after").map(std::time::Duration::from_secs_f64))
}

/// Apply the endpoint's parameter policies to the canonical request (fields in name order).
fn apply_params(ep: &EndpointPlan, provider: &str, body: &mut Value, ctx: &Ctx) -> Result<Vec<String>, Error> {
    // First decide, reading only: most requests need no change and allocate nothing here.
    let mut drop = Vec::new();
    let mut renames = Vec::new();
    let Value::Object(map) = &*body else { return Ok(drop) };
    let scope = Scope::new(body, ctx, &Value::Null);
    for (key, value) in map {
        if value.is_null() {
            continue;
        }
        let policy = match ep.params.rules.iter().find(|(n, _)| n == key) {
            Some((_, p)) => p,
            None if ep.params.reads.everything || ep.params.reads.keys.contains(key) => continue,
            None => &ep.params.unread,
        };
        let reject = || {
            Error::invalid(format!("parameter '{key}' is not supported by provider '{provider}'"))
                .with_param(key.clone())
                .with_code("unsupported_parameter")
        };
        match policy {
            Policy::Keep => {}
            Policy::Drop => drop.push(key.clone()),
            Policy::DropUnless(ok) if !ok.contains(value) => drop.push(key.clone()),
            Policy::DropWhen(cond) if cond.holds(&scope) => drop.push(key.clone()),
            Policy::Reject => return Err(reject()),
            Policy::RejectUnless(ok) if !ok.contains(value) => return Err(reject()),
            Policy::RejectWhen(cond) if cond.holds(&scope) => return Err(reject()),
            Policy::Rename(to) => renames.push((key.clone(), to.clone())),
            _ => {}
        }
    }
    if let Value::Object(map) = body {
        for key in &drop {
            map.remove(key);
        }
        for (from, to) in renames {
            if let Some(v) = map.remove(&from) {
                map.insert(to, v);
            }
        }
    }
    Ok(drop)
}

/// What a provider supports, found by running its plan on probe requests (never by reading
/// its file's text): a tool or an image the request transform carries into the upstream body
/// is supported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capabilities {
    pub chat: bool,
    pub stream: bool,
    pub tools: bool,
    pub vision: bool,
    pub embeddings: bool,
    /// The request is forwarded whole (perhaps amended): support is whatever the host offers.
    pub passthrough: bool,
}

const PROBE_TOOL: &str = "lightport_probe_tool";
const PROBE_IMAGE: &str = "bGlnaHRwb3J0LXByb2Jl";

pub(crate) fn capabilities(provider: &Arc<Provider>) -> Capabilities {
    let chat = provider.chat.as_ref();
    let passthrough = chat.is_some_and(|c| c.params.reads.everything);
    let carries = |mut probe: Value, marker: &str| -> bool {
        let (Some(ep), Ok(call)) = (chat, Call::new(Arc::clone(provider), Endpoint::Chat, &probe)) else {
            return false;
        };
        if apply_params(ep, &provider.id, &mut probe, &call.ctx).is_err() {
            return false;
        }
        let upstream = ep.request.eval_owned(&Scope::new(&probe, &call.ctx, &Value::Null));
        upstream.is_some_and(|v| v.to_string().contains(marker))
    };
    let tools = carries(
        serde_json::json!({"model": "probe", "messages": [{"role": "user", "content": "probe"}],
            "tools": [{"type": "function", "function": {"name": PROBE_TOOL, "description": "probe",
            "parameters": {"type": "object", "properties": {}}}}]}),
        PROBE_TOOL,
    );
    let vision = carries(
        serde_json::json!({"model": "probe", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "probe"},
            {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{PROBE_IMAGE}")}}]}]}),
        PROBE_IMAGE,
    );
    Capabilities {
        chat: chat.is_some(),
        stream: chat.is_some_and(|c| c.stream.is_some()),
        tools,
        vision,
        embeddings: provider.embeddings.is_some(),
        passthrough,
    }
}
