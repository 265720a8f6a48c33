//! Routing: which targets a request may go to, in which order, and how hard to try each. The
//! gateway config file ([`config`]) is compiled once into a [`Router`]; per request,
//! [`Router::decide`] reads the request's facts (model, headers, gateway key, the client's own
//! provider key, request fields) and returns a [`Decision`]. Every decision is generic: the
//! config and the mapping files name the providers, the code never does.

pub mod config;
mod keys;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Map, Value};

pub use config::{ErrorClass, FailMode, LimitsSpec, Period};
pub use keys::GatewayKey;

use crate::call::Overrides;
use crate::engine::Engine;
use crate::error::{Error, LoadError, Problem, ProblemKind};
use crate::expr::glob::GlobSet;
use crate::expr::{escape, Compiler, Defs, Expr, Reads, Scope};
use crate::names;
use crate::plan::load::{locate, parse_yaml, schema_problems, SourceFile};
use crate::plan::{BaseUrl, EnvLookup, Provider, Secret};
use config::{ConfigFile, RetriesOrOff, StickySpec};
use keys::Keys;

/// The JSON Schema of a gateway config file (`schemas/config.schema.json`).
pub fn schema() -> Value {
    serde_json::to_value(schemars::schema_for!(ConfigFile)).expect("a schema serialises")
}

/// Retries of one target.
#[derive(Debug, Clone, PartialEq)]
pub struct Retries {
    /// Attempts per target, the first included.
    pub attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// The longest `Retry-After` honoured.
    pub retry_after_cap: Duration,
}

impl Retries {
    /// One attempt, no retry: the behaviour without a config file.
    pub fn none() -> Retries {
        Retries { attempts: 1, base_delay: Duration::ZERO, max_delay: Duration::ZERO, retry_after_cap: Duration::ZERO }
    }

    fn from_spec(s: &config::RetriesSpec) -> Retries {
        Retries {
            attempts: s.attempts.max(1),
            base_delay: Duration::from_millis(s.base_delay_ms),
            max_delay: Duration::from_millis(s.max_delay_ms),
            retry_after_cap: Duration::from_secs(s.retry_after_cap_s),
        }
    }

    /// The wait before retry number `retry` (1 = the first retry): exponential backoff with full
    /// jitter (a uniform draw below the exponential bound), `jitter` in [0, 1).
    pub fn backoff(&self, retry: u32, jitter: f64) -> Duration {
        let bound = self.base_delay.saturating_mul(1u32 << (retry.saturating_sub(1)).min(20)).min(self.max_delay);
        bound.mul_f64(jitter.clamp(0.0, 1.0))
    }
}

/// Timeouts of one target.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Timeouts {
    pub connect: Option<Duration>,
    pub first_byte: Option<Duration>,
    pub total: Option<Duration>,
    pub idle: Option<Duration>,
}

impl Timeouts {
    fn from_spec(s: Option<&config::TimeoutsSpec>, base: Timeouts) -> Timeouts {
        let secs = |v: Option<f64>| v.filter(|s| *s > 0.0).map(Duration::from_secs_f64);
        match s {
            None => base,
            Some(s) => Timeouts {
                connect: secs(s.connect).or(base.connect),
                first_byte: secs(s.first_byte).or(base.first_byte),
                total: secs(s.total).or(base.total),
                idle: secs(s.idle).or(base.idle),
            },
        }
    }
}

/// A circuit breaker's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Breaker {
    pub failures: u32,
    pub cooldown: Duration,
}

impl Breaker {
    fn from_spec(s: &config::BreakerSpec) -> Breaker {
        Breaker { failures: s.failures.max(1), cooldown: Duration::from_secs_f64(s.cooldown_s.max(0.0)) }
    }
}

/// A configured target.
#[derive(Debug)]
pub struct Target {
    pub name: String,
    pub provider: String,
    pub model: Option<String>,
    /// Base URL, key, headers and default parameters.
    pub overrides: Arc<Overrides>,
    pub timeouts: Timeouts,
    pub breaker: Breaker,
}

/// Where a route may send requests.
#[derive(Debug, Clone, Default)]
pub(crate) struct Only {
    targets: Vec<String>,
    providers: Vec<String>,
}

impl Only {
    fn allows(&self, target: &str, provider: &str) -> bool {
        self.targets.iter().any(|t| t == target) || self.providers.iter().any(|p| p == provider)
    }
}

#[derive(Debug)]
enum Sticky {
    Header(String),
    Field(Vec<String>),
    Conversation,
}

