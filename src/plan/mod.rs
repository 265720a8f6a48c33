//! A mapping file compiled into a plan: every path, template, table and header parsed and checked
//! once. A plan that compiled cannot fail at run time for a reason its file could have revealed.

pub mod load;
pub mod template;

use std::collections::BTreeMap;

use http::{HeaderName, HeaderValue, Method};
use serde_json::Value;

use crate::spec::{
    self, AuthSpec, EndpointSpec, ErrorSpec, MappingFile, ParamAction, ParamPolicy, Problem, StreamSpec,
};
use crate::stream::rules::{Action, StreamPlan};
use crate::transform::glob::Glob;
use crate::transform::{compile, Expr, Reads};
use template::{Template, TemplateVars};

/// An API key; never printed.
#[derive(Clone)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

pub enum Auth {
    None,
    Header { name: HeaderName, prefix: String },
    Query { name: String },
}

/// One provider, ready to serve.
pub struct ProviderPlan {
    pub id: String,
    pub name: String,
    /// From `<ID>_BASE_URL`, else the file; without a trailing `/`.
    pub base_url: Option<String>,
    pub auth: Auth,
    /// From `<ID>_API_KEY`.
    pub key: Option<Secret>,
    pub headers: Vec<HeaderPlan>,
    pub vars: Vec<(String, String)>,
    /// `vars` as the JSON object transforms see in `$ctx.vars`, built once.
    pub vars_value: Value,
    pub patterns: Vec<Glob>,
    pub models: Vec<String>,
    pub chat: Option<EndpointPlan>,
    pub embeddings: Option<EndpointPlan>,
    /// The file it came from, for messages.
    pub source: String,
    /// What the mapping supports, derived from the file (for the README's provider table).
    pub capabilities: Capabilities,
    /// A base for other files only (`abstract: true`).
    pub is_abstract: bool,
}

/// What a mapping supports, read off its file rather than declared by hand.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capabilities {
    pub chat: bool,
    pub stream: bool,
    /// The chat request transform reads `tools` (or passes the request through).
    pub tools: bool,
    /// The chat request transform handles `image_url` parts (or passes the request through).
    pub vision: bool,
    pub embeddings: bool,
    /// The request is forwarded whole (possibly amended): support is whatever the host offers.
    pub passthrough: bool,
}

fn capabilities(file: &MappingFile, chat: Option<&EndpointPlan>) -> Capabilities {
    let passthrough = chat.is_some_and(|c| c.params.reads.everything);
    let request_text = file.chat.as_ref().map(|c| c.request.0.to_string()).unwrap_or_default();
    Capabilities {
        chat: chat.is_some(),
        stream: chat.is_some_and(|c| c.stream.is_some()),
        tools: chat.is_some_and(|c| c.params.reads.everything || c.params.reads.keys.contains("tools")),
        vision: passthrough || request_text.contains("image_url"),
        embeddings: file.embeddings.is_some(),
        passthrough,
    }
}

/// A header sent upstream: a fixed value built once, or a template rendered per call.
pub struct HeaderPlan {
    pub name: HeaderName,
    pub template: Template,
    pub fixed: Option<HeaderValue>,
}

/// What to do with one request parameter.
#[derive(Debug)]
pub enum Policy {
    Drop,
    Reject,
    Keep,
    DropUnless(Vec<Value>),
    RejectUnless(Vec<Value>),
    DropWhen(Expr),
    RejectWhen(Expr),
    Rename(String),
}

pub struct Params {
    pub rules: Vec<(String, Policy)>,
    /// For top-level fields the request transform does not read and no rule names.
    pub unread: Policy,
    pub reads: Reads,
}

/// A compiled `refuse` / `fail_on` rule.
pub struct Guard {
    pub when: Expr,
    pub status: u16,
    pub message: Expr,
    pub kind: Option<Expr>,
    pub code: Option<Expr>,
    pub param: Option<Expr>,
}

fn guards(specs: &[spec::GuardSpec], ptr: &str, default_status: u16, p: &mut Vec<Problem>) -> Vec<Guard> {
    specs
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let at = format!("{ptr}/{i}");
            let status = g.status.unwrap_or(default_status);
            if !(400..600).contains(&status) {
                p.push(Problem::new(format!("{at}/status"), "an error status is between 400 and 599"));
            }
            let opt = |e: &Option<spec::ExprSpec>, f: &str, p: &mut Vec<Problem>| {
                e.as_ref().map(|e| expr(e, &format!("{at}/{f}"), p))
            };
            Guard {
                when: expr(&g.when, &format!("{at}/when"), p),
                status,
                message: expr(&g.message, &format!("{at}/message"), p),
                kind: opt(&g.kind, "type", p),
                code: opt(&g.code, "code", p),
                param: opt(&g.param, "param", p),
            }
        })
        .collect()
}

