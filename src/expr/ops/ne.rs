//! `$ne`: whether two values differ.

use schemars::JsonSchema;
use serde::Deserialize;

use super::eq::Eq;
use crate::expr::registry::{OpSpec, Operation};
use crate::expr::{boolean, Compiler, Expr, ExprSpec, Op, Out, Scope};

/// True when the values differ (the negation of `$eq`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Ne")]
pub(crate) struct Spec {
    #[serde(rename = "$ne")]
    pair: [ExprSpec; 2],
}

impl Operation for Spec {
    const NAME: &'static str = "$ne";
    const USAGE: &'static str = "{$ne: [a, b]}";
}

impl OpSpec for Spec {
    fn compile(&self, c: &mut Compiler<'_>) -> Expr {
        let [a, b] = &self.pair;
        Expr::op(Ne(Eq::new(c.sub(a, "$ne/0"), c.sub(b, "$ne/1"))))
    }
}

#[derive(Debug)]
struct Ne(Eq);

impl Op for Ne {
    fn eval<'s>(&self, scope: &Scope<'s>) -> Out<'s> {
        boolean(!self.0.holds(scope))
    }
}

#[cfg(test)]
mod tests {
    use crate::expr::testing::run;
    use serde_json::json;

    #[test]
    fn differing_values() {
        assert_eq!(run(json!({"$ne": ["$.a", ""]}), json!({"a": "x"})), Some(json!(true)));
        assert_eq!(run(json!({"$ne": ["$.a", ""]}), json!({"a": ""})), Some(json!(false)));
        assert_eq!(run(json!({"$ne": ["$.a", ""]}), json!({})), Some(json!(true)));
    }
}