#[derive(Debug)]
struct Route {
    name: String,
    patterns: GlobSet,
    when: Option<Expr>,
    order: Vec<String>,
    split: Vec<(String, u32)>,
    sticky: Option<Sticky>,
    only: Option<Only>,
    retries: Retries,
    fallback: bool,
    typed: Vec<(ErrorClass, String)>,
    last_resort: Option<String>,
}

/// A compiled gateway config. The default (no config file) routes as the mappings say, one
/// attempt per request.
#[derive(Debug, Default)]
pub struct Router {
    targets: HashMap<String, Arc<Target>>,
    routes: Vec<Route>,
    keys: Keys,
    default_retries: Option<Retries>,
    default_breaker: Option<Breaker>,
    default_timeouts: Timeouts,
    trust_fallback_header: bool,
    /// Whether any route has a `when` (so request facts are built only when needed).
    has_conditions: bool,
    /// From the config file's `state`.
    pub redis: Option<String>,
    pub fail_mode: FailMode,
}

/// One planned attempt: a target, or a provider and model chosen without a config target.
#[derive(Debug, Clone)]
pub struct Planned {
    /// The target's name, or `provider/model` for a request routed by the mappings alone.
    pub name: String,
    pub provider: Arc<Provider>,
    pub model: String,
    pub target: Option<Arc<Target>>,
    pub timeouts: Timeouts,
}

impl Planned {
    pub fn breaker(&self) -> Option<Breaker> {
        self.target.as_ref().map(|t| t.breaker)
    }
}

/// What to do with one request.
#[derive(Debug)]
pub struct Decision {
    /// The route that matched, if any.
    pub route: Option<String>,
    /// The targets to try, in order.
    pub plan: Vec<Planned>,
    pub retries: Retries,
    /// Typed fallbacks, tried (once each) when an attempt fails with their class of error.
    pub typed: Vec<(ErrorClass, Planned)>,
    /// Tried when every target of `plan` was skipped for its circuit breaker.
    pub last_resort: Option<Planned>,
    /// Whether the circuit breakers apply (a config with targets).
    pub breakers: Option<Breaker>,
}

/// What the router may read of a request.
pub struct Facts<'a> {
    /// The model the client asked for, as sent.
    pub model: &'a str,
    pub headers: &'a HeaderMap,
    pub key: Option<&'a GatewayKey>,
    /// The client's own provider key (never a gateway key).
    pub client_key: Option<&'a str>,
    pub body: &'a Value,
}

impl Router {
    /// Load a config file against the loaded mappings (targets must name known providers).
    /// Problems come back as `file:line: message`.
    pub fn load(path: &str, text: &str, engine: &Engine, env: EnvLookup<'_>) -> Result<Router, Vec<LoadError>> {
        let src = SourceFile { id: "config".into(), path: path.to_string(), text: text.to_string() };
        let doc = parse_yaml(&src).map_err(|e| vec![e])?;
        let doc = if doc.is_null() { Value::Object(Map::new()) } else { doc };
        let mut problems = Vec::new();
        for e in VALIDATOR.iter_errors(&doc) {
            schema_problems(&e, &mut problems);
        }
        if !problems.is_empty() {
            return Err(locate(&src, problems));
        }
        let file: ConfigFile = serde_json::from_value(doc).map_err(|e| {
            locate(&src, vec![Problem::new("", ProblemKind::Schema, format!("cannot read the file: {e}"))])
        })?;
        compile(file, engine, env).map_err(|p| locate(&src, p))
    }

    /// Whether requests must carry a gateway key.
    pub fn requires_key(&self) -> bool {
        !self.keys.is_empty()
    }

    /// The gateway key a request presents, compared in constant time; `None` when it is not one.
    pub fn authenticate(&self, presented: &str) -> Option<&GatewayKey> {
        self.keys.find(presented)
    }

    /// Add keys (from `LIGHTPORT_API_KEYS`: `name:key` pairs, comma-separated).
    pub fn add_env_keys(&mut self, spec: &str) -> Result<(), String> {
        self.keys.add_env(spec)
    }

    pub fn targets(&self) -> impl Iterator<Item = &Arc<Target>> {
        self.targets.values()
    }

