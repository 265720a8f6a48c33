//! The table of built-in operations. A row names an operation's module; the operation names,
//! the transform part of the mapping JSON Schema, and the operation reference in
//! `docs/mappings.md` are all generated from this table.

use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::ops::*;
use super::{Compiler, Expr};

/// An operation's options as parsed from the file, ready to compile.
pub(crate) trait OpSpec: fmt::Debug + Send + Sync {
    /// Compile into an expression; problems go to the compiler, which knows where they are.
    fn compile(&self, c: &mut Compiler<'_>) -> Expr;
}

/// What the registry needs to know of an operation's spec type.
pub(crate) trait Operation: OpSpec + DeserializeOwned + JsonSchema + 'static {
    /// The key that names the operation, e.g. `$each` (also its serde name).
    const NAME: &'static str;
    /// How it is written, for the reference table, e.g. `{$join: list, sep: ""}`.
    const USAGE: &'static str;
}

/// One row of the table.
pub(crate) struct OpDef {
    pub name: &'static str,
    pub usage: &'static str,
    pub parse: fn(Value) -> Result<Box<dyn OpSpec>, serde_json::Error>,
    pub schema: fn(&mut SchemaGenerator) -> Schema,
}

impl fmt::Debug for OpDef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

fn parse<T: Operation>(v: Value) -> Result<Box<dyn OpSpec>, serde_json::Error> {
    serde_json::from_value::<T>(v).map(|t| Box::new(t) as Box<dyn OpSpec>)
}

fn schema<T: Operation>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

const fn row<T: Operation>() -> OpDef {
    OpDef { name: T::NAME, usage: T::USAGE, parse: parse::<T>, schema: schema::<T> }
}

/// Every built-in operation, in the order the reference lists them.
pub(crate) static OPS: &[OpDef] = &[
    row::<constant::Spec>(),
    row::<first::Spec>(),
    row::<lookup::Spec>(),
    row::<each::Spec>(),
    row::<if_::Spec>(),
    row::<match_::Spec>(),
    row::<exists::Spec>(),
    row::<eq::Spec>(),
    row::<ne::Spec>(),
    row::<in_::Spec>(),
    row::<not::Spec>(),
    row::<all::Spec>(),
    row::<any::Spec>(),
    row::<like::Spec>(),
    row::<is::Spec>(),
    row::<join::Spec>(),
    row::<concat::Spec>(),
    row::<nonempty::Spec>(),
    row::<to_list::Spec>(),
    row::<merge_consecutive::Spec>(),
    row::<data_url::Spec>(),
    row::<parse_json::Spec>(),
    row::<to_json::Spec>(),
    row::<string::Spec>(),
    row::<strip_keys::Spec>(),
    row::<omit::Spec>(),
    row::<rename::Spec>(),
    row::<merge::Spec>(),
    row::<update::Spec>(),
    row::<object::Spec>(),
    row::<sum::Spec>(),
    row::<len::Spec>(),
    row::<pipe::Spec>(),
    row::<let_::Spec>(),
    row::<use_::Spec>(),
    row::<expr::Spec>(),
    row::<f32_base64::Spec>(),
    row::<hash_id::Spec>(),
    row::<split_tag::Spec>(),
    row::<inherit::Spec>(),
];

/// The operation named `name`.
pub(crate) fn find(name: &str) -> Option<&'static OpDef> {
    OPS.iter().find(|op| op.name == name)
}

/// Every operation name, for "did you mean" hints.
pub(crate) fn names() -> impl Iterator<Item = &'static str> + Clone {
    OPS.iter().map(|op| op.name)
}

/// The operation reference of `docs/mappings.md`: one row per operation, its usage and the
/// description its spec type documents.
pub fn reference_table() -> String {
    let mut generator = SchemaGenerator::default();
    let mut out = String::from("| operation | does |\n|---|---|\n");
    for op in OPS {
        (op.schema)(&mut generator);
    }
    let defs = generator.definitions().clone();
    for op in OPS {
        let schema = (op.schema)(&mut generator);
        let description = schema
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.rsplit('/').next())
            .and_then(|name| defs.get(name))
            .or(Some(schema.as_value()))
            .and_then(|s| s.get("description"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .replace('\n', " ")
            .replace('|', "\\|");
        out.push_str(&format!("| `{}` | {} |\n", op.usage.replace('|', "\\|"), description));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_parses_its_own_name() {
        let mut seen = std::collections::HashSet::new();
        for op in OPS {
            assert!(op.name.starts_with('$'), "{}", op.name);
            assert!(seen.insert(op.name), "{} is listed twice", op.name);
            let mut generator = SchemaGenerator::default();
            let schema = (op.schema)(&mut generator);
            let schema = match schema.get("$ref").and_then(Value::as_str) {
                Some(r) => generator.definitions()[r.rsplit('/').next().unwrap()].clone(),
                None => schema.to_value(),
            };
            assert!(
                schema.pointer(&format!("/properties/{}", op.name.replace('~', "~0").replace('/', "~1"))).is_some(),
                "the schema of {} has no property {}",
                op.name,
                op.name
            );
            assert!(schema.get("description").is_some(), "{} has no doc comment", op.name);
        }
    }
}
