//! `$all`: whether every condition holds.

use schemars::JsonSchema;
use serde::Deserialize;

use crate::expr::registry::{OpSpec, Operation};
use crate::expr::{boolean, Compiler, Expr, ExprSpec, Op, Out, Scope};

/// True when every condition holds.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "All")]
pub(crate) struct Spec {
    #[serde(rename = "$all")]
    conds: Vec<ExprSpec>,
}

impl Operation for Spec {
    const NAME: &'static str = "$all";
    const USAGE: &'static str = "{$all: [c1, c2]}";
}

impl OpSpec for Spec {
    fn compile(&self, c: &mut Compiler<'_>) -> Expr {
        Expr::op(All(c.list(&self.conds, Self::NAME)))
    }
}

#[derive(Debug)]
struct All(Vec<Expr>);

impl Op for All {
    fn eval<'s>(&self, scope: &Scope<'s>) -> Out<'s> {
        boolean(self.0.iter().all(|e| e.holds(scope)))
    }
}

#[cfg(test)]
mod tests {
    use crate::expr::testing::run;
    use serde_json::json;

    #[test]
    fn every_condition() {
        assert_eq!(run(json!({"$all": ["$.a", "$.b"]}), json!({"a": 1, "b": 1})), Some(json!(true)));
        assert_eq!(run(json!({"$all": ["$.a", "$.b"]}), json!({"a": 1})), Some(json!(false)));
        assert_eq!(run(json!({"$all": []}), json!({})), Some(json!(true)));
    }
}
