//! `$merge`: objects merged, later keys winning.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::expr::registry::{OpSpec, Operation};
use crate::expr::{owned, Compiler, Expr, ExprSpec, Op, Out, Scope};

/// Merge objects, later keys winning (absent items and items that are not objects are skipped).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Merge")]
pub(crate) struct Spec {
    #[serde(rename = "$merge")]
    items: Vec<ExprSpec>,
}

impl Operation for Spec {
    const NAME: &'static str = "$merge";
    const USAGE: &'static str = "{$merge: [a, b]}";
}

impl OpSpec for Spec {
    fn compile(&self, c: &mut Compiler<'_>) -> Expr {
        Expr::op(Merge(c.list(&self.items, Self::NAME)))
    }
}

#[derive(Debug)]
struct Merge(Vec<Expr>);

impl Op for Merge {
    fn eval<'s>(&self, scope: &Scope<'s>) -> Out<'s> {
        let mut out = Map::new();
        for e in &self.0 {
            if let Some(Value::Object(m)) = e.eval_owned(scope) {
                out.extend(m);
            }
        }
        owned(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use crate::expr::testing::run;
    use serde_json::json;

    #[test]
    fn later_keys_win() {
        let t = json!({"$merge": ["$.a", "$.b", "$.none", 3]});
        assert_eq!(run(t, json!({"a": {"x": 1, "y": 1}, "b": {"y": 2}})), Some(json!({"x": 1, "y": 2})));
    }
}