pub struct ErrorPlan {
    pub status: Option<Expr>,
    pub message: Option<Expr>,
    pub kind: Option<Expr>,
    pub code: Option<Expr>,
    pub param: Option<Expr>,
}

pub struct EndpointPlan {
    pub method: Method,
    pub path: Template,
    pub stream_path: Option<Template>,
    pub query: Vec<(String, Template)>,
    pub stream_query: Vec<(String, Template)>,
    pub headers: Vec<HeaderPlan>,
    pub params: Params,
    pub request: Expr,
    pub response: Expr,
    pub stream: Option<std::sync::Arc<StreamPlan>>,
    pub errors: ErrorPlan,
    pub refuse: Vec<Guard>,
    pub fail_on: Vec<Guard>,
}

/// The environment-variable prefix of a provider id: upper-cased, `-` as `_`.
pub fn env_prefix(id: &str) -> String {
    id.to_ascii_uppercase().replace(['-', '.'], "_")
}

/// Where a plan takes its environment from (a function, so tests and `check` can pass their own).
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

pub fn compile_provider(
    id: &str,
    source: &str,
    file: &MappingFile,
    env: EnvLookup<'_>,
) -> Result<ProviderPlan, Vec<Problem>> {
    let mut p = Vec::new();
    let prefix = env_prefix(id);
    let base_url = env(&format!("{prefix}_BASE_URL"))
        .filter(|s| !s.is_empty())
        .or_else(|| file.base_url.clone())
        .map(|u| u.trim_end_matches('/').to_string());
    let vars_early: Vec<(String, String)> = file
        .vars
        .iter()
        .map(|(k, v)| (k.clone(), env(&format!("{prefix}_{}", k.to_ascii_uppercase())).unwrap_or_else(|| v.clone())))
        .collect();
    // A base URL may name vars (`https://{{ vars.region }}.example.com`): rendered once, here.
    let base_url = match base_url {
        Some(u) if u.contains("{{") => match Template::compile(&u) {
            Ok(t) => Some(t.render_string(&TemplateVars { model: "", stream: false, vars: &vars_early }, false)),
            Err(e) => {
                p.push(Problem::new("/base_url", e));
                None
            }
        },
        other => other,
    };
    if let Some(u) = &base_url {
        if !(u.starts_with("http://") || u.starts_with("https://")) {
            p.push(Problem::new("/base_url", format!("base URL '{u}' must start with http:// or https://")));
        }
    }
    let auth = match &file.auth {
        AuthSpec::None(_) => Auth::None,
        AuthSpec::Header { header, prefix } => match HeaderName::from_bytes(header.as_bytes()) {
            Ok(name) => Auth::Header { name, prefix: prefix.clone().unwrap_or_default() },
            Err(_) => {
                p.push(Problem::new("/auth/header", format!("'{header}' is not a valid header name")));
                Auth::None
            }
        },
        AuthSpec::Query { query } => Auth::Query { name: query.clone() },
    };
    let vars = vars_early;
    let headers = headers(&file.headers, "/headers", &vars, &mut p);
    let default_errors = file.errors.as_ref();
    let chat = file.chat.as_ref().map(|e| endpoint(e, "/chat", default_errors, &vars, &mut p));
    let embeddings = file.embeddings.as_ref().map(|e| endpoint(e, "/embeddings", default_errors, &vars, &mut p));
    if !p.is_empty() {
        return Err(p);
    }
    let capabilities = capabilities(file, chat.as_ref());
    let vars_value = Value::Object(vars.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect());
    Ok(ProviderPlan {
        vars_value,
        capabilities,
        is_abstract: file.is_abstract,
        id: id.to_string(),
        name: file.name.clone(),
        base_url,
        auth,
        key: env(&format!("{prefix}_API_KEY")).filter(|k| !k.is_empty()).map(Secret),
        headers,
        vars,
        patterns: file.models.patterns.iter().map(|s| Glob::new(s)).collect(),
        models: file.models.list.clone(),
        chat,
        embeddings,
        source: source.to_string(),
    })
}

fn template(src: &str, ptr: &str, vars: &[(String, String)], p: &mut Vec<Problem>) -> Template {
    match Template::compile(src) {
        Ok(t) => {
            for name in t.var_names() {
                if !vars.iter().any(|(k, _)| k == name) {
                    p.push(Problem::new(ptr, format!("template names vars.{name}, which `vars` does not define")));
                }
            }
            t
        }
        Err(e) => {
            p.push(Problem::new(ptr, e));
            Template::compile("").expect("the empty template compiles")
        }
    }
}

