//! `$nonempty`: a value, unless it is empty.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use crate::expr::registry::{OpSpec, Operation};
use crate::expr::{Compiler, Expr, ExprSpec, Op, Out, Scope};

/// Absent when the value is an empty list, object or string.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "NonEmpty")]
pub(crate) struct Spec {
    #[serde(rename = "$nonempty")]
    value: ExprSpec,
}

impl Operation for Spec {
    const NAME: &'static str = "$nonempty";
    const USAGE: &'static str = "{$nonempty: v}";
}

impl OpSpec for Spec {
    fn compile(&self, c: &mut Compiler<'_>) -> Expr {
        Expr::op(NonEmpty(c.sub(&self.value, Self::NAME)))
    }
}

#[derive(Debug)]
struct NonEmpty(Expr);

impl Op for NonEmpty {
    fn eval<'s>(&self, scope: &Scope<'s>) -> Out<'s> {
        let v = self.0.eval(scope)?;
        let empty = match v.as_ref() {
            Value::Array(a) => a.is_empty(),
            Value::Object(o) => o.is_empty(),
            Value::String(s) => s.is_empty(),
            _ => false,
        };
        (!empty).then_some(v)
    }
}

#[cfg(test)]
mod tests {
    use crate::expr::testing::run;
    use serde_json::json;

    #[test]
    fn empty_values_are_absent() {
        assert_eq!(run(json!({"$nonempty": "$"}), json!([])), None);
        assert_eq!(run(json!({"$nonempty": "$"}), json!({})), None);
        assert_eq!(run(json!({"$nonempty": "$"}), json!("")), None);
        assert_eq!(run(json!({"$nonempty": "$"}), json!(0)), Some(json!(0)));
    }
}
