//! Mapping files → plans: parse the YAML, resolve `extends`, check the file's structure against
//! its JSON Schema, then compile. Every problem of every file comes back as `file:line: message`.
//!
//! Structure is checked first (all such problems at once); a file whose structure is sound is
//! then compiled, and the compiler reports every problem inside its transforms and templates.

use std::collections::HashMap;
use std::sync::LazyLock;

use serde_json::Value;

use super::{compile_provider, EnvLookup, Provider};
use crate::error::{LoadError, Problem, ProblemKind};
use crate::expr::{Compiler, Defs, Reads};
use crate::spec::location::LineIndex;
use crate::spec::{ExprSpec, MappingFile};

/// One mapping file's text and where it came from.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The provider id: the file name without `.yaml`.
    pub id: String,
    /// The path shown in messages (`mappings/<id>.yaml`, or `<built-in>/<id>.yaml`).
    pub path: String,
    pub text: String,
}

/// The JSON Schema of a mapping file, generated from the spec types (for editors and docs).
pub fn schema() -> Value {
    serde_json::to_value(schemars::schema_for!(MappingFile)).expect("a schema serialises")
}

/// The schema the loader checks structure with: the same, except that a transform may be any
/// value here, because the transform parser reports its problems more precisely than a schema.
static RUNTIME_SCHEMA: LazyLock<Value> = LazyLock::new(|| {
    let mut s = schema();
    let name = <ExprSpec as schemars::JsonSchema>::schema_name();
    if let Some(defs) = s.get_mut("$defs").and_then(Value::as_object_mut) {
        defs.insert(name.into_owned(), Value::Bool(true));
    }
    s
});

static VALIDATOR: LazyLock<jsonschema::Validator> =
    LazyLock::new(|| jsonschema::validator_for(&RUNTIME_SCHEMA).expect("the generated schema is a valid JSON Schema"));

/// The schema node a `$ref` points at.
fn resolve(node: &Value) -> &Value {
    let mut node = node;
    for _ in 0..8 {
        match node.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix("#/$defs/")) {
            Some(name) => node = &RUNTIME_SCHEMA["$defs"][name],
            None => break,
        }
    }
    node
}

/// The object branch of a schema node (`Option<T>` is `anyOf: [T, null]`), when values there
/// merge key by key: not a transform, and not marked `x-merge: replace`.
fn object_schema(node: &Value) -> Option<&Value> {
    let replaced = |n: &Value| n.get("x-merge").and_then(Value::as_str) == Some("replace") || n.is_boolean();
    let is_object =
        |n: &&Value| n.get("properties").is_some() || n.get("additionalProperties").is_some_and(Value::is_object);
    let node = resolve(node);
    let object = match node.get("anyOf").and_then(Value::as_array) {
        Some(branches) => branches.iter().map(resolve).find(|b| is_object(b) || replaced(b))?,
        None => node,
    };
    Some(object).filter(|o| !replaced(node) && !replaced(o) && is_object(o))
}