    /// Where a request goes.
    pub fn decide(&self, engine: &Engine, facts: &Facts<'_>) -> Result<Decision, Error> {
        let fact_value = self.has_conditions.then(|| facts_value(facts));
        let route = self.routes.iter().find(|r| {
            r.patterns.matches(facts.model)
                && r.when.as_ref().is_none_or(|w| {
                    let v = fact_value.as_ref().expect("built when a route has a condition");
                    w.holds(&Scope::new(v, &crate::expr::Ctx::default(), &Value::Null).with_request(facts.body))
                })
        });
        let Some(route) = route else { return self.unrouted(engine, facts) };
        if let Some(allowed) = facts.key.and_then(|k| k.routes.as_ref()) {
            if !allowed.iter().any(|r| r == &route.name) {
                return Err(Error::new(
                    403,
                    "permission_error",
                    format!("this key may not use route '{}'", route.name),
                )
                .with_code("route_not_allowed"));
            }
        }
        let within = |name: &str, provider: &str| {
            route.only.as_ref().is_none_or(|o| o.allows(name, provider))
                && facts.key.and_then(|k| k.only.as_ref()).is_none_or(|o| o.allows(name, provider))
        };
        let mut order: Vec<&str> = if route.split.is_empty() {
            route.order.iter().map(String::as_str).collect()
        } else {
            let arm = pick_arm(&route.split, route.sticky.as_ref(), facts);
            let mut o = vec![route.split[arm].0.as_str()];
            if route.fallback {
                o.extend(route.split.iter().enumerate().filter(|(i, _)| *i != arm).map(|(_, (t, _))| t.as_str()));
            }
            o
        };
        if let Some(header) = facts.headers.get(names::FALLBACKS).filter(|_| self.trust_fallback_header) {
            let asked: Vec<&str> =
                header.to_str().unwrap_or("").split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
            if !asked.is_empty() {
                order = asked;
            }
        }
        if !route.fallback {
            order.truncate(1);
        }
        let planned = |name: &str| -> Result<Option<Planned>, Error> {
            let t = self.targets.get(name).ok_or_else(|| {
                Error::invalid(format!("x-lightport-fallbacks names no target '{name}'")).with_code("unknown_target")
            })?;
            if !within(&t.name, &t.provider) {
                return Ok(None);
            }
            self.plan_target(engine, t, facts).map(Some)
        };
        let mut plan = Vec::new();
        for name in order {
            if let Some(p) = planned(name)? {
                plan.push(p);
            }
        }
        if plan.is_empty() {
            return Err(Error::new(
                403,
                "permission_error",
                format!("route '{}' has no target this request may be sent to", route.name),
            )
            .with_code("no_permitted_target"));
        }
        let mut typed = Vec::new();
        for (class, name) in &route.typed {
            if let Some(p) = planned(name)? {
                typed.push((*class, p));
            }
        }
        let last_resort = match &route.last_resort {
            Some(name) => planned(name)?,
            None => None,
        };
        Ok(Decision {
            route: Some(route.name.clone()),
            plan,
            retries: route.retries.clone(),
            typed,
            last_resort,
            breakers: self.default_breaker.or(Some(Breaker::from_spec(&config::BreakerSpec::default()))),
        })
    }

    fn plan_target(&self, engine: &Engine, t: &Arc<Target>, facts: &Facts<'_>) -> Result<Planned, Error> {
        let provider = engine.provider(&t.provider).ok_or_else(|| {
            Error::bad_gateway(format!("target '{}' names provider '{}', which is not loaded", t.name, t.provider))
                .with_code("unknown_provider")
        })?;
        let model = match &t.model {
            Some(m) => m.clone(),
            None => strip_provider(facts.model, &t.provider).to_string(),
        };
        Ok(Planned {
            name: t.name.clone(),
            provider: Arc::clone(provider),
            model,
            target: Some(Arc::clone(t)),
            timeouts: t.timeouts,
        })
    }

    /// A request no route matched: routed by the mappings (a client key's prefix first), one
    /// target, no retry unless the config sets default retries.
    fn unrouted(&self, engine: &Engine, facts: &Facts<'_>) -> Result<Decision, Error> {
        let header = facts.headers.get(names::PROVIDER).and_then(|v| v.to_str().ok());
        let by_key = match (facts.client_key, header, facts.model.contains('/')) {
            (Some(key), None, false) => by_key_prefix(engine, key),
            _ => None,
        };
        let (provider, model) = match by_key {
            Some(p) => (p, facts.model.to_string()),
            None => engine.route(facts.model, header)?,
        };
        if let Some(only) = facts.key.and_then(|k| k.only.as_ref()) {
            if !only.providers.iter().any(|p| p == provider.id()) {
                return Err(Error::new(
                    403,
                    "permission_error",
                    format!("this key may not send requests to provider '{}'", provider.id()),
                )
                .with_code("provider_not_allowed"));
            }
        }
        let name = format!("{}/{model}", provider.id());
        Ok(Decision {
            route: None,
            plan: vec![Planned { name, provider, model, target: None, timeouts: self.default_timeouts }],
            retries: self.default_retries.clone().unwrap_or_else(Retries::none),
            typed: Vec::new(),
            last_resort: None,
            breakers: None,
        })
    }
}

