//! OpenTelemetry traces over OTLP/HTTP (JSON), off unless an endpoint is given: a span per
//! request (kind server, named `{operation} {model}` as the GenAI conventions name them) and a
//! child per upstream attempt (kind client), whose context goes upstream as `traceparent`. A
//! client's W3C `traceparent` makes the request span its child.
//!
//! Spans are `tracing` spans of target [`TARGET`], turned into OpenTelemetry spans by
//! `tracing-opentelemetry`; when tracing is off none is made, so it costs nothing.

use std::time::Duration;

use axum::http::HeaderMap;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_http::{Bytes, HeaderExtractor, HeaderInjector, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The `tracing` target of the spans exported.
pub const TARGET: &str = "lightport::trace";

/// The exporter's HTTP client: the gateway's own reqwest, on the gateway's runtime. The batch
/// processor exports from a thread of its own, outside any runtime; the request is spawned on
/// the runtime and its `JoinHandle` awaited from there.
#[derive(Debug)]
struct Client {
    http: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl HttpClient for Client {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let http = self.http.clone();
        let sent = self.runtime.spawn(async move {
            let (parts, body) = request.into_parts();
            let mut req = http.request(parts.method, parts.uri.to_string()).body(body);
            for (k, v) in &parts.headers {
                req = req.header(k, v);
            }
            let resp = req.send().await?;
            let status = resp.status();
            // A collector's answer is small; a huge one is not read whole.
            let mut body = Vec::new();
            let mut stream = resp;
            while let Some(chunk) = stream.chunk().await? {
                if body.len() + chunk.len() > 1 << 20 {
                    break;
                }
                body.extend_from_slice(&chunk);
            }
            Ok::<_, reqwest::Error>((status, body))
        });
        let (status, body) = sent.await??;
        let mut resp = Response::new(Bytes::from(body));
        *resp.status_mut() = status;
        Ok(resp)
    }
}

/// The exporting half: kept by `main` to flush what is left at exit.
pub struct Exporter {
    provider: SdkTracerProvider,
}

impl Exporter {
    /// Send the spans not yet sent (bounded wait).
    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown_with_timeout(Duration::from_secs(5)) {
            eprintln!("lightport: flushing traces: {e}");
        }
    }
}

/// A layer exporting [`TARGET`] spans to the OTLP/HTTP collector at `endpoint` (its base URL,
/// e.g. `http://otel-collector:4318`; `/v1/traces` is added unless a path is given).
pub fn layer<S>(
    endpoint: &str,
    runtime: tokio::runtime::Handle,
) -> anyhow::Result<(tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::SdkTracer>, Exporter)>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    let trimmed = endpoint.trim_end_matches('/');
    let has_path = trimmed.split_once("://").is_some_and(|(_, rest)| rest.contains('/'));
    let url = if has_path { trimmed.to_string() } else { format!("{trimmed}/v1/traces") };
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpJson)
        .with_endpoint(url)
        .with_timeout(Duration::from_secs(10))
        .with_http_client(Client { http, runtime })
        .build()?;
    let resource = opentelemetry_sdk::Resource::builder().with_service_name("lightport").build();
    let provider = SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).build();
    let tracer = provider.tracer("lightport");
    // Without activation a span is built when its context is first needed (an attempt's
    // `traceparent`), after the request span is named after its model.
    Ok((tracing_opentelemetry::layer().with_tracer(tracer).with_context_activation(false), Exporter { provider }))
}

/// Make `span` the child of the client's `traceparent`, if it sent one.
pub(crate) fn adopt_parent(span: &tracing::Span, headers: &HeaderMap) {
    if span.is_none() || !headers.contains_key(crate::names::TRACEPARENT) {
        return;
    }
    let cx = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    let _ = span.set_parent(cx);
}

/// Write `span`'s context into an upstream request's headers (`traceparent`).
pub(crate) fn inject(span: &tracing::Span, headers: &mut HeaderMap) {
    if span.is_none() {
        return;
    }
    TraceContextPropagator::new().inject_context(&span.context(), &mut HeaderInjector(headers));
}
