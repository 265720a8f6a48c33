//! A transform as written in a mapping file: any YAML value, read as an expression.
//! Its JSON Schema lists every operation of [`super::ops`], so editors complete and check them.

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// A transform: a JSONPath string (`$.a.b`, `$root.x`, `$state.y`), a constant, an object or
/// list template whose values are transforms, or one operation (`{ $each: ..., map: ... }`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct ExprSpec(pub serde_json::Value);

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
        choices.extend(super::ops::op_schemas(generator));
        json_schema!({ "anyOf": choices })
    }
}
