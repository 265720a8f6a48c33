//! A mapping file compiled into a plan: every path, template, table and header parsed and checked
//! once. A plan that compiled cannot fail at run time for a reason its file could have revealed.

#[cfg_attr(not(feature = "server"), allow(dead_code, unused_imports))]
mod auth;
pub(crate) mod base_url;
pub(crate) mod errors;
pub(crate) mod load;
pub(crate) mod price;
pub(crate) mod stream;
pub(crate) mod template;

use std::collections::BTreeMap;
use std::sync::Arc;

use http::{HeaderName, HeaderValue, Method};
use serde_json::Value;

use crate::error::{Problem, ProblemKind};
use crate::expr::glob::GlobSet;
use crate::expr::{escape, Compiler, DefSpec, Defs, Expr, Reads};
use crate::spec::{ClientKeyPass, EndpointSpec, ErrorSpec, MappingFile, ParamAction, ParamPolicy};
pub use base_url::BaseUrl;
use errors::{ErrorFields, Guard};
use stream::StreamPlan;
use template::{Template, TemplateVars};

pub(crate) use crate::auth::Secret;

#[cfg_attr(not(feature = "server"), allow(unused_imports))]
pub(crate) use auth::{Auth, Credentials, TokenGrant};

/// One provider, compiled from its mapping file and ready to serve.
#[derive(Debug)]
pub struct Provider {
    pub(crate) id: String,
    pub(crate) name: String,
    /// From `<ID>_BASE_URL`, else the file.
    pub(crate) base_url: Option<BaseUrl>,
    /// How a key travels upstream.
    pub(crate) auth: Auth,
    /// The gateway's key (`<ID>_API_KEY`, or the variable the file names).
    pub(crate) key: Option<Secret>,
    /// Credentials beyond a key (a signature, an OAuth grant), when the gateway holds them.
    pub(crate) credentials: Option<Credentials>,
    /// What an operator could set to authenticate, for the message when nothing is.
    pub(crate) auth_wanted: Vec<String>,
    /// Every way the file authenticates (`header authorization, aws-sigv4`), for the table.
    pub(crate) auth_kind: String,
    pub(crate) headers: Vec<HeaderPlan>,
    /// How the client's own keys for this provider begin.
    pub(crate) key_prefixes: Vec<String>,
    /// Which client keys go upstream when the gateway holds no key.
    pub(crate) client_key_pass: ClientKeyPass,
    pub(crate) vars: Vec<(String, String)>,
    /// `vars` as the JSON object transforms see in `$ctx.vars`, built once.
    pub(crate) vars_value: Arc<Value>,
    /// The id as transforms see it in `$ctx.provider`, built once.
    pub(crate) id_value: Arc<Value>,
    pub(crate) patterns: GlobSet,
    pub(crate) models: Vec<String>,
    pub(crate) prices: price::Prices,
    pub(crate) chat: Option<EndpointPlan>,
    pub(crate) embeddings: Option<EndpointPlan>,
    /// The file it came from, for messages.
    pub(crate) source: String,
    /// A base for other files only (`abstract: true`).
    pub(crate) is_abstract: bool,
    /// Warnings of its file (pointers until the loader gives them lines).
    pub(crate) warnings: Vec<Problem>,
}

impl Provider {
    /// The provider's id: its mapping file's name (`openai` for `openai.yaml`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Its human-readable name (`OpenAI`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The models `GET /v1/models` lists for it (without the `provider/` prefix).
    pub fn models(&self) -> &[String] {
        &self.models
    }

    /// The base URL calls go to, when one is known.
    pub fn base_url(&self) -> Option<&str> {
        self.base_url.as_ref().map(BaseUrl::as_str)
    }

    /// How calls authenticate: every way the file offers (`header authorization`, `query key`,
    /// `aws-sigv4`, `oauth-jwt-bearer`, `oauth-client-credentials`, `none`).
    pub fn auth_kind(&self) -> &str {
        &self.auth_kind
    }

