//! One client request, from its body to its answer: who the client is, where the request goes
//! (the router's decision), and the attempts (retries, fallbacks), each one a [`Call`].

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue};
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use serde_json::Value;

use super::admission::Admission;
use super::limits::{BreakerConfig, BreakerDecision};
use super::{body, error_response, validate, AppState};
use crate::call::Call;
use crate::error::{Cause, Error};
use crate::names;
use crate::plan::Endpoint;
use crate::route::{Decision, Facts, GatewayKey, Planned};
use crate::stream::{StreamInput, StreamTranslator};
use crate::upstream::{request_error, timed_out};

/// What the answer's headers report, filled in as the request goes.
#[derive(Default)]
pub(super) struct Report {
    provider: Option<String>,
    target: Option<String>,
    route: Option<String>,
    /// `target:outcome` per attempt.
    attempts: Vec<String>,
    dropped: Vec<String>,
    overhead: Option<Duration>,
    /// The model the client asked for, once the body was read.
    model: Option<String>,
    /// The model the answering attempt asked its upstream for, and its provider's plan (which
    /// prices it).
    upstream_model: Option<String>,
    plan: Option<Arc<crate::plan::Provider>>,
    /// The answering attempt's upstream time: to its headers (a stream), or its whole body.
    upstream: Option<Duration>,
    /// A stream's first content, from the request's arrival.
    ttfc: Option<Duration>,
    usage: Option<Value>,
    cost: Option<f64>,
    stream: bool,
}

impl Report {
    /// What the usage cost, at the answering attempt's price.
    fn price(&self) -> Option<f64> {
        self.plan.as_ref()?.cost(self.upstream_model.as_deref()?, self.usage.as_ref()?)
    }

    fn decorate(&self, resp: &mut Response, rid: &str) {
        let h = resp.headers_mut();
        let mut set = |name: HeaderName, value: &str| {
            if let Ok(v) = HeaderValue::from_str(value) {
                h.insert(name, v);
            }
        };
        set(names::X_REQUEST_ID, rid);
        if let Some(p) = &self.provider {
            set(names::PROVIDER, p);
        }
        if let Some(t) = &self.target {
            set(names::TARGET, t);
        }
        if let Some(r) = &self.route {
            set(names::ROUTE, r);
        }
        if !self.attempts.is_empty() {
            set(names::ATTEMPTS, &self.attempts.join(","));
        }
        if !self.dropped.is_empty() {
            set(names::DROPPED_PARAMS, &self.dropped.join(","));
        }
        if let Some(d) = self.overhead {
            h.insert(names::OVERHEAD_US, HeaderValue::from(d.as_micros() as u64));
        }
    }
}

