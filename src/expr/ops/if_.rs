//! `$if`: a branch on a condition.

use schemars::JsonSchema;
use serde::Deserialize;

use crate::expr::registry::{OpSpec, Operation};
use crate::expr::{Compiler, Expr, ExprSpec, Op, Out, Scope};

/// `then` when the condition holds (is present and not false or null), else `else`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "If")]
pub(crate) struct Spec {
    #[serde(rename = "$if")]
    cond: ExprSpec,
    #[serde(default)]
    then: Option<ExprSpec>,
    #[serde(default, rename = "else")]
    otherwise: Option<ExprSpec>,
}

impl Operation for Spec {
    const NAME: &'static str = "$if";
    const USAGE: &'static str = "{$if: cond, then: a, else: b}";
}

impl OpSpec for Spec {
    fn compile(&self, c: &mut Compiler<'_>) -> Expr {
        Expr::op(If {
            cond: c.sub(&self.cond, Self::NAME),
            then: c.opt(&self.then, "then"),
            otherwise: c.opt(&self.otherwise, "else"),
        })
    }
}

#[derive(Debug)]
struct If {
    cond: Expr,
    then: Option<Expr>,
    otherwise: Option<Expr>,
}

impl Op for If {
    fn eval<'s>(&self, scope: &Scope<'s>) -> Out<'s> {
        let branch = if self.cond.holds(scope) { &self.then } else { &self.otherwise };
        branch.as_ref().and_then(|e| e.eval(scope))
    }
}

#[cfg(test)]
mod tests {
    use crate::expr::testing::run;
    use serde_json::json;

    #[test]
    fn false_null_and_absent_do_not_hold() {
        let t = json!({"$if": "$.c", "then": "yes", "else": "no"});
        assert_eq!(run(t.clone(), json!({"c": 0})), Some(json!("yes")));
        assert_eq!(run(t.clone(), json!({"c": ""})), Some(json!("yes")));
        assert_eq!(run(t.clone(), json!({"c": false})), Some(json!("no")));
        assert_eq!(run(t.clone(), json!({"c": null})), Some(json!("no")));
        assert_eq!(run(t, json!({})), Some(json!("no")));
        assert_eq!(run(json!({"$if": "$.c", "then": 1}), json!({})), None);
    }
}
