//! `$exists`: whether a value is present.

use schemars::JsonSchema;
use serde::Deserialize;

use crate::expr::registry::{OpSpec, Operation};
use crate::expr::{boolean, Compiler, Expr, ExprSpec, Op, Out, Scope};

/// True when the value is present and not null.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Exists")]
pub(crate) struct Spec {
    #[serde(rename = "$exists")]
    value: ExprSpec,
}

impl Operation for Spec {
    const NAME: &'static str = "$exists";
    const USAGE: &'static str = "{$exists: v}";
}

impl OpSpec for Spec {
    fn compile(&self, c: &mut Compiler<'_>) -> Expr {
        Expr::op(Exists(c.sub(&self.value, Self::NAME)))
    }
}

#[derive(Debug)]
struct Exists(Expr);

impl Op for Exists {
    fn eval<'s>(&self, scope: &Scope<'s>) -> Out<'s> {
        boolean(self.0.eval(scope).is_some_and(|v| !v.is_null()))
    }
}

#[cfg(test)]
mod tests {
    use crate::expr::testing::run;
    use serde_json::json;

    #[test]
    fn present_and_not_null() {
        let t = json!({"$exists": "$.a"});
        assert_eq!(run(t.clone(), json!({"a": false})), Some(json!(true)));
        assert_eq!(run(t.clone(), json!({"a": null})), Some(json!(false)));
        assert_eq!(run(t, json!({})), Some(json!(false)));
    }
}
