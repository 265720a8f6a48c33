//! `$concat`: lists, concatenated.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use crate::expr::registry::{OpSpec, Operation};
use crate::expr::{owned, Compiler, Expr, ExprSpec, Op, Out, Scope};

/// Concatenate lists (a non-list value counts as a one-item list; absent ones are skipped).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Concat")]
pub(crate) struct Spec {
    #[serde(rename = "$concat")]
    items: Vec<ExprSpec>,
}

impl Operation for Spec {
    const NAME: &'static str = "$concat";
    const USAGE: &'static str = "{$concat: [l1, l2]}";
}

impl OpSpec for Spec {
    fn compile(&self, c: &mut Compiler<'_>) -> Expr {
        Expr::op(Concat(c.list(&self.items, Self::NAME)))
    }
}

#[derive(Debug)]
struct Concat(Vec<Expr>);

impl Op for Concat {
    fn eval<'s>(&self, scope: &Scope<'s>) -> Out<'s> {
        let mut out = Vec::new();
        for e in &self.0 {
            match e.eval_owned(scope) {
                Some(Value::Array(a)) => out.extend(a),
                Some(v) => out.push(v),
                None => {}
            }
        }
        owned(Value::Array(out))
    }
}

#[cfg(test)]
mod tests {
    use crate::expr::testing::run;
    use serde_json::json;

    #[test]
    fn lists_and_single_values() {
        assert_eq!(
            run(json!({"$concat": ["$.a", "$.b", "$.c"]}), json!({"a": [1, 2], "b": 3})),
            Some(json!([1, 2, 3]))
        );
    }
}
