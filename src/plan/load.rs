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
    /// The path shown in messages (`mappings/anthropic.yaml`, or `<built-in>/anthropic.yaml`).
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
const REPLACED_WHOLE: &[&str] = &["request", "response", "stream", "errors", "event", "on", "match", "list"];

fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
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
        let Some(own) = parsed.get(src.id.as_str()) else {
            continue;
        };
        let locate = |problems: Vec<Problem>| -> Vec<LoadError> {
            let index = LineIndex::new(&src.text);
            problems
                .into_iter()
                .map(|p| LoadError {
                    file: src.path.clone(),
                    line: index.line_of(&p.pointer),
                    message: p.message,
                    id: src.id.clone(),
                })
                .collect()
        };
        let merged = match resolve_extends(&src.id, &parsed) {
            Ok(v) => v,
            Err(msg) => {
                errors.extend(locate(vec![Problem::new("/extends", msg)]));
                continue;
            }
        };
        let _ = own;
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
    while let Some(layer) = layers.pop() {
        merge(&mut merged, layer);
    }
    if let Value::Object(m) = &mut merged {
        m.remove("extends");
    }
    Ok(merged)
}

/// Validate one (merged) mapping document and compile it: the one code path of `serve` and `check`.
fn check(id: &str, path: &str, doc: &Value, env: EnvLookup<'_>) -> Result<ProviderPlan, Vec<Problem>> {
    let schema_errors: Vec<(Problem, bool)> = VALIDATOR
        .iter_errors(doc)
        .map(|e| {
            let vague = matches!(e.kind(), jsonschema::error::ValidationErrorKind::AnyOf { .. });
            (Problem::new(e.instance_path().as_str(), e.to_string()), vague)
        })
        .collect();
    let file: MappingFile = match serde_json::from_value(doc.clone()) {
        Ok(f) => f,
        Err(e) => {
            let mut problems: Vec<Problem> = schema_errors.into_iter().map(|(p, _)| p).collect();
            if problems.is_empty() {
                problems.push(Problem::new("", e.to_string()));
            }
            return Err(problems);
        }
    };
    match compile_provider(id, path, &file, env) {
        Ok(plan) if schema_errors.is_empty() => Ok(plan),
        Ok(_) => Err(schema_errors.into_iter().map(|(p, _)| p).collect()),
        Err(mut problems) => {
            // The compiler's messages are precise; a schema "matches none of anyOf" at or above
            // the same place says less and is left out.
            for (p, vague) in schema_errors {
                let covered = vague && problems.iter().any(|q| q.pointer.starts_with(&p.pointer));
                if !covered {
                    problems.push(p);
                }
            }
            Err(problems)
        }
    }
}
