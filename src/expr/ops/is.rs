//! `$is`: whether a value has a JSON type.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use crate::expr::registry::{OpSpec, Operation};
use crate::expr::{boolean, Compiler, Expr, ExprSpec, Op, Out, Scope};

/// True when the value has this JSON type: string, number, integer, boolean, array, object, null.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Is")]
pub(crate) struct Spec {
    #[serde(rename = "$is")]
    value: ExprSpec,
    #[serde(rename = "type")]
    kind: JsonType,
}

/// A JSON type name.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum JsonType {
    String,
    Number,
    Integer,
    Boolean,
    Array,
    Object,
    Null,
}

impl Operation for Spec {
    const NAME: &'static str = "$is";
    const USAGE: &'static str = "{$is: v, type: string}";
}

impl OpSpec for Spec {
    fn compile(&self, c: &mut Compiler<'_>) -> Expr {
        Expr::op(Is(c.sub(&self.value, Self::NAME), self.kind))
    }
}

#[derive(Debug)]
struct Is(Expr, JsonType);

impl Op for Is {
    fn eval<'s>(&self, scope: &Scope<'s>) -> Out<'s> {
        boolean(self.0.eval(scope).is_some_and(|v| match self.1 {
            JsonType::String => v.is_string(),
            JsonType::Number => v.is_number(),
            JsonType::Integer => v.is_i64() || v.is_u64(),
            JsonType::Boolean => v.is_boolean(),
            JsonType::Array => v.is_array(),
            JsonType::Object => v.is_object(),
            JsonType::Null => matches!(v.as_ref(), Value::Null),
        }))
    }
}

#[cfg(test)]
mod tests {
    use crate::expr::testing::run;
    use serde_json::json;

    #[test]
    fn json_types() {
        assert_eq!(run(json!({"$is": "$", "type": "string"}), json!("x")), Some(json!(true)));
        assert_eq!(run(json!({"$is": "$", "type": "integer"}), json!(1.5)), Some(json!(false)));
        assert_eq!(run(json!({"$is": "$", "type": "number"}), json!(1.5)), Some(json!(true)));
        assert_eq!(run(json!({"$is": "$.a", "type": "object"}), json!({})), Some(json!(false)));
    }
}