/// Answer one request of `endpoint`.
pub(super) async fn handle(state: Arc<AppState>, req: axum::extract::Request, endpoint: Endpoint) -> Response {
    let (parts, body) = req.into_parts();
    let headers = parts.headers;
    // A stream ends itself (with an error event) when a shutdown's drain reaches its deadline.
    let shutdown_deadline: Deadline = match parts.extensions.get::<super::listener::Shutdown>() {
        Some(s) => Box::pin(s.deadline()),
        None => Box::pin(std::future::pending()),
    };
    let rid = headers
        .get(names::X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(crate::call::unique_id);
    let received = Instant::now();
    let mut report = Report::default();
    // Beyond the in-flight bound the gateway is overloaded: say so at once, with a wait.
    let Ok(_permit) = Arc::clone(&state.in_flight).try_acquire_owned() else {
        let mut e =
            Error::new(503, "overloaded_error", "the gateway is at its limit of requests in flight; retry shortly")
                .with_code("overloaded");
        e.retry_after = Some(Duration::from_secs(1));
        let mut resp = error_response(&e);
        report.decorate(&mut resp, &rid);
        return resp;
    };
    let span = if state.config.traces {
        let span = tracing::info_span!(
            target: "lightport::trace",
            "request",
            otel.name = endpoint.operation(),
            otel.kind = "server",
            gen_ai.operation.name = endpoint.operation(),
            gen_ai.request.model = tracing::field::Empty,
            gen_ai.response.model = tracing::field::Empty,
            gen_ai.provider.name = tracing::field::Empty,
            gen_ai.usage.input_tokens = tracing::field::Empty,
            gen_ai.usage.output_tokens = tracing::field::Empty,
            http.response.status_code = tracing::field::Empty,
            error.type = tracing::field::Empty,
            lightport.request_id = %rid,
            lightport.route = tracing::field::Empty,
            lightport.target = tracing::field::Empty,
            lightport.cost_usd = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        super::traces::adopt_parent(&span, &headers);
        span
    } else {
        tracing::Span::none()
    };
    // The request's future (its attempts, the upstream client's futures) is large: on the heap,
    // so that this handler's own future, which the server moves, stays small.
    let proxied = Box::pin(proxy(&state, &headers, body, endpoint, &rid, &mut report, shutdown_deadline));
    let answer =
        if span.is_none() { proxied.await } else { tracing::Instrument::instrument(proxied, span.clone()).await };
    let end = Ended { state: Arc::clone(&state), endpoint, rid, received, span };
    match answer {
        Ok(Answer::Whole(mut resp)) => {
            report.decorate(&mut resp, &end.rid);
            end.log(&report, resp.status().as_u16(), None);
            resp
        }
        Ok(Answer::Stream(mut head, mut pump)) => {
            report.decorate(&mut head, &end.rid);
            report.stream = true;
            report.ttfc = pump.first_content.map(|t| t.duration_since(received));
            let mut chunks = state.metrics.stream(
                endpoint.operation(),
                report.provider.as_deref().unwrap_or(""),
                report.model.as_deref().unwrap_or(""),
                report.upstream_model.as_deref().unwrap_or(""),
            );
            chunks.chunks(pump.translator.chunks_written());
            pump.chunks = Some(chunks);
            let settle = pump.on_done.take();
            let status = head.status().as_u16();
            pump.on_done = Some(Box::new(move |mut ended: StreamEnd| {
                report.usage = ended.usage.cloned();
                report.cost = report.price();
                ended.cost = report.cost;
                if let Some(f) = settle {
                    f(ended);
                }
                end.log(&report, status, ended.failure);
            }));
            *head.body_mut() = Body::from_stream(pump.into_body());
            head
        }
        Err(e) => {
            // A field, escaped: the message can quote the client's text (a model name with a
            // newline in it must not forge a log line).
            tracing::debug!(request_id = %end.rid, status = e.status, error = %e.message.escape_debug(), "request refused");
            let mut resp = error_response(&e);
            report.decorate(&mut resp, &end.rid);
            end.log(&report, e.status, Some(&e));
            resp
        }
    }
}

/// What logs a request's end and counts it in the metrics.
struct Ended {
    state: Arc<AppState>,
    endpoint: Endpoint,
    rid: String,
    received: Instant,
    /// The request's trace span (none when tracing is off), closed with this.
    span: tracing::Span,
}

impl Ended {
    /// One line per request (target `lightport::access`), and its metrics. Never a key, a
    /// prompt or an answer: only names, numbers and outcomes.
    fn log(&self, r: &Report, status: u16, error: Option<&Error>) {
        let duration = self.received.elapsed();
        let tokens = r.usage.as_ref().map(crate::plan::price::Tokens::from_usage);
        let cost = r.cost;
        let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1e3);
        use super::access::V;
        let attempts = (!r.attempts.is_empty()).then(|| r.attempts.join(","));
        super::access::write(&[
            ("request_id", Some(V::Str(&self.rid))),
            ("endpoint", Some(V::Str(self.endpoint.operation()))),
            ("route", r.route.as_deref().map(V::Str)),
            ("target", r.target.as_deref().map(V::Str)),
            ("provider", r.provider.as_deref().map(V::Str)),
            ("model", r.model.as_deref().map(V::Str)),
            ("upstream_model", r.upstream_model.as_deref().map(V::Str)),
            ("status", Some(V::U64(status.into()))),
            ("error_type", error.map(|e| V::Str(e.kind.as_str()))),
            ("attempts", attempts.as_deref().map(V::Str)),
            ("stream", Some(V::Bool(r.stream))),
            ("duration_ms", Some(V::F64(duration.as_secs_f64() * 1e3))),
            ("upstream_ms", ms(r.upstream).map(V::F64)),
            ("ttfc_ms", ms(r.ttfc).map(V::F64)),
            ("overhead_us", r.overhead.map(|d| V::U64(d.as_micros() as u64))),
            ("prompt_tokens", tokens.map(|t| V::U64(t.prompt))),
            ("completion_tokens", tokens.map(|t| V::U64(t.completion))),
            ("cached_tokens", tokens.map(|t| t.cache_read).filter(|n| *n > 0).map(V::U64)),
            ("cost_usd", cost.map(V::F64)),
            ("unpriced", (cost.is_none() && tokens.is_some()).then_some(V::Bool(true))),
        ]);
        if !self.span.is_none() {
            let s = &self.span;
            s.record("gen_ai.request.model", r.model.as_deref());
            s.record("gen_ai.response.model", r.upstream_model.as_deref());
            s.record("gen_ai.provider.name", r.provider.as_deref());
            s.record("gen_ai.usage.input_tokens", tokens.map(|t| t.prompt));
            s.record("gen_ai.usage.output_tokens", tokens.map(|t| t.completion));
            s.record("http.response.status_code", status);
            s.record("error.type", error.map(|e| e.kind.as_str()));
            s.record("lightport.route", r.route.as_deref());
            s.record("lightport.target", r.target.as_deref());
            s.record("lightport.cost_usd", cost);
            if error.is_some() {
                s.record("otel.status_code", "ERROR");
            }
        }
        self.state.metrics.observe(&super::metrics::Observation {
            operation: self.endpoint.operation(),
            provider: r.provider.as_deref(),
            request_model: r.model.as_deref(),
            response_model: r.upstream_model.as_deref(),
            route: r.route.as_deref(),
            target: r.target.as_deref(),
            status,
            error_type: error.map(|e| e.kind.as_str()),
            duration,
            upstream: r.upstream,
            overhead: r.overhead,
            ttfc: r.ttfc,
            tokens,
            cost,
            attempts: &r.attempts,
        });
    }
}

/// An answer: whole, or a stream's head and the pump that makes its body.
enum Answer {
    Whole(Response),
    Stream(Response, Box<Pump<UpstreamBody>>),
}

/// An upstream's body as a stream of reads.
type UpstreamBody = std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<Bytes, reqwest::Error>> + Send>>;

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let v = v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer "))?.trim();
    (!v.is_empty()).then_some(v)
}

