//! `$parse_json`: JSON text read into a value.

use std::borrow::Cow;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use crate::expr::registry::{OpSpec, Operation};
use crate::expr::{Compiler, Expr, ExprSpec, Op, Out, Scope};

/// Parse JSON text into a value; absent when it is not valid JSON. A value that is not text is
/// returned as it is.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "ParseJson")]
pub(crate) struct Spec {
    #[serde(rename = "$parse_json")]
    value: ExprSpec,
}

impl Operation for Spec {
    const NAME: &'static str = "$parse_json";
    const USAGE: &'static str = "{$parse_json: text}";
}

impl OpSpec for Spec {
    fn compile(&self, c: &mut Compiler<'_>) -> Expr {
        Expr::op(ParseJson(c.sub(&self.value, Self::NAME)))
    }
}

#[derive(Debug)]
struct ParseJson(Expr);

impl Op for ParseJson {
    fn eval<'s>(&self, scope: &Scope<'s>) -> Out<'s> {
        let v = self.0.eval(scope)?;
        match v.as_ref() {
            Value::String(s) => serde_json::from_str(s).ok().map(Cow::Owned),
            _ => Some(v),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::expr::testing::run;
    use serde_json::json;

    #[test]
    fn parses_text_and_passes_values() {
        assert_eq!(run(json!({"$parse_json": "$"}), json!("{\"a\":1}")), Some(json!({"a": 1})));
        assert_eq!(run(json!({"$parse_json": "$"}), json!("{bad")), None);
        assert_eq!(run(json!({"$parse_json": "$"}), json!({"a": 1})), Some(json!({"a": 1})));
    }
}