    /// The file the provider was compiled from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// What an answer of `model` that reported `usage` (an OpenAI usage object) cost, in US
    /// dollars; `None` when the model has no price in the mapping file.
    pub fn cost(&self, model: &str, usage: &Value) -> Option<f64> {
        Some(price::cost(self.prices.of(model)?, &price::Tokens::from_usage(usage)))
    }

    /// Whether the model has a price.
    pub fn priced(&self, model: &str) -> bool {
        self.prices.of(model).is_some()
    }

    /// An upper estimate of a request's cost before it is sent: its body's size as prompt
    /// tokens (about four bytes a token, rounded up) and its output limit (default
    /// `default_output` tokens) at this model's prices.
    pub fn estimate(
        &self,
        model: &str,
        request_bytes: usize,
        max_output: Option<u64>,
        default_output: u64,
    ) -> Option<f64> {
        let price = self.prices.of(model)?;
        let tokens = price::Tokens {
            prompt: (request_bytes as u64).div_ceil(4),
            completion: max_output.unwrap_or(default_output),
            ..Default::default()
        };
        Some(price::cost(price, &tokens))
    }

    /// Whether a model name matches one of the provider's routing patterns.
    pub fn matches(&self, model: &str) -> bool {
        self.patterns.matches(model)
    }

    /// Whether `key` looks like one of this provider's keys (the length of the longest matching
    /// prefix, for choosing between providers whose prefixes overlap).
    pub fn key_prefix_match(&self, key: &str) -> Option<usize> {
        self.key_prefixes.iter().filter(|p| key.starts_with(p.as_str())).map(String::len).max()
    }

    /// Whether a client's key may be sent to this provider (when the gateway holds none).
    pub(crate) fn accepts_client_key(&self, key: &str) -> bool {
        match self.client_key_pass {
            ClientKeyPass::Any => true,
            ClientKeyPass::Never => false,
            ClientKeyPass::Prefixed => self.key_prefix_match(key).is_some(),
        }
    }

    pub(crate) fn endpoint(&self, endpoint: Endpoint) -> Option<&EndpointPlan> {
        match endpoint {
            Endpoint::Chat => self.chat.as_ref(),
            Endpoint::Embeddings => self.embeddings.as_ref(),
        }
    }
}

/// Which endpoint of a provider a call is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `POST /v1/chat/completions`.
    Chat,
    /// `POST /v1/embeddings`.
    Embeddings,
}

impl Endpoint {
    /// How messages name it.
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Chat => "chat completions",
            Endpoint::Embeddings => "embeddings",
        }
    }

    /// Its `gen_ai.operation.name` in OpenTelemetry's GenAI conventions.
    pub fn operation(self) -> &'static str {
        match self {
            Endpoint::Chat => "chat",
            Endpoint::Embeddings => "embeddings",
        }
    }
}

/// A header sent upstream: a fixed value built once, or a template rendered per call.
#[derive(Debug)]
pub(crate) struct HeaderPlan {
    pub name: HeaderName,
    pub template: Template,
    pub fixed: Option<HeaderValue>,
}

/// What to do with one request parameter.
#[derive(Debug)]
pub(crate) enum Policy {
    Drop,
    Reject,
    Keep,
    DropUnless(Vec<Value>),
    RejectUnless(Vec<Value>),
    DropWhen(Expr),
    RejectWhen(Expr),
    Rename(String),
}

#[derive(Debug)]
pub(crate) struct Params {
    pub rules: Vec<(String, Policy)>,
    /// For top-level fields the request transform does not read and no rule names.
    pub unread: Policy,
    pub reads: Reads,
}

