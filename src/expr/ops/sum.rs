//! `$sum`: the sum of the numbers present.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use crate::expr::registry::{OpSpec, Operation};
use crate::expr::{owned, Compiler, Expr, ExprSpec, Op, Out, Scope};

/// Sum the numbers present (absent when none are); integers stay integers.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Sum")]
pub(crate) struct Spec {
    #[serde(rename = "$sum")]
    items: Vec<ExprSpec>,
}

impl Operation for Spec {
    const NAME: &'static str = "$sum";
    const USAGE: &'static str = "{$sum: [a, b]}";
}

impl OpSpec for Spec {
    fn compile(&self, c: &mut Compiler<'_>) -> Expr {
        Expr::op(Sum(c.list(&self.items, Self::NAME)))
    }
}

#[derive(Debug)]
struct Sum(Vec<Expr>);

impl Op for Sum {
    fn eval<'s>(&self, scope: &Scope<'s>) -> Out<'s> {
        let mut int: i64 = 0;
        let mut float: f64 = 0.0;
        let mut any = false;
        let mut is_float = false;
        for v in self.0.iter().filter_map(|e| e.eval(scope)) {
            if let Some(i) = v.as_i64() {
                int = int.saturating_add(i);
                any = true;
            } else if let Some(f) = v.as_f64() {
                float += f;
                is_float = true;
                any = true;
            }
        }
        if !any {
            None
        } else if is_float {
            owned(serde_json::Number::from_f64(float + int as f64).map_or(Value::Null, Value::Number))
        } else {
            owned(Value::from(int))
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::expr::testing::run;
    use serde_json::json;

    #[test]
    fn sums_what_is_present() {
        assert_eq!(run(json!({"$sum": ["$.a", "$.b", "$.c"]}), json!({"a": 1, "b": 2})), Some(json!(3)));
        assert_eq!(run(json!({"$sum": ["$.a", 0.5]}), json!({"a": 1})), Some(json!(1.5)));
        assert_eq!(run(json!({"$sum": ["$.a"]}), json!({})), None);
    }
}
