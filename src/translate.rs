//! The library's front door: apply a provider plan to a canonical request, an upstream response,
//! an upstream error or a stream. The server is one user of it; an application can be another.

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::{json, Map, Value};

use crate::error::GatewayError;
use crate::plan::template::TemplateVars;
use crate::plan::{Auth, EndpointPlan, Policy, ProviderPlan};
use crate::stream::StreamTranslator;
use crate::transform::{key_text_of, Scope};

const QUERY: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// Facts about one call, visible to transforms as `$ctx`.
#[derive(Debug, Clone)]
pub struct CallContext {
    pub provider: String,
    /// The upstream model name (without the `provider/` prefix).
    pub model: String,
    pub stream: bool,
    pub include_usage: bool,
    /// The completion id used when the upstream gives none (`chatcmpl-<request id>`).
    pub id: String,
    /// Unix seconds.
    pub created: u64,
}

impl CallContext {
    pub fn to_value(&self, plan: &ProviderPlan) -> Value {
        json!({
            "provider": self.provider,
            "model": self.model,
            "stream": self.stream,
            "include_usage": self.include_usage,
            "id": self.id,
            "created": self.created,
            "vars": plan.vars_value.clone(),
        })
    }
}

/// Which endpoint of a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Chat,
    Embeddings,
}

impl Endpoint {
    pub fn of(self, plan: &ProviderPlan) -> Option<&EndpointPlan> {
        match self {
            Endpoint::Chat => plan.chat.as_ref(),
            Endpoint::Embeddings => plan.embeddings.as_ref(),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Chat => "chat completions",
            Endpoint::Embeddings => "embeddings",
        }
    }
}

/// A request ready to send upstream.
#[derive(Debug)]
pub struct UpstreamRequest {
    pub method: Method,
    pub url: String,
    /// The path and query after the base URL (for tests and logs; holds no key unless the
    /// provider's auth is a query parameter).
    pub path_and_query: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// Parameters the gateway dropped, in name order.
    pub dropped: Vec<String>,
}