fn header_str(headers: &HeaderMap, name: HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|s| !s.is_empty())
}

/// The gateway key a request presents (when keys are configured), and the client's own
/// provider key. With gateway keys, `Authorization: Bearer` (or `x-api-key`) is the gateway key
/// and never leaves the gateway; the client's provider key, if any, comes in
/// `x-lightport-provider-key`. Without them, `Authorization: Bearer` is the provider key.
fn identify<'h, 'r>(
    router: &'r crate::route::Router,
    headers: &'h HeaderMap,
) -> Result<(Option<&'r GatewayKey>, Option<&'h str>), Error> {
    if !router.requires_key() {
        return Ok((None, bearer(headers)));
    }
    let presented = bearer(headers).or_else(|| header_str(headers, names::X_API_KEY));
    let key = presented.and_then(|k| router.authenticate(k)).ok_or_else(|| {
        Error::new(
            401,
            "authentication_error",
            "a gateway key is required: send 'Authorization: Bearer <key>' (or 'x-api-key')",
        )
        .with_code("invalid_api_key")
    })?;
    Ok((Some(key), header_str(headers, names::PROVIDER_KEY)))
}

/// A future that resolves when a stream must end.
type Deadline = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

async fn proxy(
    state: &AppState,
    headers: &HeaderMap,
    raw: Body,
    endpoint: Endpoint,
    rid: &str,
    report: &mut Report,
    shutdown: Deadline,
) -> Result<Answer, Error> {
    let bytes = body::read(headers, raw, state.config.max_body_bytes).await?;
    // The gateway's own time starts once the client's body is in: upload time is not ours.
    let started = Instant::now();
    let body = body::parse_object(&bytes)?;
    let obj = body.as_object().expect("parse_object gives an object");
    match endpoint {
        Endpoint::Chat => validate::chat(obj)?,
        Endpoint::Embeddings => validate::embeddings(obj)?,
    }
    let model = validate::model(obj)?.to_string();
    report.model = Some(model.clone());
    if state.config.traces {
        // Named now, before an attempt starts the span (a started span keeps its name).
        tracing::Span::current().record("otel.name", format!("{} {model}", endpoint.operation()));
    }
    let router = state.router.load();
    let (key, client_key) = identify(&router, headers)?;
    let engine = state.engine.load();
    let decision = router.decide(&engine, &Facts { model: &model, headers, key, client_key, body: &body })?;
    report.route = decision.route.clone();
    let admission = match key {
        Some(k) => {
            let max_output = ["max_completion_tokens", "max_tokens"].iter().find_map(|f| body.get(*f)?.as_u64());
            let estimate = decision.plan.first().and_then(|p| {
                p.provider.estimate(&p.model, bytes.len(), max_output, super::admission::DEFAULT_OUTPUT_TOKENS)
            });
            Admission::admit(&state.store, k, estimate).await?
        }
        None => Admission::default(),
    };
    let ctx = Attempt {
        state,
        endpoint,
        rid,
        client_key,
        traceparent: headers.get(names::TRACEPARENT).filter(|v| is_traceparent(v.as_bytes())).cloned(),
        started,
        shutdown: std::sync::Mutex::new(Some(shutdown)),
        admission: std::sync::Mutex::new(Some(admission)),
    };
    ctx.run(decision, body, report).await
}

