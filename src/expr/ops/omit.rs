//! `$omit`: an object without some of its keys.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use crate::expr::registry::{OpSpec, Operation};
use crate::expr::{owned, Compiler, Expr, ExprSpec, Op, Out, Scope};

/// Remove these top-level keys from an object.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Omit")]
pub(crate) struct Spec {
    #[serde(rename = "$omit")]
    value: ExprSpec,
    keys: Vec<String>,
}

impl Operation for Spec {
    const NAME: &'static str = "$omit";
    const USAGE: &'static str = "{$omit: v, keys: [...]}";
}

impl OpSpec for Spec {
    fn compile(&self, c: &mut Compiler<'_>) -> Expr {
        Expr::op(Omit(c.sub(&self.value, Self::NAME), self.keys.clone()))
    }
}

#[derive(Debug)]
struct Omit(Expr, Vec<String>);

impl Op for Omit {
    fn eval<'s>(&self, scope: &Scope<'s>) -> Out<'s> {
        let v = self.0.eval(scope)?;
        match v.as_ref() {
            Value::Object(m) if self.1.iter().any(|k| m.contains_key(k.as_str())) => {
                let mut m = v.into_owned();
                if let Value::Object(m) = &mut m {
                    for k in &self.1 {
                        m.remove(k.as_str());
                    }
                }
                owned(m)
            }
            _ => Some(v),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::expr::testing::run;
    use serde_json::json;

    #[test]
    fn removes_named_keys() {
        assert_eq!(run(json!({"$omit": "$", "keys": ["a"]}), json!({"a": 1, "b": 2})), Some(json!({"b": 2})));
        assert_eq!(run(json!({"$omit": "$", "keys": ["a"]}), json!([1])), Some(json!([1])));
    }
}
