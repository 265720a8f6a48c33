//! `$eq`: whether two values are equal.

use schemars::JsonSchema;
use serde::Deserialize;

use crate::expr::registry::{OpSpec, Operation};
use serde_json::Value;

use crate::expr::{boolean, Compiler, Expr, ExprSpec, Op, Out, Scope};

/// True when both values are equal (absent equals only absent).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Eq")]
pub(crate) struct Spec {
    #[serde(rename = "$eq")]
    pair: [ExprSpec; 2],
}

impl Operation for Spec {
    const NAME: &'static str = "$eq";
    const USAGE: &'static str = "{$eq: [a, b]}";
}

impl OpSpec for Spec {
    fn compile(&self, c: &mut Compiler<'_>) -> Expr {
        let [a, b] = &self.pair;
        Expr::op(Eq::new(c.sub(a, "$eq/0"), c.sub(b, "$eq/1")))
    }
}

/// Two values compared; a constant side is compared in place, never copied.
#[derive(Debug)]
pub(super) enum Eq {
    Both(Expr, Expr),
    WithConst(Expr, Value),
}

impl Eq {
    pub fn new(a: Expr, b: Expr) -> Eq {
        match (a, b) {
            (e, Expr::Const(v)) | (Expr::Const(v), e) => Eq::WithConst(e, v),
            (a, b) => Eq::Both(a, b),
        }
    }

    pub fn holds(&self, scope: &Scope<'_>) -> bool {
        match self {
            Eq::Both(a, b) => a.eval(scope) == b.eval(scope),
            Eq::WithConst(e, v) => e.eval(scope).is_some_and(|x| *x == *v),
        }
    }
}

impl Op for Eq {
    fn eval<'s>(&self, scope: &Scope<'s>) -> Out<'s> {
        boolean(self.holds(scope))
    }
}

#[cfg(test)]
mod tests {
    use crate::expr::testing::run;
    use serde_json::json;

    #[test]
    fn equal_values_and_absence() {
        assert_eq!(run(json!({"$eq": ["$.a", "x"]}), json!({"a": "x"})), Some(json!(true)));
        assert_eq!(run(json!({"$eq": ["$.a", "x"]}), json!({"a": "y"})), Some(json!(false)));
        assert_eq!(run(json!({"$eq": ["$.a", "$.b"]}), json!({})), Some(json!(true)));
        assert_eq!(run(json!({"$eq": ["$.a", null]}), json!({})), Some(json!(false)));
    }
}
