//! `$const`: a literal value, never read as a path or an operation.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use crate::expr::registry::{OpSpec, Operation};
use crate::expr::{Compiler, Expr};

/// A constant, never read as a path or operation (`{$const: "$x"}` is the text `$x`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Const")]
pub(crate) struct Spec {
    #[serde(rename = "$const")]
    value: Value,
}

impl Operation for Spec {
    const NAME: &'static str = "$const";
    const USAGE: &'static str = "{$const: \"$literal\"}";
}

impl OpSpec for Spec {
    fn compile(&self, _: &mut Compiler<'_>) -> Expr {
        Expr::Const(self.value.clone())
    }
}

#[cfg(test)]
mod tests {
    use crate::expr::testing::run;
    use serde_json::json;

    #[test]
    fn a_constant_is_never_a_path() {
        assert_eq!(run(json!({"$const": "$.a"}), json!({"a": 1})), Some(json!("$.a")));
        assert_eq!(run(json!({"$const": {"$each": 1}}), json!(null)), Some(json!({"$each": 1})));
    }
}
