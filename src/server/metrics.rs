//! `GET /metrics`: Prometheus (OpenMetrics text) series for every request, named after
//! OpenTelemetry's GenAI semantic conventions where one exists (v1.41.0, the last release in
//! open-telemetry/semantic-conventions: `gen_ai.client.operation.duration`,
//! `gen_ai.client.token.usage`, `gen_ai.client.operation.time_to_first_chunk`,
//! `gen_ai.client.operation.time_per_output_chunk`; attributes `gen_ai.operation.name`,
//! `gen_ai.provider.name`, `gen_ai.request.model`, `gen_ai.response.model`, `error.type`,
//! `gen_ai.token.type`), in their Prometheus form (dots as underscores, seconds as `_seconds`);
//! the gateway's own series are `lightport_*`.
//!
//! Labels are bounded: a model or target label takes at most `max_models` distinct names (then
//! `other`), and only for requests the router placed, so random model names add no series; any
//! label can be switched off.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::plan::price::Tokens;

/// A series' labels: only the ones switched on.
pub(crate) type Labels = Vec<(&'static str, Arc<str>)>;

/// Buckets of the GenAI duration histograms (seconds), as the conventions advise.
const DURATION_BUCKETS: [f64; 14] =
    [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92];
/// Buckets of the token histogram, as the conventions advise.
const TOKEN_BUCKETS: [f64; 14] = [
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0, 16777216.0,
    67108864.0,
];
/// The gateway's own time per request is microseconds, not the seconds of a model call.
const OVERHEAD_BUCKETS: [f64; 12] =
    [0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05];

/// What `/metrics` reports and how.
#[derive(Debug, Clone)]
pub struct MetricsConfig {
    /// Distinct model names a model label takes before it says `other`.
    pub max_models: usize,
    /// Labels left out of every series (by their Prometheus name, e.g. `gen_ai_request_model`).
    pub omit_labels: HashSet<String>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig { max_models: 200, omit_labels: HashSet::new() }
    }
}

type Hist = Family<Labels, Histogram, fn() -> Histogram>;

/// The gateway's series.
pub struct Metrics {
    registry: Registry,
    config: MetricsConfig,
    request_models: Bounded,
    response_models: Bounded,
    targets: Bounded,
    error_types: Bounded,
    requests: Family<Labels, Counter>,
    duration: Hist,
    tokens: Hist,
    ttfc: Hist,
    per_chunk: Hist,
    upstream: Hist,
    overhead: Hist,
    token_count: Family<Labels, Counter>,
    cost: Family<Labels, Counter<f64, AtomicU64>>,
    unpriced: Family<Labels, Counter>,
    attempts: Family<Labels, Counter>,
    retries: Family<Labels, Counter>,
    fallbacks: Family<Labels, Counter>,
    breaker_open: Family<Labels, Gauge>,
    streams: Gauge,
    /// A request's series handles by its labels (see [`Metrics::observe`]).
    series: Mutex<HashMap<String, Arc<Series>>>,
    attempt_counters: Mutex<HashMap<String, Counter>>,
}

fn durations() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}
fn token_buckets() -> Histogram {
    Histogram::new(TOKEN_BUCKETS)
}
fn overhead_buckets() -> Histogram {
    Histogram::new(OVERHEAD_BUCKETS)
}

/// One request as the metrics see it.
pub(crate) struct Observation<'a> {
    pub operation: &'static str,
    pub provider: Option<&'a str>,
    pub request_model: Option<&'a str>,
    pub response_model: Option<&'a str>,
    pub route: Option<&'a str>,
    pub target: Option<&'a str>,
    pub status: u16,
    pub error_type: Option<&'a str>,
    pub duration: Duration,
    pub upstream: Option<Duration>,
    pub overhead: Option<Duration>,
    pub ttfc: Option<Duration>,
    pub tokens: Option<Tokens>,
    pub cost: Option<f64>,
    /// `target:outcome` per attempt.
    pub attempts: &'a [String],
}