/// A W3C Trace Context `traceparent` (version 00: `00-<32 hex>-<16 hex>-<2 hex>`), neither id
/// all zeros.
fn is_traceparent(v: &[u8]) -> bool {
    let hex = |b: &[u8]| b.iter().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c));
    let zero = |b: &[u8]| b.iter().all(|c| *c == b'0');
    v.len() == 55
        && v.starts_with(b"00-")
        && v[35] == b'-'
        && v[52] == b'-'
        && hex(&v[3..35])
        && hex(&v[36..52])
        && hex(&v[53..55])
        && !zero(&v[3..35])
        && !zero(&v[36..52])
}

/// What every attempt of one request shares.
struct Attempt<'a> {
    state: &'a AppState,
    endpoint: Endpoint,
    rid: &'a str,
    client_key: Option<&'a str>,
    /// The client's W3C `traceparent`, when well formed.
    traceparent: Option<HeaderValue>,
    started: Instant,
    /// The shutdown deadline, taken by the attempt that streams.
    shutdown: std::sync::Mutex<Option<Deadline>>,
    /// The key's limits this request holds, settled by the attempt that answers.
    admission: std::sync::Mutex<Option<Admission>>,
}

/// Whether an attempt's failure counts against its target's circuit breaker: the target itself
/// failed (a server error, unreachable, too slow), not the request or a rate limit.
fn breaker_failure(e: &Error) -> bool {
    matches!(e.cause, Cause::Connect | Cause::Timeout) || matches!(e.cause, Cause::Upstream(s) if s >= 500)
}

/// A target's circuit breaker, in the shared store.
pub(super) fn breaker_key(target: &str) -> String {
    format!("target:{target}")
}

pub(super) fn breaker_config(b: crate::route::Breaker) -> BreakerConfig {
    BreakerConfig { failures: b.failures, cooldown: b.cooldown, ..BreakerConfig::default() }
}

/// How an attempt ended, as `x-lightport-attempts` lists it.
fn outcome(e: &Error) -> String {
    match e.cause {
        Cause::Upstream(s) => s.to_string(),
        Cause::Timeout => "timeout".into(),
        Cause::Connect => "unreachable".into(),
        _ => e.status.to_string(),
    }
}

