//! Mapping files → plans: parse the YAML, resolve `extends`, validate against the JSON Schema,
//! then compile. Every problem of every file comes back as `file:line: message`.

use std::collections::HashMap;
use std::fmt;
use std::sync::LazyLock;

use serde_json::Value;

use super::{compile_provider, EnvLookup, ProviderPlan};
use crate::spec::location::LineIndex;
use crate::spec::{MappingFile, Problem};

/// One mapping file's text and where it came from.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The provider id: the file name without `.yaml`.
    pub id: String,
    /// The path shown in messages (`mappings/<id>.yaml`, or `<built-in>/<id>.yaml`).
    pub path: String,
    pub text: String,
}

/// A problem located in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    pub file: String,
    pub line: usize,
    pub message: String,
    /// The provider id of the file.
    pub id: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

/// The JSON Schema of a mapping file, generated from the spec types.
pub fn schema() -> Value {
    serde_json::to_value(schemars::schema_for!(MappingFile)).expect("a schema serialises")
}

static VALIDATOR: LazyLock<jsonschema::Validator> =
    LazyLock::new(|| jsonschema::validator_for(&schema()).expect("the generated schema is a valid JSON Schema"));

/// Keys whose values are replaced whole by `extends`, never merged (transforms, lists of rules).
const REPLACED_WHOLE: &[&str] =
    &["auth", "request", "response", "stream", "errors", "event", "on", "match", "list", "refuse", "fail_on"];

fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                // `key: null` in a child removes what the parent set (a header, an endpoint).
                if v.is_null() {
                    b.remove(&k);
                    continue;
                }
                match b.get_mut(&k) {
                    Some(slot) if !REPLACED_WHOLE.contains(&k.as_str()) && slot.is_object() && v.is_object() => {
                        merge(slot, v)
                    }
                    _ => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

fn parse_yaml(src: &SourceFile) -> Result<Value, LoadError> {
    serde_yaml::from_str::<Value>(&src.text).map_err(|e| LoadError {
        file: src.path.clone(),
        line: e.location().map_or(1, |l| l.line()),
        message: format!("not valid YAML: {e}"),
        id: src.id.clone(),
    })
}

/// Load and compile every file. Files with problems yield no plan; the others load normally.
pub fn load(sources: &[SourceFile], env: EnvLookup<'_>) -> (Vec<ProviderPlan>, Vec<LoadError>) {
    let mut errors = Vec::new();
    let mut parsed: HashMap<&str, Value> = HashMap::new();
    for src in sources {
        match parse_yaml(src) {
            Ok(v) => {
                parsed.insert(&src.id, v);
            }
            Err(e) => errors.push(e),
        }
    }
    let mut plans = Vec::new();
    for src in sources {
        if !parsed.contains_key(src.id.as_str()) {
            continue;
        }
        let locate = |problems: Vec<Problem>| -> Vec<LoadError> {
            let index = LineIndex::new(&src.text);
            let mut located: Vec<LoadError> = problems
                .into_iter()
                .map(|p| LoadError {
                    file: src.path.clone(),
                    line: index.line_of(&p.pointer),
                    message: p.message,
                    id: src.id.clone(),
                })
                .collect();
            located.sort_by_key(|e| e.line);
            located.dedup();
            located
        };
        let merged = match resolve_extends(&src.id, &parsed) {
            Ok(v) => v,
            Err(msg) => {
                errors.extend(locate(vec![Problem::new("/extends", msg)]));
                continue;
            }
        };
        match check(&src.id, &src.path, &merged, env) {
            Ok(plan) => plans.push(plan),
            Err(problems) => errors.extend(locate(problems)),
        }
    }
    (plans, errors)
}

fn resolve_extends(id: &str, parsed: &HashMap<&str, Value>) -> Result<Value, String> {
    let mut chain = vec![id.to_string()];
    let mut cur = parsed.get(id).ok_or_else(|| format!("no mapping '{id}'"))?;
    let mut layers = vec![cur.clone()];
    while let Some(parent) = cur.get("extends").and_then(Value::as_str) {
        if chain.iter().any(|c| c == parent) {
            chain.push(parent.to_string());
            return Err(format!("extends forms a cycle: {}", chain.join(" -> ")));
        }
        cur = parsed.get(parent).ok_or_else(|| format!("extends '{parent}', but there is no mapping with that id"))?;
        chain.push(parent.to_string());
        layers.push(cur.clone());
    }
    let mut merged = layers.pop().expect("at least the file itself");
    while let Some(mut layer) = layers.pop() {
        inherit(&mut layer, &merged)?;
        merge(&mut merged, layer);
    }
    if let Value::Object(m) = &mut merged {
        m.remove("extends");
        // Only the file itself says whether it is abstract; its children are not.
        match parsed.get(id).and_then(|v| v.get("abstract")) {
            Some(a) => m.insert("abstract".into(), a.clone()),
            None => m.remove("abstract"),
        };
    }
    Ok(merged)
}

/// Replace every `{$inherit: "/json/pointer"}` of a child with the parent's value there, so a
/// child can build on an inherited transform instead of copying it.
fn inherit(v: &mut Value, parent: &Value) -> Result<(), String> {
    match v {
        Value::Object(m) if m.len() == 1 && m.contains_key("$inherit") => {
            let ptr = m["$inherit"].as_str().ok_or("$inherit takes a JSON pointer such as /chat/request")?;
            *v = parent.pointer(ptr).cloned().ok_or_else(|| format!("$inherit: the parent has nothing at '{ptr}'"))?;
            Ok(())
        }
        Value::Object(m) => m.values_mut().try_for_each(|c| inherit(c, parent)),
        Value::Array(a) => a.iter_mut().try_for_each(|c| inherit(c, parent)),
        _ => Ok(()),
    }
}

/// Schema errors as problems. A failed `anyOf` is replaced by the errors of its most plausible
/// branch (the one that got furthest into the value), so that an `Option<Endpoint>` says what
/// is wrong inside the endpoint rather than "matches none of the alternatives". A failed
/// transform is left to the transform compiler, whose messages are precise.
fn schema_problems(e: &jsonschema::ValidationError<'_>, out: &mut Vec<Problem>) {
    let at = e.instance_path().as_str().to_string();
    if let jsonschema::error::ValidationErrorKind::AnyOf { context } = e.kind() {
        let is_transform = |b: &jsonschema::ValidationError<'_>| b.schema_path().as_str().contains("Transform");
        let wraps_transform = context.iter().flatten().any(|b| is_transform(b) && b.instance_path().as_str() == at);
        if is_transform(e) || wraps_transform {
            return;
        }
        let deeper = |branch: &Vec<jsonschema::ValidationError<'static>>| {
            branch.iter().all(|b| b.instance_path().as_str().len() > at.len())
        };
        if let Some(best) = context.iter().filter(|b| !b.is_empty() && deeper(b)).min_by_key(|b| b.len()) {
            for b in best {
                schema_problems(b, out);
            }
            return;
        }
        let options: Vec<String> =
            context.iter().filter_map(|b| b.first()).map(|b| b.to_string()).filter(|m| m.len() < 120).collect();
        out.push(Problem::new(at, format!("not a valid value here; {}", options.join("; or "))));
        return;
    }
    out.push(Problem::new(at, e.to_string()));
}

