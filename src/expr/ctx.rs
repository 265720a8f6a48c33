//! `$ctx`: the facts about a call that transforms read (model, provider, stream, ids, vars, and
//! an upstream error's status and headers). Kept as typed fields, so that making a call builds
//! no map: a path such as `$ctx.model` is resolved to its field when it is compiled.

use std::sync::Arc;

use serde_json::{Map, Value};

/// The facts of one call.
#[derive(Debug, Clone, Default)]
pub struct Ctx {
    pub provider: Arc<Value>,
    pub model: Value,
    pub stream: Value,
    pub include_usage: Value,
    pub id: Value,
    pub created: Value,
    pub vars: Arc<Value>,
    /// An upstream error's status (in error transforms).
    pub status: Value,
    /// An upstream error's response headers, lower-case names (in error transforms).
    pub headers: Value,
}

/// A field of `$ctx`, chosen when a path is compiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CtxField {
    Provider,
    Model,
    Stream,
    IncludeUsage,
    Id,
    Created,
    Vars,
    Status,
    Headers,
}

impl CtxField {
    pub fn named(name: &str) -> Option<CtxField> {
        Some(match name {
            "provider" => CtxField::Provider,
            "model" => CtxField::Model,
            "stream" => CtxField::Stream,
            "include_usage" => CtxField::IncludeUsage,
            "id" => CtxField::Id,
            "created" => CtxField::Created,
            "vars" => CtxField::Vars,
            "status" => CtxField::Status,
            "headers" => CtxField::Headers,
            _ => return None,
        })
    }

    const ALL: [(CtxField, &'static str); 9] = [
        (CtxField::Provider, "provider"),
        (CtxField::Model, "model"),
        (CtxField::Stream, "stream"),
        (CtxField::IncludeUsage, "include_usage"),
        (CtxField::Id, "id"),
        (CtxField::Created, "created"),
        (CtxField::Vars, "vars"),
        (CtxField::Status, "status"),
        (CtxField::Headers, "headers"),
    ];
}

impl Ctx {
    pub(crate) fn field(&self, f: CtxField) -> &Value {
        match f {
            CtxField::Provider => &self.provider,
            CtxField::Model => &self.model,
            CtxField::Stream => &self.stream,
            CtxField::IncludeUsage => &self.include_usage,
            CtxField::Id => &self.id,
            CtxField::Created => &self.created,
            CtxField::Vars => &self.vars,
            CtxField::Status => &self.status,
            CtxField::Headers => &self.headers,
        }
    }

    /// The whole `$ctx` as one object (for a path that does not name a field first).
    pub(crate) fn to_value(&self) -> Value {
        let mut m = Map::new();
        for (f, name) in CtxField::ALL {
            let v = self.field(f);
            if !v.is_null() {
                m.insert(name.to_string(), v.clone());
            }
        }
        Value::Object(m)
    }
}
