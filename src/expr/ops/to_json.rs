//! `$to_json`: a value serialised as JSON text.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use crate::expr::registry::{OpSpec, Operation};
use crate::expr::{owned, Compiler, Expr, ExprSpec, Op, Out, Scope};

/// Serialise a value as compact JSON text (a string becomes a quoted JSON string; see `$string`
/// for text as it is).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "ToJson")]
pub(crate) struct Spec {
    #[serde(rename = "$to_json")]
    value: ExprSpec,
}

impl Operation for Spec {
    const NAME: &'static str = "$to_json";
    const USAGE: &'static str = "{$to_json: v}";
}

impl OpSpec for Spec {
    fn compile(&self, c: &mut Compiler<'_>) -> Expr {
        Expr::op(ToJson(c.sub(&self.value, Self::NAME)))
    }
}

#[derive(Debug)]
struct ToJson(Expr);

impl Op for ToJson {
    fn eval<'s>(&self, scope: &Scope<'s>) -> Out<'s> {
        owned(Value::String(self.0.eval(scope)?.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use crate::expr::testing::run;
    use serde_json::json;

    #[test]
    fn every_value_becomes_json_text() {
        assert_eq!(run(json!({"$to_json": "$"}), json!({"a": [1]})), Some(json!("{\"a\":[1]}")));
        assert_eq!(run(json!({"$to_json": "$"}), json!("x")), Some(json!("\"x\"")));
        assert_eq!(run(json!({"$to_json": "$.none"}), json!({})), None);
    }
}
