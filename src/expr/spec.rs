//! A transform as written in a file, parsed into typed nodes: a path, a constant, an object or
//! list template, or one operation whose options are read by that operation's own spec type.
//! Parsing never fails: a part that does not parse becomes a node holding its problem, which the
//! compiler reports at its place in the file, alongside every other problem of the file.

use std::borrow::Cow;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::registry::{self, OpSpec};
use crate::error::{did_you_mean, Problem, ProblemKind};

/// A transform: a JSONPath string (`$.a.b`, `$root.x`, `$state.y`), a constant, an object or
/// list template whose values are transforms, or one operation (`{ $each: ..., map: ... }`).
#[derive(Debug)]
pub struct ExprSpec(pub(crate) Node);

#[derive(Debug)]
pub(crate) enum Node {
    /// A string starting with `$`.
    Path(String),
    Const(Value),
    Object(Vec<(String, ExprSpec)>),
    List(Vec<ExprSpec>),
    Op(Box<dyn OpSpec>),
    /// What did not parse, at pointers relative to this node.
    Invalid(Vec<Problem>),
}

impl ExprSpec {
    /// Parse a JSON value as a transform.
    pub(crate) fn parse(value: Value) -> ExprSpec {
        ExprSpec(match value {
            Value::String(s) if s.starts_with('$') => Node::Path(s),
            Value::Array(items) => Node::List(items.into_iter().map(ExprSpec::parse).collect()),
            Value::Object(map) => {
                let ops: Vec<&String> = map.keys().filter(|k| k.starts_with('$')).collect();
                match ops.as_slice() {
                    [] => Node::Object(map.into_iter().map(|(k, v)| (k, ExprSpec::parse(v))).collect()),
                    [name] => match registry::find(name) {
                        Some(def) => {
                            let name = def.name;
                            match (def.parse)(Value::Object(map)) {
                                Ok(spec) => Node::Op(spec),
                                Err(e) => Node::Invalid(vec![Problem::new(
                                    "",
                                    ProblemKind::InvalidOperation,
                                    format!("{name}: {e}"),
                                )]),
                            }
                        }
                        None => {
                            let hint = did_you_mean(name, registry::names())
                                .map(|s| format!(" (did you mean '{s}'?)"))
                                .unwrap_or_default();
                            Node::Invalid(vec![Problem::new(
                                format!("/{}", name.replace('~', "~0").replace('/', "~1")),
                                ProblemKind::UnknownOperation,
                                format!("unknown operation '{name}'{hint}"),
                            )])
                        }
                    },
                    _ => {
                        let names: Vec<&str> = ops.iter().map(|s| s.as_str()).collect();
                        Node::Invalid(vec![Problem::new(
                            "",
                            ProblemKind::InvalidOperation,
                            format!("an object holds one operation, found {}", names.join(", ")),
                        )])
                    }
                }
            }
            other => Node::Const(other),
        })
    }
}

impl ExprSpec {
    /// The value of a transform that reads nothing (constants, and templates of constants).
    pub(crate) fn constant(&self) -> Option<Value> {
        match &self.0 {
            Node::Const(v) => Some(v.clone()),
            Node::List(items) => items.iter().map(ExprSpec::constant).collect::<Option<Vec<_>>>().map(Value::Array),
            Node::Object(fields) => fields
                .iter()
                .map(|(k, v)| v.constant().map(|v| (k.clone(), v)))
                .collect::<Option<serde_json::Map<_, _>>>()
                .map(Value::Object),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for ExprSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Value::deserialize(d).map(ExprSpec::parse)
    }
}

impl JsonSchema for ExprSpec {
    fn schema_name() -> Cow<'static, str> {
        "Transform".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let this = generator.subschema_for::<ExprSpec>();
        let mut choices = vec![
            json_schema!({ "type": ["string", "number", "boolean", "null"] }),
            json_schema!({ "type": "array", "items": this.clone() }),
            json_schema!({
                "description": "An object template: every value is a transform; absent results are left out.",
                "type": "object",
                "propertyNames": { "not": { "pattern": "^\\$" } },
                "additionalProperties": this,
            }),
        ];
        choices.extend(registry::OPS.iter().map(|op| (op.schema)(generator)));
        json_schema!({ "anyOf": choices })
    }
}

/// A named, reusable transform of a file's `defs`: `{ $use: name, on: <input>, with: {...} }`
/// runs it with `$` = the input (default: the current value) and each parameter bound as
/// `$<param>`. Definitions are inherited through `extends`; a child may replace one by name.
/// Written either as the transform itself, or as `{ params: [names], body: <transform> }`.
#[derive(Debug)]
pub enum DefSpec {
    /// A definition with parameters.
    WithParams { params: Vec<String>, body: ExprSpec },
    /// A definition without parameters: just the transform.
    Plain(ExprSpec),
}

impl<'de> Deserialize<'de> for DefSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        match v {
            Value::Object(mut m) if m.len() == 2 && m.contains_key("params") && m.contains_key("body") => {
                let params = serde_json::from_value(m.remove("params").unwrap_or_default())
                    .map_err(|e| serde::de::Error::custom(format!("params: {e}")))?;
                Ok(DefSpec::WithParams { params, body: ExprSpec::parse(m.remove("body").unwrap_or_default()) })
            }
            other => Ok(DefSpec::Plain(ExprSpec::parse(other))),
        }
    }
}

impl JsonSchema for DefSpec {
    fn schema_name() -> Cow<'static, str> {
        "Definition".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let transform = generator.subschema_for::<ExprSpec>();
        json_schema!({
            "description": "A transform, or `{ params: [names], body: <transform> }` for one that takes parameters.",
            "x-merge": "replace",
            "anyOf": [
                {
                    "type": "object",
                    "properties": {
                        "params": { "type": "array", "items": { "type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$" } },
                        "body": transform.clone(),
                    },
                    "required": ["params", "body"],
                    "additionalProperties": false,
                },
                transform,
            ]
        })
    }
}

impl DefSpec {
    pub(crate) fn params(&self) -> &[String] {
        match self {
            DefSpec::WithParams { params, .. } => params,
            DefSpec::Plain(_) => &[],
        }
    }

    pub(crate) fn body(&self) -> (&ExprSpec, &'static str) {
        match self {
            DefSpec::WithParams { body, .. } => (body, "/body"),
            DefSpec::Plain(body) => (body, ""),
        }
    }
}
