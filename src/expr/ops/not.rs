//! `$not`: the negation of a condition.

use schemars::JsonSchema;
use serde::Deserialize;

use crate::expr::registry::{OpSpec, Operation};
use crate::expr::{boolean, Compiler, Expr, ExprSpec, Op, Out, Scope};

/// Negation of a condition.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Not")]
pub(crate) struct Spec {
    #[serde(rename = "$not")]
    cond: ExprSpec,
}

impl Operation for Spec {
    const NAME: &'static str = "$not";
    const USAGE: &'static str = "{$not: cond}";
}

impl OpSpec for Spec {
    fn compile(&self, c: &mut Compiler<'_>) -> Expr {
        Expr::op(Not(c.sub(&self.cond, Self::NAME)))
    }
}

#[derive(Debug)]
struct Not(Expr);

impl Op for Not {
    fn eval<'s>(&self, scope: &Scope<'s>) -> Out<'s> {
        boolean(!self.0.holds(scope))
    }
}

#[cfg(test)]
mod tests {
    use crate::expr::testing::run;
    use serde_json::json;

    #[test]
    fn negates_holding() {
        assert_eq!(run(json!({"$not": "$.a"}), json!({"a": 1})), Some(json!(false)));
        assert_eq!(run(json!({"$not": "$.a"}), json!({})), Some(json!(true)));
    }
}
