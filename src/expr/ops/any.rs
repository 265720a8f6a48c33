//! `$any`: whether some condition holds.

use schemars::JsonSchema;
use serde::Deserialize;

use crate::expr::registry::{OpSpec, Operation};
use crate::expr::{boolean, Compiler, Expr, ExprSpec, Op, Out, Scope};

/// True when any condition holds.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Any")]
pub(crate) struct Spec {
    #[serde(rename = "$any")]
    conds: Vec<ExprSpec>,
}

impl Operation for Spec {
    const NAME: &'static str = "$any";
    const USAGE: &'static str = "{$any: [c1, c2]}";
}

impl OpSpec for Spec {
    fn compile(&self, c: &mut Compiler<'_>) -> Expr {
        Expr::op(Any(c.list(&self.conds, Self::NAME)))
    }
}

#[derive(Debug)]
struct Any(Vec<Expr>);

impl Op for Any {
    fn eval<'s>(&self, scope: &Scope<'s>) -> Out<'s> {
        boolean(self.0.iter().any(|e| e.holds(scope)))
    }
}

#[cfg(test)]
mod tests {
    use crate::expr::testing::run;
    use serde_json::json;

    #[test]
    fn some_condition() {
        assert_eq!(run(json!({"$any": ["$.a", "$.b"]}), json!({"b": 1})), Some(json!(true)));
        assert_eq!(run(json!({"$any": ["$.a", "$.b"]}), json!({})), Some(json!(false)));
    }
}