impl Attempt<'_> {
    /// Try the decision's targets in order: each up to its retries, the next one on a failure a
    /// fallback may help, a typed fallback on its class of error.
    async fn run(&self, decision: Decision, body: Value, report: &mut Report) -> Result<Answer, Error> {
        let Decision { plan, retries, mut typed, last_resort, breakers, .. } = decision;
        let mut queue: VecDeque<Planned> = plan.into();
        let mut failures: Vec<(String, Error)> = Vec::new();
        let mut body = Some(body);
        let mut used_last_resort = last_resort.is_none();
        let mut last_resort = last_resort;
        // The soonest a target cooling down will take requests again.
        let mut cooling: Option<Duration> = None;
        loop {
            let mut resorting = false;
            let Some(planned) = queue.pop_front().or_else(|| {
                used_last_resort = true;
                resorting = true;
                last_resort.take().filter(|_| failures.is_empty())
            }) else {
                break;
            };
            // A target cooling down is skipped; the last resort ignores cool-downs.
            let breaker = planned.breaker().filter(|_| breakers.is_some()).map(breaker_config);
            if let (Some(cfg), false) = (breaker, resorting) {
                if let Ok(BreakerDecision::Reject { retry_after }) =
                    self.state.store.breaker_allow(&breaker_key(&planned.name), &cfg).await
                {
                    report.attempts.push(format!("{}:open", planned.name));
                    cooling = Some(cooling.map_or(retry_after, |c| c.min(retry_after)));
                    continue;
                }
            }
            let mut attempt = 0;
            loop {
                attempt += 1;
                let final_try = queue.is_empty() && typed.is_empty() && used_last_resort && attempt >= retries.attempts;
                let mut request = if final_try { body.take() } else { body.clone() }.expect("kept until the final try");
                request["model"] = Value::String(planned.model.clone());
                let result = self.once(&planned, request, report).await;
                if let Some(cfg) = &breaker {
                    let failed = result.as_ref().err().is_some_and(breaker_failure);
                    let _ = self.state.store.breaker_record(&breaker_key(&planned.name), !failed, cfg).await;
                }
                let error = match result {
                    Ok(answer) => {
                        let status = match &answer {
                            Answer::Whole(r) | Answer::Stream(r, _) => r.status().as_u16(),
                        };
                        report.attempts.push(format!("{}:{status}", planned.name));
                        report.target = Some(planned.name.clone());
                        return Ok(answer);
                    }
                    Err(e) => e,
                };
                report.attempts.push(format!("{}:{}", planned.name, outcome(&error)));
                let retry_wait = match error.retry_after {
                    Some(asked) if asked > retries.retry_after_cap => None,
                    Some(asked) => Some(asked),
                    None => Some(retries.backoff(attempt, crate::route::random_unit())),
                };
                failures.push((planned.name.clone(), error.clone()));
                if error.retryable() && attempt < retries.attempts && !final_try {
                    if let Some(wait) = retry_wait {
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                }
                // A typed fallback for this class of error goes next.
                if let Some(i) = typed.iter().position(|(class, _)| class.matches(&error)) {
                    queue.push_front(typed.remove(i).1);
                } else if !(error.retryable() || error.cause == Cause::Setup) {
                    // The request itself is at fault: another target would refuse it too.
                    return Err(error);
                }
                break;
            }
            if body.is_none() {
                break;
            }
        }
        if failures.is_empty() {
            if let Some(wait) = cooling {
                let mut e =
                    Error::new(503, "overloaded_error", "every target of this route is cooling down after failures")
                        .with_code("targets_unavailable")
                        .with_cause(Cause::Gateway);
                e.retry_after = Some(wait);
                return Err(e);
            }
        }
        Err(all_failed(failures))
    }

    /// One attempt at one target.
    async fn once(&self, planned: &Planned, request: Value, report: &mut Report) -> Result<Answer, Error> {
        let state = self.state;
        let provider = planned.provider.id().to_string();
        report.provider = Some(provider.clone());
        let mut call = Call::new(Arc::clone(&planned.provider), self.endpoint, &request)?
            .with_id(format!("chatcmpl-{}", self.rid))
            .with_stream_limits(state.config.stream_limits);
        if let Some(t) = &planned.target {
            call = call.with_overrides(Arc::clone(&t.overrides));
        }
        let translator = call.stream();
        let up = call.request(request, self.client_key);
        report.dropped = call.dropped().to_vec();
        let mut up = up?;
        // The request's id (and the client's trace context) follow it upstream, so that the
        // provider's logs and ours can be joined.
        if let Ok(v) = HeaderValue::from_str(self.rid) {
            up.headers.insert(names::X_REQUEST_ID, v);
        }
        let span = if state.config.traces {
            tracing::info_span!(
                target: "lightport::trace",
                "attempt",
                otel.name = format!("{} {}", self.endpoint.operation(), planned.model),
                otel.kind = "client",
                gen_ai.operation.name = self.endpoint.operation(),
                gen_ai.provider.name = %provider,
                gen_ai.request.model = %planned.model,
                lightport.target = %planned.name,
                http.response.status_code = tracing::field::Empty,
                error.type = tracing::field::Empty,
                otel.status_code = tracing::field::Empty,
            )
        } else {
            tracing::Span::none()
        };
        if !span.is_none() {
            // The attempt's own context: the upstream's span becomes its child.
            super::traces::inject(&span, &mut up.headers);
        } else if let Some(tp) = self.traceparent.clone() {
            up.headers.insert(names::TRACEPARENT, tp);
        }
        let prepared = self.started.elapsed();
        let waits = planned.timeouts;
        let first_byte = waits.first_byte.unwrap_or(state.config.upstream_timeout);
        report.upstream_model = Some(planned.model.clone());
        report.plan = Some(Arc::clone(&planned.provider));
        let sent = Instant::now();
        let sending = state.upstream.send(&provider, up, waits.connect, first_byte);
        let sent_or_failed =
            if span.is_none() { sending.await } else { tracing::Instrument::instrument(sending, span.clone()).await };
        let resp = sent_or_failed.inspect_err(|e| {
            span.record("error.type", e.kind.as_str());
            span.record("otel.status_code", "ERROR");
        })?;
        let status = resp.status();
        span.record("http.response.status_code", status.as_u16());
        if !status.is_success() {
            let upstream_headers = resp.headers().clone();
            let body = state.upstream.body(&provider, resp, 1 << 20, first_byte).await.unwrap_or_default();
            tracing::debug!(request_id = %self.rid, provider = %provider, upstream_status = status.as_u16(), "upstream error");
            return Err(call.error(status.as_u16(), &upstream_headers, &body));
        }
        if let Some(translator) = translator {
            let idle = waits.idle.unwrap_or(state.config.upstream_timeout);
            let total = waits.total.unwrap_or(state.config.max_stream_duration).min(state.config.max_stream_duration);
            let deadline = tokio::time::Instant::now() + total;
            let shutdown = self
                .shutdown
                .lock()
                .ok()
                .and_then(|mut s| s.take())
                .unwrap_or_else(|| Box::pin(std::future::pending()));
            report.upstream = Some(sent.elapsed());
            let upstream: UpstreamBody = Box::pin(resp.bytes_stream());
            let pump = Pump {
                upstream,
                translator,
                provider: provider.clone(),
                idle,
                deadline,
                shutdown,
                done: false,
                on_done: None,
                held: None,
                first_content: None,
                chunks: None,
            };
            let mut pump = open_stream(pump, first_byte).await?;
            let admission = self.admission.lock().ok().and_then(|mut a| a.take());
            let store = self.state.store.clone();
            let mut headers = HeaderMap::new();
            if let Some(a) = &admission {
                let mut scratch = Response::new(Body::empty());
                a.decorate(&mut scratch);
                headers = scratch.headers().clone();
            }
            // Settled with the cost `handle` computes once, for this and for the log.
            pump.on_done = Some(Box::new(move |ended: StreamEnd| {
                if let Some(a) = admission {
                    let (usage, cost) = (ended.usage.cloned(), ended.cost);
                    tokio::spawn(async move { a.finish(&store, usage.as_ref(), cost).await });
                }
            }));
            let mut head = Response::new(Body::empty());
            let h = head.headers_mut();
            h.extend(headers);
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            report.overhead = Some(prepared);
            return Ok(Answer::Stream(head, Box::new(pump)));
        }
        let total = waits.total.unwrap_or(state.config.upstream_timeout);
        let reply = state.upstream.body(&provider, resp, state.config.max_upstream_body_bytes, total).await?;
        let translated_at = Instant::now();
        report.upstream = Some(translated_at.duration_since(sent));
        let (bytes, usage): (Bytes, Option<Value>) = if call.forwards_response_as_is() {
            // The answer is already canonical: check it is JSON (reading only its usage), and
            // pass the bytes on.
            #[derive(serde::Deserialize)]
            struct UsageOnly {
                usage: Option<Value>,
            }
            let read = serde_json::from_slice::<UsageOnly>(&reply)
                .map_err(|e| Error::bad_gateway(format!("provider '{provider}' answered with invalid JSON: {e}")))?;
            (reply, read.usage)
        } else {
            let answer = call.response(&reply)?;
            let usage = answer.get("usage").cloned();
            (serde_json::to_vec(&answer).expect("JSON values serialise").into(), usage)
        };
        report.overhead = Some(prepared + translated_at.elapsed());
        let mut resp = Response::new(Body::from(bytes));
        resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        report.usage = usage;
        let cost = report.price();
        report.cost = cost;
        match cost {
            Some(c) => {
                if let Ok(v) = HeaderValue::from_str(&format!("{c:.8}")) {
                    resp.headers_mut().insert(names::COST, v);
                }
            }
            // Tokens were spent and no price says what they cost: never shown as free.
            None if report.usage.is_some() => {
                resp.headers_mut().insert(names::COST, HeaderValue::from_static("unpriced"));
            }
            None => {}
        }
        // The answer's tokens and cost are counted before the client has it, so that the next
        // request of the same key sees them.
        let admission = self.admission.lock().ok().and_then(|mut a| a.take());
        if let Some(a) = admission {
            a.decorate(&mut resp);
            a.finish(&self.state.store, report.usage.as_ref(), cost).await;
        }
        Ok(Answer::Whole(resp))
    }
}