#[derive(Debug)]
pub(crate) struct EndpointPlan {
    pub method: Method,
    pub path: Template,
    pub stream_path: Option<Template>,
    pub query: Vec<(String, Template)>,
    pub stream_query: Vec<(String, Template)>,
    pub headers: Vec<HeaderPlan>,
    pub params: Params,
    pub request: Expr,
    pub response: Expr,
    pub stream: Option<Arc<StreamPlan>>,
    pub errors: ErrorFields,
    pub refuse: Vec<Guard>,
    pub fail_on: Vec<Guard>,
}

/// Words that mark an environment variable as a secret: vars never read one.
const SECRET_WORDS: &[&str] = &["KEY", "SECRET", "TOKEN", "PASSWORD", "PASSWD", "CREDENTIAL", "CREDENTIALS"];

/// The environment-variable prefix of a provider id: upper-cased, `-` as `_`.
/// A template over `vars` rendered once, when the file is loaded (a base URL, a region, a token
/// URL); `None` (and a problem at `ptr`) when it does not compile.
pub(crate) fn render_load_template(
    text: &str,
    vars: &[(String, String)],
    ptr: &str,
    p: &mut Vec<Problem>,
) -> Option<String> {
    if !text.contains("{{") {
        return Some(text.to_string());
    }
    match Template::compile(text) {
        Ok(t) => Some(t.render_string(&TemplateVars { model: "", stream: false, vars }, false)),
        Err(e) => {
            p.push(Problem::new(ptr, ProblemKind::InvalidTemplate, e));
            None
        }
    }
}

pub(crate) fn env_prefix(id: &str) -> String {
    id.to_ascii_uppercase().replace(['-', '.'], "_")
}

/// Where a plan takes its environment from (a function, so tests and `check` can pass their own).
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Compile one provider's (merged) mapping file.
pub(crate) fn compile_provider(
    id: &str,
    source: &str,
    file: MappingFile,
    env: EnvLookup<'_>,
) -> Result<Provider, Vec<Problem>> {
    let mut p = Vec::new();
    let prefix = env_prefix(id);
    let mut vars: Vec<(String, String)> = Vec::with_capacity(file.vars.len());
    for (k, v) in &file.vars {
        let name = format!("{prefix}_{}", k.to_ascii_uppercase());
        // Vars are visible to transforms (`$ctx.vars`) and may end up in a URL or an answer:
        // they never read a variable whose name says it holds a secret.
        if name.split('_').any(|part| SECRET_WORDS.contains(&part)) {
            p.push(Problem::new(
                format!("/vars/{}", escape(k)),
                ProblemKind::InvalidValue,
                format!(
                    "a var would read {name}, and vars never read a variable named like a secret ({})",
                    SECRET_WORDS.join(", ")
                ),
            ));
            continue;
        }
        vars.push((k.clone(), env(&name).unwrap_or_else(|| v.clone())));
    }
    let base_url = env(&format!("{prefix}_BASE_URL")).filter(|s| !s.is_empty()).or_else(|| file.base_url.clone());
    // A base URL may name vars (`https://{{ vars.region }}.example.com`): rendered once, here.
    let base_url = base_url.and_then(|u| render_load_template(&u, &vars, "/base_url", &mut p));
    let base_url = base_url.and_then(|u| {
        BaseUrl::parse(&u).map_err(|e| p.push(Problem::new("/base_url", ProblemKind::InvalidValue, e))).ok()
    });
    let auth_kind = auth::AuthPlan::describe(&file.auth, id);
    let auth = auth::compile(&file.auth, id, &vars, env, &mut p);
    let defs = Defs(file.defs);
    let mut headers_reads = Reads::default();
    let headers = {
        let mut c = Compiler::new(&defs, &mut p, &mut headers_reads);
        headers(&file.headers, "/headers", &vars, &mut c)
    };
    check_defs(&defs, &mut p);
    let default_errors = file.errors.as_ref();
    let mut endpoint = |e: &EndpointSpec, ptr: &str| {
        let mut reads = headers_reads.clone();
        let plan = endpoint(e, ptr, default_errors, &vars, &mut Compiler::new(&defs, &mut p, &mut reads));
        EndpointPlan { params: Params { reads, ..plan.params }, ..plan }
    };
    let chat = file.chat.as_ref().map(|e| endpoint(e, "/chat"));
    let embeddings = file.embeddings.as_ref().map(|e| endpoint(e, "/embeddings"));
    if p.iter().any(|x| !x.kind.is_warning()) {
        return Err(p);
    }
    let vars_value = Arc::new(Value::Object(vars.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect()));
    Ok(Provider {
        vars_value,
        id_value: Arc::new(Value::String(id.to_string())),
        is_abstract: file.is_abstract,
        id: id.to_string(),
        name: file.name,
        base_url,
        warnings: p,
        auth_kind,
        auth: auth.scheme,
        key: auth.key,
        credentials: auth.credentials,
        auth_wanted: auth.wanted,
        headers,
        client_key_pass: file.client_keys.pass.unwrap_or(if file.client_keys.prefixes.is_empty() {
            ClientKeyPass::Never
        } else {
            ClientKeyPass::Prefixed
        }),
        key_prefixes: file.client_keys.prefixes,
        vars,
        patterns: GlobSet::new(file.models.patterns.iter().map(String::as_str)),
        models: file.models.list,
        prices: price::Prices::new(&file.prices),
        chat,
        embeddings,
        source: source.to_string(),
    })
}

