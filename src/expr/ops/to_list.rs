//! `$to_list`: a single value as a one-item list.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use crate::expr::registry::{OpSpec, Operation};
use crate::expr::{owned, Compiler, Expr, ExprSpec, Op, Out, Scope};

/// Wrap a single value in a list; a list stays as it is.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "ToList")]
pub(crate) struct Spec {
    #[serde(rename = "$to_list")]
    value: ExprSpec,
}

impl Operation for Spec {
    const NAME: &'static str = "$to_list";
    const USAGE: &'static str = "{$to_list: v}";
}

impl OpSpec for Spec {
    fn compile(&self, c: &mut Compiler<'_>) -> Expr {
        Expr::op(ToList(c.sub(&self.value, Self::NAME)))
    }
}

#[derive(Debug)]
struct ToList(Expr);

impl Op for ToList {
    fn eval<'s>(&self, scope: &Scope<'s>) -> Out<'s> {
        let v = self.0.eval(scope)?;
        match v.as_ref() {
            Value::Array(_) => Some(v),
            _ => owned(Value::Array(vec![v.into_owned()])),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::expr::testing::run;
    use serde_json::json;

    #[test]
    fn wraps_non_lists() {
        assert_eq!(run(json!({"$to_list": "$"}), json!("a")), Some(json!(["a"])));
        assert_eq!(run(json!({"$to_list": "$"}), json!(["a"])), Some(json!(["a"])));
        assert_eq!(run(json!({"$to_list": "$.x"}), json!({})), None);
    }
}