fn headers(
    map: &BTreeMap<String, String>,
    ptr: &str,
    vars: &[(String, String)],
    p: &mut Vec<Problem>,
) -> Vec<HeaderPlan> {
    let mut out = Vec::new();
    for (k, v) in map {
        let at = format!("{ptr}/{k}");
        let Ok(name) = HeaderName::from_bytes(k.as_bytes()) else {
            p.push(Problem::new(&at, format!("'{k}' is not a valid header name")));
            continue;
        };
        let fixed = if v.contains("{{") {
            None
        } else {
            match HeaderValue::from_str(v) {
                Ok(h) => Some(h),
                Err(_) => {
                    p.push(Problem::new(&at, "not a valid header value"));
                    None
                }
            }
        };
        out.push(HeaderPlan { name, template: template(v, &at, vars, p), fixed });
    }
    out
}

fn query(
    map: &BTreeMap<String, String>,
    ptr: &str,
    vars: &[(String, String)],
    p: &mut Vec<Problem>,
) -> Vec<(String, Template)> {
    map.iter().map(|(k, v)| (k.clone(), template(v, &format!("{ptr}/{k}"), vars, p))).collect()
}

fn expr(spec: &spec::ExprSpec, ptr: &str, p: &mut Vec<Problem>) -> Expr {
    compile(&spec.0, ptr, p, &mut Reads::default())
}

fn endpoint(
    e: &EndpointSpec,
    ptr: &str,
    default_errors: Option<&ErrorSpec>,
    vars: &[(String, String)],
    p: &mut Vec<Problem>,
) -> EndpointPlan {
    let method = match e.method.as_deref().unwrap_or("POST").parse::<Method>() {
        Ok(m) => m,
        Err(_) => {
            p.push(Problem::new(format!("{ptr}/method"), "not an HTTP method"));
            Method::POST
        }
    };
    let mut reads = Reads::default();
    let request = compile(&e.request.0, &format!("{ptr}/request"), p, &mut reads);
    let mut rules = Vec::new();
    let mut unread = Policy::Drop;
    for (name, policy) in &e.params {
        let policy = match policy {
            ParamPolicy::Simple(ParamAction::Drop) => Policy::Drop,
            ParamPolicy::Simple(ParamAction::Reject) => Policy::Reject,
            ParamPolicy::Simple(ParamAction::Keep) => Policy::Keep,
            ParamPolicy::Unless(u) => {
                let at = format!("{ptr}/params/{name}");
                match (&u.reject_unless, &u.drop_unless, &u.drop_when, &u.reject_when) {
                    (Some(v), None, None, None) => Policy::RejectUnless(v.clone()),
                    (None, Some(v), None, None) => Policy::DropUnless(v.clone()),
                    (None, None, Some(c), None) => Policy::DropWhen(expr(c, &format!("{at}/drop_when"), p)),
                    (None, None, None, Some(c)) => Policy::RejectWhen(expr(c, &format!("{at}/reject_when"), p)),
                    _ => {
                        p.push(Problem::new(
                            at,
                            "give exactly one of reject_unless, drop_unless, drop_when, reject_when",
                        ));
                        continue;
                    }
                }
            }
            ParamPolicy::Rename(r) => Policy::Rename(r.rename.clone()),
        };
        if name == "*" {
            unread = policy;
        } else {
            rules.push((name.clone(), policy));
        }
    }
    let errors = e.errors.as_ref().or(default_errors);
    let eptr = if e.errors.is_some() { format!("{ptr}/errors") } else { "/errors".to_string() };
    let error_field = |f: &Option<spec::ExprSpec>, name: &str, p: &mut Vec<Problem>| {
        f.as_ref().map(|s| expr(s, &format!("{eptr}/{name}"), p))
    };
    let errors = ErrorPlan {
        status: errors.and_then(|e| error_field(&e.status, "status", p)),
        message: errors.and_then(|e| error_field(&e.message, "message", p)),
        kind: errors.and_then(|e| error_field(&e.kind, "type", p)),
        code: errors.and_then(|e| error_field(&e.code, "code", p)),
        param: errors.and_then(|e| error_field(&e.param, "param", p)),
    };
    EndpointPlan {
        method,
        path: template(&e.path, &format!("{ptr}/path"), vars, p),
        stream_path: e.stream_path.as_ref().map(|s| template(s, &format!("{ptr}/stream_path"), vars, p)),
        query: query(&e.query, &format!("{ptr}/query"), vars, p),
        stream_query: query(&e.stream_query, &format!("{ptr}/stream_query"), vars, p),
        headers: headers(&e.headers, &format!("{ptr}/headers"), vars, p),
        params: Params { rules, unread, reads },
        request,
        response: expr(&e.response, &format!("{ptr}/response"), p),
        stream: e.stream.as_ref().map(|s| std::sync::Arc::new(stream(s, &format!("{ptr}/stream"), p))),
        errors,
        refuse: guards(&e.refuse, &format!("{ptr}/refuse"), 400, p),
        fail_on: guards(&e.fail_on, &format!("{ptr}/fail_on"), 502, p),
    }
}

