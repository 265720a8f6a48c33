//! `$first`: the first of several transforms that gives a value.

use schemars::JsonSchema;
use serde::Deserialize;

use crate::expr::registry::{OpSpec, Operation};
use crate::expr::{Compiler, Expr, ExprSpec, Op, Out, Scope};

/// The first of these transforms that gives a value (a default is the last one).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "First")]
pub(crate) struct Spec {
    #[serde(rename = "$first")]
    items: Vec<ExprSpec>,
}

impl Operation for Spec {
    const NAME: &'static str = "$first";
    const USAGE: &'static str = "{$first: [a, b, 4096]}";
}

impl OpSpec for Spec {
    fn compile(&self, c: &mut Compiler<'_>) -> Expr {
        Expr::op(First(c.list(&self.items, Self::NAME)))
    }
}

#[derive(Debug)]
struct First(Vec<Expr>);

impl Op for First {
    fn eval<'s>(&self, scope: &Scope<'s>) -> Out<'s> {
        self.0.iter().find_map(|e| e.eval(scope))
    }
}

#[cfg(test)]
mod tests {
    use crate::expr::testing::run;
    use serde_json::json;

    #[test]
    fn the_first_present_value_wins() {
        assert_eq!(run(json!({"$first": ["$.a", "$.b", 3]}), json!({"b": 2})), Some(json!(2)));
        assert_eq!(run(json!({"$first": ["$.a", 3]}), json!({"a": null})), Some(json!(3)));
        assert_eq!(run(json!({"$first": ["$.a"]}), json!({})), None);
    }
}