/// Apply the endpoint's parameter policies to the canonical request (fields in name order).
fn apply_params(ep: &EndpointPlan, provider: &str, body: &mut Value, ctx: &Value) -> Result<Vec<String>, GatewayError> {
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
            GatewayError::invalid(format!("parameter '{key}' is not supported by provider '{provider}'"))
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

/// Canonical request → upstream request. `client_key` is the client's bearer token, used when
/// the operator gave no key for the provider.
pub fn build_request(
    plan: &ProviderPlan,
    endpoint: Endpoint,
    body: &mut Value,
    ctx: &CallContext,
    client_key: Option<&str>,
) -> Result<UpstreamRequest, GatewayError> {
    let ep = endpoint.of(plan).ok_or_else(|| {
        GatewayError::invalid(format!("provider '{}' does not offer {}", plan.id, endpoint.name()))
            .with_code("unsupported_endpoint")
    })?;
    if !body.is_object() {
        return Err(GatewayError::invalid("the request body must be a JSON object"));
    }
    let ctx_value = ctx.to_value(plan);
    let dropped = apply_params(ep, &plan.id, body, &ctx_value)?;
    if let Some(e) = first_guard(&ep.refuse, &Scope::new(body, &ctx_value, &Value::Null)) {
        return Err(e);
    }
    let upstream_body = {
        let scope = Scope::new(body, &ctx_value, &Value::Null);
        ep.request.eval_owned(&scope).unwrap_or(Value::Object(Map::new()))
    };
    let base = plan.base_url.as_deref().ok_or_else(|| {
        GatewayError::bad_gateway(format!(
            "provider '{}' has no base URL: set {}_BASE_URL",
            plan.id,
            crate::plan::env_prefix(&plan.id)
        ))
        .with_code("no_base_url")
    })?;
    let vars = TemplateVars { model: &ctx.model, stream: ctx.stream, vars: &plan.vars };
    let path = match (&ep.stream_path, ctx.stream) {
        (Some(p), true) => p,
        _ => &ep.path,
    };
    let mut pq = String::with_capacity(64);
    path.render(&vars, true, &mut pq);
    let mut query: Vec<(&str, String)> =
        ep.query.iter().map(|(k, t)| (k.as_str(), t.render_string(&vars, false))).collect();
    if ctx.stream {
        query.extend(ep.stream_query.iter().map(|(k, t)| (k.as_str(), t.render_string(&vars, false))));
    }
    let key = plan.key.as_ref().map(|s| s.0.as_str()).or(client_key).filter(|k| !k.is_empty());
    let mut headers = HeaderMap::with_capacity(plan.headers.len() + ep.headers.len() + 2);
    headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    match (&plan.auth, key) {
        (Auth::None, _) => {}
        (_, None) => {
            return Err(GatewayError::new(
                401,
                "authentication_error",
                format!(
                    "no API key for provider '{}': set {}_API_KEY on the gateway or send 'Authorization: Bearer <key>'",
                    plan.id,
                    crate::plan::env_prefix(&plan.id)
                ),
            )
            .with_code("missing_api_key"))
        }
        (Auth::Header { name, prefix }, Some(k)) => {
            let mut v = HeaderValue::from_str(&format!("{prefix}{k}"))
                .map_err(|_| GatewayError::invalid("the API key contains characters a header cannot carry"))?;
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
    for h in plan.headers.iter().chain(&ep.headers) {
        let value = match &h.fixed {
            Some(v) => v.clone(),
            None => match HeaderValue::from_str(&h.template.render_string(&vars, false)) {
                Ok(v) => v,
                Err(_) => continue,
            },
        };
        headers.insert(h.name.clone(), value);
    }
    Ok(UpstreamRequest {
        method: ep.method.clone(),
        url: format!("{base}{pq}"),
        path_and_query: pq,
        headers,
        body: serde_json::to_vec(&upstream_body).expect("JSON values serialise"),
        dropped,
    })
}

/// Upstream success body → canonical response. `request` is the canonical request as sent
/// (after `build_request`), visible to the transform as `$request`.
pub fn translate_response(
    plan: &ProviderPlan,
    endpoint: Endpoint,
    request: &Value,
    body: &[u8],
    ctx: &CallContext,
) -> Result<Value, GatewayError> {
    let ep = endpoint.of(plan).ok_or_else(|| GatewayError::invalid("endpoint not offered"))?;
    let upstream: Value = serde_json::from_slice(body)
        .map_err(|e| GatewayError::bad_gateway(format!("provider '{}' answered with invalid JSON: {e}", plan.id)))?;
    let ctx_value = ctx.to_value(plan);
    let scope = Scope::new(&upstream, &ctx_value, &Value::Null).with_request(request);
    if let Some(e) = first_guard(&ep.fail_on, &scope) {
        return Err(e);
    }
    ep.response.eval_owned(&scope).ok_or_else(|| {
        GatewayError::bad_gateway(format!("provider '{}' answered with a body the mapping cannot read", plan.id))
    })
}

/// Whether a successful answer of this endpoint is forwarded byte for byte (its response
/// transform is the identity and no `fail_on` rule needs to read it).
pub fn forwards_response_as_is(plan: &ProviderPlan, endpoint: Endpoint) -> bool {
    endpoint.of(plan).is_some_and(|ep| ep.response.is_identity() && ep.fail_on.is_empty())
}

/// The error of the first guard that holds.
fn first_guard(guards: &[crate::plan::Guard], scope: &Scope<'_>) -> Option<GatewayError> {
    let g = guards.iter().find(|g| g.when.holds(scope))?;
    let text = |e: Option<&crate::transform::Expr>| e.and_then(|e| e.eval(scope)).as_deref().and_then(key_text_of);
    Some(GatewayError {
        status: g.status,
        message: text(Some(&g.message)).unwrap_or_else(|| "the request cannot be served".into()),
        kind: text(g.kind.as_ref()).unwrap_or_else(|| GatewayError::kind_for_status(g.status).to_string()),
        code: text(g.code.as_ref()),
        param: text(g.param.as_ref()),
    })
}

/// Upstream error (status and body) → the OpenAI error the client gets.
/// `headers` are the upstream's response headers, visible as `$ctx.headers` (lower-case names).
pub fn translate_error(
    plan: &ProviderPlan,
    endpoint: Endpoint,
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    ctx: &CallContext,
) -> GatewayError {
    let upstream: Value =
        serde_json::from_slice(body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()));
    let mut ctx_value = ctx.to_value(plan);
    ctx_value["status"] = Value::from(status);
    ctx_value["headers"] = Value::Object(
        headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_string(), Value::String(v.to_str().ok()?.to_string()))))
            .collect(),
    );
    let scope = Scope::new(&upstream, &ctx_value, &Value::Null);
    let errors = endpoint.of(plan).map(|ep| &ep.errors);
    let field = |f: Option<&crate::transform::Expr>| f.and_then(|e| e.eval(&scope)).as_deref().and_then(key_text_of);
    let default_status = match status {
        400..=499 | 503 | 504 => status,
        _ => 502,
    };
    let status = errors
        .and_then(|e| e.status.as_ref())
        .and_then(|e| e.eval(&scope))
        .and_then(|v| v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok())))
        .and_then(|s| u16::try_from(s).ok())
        .filter(|s| (400..600).contains(s))
        .unwrap_or(default_status);
    let message = field(errors.and_then(|e| e.message.as_ref())).unwrap_or_else(|| {
        let text = match &upstream {
            Value::String(s) => s.chars().take(200).collect::<String>(),
            _ => String::new(),
        };
        format!(
            "provider '{}' returned HTTP {}{}{}",
            plan.id,
            ctx_value["status"],
            if text.is_empty() { "" } else { ": " },
            text.trim()
        )
    });
    GatewayError {
        status,
        kind: field(errors.and_then(|e| e.kind.as_ref()))
            .unwrap_or_else(|| GatewayError::kind_for_status(status).to_string()),
        message,
        code: field(errors.and_then(|e| e.code.as_ref())),
        param: field(errors.and_then(|e| e.param.as_ref())),
    }
}

/// A translator for one streamed answer, or `None` when the endpoint has no stream rules.
pub fn stream_translator(plan: &ProviderPlan, endpoint: Endpoint, ctx: &CallContext) -> Option<StreamTranslator> {
    let sp = endpoint.of(plan)?.stream.clone()?;
    Some(StreamTranslator::new(sp, ctx.to_value(plan)))
}

/// The header name the server uses to list dropped parameters.
pub static DROPPED_HEADER: HeaderName = HeaderName::from_static("x-lightport-dropped-params");