impl Metrics {
    pub fn new(config: MetricsConfig, reloads: &crate::reload::ReloadStatus) -> Metrics {
        let mut registry = Registry::default();
        let m = Metrics {
            config,
            request_models: Bounded::default(),
            response_models: Bounded::default(),
            targets: Bounded::default(),
            error_types: Bounded::default(),
            requests: Family::default(),
            duration: Family::new_with_constructor(durations),
            tokens: Family::new_with_constructor(token_buckets),
            ttfc: Family::new_with_constructor(durations),
            per_chunk: Family::new_with_constructor(durations),
            upstream: Family::new_with_constructor(durations),
            overhead: Family::new_with_constructor(overhead_buckets),
            token_count: Family::default(),
            cost: Family::default(),
            unpriced: Family::default(),
            attempts: Family::default(),
            retries: Family::default(),
            fallbacks: Family::default(),
            breaker_open: Family::default(),
            streams: Gauge::default(),
            series: Mutex::new(HashMap::new()),
            attempt_counters: Mutex::new(HashMap::new()),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register("lightport_requests", "Requests answered, by outcome", m.requests.clone());
        r.register_with_unit(
            "gen_ai_client_operation_duration",
            "GenAI operation duration (request received to answer or stream end)",
            Unit::Seconds,
            m.duration.clone(),
        );
        r.register("gen_ai_client_token_usage", "Tokens used per request, by gen_ai_token_type", m.tokens.clone());
        r.register_with_unit(
            "gen_ai_client_operation_time_to_first_chunk",
            "Streams: time from the request to its first content chunk",
            Unit::Seconds,
            m.ttfc.clone(),
        );
        r.register_with_unit(
            "gen_ai_client_operation_time_per_output_chunk",
            "Streams: time between two output chunks",
            Unit::Seconds,
            m.per_chunk.clone(),
        );
        r.register_with_unit(
            "lightport_upstream_duration",
            "The answering attempt's upstream time (to its headers for a stream, its whole body otherwise)",
            Unit::Seconds,
            m.upstream.clone(),
        );
        r.register_with_unit(
            "lightport_overhead",
            "The gateway's own time per request, upstream excluded",
            Unit::Seconds,
            m.overhead.clone(),
        );
        r.register(
            "lightport_tokens",
            "Tokens by type: input, output, cache_read, cache_write, reasoning",
            m.token_count.clone(),
        );
        r.register("lightport_cost_usd", "Cost of the answers in US dollars, from their usage", m.cost.clone());
        r.register(
            "lightport_unpriced_requests",
            "Answers that reported usage for a model without a price (their cost is unknown, not zero)",
            m.unpriced.clone(),
        );
        r.register("lightport_upstream_attempts", "Upstream attempts by target and outcome", m.attempts.clone());
        r.register("lightport_retries", "Attempts that retried the same target", m.retries.clone());
        r.register("lightport_fallbacks", "Attempts that moved on to another target", m.fallbacks.clone());
        r.register(
            "lightport_circuit_breaker_open",
            "1 while a target's circuit breaker is open",
            m.breaker_open.clone(),
        );
        r.register("lightport_streams_in_flight", "Streams open now", m.streams.clone());
        r.register("lightport_reloads", "Mapping and config reloads, by result", reloads.counter.clone());
        r.register(
            "lightport_last_good_reload_timestamp_seconds",
            "When the mappings and config last loaded without a problem (Unix time)",
            reloads.last_good.clone(),
        );
        Metrics { registry, ..m }
    }

    /// A configured target's circuit breaker: open or not.
    pub(crate) fn breaker_open(&self, target: &str, open: bool) {
        self.breaker_open.get_or_create(&self.labels(&[("lightport_target", Arc::from(target))])).set(i64::from(open));
    }

    /// The OpenMetrics text of every series.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(16 << 10);
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }

    /// Model labels: each one of at most `max_models` names, then `other`.
    fn request_model(&self, name: Option<&str>) -> Arc<str> {
        self.request_models.label(name, self.config.max_models)
    }

    fn response_model(&self, name: Option<&str>) -> Arc<str> {
        self.response_models.label(name, self.config.max_models)
    }