/// The model name without a `provider/` prefix naming this provider.
fn strip_provider<'m>(model: &'m str, provider: &str) -> &'m str {
    model.strip_prefix(provider).and_then(|r| r.strip_prefix('/')).unwrap_or(model)
}

/// The provider whose declared key prefix is the longest that `key` starts with; none when two
/// providers tie (an ambiguous prefix routes nowhere by itself).
fn by_key_prefix(engine: &Engine, key: &str) -> Option<Arc<Provider>> {
    let mut best: Option<(usize, &Arc<Provider>)> = None;
    let mut tie = false;
    for p in engine.providers() {
        if let Some(len) = p.key_prefix_match(key) {
            match best {
                Some((b, _)) if len < b => {}
                Some((b, _)) if len == b => tie = true,
                _ => {
                    best = Some((len, p));
                    tie = false;
                }
            }
        }
    }
    best.filter(|_| !tie).map(|(_, p)| Arc::clone(p))
}

/// The document route conditions see as `$`.
fn facts_value(f: &Facts<'_>) -> Value {
    let mut headers = Map::new();
    for (k, v) in f.headers {
        if let Ok(v) = v.to_str() {
            headers.insert(k.as_str().to_string(), Value::String(v.to_string()));
        }
    }
    let mut m = Map::new();
    m.insert("model".into(), Value::String(f.model.to_string()));
    m.insert("headers".into(), Value::Object(headers));
    if let Some(k) = f.key {
        m.insert("key".into(), serde_json::json!({"name": k.name, "metadata": k.metadata}));
    }
    if let Some(k) = f.client_key {
        m.insert("client_key".into(), Value::String(k.to_string()));
    }
    for field in ["user", "metadata"] {
        if let Some(v) = f.body.get(field) {
            m.insert(field.into(), v.clone());
        }
    }
    Value::Object(m)
}

/// A stable 64-bit hash (FNV-1a): the same input picks the same arm in every replica and
/// every release.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A uniform draw in [0, 1) that needs no seed from the caller (splitmix64 over a counter).
pub fn random_unit() -> f64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static STATE: AtomicU64 = AtomicU64::new(0);
    static SEED: std::sync::LazyLock<u64> = std::sync::LazyLock::new(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(7, |d| d.as_nanos() as u64)
    });
    let mut z = STATE.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed).wrapping_add(*SEED);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// The arm of a weighted split: by a stable hash of the sticky value when there is one, else at
/// random.
fn pick_arm(arms: &[(String, u32)], sticky: Option<&Sticky>, facts: &Facts<'_>) -> usize {
    let total: u64 = arms.iter().map(|(_, w)| u64::from(*w)).sum();
    if total == 0 {
        return 0;
    }
    let sticky_value: Option<Vec<u8>> = sticky.and_then(|s| match s {
        Sticky::Header(h) => facts.headers.get(h.as_str()).map(|v| v.as_bytes().to_vec()),
        Sticky::Field(path) => {
            let v = path.iter().try_fold(facts.body, |v, k| v.get(k.as_str()))?;
            Some(match v {
                Value::String(s) => s.as_bytes().to_vec(),
                other => other.to_string().into_bytes(),
            })
        }
        Sticky::Conversation => conversation_prefix(facts.body),
    });
    let point = match sticky_value {
        Some(bytes) => stable_hash(&bytes) % total,
        None => ((random_unit() * total as f64) as u64).min(total - 1),
    };
    let mut acc = 0;
    for (i, (_, w)) in arms.iter().enumerate() {
        acc += u64::from(*w);
        if point < acc {
            return i;
        }
    }
    arms.len() - 1
}

