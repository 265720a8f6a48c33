//! `$like`: whether a value's text matches a glob pattern.

use schemars::JsonSchema;
use serde::Deserialize;

use crate::expr::glob::Glob;
use crate::expr::registry::{OpSpec, Operation};
use crate::expr::{boolean, key_text, Compiler, Expr, ExprSpec, Op, Out, Scope};

/// True when the value's text matches the glob pattern (`*` = any run of characters).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Like")]
pub(crate) struct Spec {
    #[serde(rename = "$like")]
    value: ExprSpec,
    pattern: String,
}

impl Operation for Spec {
    const NAME: &'static str = "$like";
    const USAGE: &'static str = "{$like: v, pattern: \"glob*\"}";
}

impl OpSpec for Spec {
    fn compile(&self, c: &mut Compiler<'_>) -> Expr {
        Expr::op(Like(c.sub(&self.value, Self::NAME), Glob::new(&self.pattern)))
    }
}

#[derive(Debug)]
struct Like(Expr, Glob);

impl Op for Like {
    fn eval<'s>(&self, scope: &Scope<'s>) -> Out<'s> {
        boolean(self.0.eval(scope).as_deref().and_then(key_text).is_some_and(|t| self.1.matches(&t)))
    }
}

#[cfg(test)]
mod tests {
    use crate::expr::testing::run;
    use serde_json::json;

    #[test]
    fn glob_patterns() {
        let t = json!({"$like": "$ctx", "pattern": "x"});
        assert_eq!(run(t, json!({})), Some(json!(false)));
        let t = json!({"$like": "$.m", "pattern": "model-4*"});
        assert_eq!(run(t.clone(), json!({"m": "model-4-fast"})), Some(json!(true)));
        assert_eq!(run(t, json!({"m": "model-3"})), Some(json!(false)));
    }
}
