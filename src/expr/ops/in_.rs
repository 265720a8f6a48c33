//! `$in`: whether a value is one of a fixed set.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use crate::expr::registry::{OpSpec, Operation};
use crate::expr::{boolean, Compiler, Expr, ExprSpec, Op, Out, Scope};

/// True when the value is one of these.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "In")]
pub(crate) struct Spec {
    #[serde(rename = "$in")]
    value: ExprSpec,
    values: Vec<Value>,
}

impl Operation for Spec {
    const NAME: &'static str = "$in";
    const USAGE: &'static str = "{$in: v, values: [a, b]}";
}

impl OpSpec for Spec {
    fn compile(&self, c: &mut Compiler<'_>) -> Expr {
        Expr::op(In(c.sub(&self.value, Self::NAME), self.values.clone()))
    }
}

#[derive(Debug)]
struct In(Expr, Vec<Value>);

impl Op for In {
    fn eval<'s>(&self, scope: &Scope<'s>) -> Out<'s> {
        boolean(self.0.eval(scope).is_some_and(|v| self.1.contains(&v)))
    }
}

#[cfg(test)]
mod tests {
    use crate::expr::testing::run;
    use serde_json::json;

    #[test]
    fn membership() {
        let t = json!({"$in": "$.r", "values": ["system", "developer"]});
        assert_eq!(run(t.clone(), json!({"r": "developer"})), Some(json!(true)));
        assert_eq!(run(t.clone(), json!({"r": "user"})), Some(json!(false)));
        assert_eq!(run(t, json!({})), Some(json!(false)));
    }
}