/// The stable prefix of a conversation: its system/developer messages and its first user
/// message, as JSON text. Later turns change; these do not, and they are what a provider's
/// prompt cache holds first.
fn conversation_prefix(body: &Value) -> Option<Vec<u8>> {
    let messages = body.get("messages")?.as_array()?;
    let mut out = Vec::new();
    for m in messages {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("");
        out.extend_from_slice(m.to_string().as_bytes());
        if role == "user" {
            return Some(out);
        }
    }
    (!out.is_empty()).then_some(out)
}

static VALIDATOR: std::sync::LazyLock<jsonschema::Validator> = std::sync::LazyLock::new(|| {
    let mut s = schema();
    let name = <crate::expr::ExprSpec as schemars::JsonSchema>::schema_name();
    if let Some(defs) = s.get_mut("$defs").and_then(Value::as_object_mut) {
        defs.insert(name.into_owned(), Value::Bool(true));
    }
    jsonschema::validator_for(&s).expect("the generated config schema is a valid JSON Schema")
});

fn compile(file: ConfigFile, engine: &Engine, env: EnvLookup<'_>) -> Result<Router, Vec<Problem>> {
    let mut p = Vec::new();
    let default_timeouts = Timeouts::from_spec(file.defaults.timeouts.as_ref(), Timeouts::default());
    let default_breaker = file.defaults.breaker.as_ref().map(Breaker::from_spec);
    let breaker = default_breaker.unwrap_or_else(|| Breaker::from_spec(&config::BreakerSpec::default()));
    let mut targets = HashMap::new();
    for (name, t) in &file.targets {
        let at = format!("/targets/{}", escape(name));
        if engine.provider(&t.provider).is_none() {
            let known: Vec<&str> = engine.providers().iter().map(|p| p.id()).collect();
            let hint = crate::error::did_you_mean(&t.provider, known.iter().copied())
                .map(|s| format!(" (did you mean '{s}'?)"))
                .unwrap_or_default();
            p.push(Problem::new(
                format!("{at}/provider"),
                ProblemKind::UnknownName,
                format!("no mapping named '{}'{hint}", t.provider),
            ));
        }
        let base_url = t.base_url.as_deref().and_then(|u| {
            BaseUrl::parse(u)
                .map_err(|e| p.push(Problem::new(format!("{at}/base_url"), ProblemKind::InvalidValue, e)))
                .ok()
        });
        let mut headers = Vec::new();
        for (k, v) in &t.headers {
            match (HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(v)) {
                (Ok(n), Ok(v)) => headers.push((n, v)),
                _ => p.push(Problem::new(
                    format!("{at}/headers/{}", escape(k)),
                    ProblemKind::InvalidValue,
                    "not a valid header",
                )),
            }
        }
        let key = match &t.api_key_env {
            Some(var) => env(var).filter(|k| !k.is_empty()).map(Secret),
            None => None,
        };
        targets.insert(
            name.clone(),
            Arc::new(Target {
                name: name.clone(),
                provider: t.provider.clone(),
                model: t.model.clone(),
                overrides: Arc::new(Overrides {
                    base_url,
                    key,
                    headers,
                    params: t.params.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                }),
                timeouts: Timeouts::from_spec(t.timeouts.as_ref(), default_timeouts),
                breaker: t.breaker.as_ref().map(Breaker::from_spec).unwrap_or(breaker),
            }),
        );
    }
    let default_retries = file.defaults.retries.as_ref().map(Retries::from_spec);
    let route_retries = default_retries.clone().unwrap_or_else(|| Retries::from_spec(&config::RetriesSpec::default()));
    let defs = Defs::default();
    let mut routes = Vec::new();
    let mut names = BTreeMap::new();
    for (i, r) in file.routes.iter().enumerate() {
        let at = format!("/routes/{i}");
        if names.insert(r.name.clone(), i).is_some() {
            p.push(Problem::new(
                format!("{at}/name"),
                ProblemKind::InvalidValue,
                format!("a second route named '{}'", r.name),
            ));
        }
        let known = |t: &str, ptr: String, p: &mut Vec<Problem>| {
            if !targets.contains_key(t) {
                let hint = crate::error::did_you_mean(t, targets.keys().map(String::as_str))
                    .map(|s| format!(" (did you mean '{s}'?)"))
                    .unwrap_or_default();
                p.push(Problem::new(ptr, ProblemKind::UnknownName, format!("no target named '{t}'{hint}")));
            }
        };
        for (j, t) in r.targets.iter().enumerate() {
            known(t, format!("{at}/targets/{j}"), &mut p);
        }
        for (j, a) in r.split.iter().enumerate() {
            known(&a.target, format!("{at}/split/{j}/target"), &mut p);
        }
        for (j, f) in r.fallback_on.iter().enumerate() {
            known(&f.target, format!("{at}/fallback_on/{j}/target"), &mut p);
        }
        if let Some(t) = &r.last_resort {
            known(t, format!("{at}/last_resort"), &mut p);
        }
        if r.targets.is_empty() == r.split.is_empty() {
            p.push(Problem::new(at.clone(), ProblemKind::InvalidValue, "a route has either `targets` or `split`"));
        }
        if let Some(only) = &r.only {
            for (j, t) in r.targets.iter().chain(r.split.iter().map(|a| &a.target)).enumerate() {
                if let Some(target) = targets.get(t) {
                    if !only.targets.contains(t) && !only.providers.contains(&target.provider) {
                        p.push(Problem::new(
                            format!("{at}/targets/{j}"),
                            ProblemKind::InvalidValue,
                            format!("target '{t}' is outside the route's `only` set"),
                        ));
                    }
                }
            }
        }
        let when = r.when.as_ref().map(|w| {
            let mut reads = Reads::default();
            Compiler::new(&defs, &mut p, &mut reads).compile(w, &format!("{at}/when"))
        });
        let patterns = match &r.model {
            Some(m) => GlobSet::new(m.list()),
            None => GlobSet::new(["*"]),
        };
        routes.push(Route {
            name: r.name.clone(),
            patterns,
            when,
            order: r.targets.clone(),
            split: r.split.iter().map(|a| (a.target.clone(), a.weight)).collect(),
            sticky: r.sticky.as_ref().map(|s| match s {
                StickySpec::Header(h) => Sticky::Header(h.to_ascii_lowercase()),
                StickySpec::Field(f) => Sticky::Field(f.split('.').map(str::to_string).collect()),
                StickySpec::Conversation(_) => Sticky::Conversation,
            }),
            only: r.only.as_ref().map(|o| Only { targets: o.targets.clone(), providers: o.providers.clone() }),
            retries: match &r.retries {
                None => route_retries.clone(),
                Some(RetriesOrOff::Off(_)) => Retries::none(),
                Some(RetriesOrOff::On(spec)) => Retries::from_spec(spec),
            },
            fallback: r.fallback.unwrap_or(true),
            typed: r.fallback_on.iter().map(|f| (f.error, f.target.clone())).collect(),
            last_resort: r.last_resort.clone(),
        });
    }
    let mut keys = Keys::default();
    for (i, k) in file.keys.iter().enumerate() {
        if let Err(msg) = keys.add_hashed(k) {
            p.push(Problem::new(format!("/keys/{i}/sha256"), ProblemKind::InvalidValue, msg));
        }
    }
    if !p.is_empty() {
        return Err(p);
    }
    let has_conditions = routes.iter().any(|r| r.when.is_some());
    let state = file.state.as_ref();
    Ok(Router {
        targets,
        routes,
        keys,
        default_retries,
        default_breaker,
        default_timeouts,
        trust_fallback_header: file.trust_fallback_header,
        has_conditions,
        redis: state.and_then(|s| s.redis.clone()),
        fail_mode: state.and_then(|s| s.on_failure).unwrap_or_default(),
    })
}

impl ErrorClass {
    /// Whether a translated error belongs to this class.
    pub fn matches(self, e: &Error) -> bool {
        let code = e.code.as_deref().unwrap_or("");
        match self {
            ErrorClass::ContextWindow => code == "context_length_exceeded",
            ErrorClass::ContentPolicy => {
                matches!(code, "content_filter" | "content_policy_violation") || e.kind == "content_filter"
            }
            ErrorClass::Quota => code == "insufficient_quota" || e.kind == "insufficient_quota",
            ErrorClass::RateLimit => e.status == 429,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_full_jitter() {
        let r = Retries {
            attempts: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(350),
            retry_after_cap: Duration::from_secs(1),
        };
        assert_eq!(r.backoff(1, 0.999_999).as_millis(), 99);
        assert_eq!(r.backoff(2, 0.5).as_millis(), 100);
        assert_eq!(r.backoff(3, 1.0).as_millis(), 350);
        assert_eq!(r.backoff(9, 0.0), Duration::ZERO);
    }

    #[test]
    fn random_draws_are_uniform_enough() {
        let n = 20_000;
        let below_half = (0..n).filter(|_| random_unit() < 0.5).count();
        assert!((9_500..10_500).contains(&below_half), "{below_half}");
    }
}