/// Compile every definition once on its own, so that a problem in one is reported even when
/// nothing uses it.
fn check_defs(defs: &Defs, p: &mut Vec<Problem>) {
    for (name, def) in &defs.0 {
        let mut reads = Reads::default();
        let mut c = Compiler::new(defs, p, &mut reads);
        let (body, rel) = def.body();
        if let DefSpec::WithParams { params, .. } = def {
            c.binding(params, "params", |c| c.compile(body, &format!("/defs/{}{rel}", escape(name))));
        } else {
            c.compile(body, &format!("/defs/{}{rel}", escape(name)));
        }
    }
}

fn template(src: &str, ptr: &str, vars: &[(String, String)], c: &mut Compiler<'_>) -> Template {
    match Template::compile(src) {
        Ok(t) => {
            for name in t.var_names() {
                if !vars.iter().any(|(k, _)| k == name) {
                    c.problem_at(
                        ptr,
                        ProblemKind::UnknownName,
                        format!("template names vars.{name}, which `vars` does not define"),
                    );
                }
            }
            if t.reads_model() {
                c.read(Some("model".into()));
            }
            t
        }
        Err(e) => {
            c.problem_at(ptr, ProblemKind::InvalidTemplate, e);
            Template::compile("").expect("the empty template compiles")
        }
    }
}

fn headers(
    map: &BTreeMap<String, String>,
    ptr: &str,
    vars: &[(String, String)],
    c: &mut Compiler<'_>,
) -> Vec<HeaderPlan> {
    let mut out = Vec::new();
    for (k, v) in map {
        let at = format!("{ptr}/{}", escape(k));
        let Ok(name) = HeaderName::from_bytes(k.as_bytes()) else {
            c.problem_at(&at, ProblemKind::InvalidValue, format!("'{k}' is not a valid header name"));
            continue;
        };
        let fixed = if v.contains("{{") {
            None
        } else {
            match HeaderValue::from_str(v) {
                Ok(h) => Some(h),
                Err(_) => {
                    c.problem_at(&at, ProblemKind::InvalidValue, "not a valid header value");
                    None
                }
            }
        };
        out.push(HeaderPlan { name, template: template(v, &at, vars, c), fixed });
    }
    out
}

fn query(
    map: &BTreeMap<String, String>,
    ptr: &str,
    vars: &[(String, String)],
    c: &mut Compiler<'_>,
) -> Vec<(String, Template)> {
    map.iter().map(|(k, v)| (k.clone(), template(v, &format!("{ptr}/{}", escape(k)), vars, c))).collect()
}