/// When every attempt failed: the last error, its message naming each attempt's outcome.
fn all_failed(failures: Vec<(String, Error)>) -> Error {
    let summary: Vec<String> = failures.iter().map(|(t, e)| format!("{t}: {} {}", e.status, e.message)).collect();
    let Some((_, mut last)) = failures.into_iter().next_back() else {
        return Error::new(503, "overloaded_error", "no target could take the request").with_code("no_target");
    };
    if summary.len() > 1 {
        last.message = format!("every target failed ({})", summary.join("; "));
    }
    last
}

/// How a stream ended: the usage it reported, its failure if it failed, and (filled in by
/// `handle`, which knows the price) its cost.
#[derive(Clone, Copy)]
struct StreamEnd<'a> {
    usage: Option<&'a Value>,
    failure: Option<&'a Error>,
    cost: Option<f64>,
}

/// What runs once a stream is over (or its client gone).
type OnDone = Box<dyn FnOnce(StreamEnd) + Send>;

/// A stream's upstream and translator, read one upstream read at a time.
struct Pump<S> {
    upstream: S,
    translator: StreamTranslator,
    provider: String,
    /// The longest wait for the next upstream read.
    idle: Duration,
    /// The stream's time limit.
    deadline: tokio::time::Instant,
    /// Resolves when the gateway's drain reaches its deadline.
    shutdown: Deadline,
    done: bool,
    /// Called once when the stream is over, with the usage it reported.
    on_done: Option<OnDone>,
    /// What was translated before the client's stream began (held until the first content).
    held: Option<Bytes>,
    /// When the first content was read.
    first_content: Option<Instant>,
    /// The stream's share of the metrics (in flight, time per chunk).
    chunks: Option<super::metrics::StreamMetrics>,
}

