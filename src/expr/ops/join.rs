//! `$join`: the strings of a list, joined.

use std::borrow::Cow;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use crate::expr::registry::{OpSpec, Operation};
use crate::expr::{Compiler, Expr, ExprSpec, Op, Out, Scope};

/// Join the strings of a list (other items are skipped); absent when there are none. A string
/// is its own join.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Join")]
pub(crate) struct Spec {
    #[serde(rename = "$join")]
    items: ExprSpec,
    #[serde(default)]
    sep: String,
}

impl Operation for Spec {
    const NAME: &'static str = "$join";
    const USAGE: &'static str = "{$join: list, sep: \"\"}";
}

impl OpSpec for Spec {
    fn compile(&self, c: &mut Compiler<'_>) -> Expr {
        Expr::op(Join(c.sub(&self.items, Self::NAME), self.sep.clone()))
    }
}

#[derive(Debug)]
struct Join(Expr, String);

impl Op for Join {
    fn eval<'s>(&self, scope: &Scope<'s>) -> Out<'s> {
        let v = self.0.eval(scope)?;
        let items = match v.as_ref() {
            Value::Array(items) => items,
            Value::String(_) => return Some(v),
            _ => return None,
        };
        let mut out = String::new();
        let mut any = false;
        for s in items.iter().filter_map(Value::as_str) {
            if any {
                out.push_str(&self.1);
            }
            out.push_str(s);
            any = true;
        }
        any.then_some(Cow::Owned(Value::String(out)))
    }
}

#[cfg(test)]
mod tests {
    use crate::expr::testing::run;
    use serde_json::json;

    #[test]
    fn joins_strings_only() {
        assert_eq!(run(json!({"$join": "$", "sep": "-"}), json!(["a", 1, "b"])), Some(json!("a-b")));
        assert_eq!(run(json!({"$join": "$"}), json!([1, null])), None);
        assert_eq!(run(json!({"$join": "$"}), json!("s")), Some(json!("s")));
    }
}