fn params(specs: &BTreeMap<String, ParamPolicy>, ptr: &str, c: &mut Compiler<'_>) -> (Vec<(String, Policy)>, Policy) {
    let mut rules = Vec::new();
    let mut unread = Policy::Drop;
    for (name, policy) in specs {
        let at = format!("{ptr}/params/{}", escape(name));
        let policy = match policy {
            ParamPolicy::Simple(ParamAction::Drop) => Policy::Drop,
            ParamPolicy::Simple(ParamAction::Reject) => Policy::Reject,
            ParamPolicy::Simple(ParamAction::Keep) => Policy::Keep,
            ParamPolicy::Unless(u) => match (&u.reject_unless, &u.drop_unless, &u.drop_when, &u.reject_when) {
                (Some(v), None, None, None) => Policy::RejectUnless(v.clone()),
                (None, Some(v), None, None) => Policy::DropUnless(v.clone()),
                (None, None, Some(cond), None) => Policy::DropWhen(c.compile(cond, &format!("{at}/drop_when"))),
                (None, None, None, Some(cond)) => Policy::RejectWhen(c.compile(cond, &format!("{at}/reject_when"))),
                _ => {
                    c.problem_at(
                        &at,
                        ProblemKind::InvalidValue,
                        "give exactly one of reject_unless, drop_unless, drop_when, reject_when",
                    );
                    continue;
                }
            },
            ParamPolicy::Rename(r) => Policy::Rename(r.rename.clone()),
        };
        if name == "*" {
            unread = policy;
        } else {
            rules.push((name.clone(), policy));
        }
    }
    (rules, unread)
}

fn endpoint(
    e: &EndpointSpec,
    ptr: &str,
    default_errors: Option<&ErrorSpec>,
    vars: &[(String, String)],
    c: &mut Compiler<'_>,
) -> EndpointPlan {
    let method = match e.method.as_deref().unwrap_or("POST").parse::<Method>() {
        Ok(m) => m,
        Err(_) => {
            c.problem_at(&format!("{ptr}/method"), ProblemKind::InvalidValue, "not an HTTP method");
            Method::POST
        }
    };
    let request = c.compile_request(&e.request, &format!("{ptr}/request"));
    let (rules, unread) = params(&e.params, ptr, c);
    let (errors, eptr) = match &e.errors {
        Some(own) => (Some(own), format!("{ptr}/errors")),
        None => (default_errors, "/errors".to_string()),
    };
    let errors = errors.map(|spec| ErrorFields::compile(spec.fields(), &eptr, c)).unwrap_or_default();
    let stream = e.stream.as_ref().map(|s| Arc::new(StreamPlan::compile(s, &format!("{ptr}/stream"), c)));
    if stream.is_some() {
        // The engine itself reads these: the stream choice and `stream_options.include_usage`.
        c.read(Some("stream".into()));
        c.read(Some("stream_options".into()));
    }
    let guards = |list: &[crate::spec::GuardSpec], name: &str, status: u16, c: &mut Compiler<'_>| -> Vec<Guard> {
        list.iter().enumerate().map(|(i, g)| Guard::compile(g, &format!("{ptr}/{name}/{i}"), status, c)).collect()
    };
    EndpointPlan {
        method,
        path: template(&e.path, &format!("{ptr}/path"), vars, c),
        stream_path: e.stream_path.as_ref().map(|s| template(s, &format!("{ptr}/stream_path"), vars, c)),
        query: query(&e.query, &format!("{ptr}/query"), vars, c),
        stream_query: query(&e.stream_query, &format!("{ptr}/stream_query"), vars, c),
        headers: headers(&e.headers, &format!("{ptr}/headers"), vars, c),
        params: Params { rules, unread, reads: Reads::default() },
        request,
        response: c.compile(&e.response, &format!("{ptr}/response")),
        stream,
        errors,
        refuse: guards(&e.refuse, "refuse", 400, c),
        fail_on: guards(&e.fail_on, "fail_on", 502, c),
    }
}
