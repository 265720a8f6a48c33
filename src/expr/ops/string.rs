//! `$string`: a value as text.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use crate::expr::registry::{OpSpec, Operation};
use crate::expr::{owned, Compiler, Expr, ExprSpec, Op, Out, Scope};

/// The value as text: a string unchanged, anything else as JSON text.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "String")]
pub(crate) struct Spec {
    #[serde(rename = "$string")]
    value: ExprSpec,
}

impl Operation for Spec {
    const NAME: &'static str = "$string";
    const USAGE: &'static str = "{$string: v}";
}

impl OpSpec for Spec {
    fn compile(&self, c: &mut Compiler<'_>) -> Expr {
        Expr::op(ToText(c.sub(&self.value, Self::NAME)))
    }
}

#[derive(Debug)]
struct ToText(Expr);

impl Op for ToText {
    fn eval<'s>(&self, scope: &Scope<'s>) -> Out<'s> {
        let v = self.0.eval(scope)?;
        match v.as_ref() {
            Value::String(_) => Some(v),
            other => owned(Value::String(other.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::expr::testing::run;
    use serde_json::json;

    #[test]
    fn strings_stay_others_become_json() {
        assert_eq!(run(json!({"$string": "$"}), json!("x")), Some(json!("x")));
        assert_eq!(run(json!({"$string": "$"}), json!(429)), Some(json!("429")));
    }
}