/// `extends`: the child's keys over the parent's. `key: null` removes what the parent set;
/// objects whose schema describes fields or a map (and is not marked `x-merge: replace`) merge
/// key by key; transforms, lists and the rest are replaced whole.
fn merge(base: &mut Value, over: Value, schema: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            let object = object_schema(schema);
            for (k, v) in o {
                if v.is_null() {
                    b.remove(&k);
                    continue;
                }
                let member = object.and_then(|s| {
                    s.get("properties").and_then(|p| p.get(&k)).or_else(|| s.get("additionalProperties"))
                });
                match (b.get_mut(&k), member) {
                    (Some(slot), Some(m)) if slot.is_object() && v.is_object() && object_schema(m).is_some() => {
                        merge(slot, v, m)
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

pub(crate) fn parse_yaml(src: &SourceFile) -> Result<Value, LoadError> {
    serde_yaml::from_str::<Value>(&src.text).map_err(|e| LoadError {
        file: src.path.clone(),
        line: e.location().map_or(1, |l| l.line()),
        kind: ProblemKind::Syntax,
        message: format!("not valid YAML: {e}"),
        id: src.id.clone(),
    })
}

/// Load and compile every file. Files with problems yield no plan; the others load normally.
/// Warnings come back with the errors; they do not stop their file from loading.
pub fn load(sources: &[SourceFile], env: EnvLookup<'_>) -> (Vec<Provider>, Vec<LoadError>) {
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
        let result = resolve_extends(&src.id, &parsed)
            .map_err(|msg| vec![Problem::new("/extends", ProblemKind::Extends, msg)])
            .and_then(|merged| check(&src.id, &src.path, merged, env));
        match result {
            Ok(mut plan) => {
                errors.extend(locate(src, std::mem::take(&mut plan.warnings)));
                plans.push(plan)
            }
            Err(problems) => errors.extend(locate(src, problems)),
        }
    }
    (plans, errors)
}

/// Problems at JSON pointers → `file:line` errors, sorted by line.
pub(crate) fn locate(src: &SourceFile, problems: Vec<Problem>) -> Vec<LoadError> {
    let index = LineIndex::new(&src.text);
    let mut located: Vec<LoadError> = problems
        .into_iter()
        .map(|p| LoadError {
            file: src.path.clone(),
            line: index.line_of(&p.pointer),
            kind: p.kind,
            message: p.message,
            id: src.id.clone(),
        })
        .collect();
    located.sort_by_key(|e| e.line);
    located.dedup();
    located
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
        merge(&mut merged, layer, &RUNTIME_SCHEMA);
    }
    if let Value::Object(m) = &mut merged {
        m.remove("extends");
        // What the schema marks `x-inherit: false` (whether a file is abstract, the shape of
        // its provider's keys) only the file itself says; a child does not inherit it.
        let own = parsed.get(id);
        let properties = RUNTIME_SCHEMA.get("properties").and_then(Value::as_object).into_iter().flatten();
        for (key, schema) in properties {
            if schema.get("x-inherit").and_then(Value::as_bool) == Some(false) {
                match own.and_then(|v| v.get(key)) {
                    Some(v) => m.insert(key.clone(), v.clone()),
                    None => m.remove(key),
                };
            }
        }
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

/// A schema error's message, with the offending value cut short: a value can be anything a
/// file holds (a secret in a mistaken file), and a message is for saying where and what.
fn schema_message(e: &jsonschema::ValidationError<'_>) -> String {
    let msg = e.to_string();
    let instance = e.instance().to_string();
    if instance.len() > 40 {
        let short: String = instance.chars().take(24).collect();
        msg.replace(&instance, &format!("{short}..."))
    } else {
        msg
    }
}

/// Schema errors as problems. A failed `anyOf` is replaced by the errors of its most plausible
/// branch (the one that got furthest into the value), so that an `Option<Endpoint>` says what
/// is wrong inside the endpoint rather than "matches none of the alternatives".
pub(crate) fn schema_problems(e: &jsonschema::ValidationError<'_>, out: &mut Vec<Problem>) {
    let at = e.instance_path().as_str().to_string();
    if let jsonschema::error::ValidationErrorKind::AnyOf { context } = e.kind() {
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
            context.iter().filter_map(|b| b.first()).map(schema_message).filter(|m| m.len() < 120).collect();
        out.push(Problem::new(at, ProblemKind::Schema, format!("not a valid value here; {}", options.join("; or "))));
        return;
    }
    out.push(Problem::new(at, ProblemKind::Schema, schema_message(e)));
}

/// Every transform of a document, found by walking it alongside its schema: where the schema
/// says `Transform`, the value is one.
fn transforms<'a>(doc: &'a Value, node: &Value, ptr: &mut String, out: &mut Vec<(String, &'a Value)>) {
    let transform = format!("#/$defs/{}", <ExprSpec as schemars::JsonSchema>::schema_name());
    if node.get("$ref").and_then(Value::as_str) == Some(transform.as_str()) {
        out.push((ptr.clone(), doc));
        return;
    }
    let node = resolve(node);
    let branches: Vec<&Value> = match node.get("anyOf").and_then(Value::as_array) {
        Some(b) => b.iter().map(resolve).collect(),
        None => vec![node],
    };
    let mut visit = |child: &'a Value, key: &str, schema: &Value, out: &mut Vec<(String, &'a Value)>| {
        let len = ptr.len();
        ptr.push('/');
        ptr.push_str(&crate::expr::escape(key));
        transforms(child, schema, ptr, out);
        ptr.truncate(len);
    };
    match doc {
        Value::Object(m) => {
            for (k, v) in m {
                let member = branches.iter().find_map(|b| {
                    b.get("properties")
                        .and_then(|p| p.get(k))
                        .or_else(|| b.get("additionalProperties").filter(|a| a.is_object()))
                });
                if let Some(member) = member {
                    visit(v, k, member, out);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item) = branches.iter().find_map(|b| b.get("items")) {
                for (i, v) in items.iter().enumerate() {
                    visit(v, &i.to_string(), item, out);
                }
            }
        }
        _ => {}
    }
}

/// Check one (merged) mapping document and compile it: the one code path of `serve` and `check`.
fn check(id: &str, path: &str, doc: Value, env: EnvLookup<'_>) -> Result<Provider, Vec<Problem>> {
    let mut problems = Vec::new();
    for e in VALIDATOR.iter_errors(&doc) {
        schema_problems(&e, &mut problems);
    }
    if !problems.is_empty() {
        // The file cannot be read as a whole; still compile every transform in it, so that all
        // of its problems are reported at once.
        let defs = Defs(doc.get("defs").cloned().and_then(|d| serde_json::from_value(d).ok()).unwrap_or_default());
        let mut sites = Vec::new();
        transforms(&doc, &RUNTIME_SCHEMA, &mut String::new(), &mut sites);
        for (ptr, value) in sites {
            let spec = ExprSpec::parse(value.clone());
            Compiler::new(&defs, &mut problems, &mut Reads::default()).compile(&spec, &ptr);
        }
        return Err(problems);
    }
    let file: MappingFile = serde_json::from_value(doc)
        .map_err(|e| vec![Problem::new("", ProblemKind::Schema, format!("cannot read the file: {e}"))])?;
    compile_provider(id, path, file, env)
}