impl<S> Drop for Pump<S> {
    /// A client that leaves before the end still gets its request settled and logged.
    fn drop(&mut self) {
        if let Some(f) = self.on_done.take() {
            let gone = Error::new(499, "client_closed_request", "the client closed the stream before its end")
                .with_code("client_closed");
            let failure = Some(self.translator.failure().unwrap_or(&gone));
            f(StreamEnd { usage: self.translator.usage(), failure, cost: None });
        }
    }
}

impl<S> Pump<S>
where
    S: futures_util::Stream<Item = Result<Bytes, reqwest::Error>> + Send + Unpin + 'static,
{
    /// Read once (waiting at most `wait`, and never past the stream's deadline) and translate.
    async fn step(&mut self, wait: Duration, out: &mut BytesMut) {
        let until = (tokio::time::Instant::now() + wait).min(self.deadline);
        let read = tokio::select! {
            biased;
            () = &mut self.shutdown => {
                let mut e = Error::new(503, "overloaded_error", "the gateway is shutting down; retry the request")
                    .with_code("shutting_down");
                e.retry_after = Some(Duration::from_secs(1));
                self.done = self.translator.step(StreamInput::Failed(e), out);
                return;
            }
            read = tokio::time::timeout_at(until, self.upstream.next()) => read,
        };
        let done = match read {
            Err(_) => {
                let e = if self.deadline <= tokio::time::Instant::now() {
                    Error::timeout(format!("the stream from provider '{}' ran past its time limit", self.provider))
                } else {
                    let secs = wait.as_secs_f64();
                    Error::timeout(format!("provider '{}' sent nothing for {secs} s", self.provider))
                };
                self.translator.step(StreamInput::Failed(e), out)
            }
            Ok(None) => self.translator.step(StreamInput::End, out),
            Ok(Some(Ok(bytes))) => {
                // Take every upstream piece that is ready already, so that what arrived in one go
                // leaves in one go (one write to the client, not one per event); never wait for
                // the network. The HTTP client hands a response over one body chunk at a time,
                // from its connection task: when no piece is ready, let that task run once (a
                // yield, not a timer) so that chunks it already holds in its read buffer join
                // this write, and stop at the first miss after it.
                let mut done = self.translator.step(StreamInput::Data(&bytes), out);
                let mut yielded = false;
                while !done {
                    match futures_util::FutureExt::now_or_never(self.upstream.next()) {
                        None if yielded => break,
                        None => {
                            tokio::task::yield_now().await;
                            yielded = true;
                        }
                        Some(None) => done = self.translator.step(StreamInput::End, out),
                        Some(Some(Ok(more))) => {
                            done = self.translator.step(StreamInput::Data(&more), out);
                            yielded = false;
                        }
                        Some(Some(Err(e))) => {
                            done = self.translator.step(StreamInput::Failed(request_error(&self.provider, e)), out)
                        }
                    }
                }
                done
            }
            Ok(Some(Err(e))) => self.translator.step(StreamInput::Failed(request_error(&self.provider, e)), out),
        };
        self.finish_if(done);
    }

    fn finish_if(&mut self, done: bool) {
        self.done = done;
        if done {
            if let Some(f) = self.on_done.take() {
                f(StreamEnd { usage: self.translator.usage(), failure: self.translator.failure(), cost: None });
            }
        }
    }

    /// The client's stream: what was held, then the rest as it comes.
    fn into_body(mut self) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send {
        let first = self.held.take();
        if self.done {
            self.finish_if(true);
        }
        let rest = futures_util::stream::unfold(self, |mut p| async move {
            loop {
                if p.done {
                    return None;
                }
                let mut out = BytesMut::new();
                let before = p.translator.chunks_written();
                p.step(p.idle, &mut out).await;
                if !out.is_empty() {
                    if let Some(c) = &mut p.chunks {
                        c.chunks(p.translator.chunks_written() - before);
                    }
                    return Some((Ok(out.freeze()), p));
                }
            }
        });
        futures_util::stream::iter(first.map(Ok)).chain(rest)
    }
}

/// Start a stream: read until its first content (the role chunk alone is held back, never
/// longer), so that an error before any content fails the attempt and can be retried or fall
/// back like an HTTP error. What was read is kept for the client's stream ([`Pump::into_body`]).
async fn open_stream<S>(mut pump: Pump<S>, first_byte: Duration) -> Result<Pump<S>, Error>
where
    S: futures_util::Stream<Item = Result<Bytes, reqwest::Error>> + Send + Unpin + 'static,
{
    let provider = pump.provider.clone();
    let mut held = BytesMut::new();
    let first_by = tokio::time::Instant::now() + first_byte;
    while !pump.done && !pump.translator.content_started() {
        let left = first_by.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return Err(timed_out(&provider, first_byte));
        }
        pump.step(left, &mut held).await;
        if let Some(e) = pump.translator.failure().filter(|_| !pump.translator.content_started()) {
            return Err(e.clone());
        }
    }
    pump.held = (!held.is_empty()).then(|| held.freeze());
    pump.first_content = pump.translator.content_started().then(Instant::now);
    Ok(pump)
}
