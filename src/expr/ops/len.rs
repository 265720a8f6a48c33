//! `$len`: the length of a list, object or string.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use crate::expr::registry::{OpSpec, Operation};
use crate::expr::{owned, Compiler, Expr, ExprSpec, Op, Out, Scope};

/// The length of a list, object or string (in characters).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Len")]
pub(crate) struct Spec {
    #[serde(rename = "$len")]
    value: ExprSpec,
}

impl Operation for Spec {
    const NAME: &'static str = "$len";
    const USAGE: &'static str = "{$len: v}";
}

impl OpSpec for Spec {
    fn compile(&self, c: &mut Compiler<'_>) -> Expr {
        Expr::op(Len(c.sub(&self.value, Self::NAME)))
    }
}

#[derive(Debug)]
struct Len(Expr);

impl Op for Len {
    fn eval<'s>(&self, scope: &Scope<'s>) -> Out<'s> {
        let n = match self.0.eval(scope)?.as_ref() {
            Value::Array(a) => a.len(),
            Value::Object(o) => o.len(),
            Value::String(s) => s.chars().count(),
            _ => return None,
        };
        owned(Value::from(n))
    }
}

#[cfg(test)]
mod tests {
    use crate::expr::testing::run;
    use serde_json::json;

    #[test]
    fn lengths() {
        assert_eq!(run(json!({"$len": "$"}), json!([1, 2])), Some(json!(2)));
        assert_eq!(run(json!({"$len": "$"}), json!("h\u{e9}")), Some(json!(2)));
        assert_eq!(run(json!({"$len": "$"}), json!(3)), None);
    }
}