fn stream(s: &StreamSpec, ptr: &str, p: &mut Vec<Problem>) -> StreamPlan {
    let mut rules = std::collections::HashMap::new();
    let mut fallback = None;
    for (event, actions) in &s.on {
        let base = format!("{ptr}/on/{}", event.replace('~', "~0").replace('/', "~1"));
        let compiled: Vec<Action> = actions
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let at = format!("{base}/{i}");
                let map =
                    |m: &BTreeMap<String, spec::ExprSpec>, field: &str, p: &mut Vec<Problem>| -> Vec<(String, Expr)> {
                        m.iter().map(|(k, v)| (k.clone(), expr(v, &format!("{at}/{field}/{k}"), p))).collect()
                    };
                if a.emit.is_some() && a.forward.is_some() {
                    p.push(Problem::new(&at, "a step emits or forwards, not both"));
                }
                Action {
                    when: a.when.as_ref().map(|w| expr(w, &format!("{at}/when"), p)),
                    set: map(&a.set, "set", p),
                    add: map(&a.add, "add", p),
                    enumerate: map(&a.enumerate, "enumerate", p),
                    emit: a.emit.as_ref().map(|w| expr(w, &format!("{at}/emit"), p)),
                    forward: a.forward.as_ref().map(|w| expr(w, &format!("{at}/forward"), p)),
                    error: a.error.as_ref().map(|w| expr(w, &format!("{at}/error"), p)),
                    end: a.end,
                }
            })
            .collect();
        if event == "*" {
            fallback = Some(compiled);
        } else {
            rules.insert(event.clone(), compiled);
        }
    }
    StreamPlan {
        framing: s.framing,
        passthrough: s.passthrough,
        done: s.done.clone(),
        event: s.event.as_ref().map(|e| expr(e, &format!("{ptr}/event"), p)),
        rules,
        fallback,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::load::{load, SourceFile};

    fn src(id: &str, text: &str) -> SourceFile {
        SourceFile { id: id.into(), path: format!("{id}.yaml"), text: text.into() }
    }

    #[test]
    fn base_url_renders_vars_from_file_or_environment() {
        let file = "name: R\nbase_url: \"https://rt.{{ vars.region }}.example.com/\"\nvars: { region: us-east-1 }\n";
        let (plans, errors) = load(&[src("rt", file)], &|_| None);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(plans[0].base_url.as_deref(), Some("https://rt.us-east-1.example.com"));
        let (plans, _) = load(&[src("rt", file)], &|k| (k == "RT_REGION").then(|| "eu-west-1".to_string()));
        assert_eq!(plans[0].base_url.as_deref(), Some("https://rt.eu-west-1.example.com"));
    }

    #[test]
    fn extends_inherits_removes_with_null_and_reuses_transforms() {
        let parent = "name: P\nbase_url: https://p.test\nheaders: { x-a: \"1\", x-b: \"2\" }\nchat:\n  path: /c\n  request: { model: $.model, n: 1 }\n  response: $\n";
        let child = "extends: parent\nname: C\nheaders: { x-b: null }\nchat:\n  request: { $merge: [{ $omit: { $inherit: /chat/request }, keys: [n] }, { extra: true }] }\n";
        let (plans, errors) = load(&[src("parent", parent), src("child", child)], &|_| None);
        assert!(errors.is_empty(), "{errors:?}");
        let c = plans.iter().find(|p| p.id == "child").unwrap();
        assert_eq!(c.base_url.as_deref(), Some("https://p.test"));
        let names: Vec<&str> = c.headers.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, vec!["x-a"]);
        let req = serde_json::json!({"model": "m"});
        let out = c.chat.as_ref().unwrap().request.eval_owned(&crate::transform::Scope::new(
            &req,
            &Value::Null,
            &Value::Null,
        ));
        assert_eq!(out, Some(serde_json::json!({"model": "m", "extra": true})));
    }
}