    fn labels(&self, pairs: &[(&'static str, Arc<str>)]) -> Labels {
        pairs.iter().filter(|(k, _)| !self.config.omit_labels.contains(*k)).cloned().collect()
    }

    /// Count one finished request in every series it belongs to. The handles of a request's
    /// series are found once per distinct label set and kept ([`Series`]), so a request costs
    /// one lookup of a short key, not a hash of every family's labels.
    pub(crate) fn observe(&self, o: &Observation) {
        // Model labels only for requests the router placed.
        let placed = o.provider.is_some();
        let mut key = String::with_capacity(128);
        for part in [
            o.operation,
            o.provider.unwrap_or(""),
            if placed { o.request_model.unwrap_or("") } else { "" },
            if placed { o.response_model.unwrap_or("") } else { "" },
            o.route.unwrap_or(""),
            o.target.unwrap_or(""),
            o.error_type.unwrap_or(""),
        ] {
            key.push_str(part);
            key.push('\u{0}');
        }
        let _ = std::fmt::Write::write_fmt(&mut key, format_args!("{}", o.status));
        let series = cached(&self.series, &key, || Arc::new(self.series_for(o)));
        series.requests.inc();
        series.duration.observe(o.duration.as_secs_f64());
        if let Some(t) = o.ttfc {
            series.ttfc.observe(t.as_secs_f64());
        }
        if let Some(u) = o.upstream {
            series.upstream.observe(u.as_secs_f64());
        }
        if let Some(d) = o.overhead {
            series.overhead.observe(d.as_secs_f64());
        }
        if let Some(t) = o.tokens {
            series.input.observe(t.prompt as f64);
            series.output.observe(t.completion as f64);
            for (counter, n) in
                series.token_counts.iter().zip([t.prompt, t.completion, t.cache_read, t.cache_write, t.reasoning])
            {
                counter.inc_by(n);
            }
        }
        match (o.cost, o.tokens) {
            (Some(c), _) => {
                series.cost.inc_by(c);
            }
            (None, Some(_)) => {
                series.unpriced.inc();
            }
            (None, None) => {}
        }
        let mut previous: Option<&str> = None;
        for a in o.attempts {
            let (target, _) = a.rsplit_once(':').unwrap_or((a, ""));
            self.attempt(a).inc();
            match previous {
                Some(p) if p == target => {
                    let l =
                        self.labels(&[("lightport_target", self.targets.label(Some(target), self.config.max_models))]);
                    self.retries.get_or_create(&l).inc();
                }
                Some(_) => {
                    let route = Arc::<str>::from(o.route.unwrap_or(""));
                    self.fallbacks.get_or_create(&self.labels(&[("lightport_route", route)])).inc();
                }
                None => {}
            }
            previous = Some(target);
        }
    }

    /// The counter of one `target:outcome` attempt.
    fn attempt(&self, a: &str) -> Counter {
        cached(&self.attempt_counters, a, || {
            let (target, outcome) = a.rsplit_once(':').unwrap_or((a, ""));
            let label = self.targets.label(Some(target), self.config.max_models);
            self.attempts
                .get_or_create_owned(&self.labels(&[("lightport_target", label), ("outcome", Arc::from(outcome))]))
        })
    }

    /// The handles of every series one kind of request counts in.
    fn series_for(&self, o: &Observation) -> Series {
        let s = |v: Option<&str>| Arc::<str>::from(v.unwrap_or(""));
        let placed = o.provider.is_some();
        let request_model = if placed { self.request_model(o.request_model) } else { Arc::from("") };
        let response_model = if placed { self.response_model(o.response_model) } else { Arc::from("") };
        // Without a config, a target is named `provider/model`: as bounded as model names.
        let target = self.targets.label(o.target, self.config.max_models);
        let (op, provider, route) = (Arc::<str>::from(o.operation), s(o.provider), s(o.route));
        // Error types come from mappings and upstreams: bounded like model names.
        let error_type = self.error_types.label(o.error_type, 50);
        let genai = [
            ("gen_ai_operation_name", Arc::clone(&op)),
            ("gen_ai_provider_name", Arc::clone(&provider)),
            ("gen_ai_request_model", Arc::clone(&request_model)),
            ("gen_ai_response_model", Arc::clone(&response_model)),
            ("lightport_route", Arc::clone(&route)),
            ("lightport_target", Arc::clone(&target)),
        ];
        let with = |extra: &[(&'static str, Arc<str>)]| {
            let mut l = genai.to_vec();
            l.extend_from_slice(extra);
            self.labels(&l)
        };
        let outcome = with(&[
            ("http_response_status_code", Arc::from(o.status.to_string())),
            ("error_type", Arc::clone(&error_type)),
        ]);
        let by_target = self.labels(&[("gen_ai_provider_name", Arc::clone(&provider)), ("lightport_target", target)]);
        let by_model =
            [("gen_ai_provider_name", Arc::clone(&provider)), ("gen_ai_response_model", Arc::clone(&response_model))];
        let token_count = |kind: &'static str| {
            let mut l = by_model.to_vec();
            l.push(("type", Arc::from(kind)));
            self.token_count.get_or_create_owned(&self.labels(&l))
        };
        Series {
            requests: self.requests.get_or_create_owned(&outcome),
            duration: self.duration.get_or_create_owned(&with(&[("error_type", Arc::clone(&error_type))])),
            ttfc: self.ttfc.get_or_create_owned(&self.labels(&genai)),
            upstream: self.upstream.get_or_create_owned(&by_target),
            overhead: self
                .overhead
                .get_or_create_owned(&self.labels(&[("gen_ai_provider_name", Arc::clone(&provider))])),
            input: self.tokens.get_or_create_owned(&with(&[("gen_ai_token_type", Arc::from("input"))])),
            output: self.tokens.get_or_create_owned(&with(&[("gen_ai_token_type", Arc::from("output"))])),
            token_counts: ["input", "output", "cache_read", "cache_write", "reasoning"].map(token_count),
            unpriced: self.unpriced.get_or_create_owned(&self.labels(&by_model)),
            cost: self.cost.get_or_create_owned(&self.labels(&[
                ("gen_ai_provider_name", provider),
                ("gen_ai_response_model", response_model),
                ("lightport_route", route),
            ])),
        }
    }

    /// A stream opened: counted in flight until the returned guard drops. Its chunk gaps go to
    /// the per-chunk histogram through [`StreamMetrics::chunk`].
    pub(crate) fn stream(
        &self,
        operation: &'static str,
        provider: &str,
        request_model: &str,
        response_model: &str,
    ) -> StreamMetrics {
        self.streams.inc();
        let labels = self.labels(&[
            ("gen_ai_operation_name", Arc::from(operation)),
            ("gen_ai_provider_name", Arc::from(provider)),
            ("gen_ai_request_model", self.request_model(Some(request_model))),
            ("gen_ai_response_model", self.response_model(Some(response_model))),
        ]);
        StreamMetrics {
            per_chunk: self.per_chunk.get_or_create_owned(&labels),
            streams: self.streams.clone(),
            last: None,
        }
    }
}

/// A label's values: at most `max` distinct ones, then `other`.
#[derive(Default)]
struct Bounded(Mutex<HashSet<Arc<str>>>);

impl Bounded {
    fn label(&self, name: Option<&str>, max: usize) -> Arc<str> {
        let Some(name) = name else { return Arc::from("") };
        let mut seen = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(known) = seen.get(name) {
            return Arc::clone(known);
        }
        if seen.len() >= max {
            return Arc::from("other");
        }
        let name: Arc<str> = Arc::from(name);
        seen.insert(Arc::clone(&name));
        name
    }
}

/// The handles of the series one kind of request (same labels) counts in.
struct Series {
    requests: Counter,
    duration: Histogram,
    ttfc: Histogram,
    upstream: Histogram,
    overhead: Histogram,
    input: Histogram,
    output: Histogram,
    token_counts: [Counter; 5],
    cost: Counter<f64, AtomicU64>,
    unpriced: Counter,
}

/// Label sets whose handles are kept.
const MAX_SERIES: usize = 10_000;

/// The value kept for `key`, made and kept (up to [`MAX_SERIES`] keys) on first use. Every label
/// is bounded, so their products are too; the cap is a backstop.
fn cached<V: Clone>(cache: &Mutex<HashMap<String, V>>, key: &str, make: impl FnOnce() -> V) -> V {
    if let Some(v) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(key) {
        return v.clone();
    }
    let made = make();
    let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
    if cache.len() < MAX_SERIES {
        cache.insert(key.to_string(), made.clone());
    }
    made
}

/// One open stream's share of the metrics.
pub(crate) struct StreamMetrics {
    per_chunk: Histogram,
    streams: Gauge,
    last: Option<std::time::Instant>,
}

impl StreamMetrics {
    /// `n` output chunks left for the client now, in one write: the first after the time since
    /// the previous write, the others with none between them (they left in the same write).
    pub fn chunks(&mut self, n: u64) {
        if n == 0 {
            return;
        }
        let now = std::time::Instant::now();
        if let Some(last) = self.last.replace(now) {
            self.per_chunk.observe(now.duration_since(last).as_secs_f64());
        }
        for _ in 1..n {
            self.per_chunk.observe(0.0);
        }
    }
}

impl Drop for StreamMetrics {
    fn drop(&mut self) {
        self.streams.dec();
    }
}
