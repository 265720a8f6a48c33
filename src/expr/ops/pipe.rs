//! `$pipe`: transforms run in sequence.

use schemars::JsonSchema;
use serde::Deserialize;

use crate::expr::registry::{OpSpec, Operation};
use crate::expr::{owned, Compiler, Expr, ExprSpec, Op, Out, Scope};

/// Run transforms in sequence, each on the result of the one before (absent stops the pipe).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Pipe")]
pub(crate) struct Spec {
    #[serde(rename = "$pipe")]
    steps: Vec<ExprSpec>,
}

impl Operation for Spec {
    const NAME: &'static str = "$pipe";
    const USAGE: &'static str = "{$pipe: [a, b]}";
}

impl OpSpec for Spec {
    fn compile(&self, c: &mut Compiler<'_>) -> Expr {
        let mut steps = Vec::with_capacity(self.steps.len());
        for (i, s) in self.steps.iter().enumerate() {
            let key = format!("$pipe/{i}");
            // Only the first step reads the transform's own input.
            steps.push(if i == 0 { c.sub(s, &key) } else { c.per_item(|c| c.sub(s, &key)) });
        }
        Expr::op(Pipe(steps))
    }
}

#[derive(Debug)]
struct Pipe(Vec<Expr>);

impl Op for Pipe {
    fn eval<'s>(&self, scope: &Scope<'s>) -> Out<'s> {
        let (first, rest) = self.0.split_first()?;
        let mut cur = first.eval_owned(scope)?;
        for step in rest {
            cur = step.eval_owned(&scope.with_current(&cur, scope.index))?;
        }
        owned(cur)
    }
}

#[cfg(test)]
mod tests {
    use crate::expr::testing::run;
    use serde_json::json;

    #[test]
    fn each_step_sees_the_previous_result() {
        assert_eq!(run(json!({"$pipe": ["$.a", "$.b", {"v": "$"}]}), json!({"a": {"b": 1}})), Some(json!({"v": 1})));
        assert_eq!(run(json!({"$pipe": ["$.x", {"v": "$"}]}), json!({})), None);
    }
}