/// Where a mapping document holds transforms, so that they are compiled (and their problems
/// reported) even when another part of the file does not parse.
fn transform_sites(doc: &Value) -> Vec<(String, &Value)> {
    fn errors_of<'a>(base: &str, v: Option<&'a Value>, out: &mut Vec<(String, &'a Value)>) {
        if let Some(Value::Object(m)) = v {
            for (k, t) in m {
                out.push((format!("{base}/{k}"), t));
            }
        }
    }
    let mut out = Vec::new();
    errors_of("/errors", doc.get("errors"), &mut out);
    for ep in ["chat", "embeddings"] {
        let Some(e) = doc.get(ep) else { continue };
        for k in ["request", "response"] {
            if let Some(t) = e.get(k) {
                out.push((format!("/{ep}/{k}"), t));
            }
        }
        for k in ["refuse", "fail_on"] {
            for (i, g) in e.get(k).and_then(Value::as_array).into_iter().flatten().enumerate() {
                errors_of(&format!("/{ep}/{k}/{i}"), Some(g), &mut out);
            }
        }
        errors_of(&format!("/{ep}/errors"), e.get("errors"), &mut out);
        if let Some(t) = e.pointer("/stream/event") {
            out.push((format!("/{ep}/stream/event"), t));
        }
        if let Some(Value::Object(on)) = e.pointer("/stream/on") {
            for (name, steps) in on {
                for (i, step) in steps.as_array().into_iter().flatten().enumerate() {
                    let base = format!("/{ep}/stream/on/{}/{i}", name.replace('~', "~0").replace('/', "~1"));
                    for k in ["when", "emit", "forward", "error"] {
                        if let Some(t) = step.get(k) {
                            out.push((format!("{base}/{k}"), t));
                        }
                    }
                    for k in ["set", "add", "enumerate"] {
                        errors_of(&format!("{base}/{k}"), step.get(k), &mut out);
                    }
                }
            }
        }
    }
    out
}

/// Validate one (merged) mapping document and compile it: the one code path of `serve` and `check`.
fn check(id: &str, path: &str, doc: &Value, env: EnvLookup<'_>) -> Result<ProviderPlan, Vec<Problem>> {
    let mut problems = Vec::new();
    for e in VALIDATOR.iter_errors(doc) {
        schema_problems(&e, &mut problems);
    }
    let file: MappingFile = match serde_json::from_value(doc.clone()) {
        Ok(f) => f,
        Err(e) => {
            // Some part does not parse: still compile every transform, so that all problems
            // of the file are reported at once.
            for (ptr, t) in transform_sites(doc) {
                crate::transform::compile(t, &ptr, &mut problems, &mut Default::default());
            }
            if problems.is_empty() {
                problems.push(Problem::new("", e.to_string()));
            }
            return Err(problems);
        }
    };
    match compile_provider(id, path, &file, env) {
        Ok(plan) if problems.is_empty() => Ok(plan),
        Ok(_) => Err(problems),
        Err(more) => {
            problems.extend(more);
            Err(problems)
        }
    }
}
