//! `$split_tag`: text between two tags, taken out of a text.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::expr::registry::{OpSpec, Operation};
use crate::expr::tags::TagSplitter;
use crate::expr::{owned, Compiler, Expr, ExprSpec, Op, Out, Scope};

/// Split a text on a pair of tags: `{outside, inside}`, each trimmed, each absent when empty.
/// For a model that writes its reasoning inline, e.g. `<think>…</think>` before the answer:
/// `outside` is the answer, `inside` the reasoning. Streams do the same with `split_tag`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "SplitTag")]
pub(crate) struct Spec {
    #[serde(rename = "$split_tag")]
    value: ExprSpec,
    open: String,
    close: String,
}

impl Operation for Spec {
    const NAME: &'static str = "$split_tag";
    const USAGE: &'static str = "{$split_tag: text, open: \"<think>\", close: \"</think>\"}";
}

impl OpSpec for Spec {
    fn compile(&self, c: &mut Compiler<'_>) -> Expr {
        if self.open.is_empty() || self.close.is_empty() {
            return c.problem("", crate::error::ProblemKind::InvalidOperation, "open and close must not be empty");
        }
        Expr::op(SplitTag { value: c.sub(&self.value, Self::NAME), open: self.open.clone(), close: self.close.clone() })
    }
}

#[derive(Debug)]
struct SplitTag {
    value: Expr,
    open: String,
    close: String,
}

impl Op for SplitTag {
    fn eval<'s>(&self, scope: &Scope<'s>) -> Out<'s> {
        let v = self.value.eval(scope)?;
        let text = v.as_str()?;
        let (mut outside, mut inside) = (String::new(), String::new());
        let mut s = TagSplitter::new(&self.open, &self.close);
        s.push(text, &mut outside, &mut inside);
        s.finish(&mut outside, &mut inside);
        let part = |t: &str| (!t.trim().is_empty()).then(|| Value::String(t.trim().to_string()));
        let mut out = json!({});
        if let Some(o) = part(&outside) {
            out["outside"] = o;
        }
        if let Some(i) = part(&inside) {
            out["inside"] = i;
        }
        owned(out)
    }
}

#[cfg(test)]
mod tests {
    use crate::expr::testing::run;
    use serde_json::json;

    #[test]
    fn reasoning_and_answer_apart() {
        let t = json!({"$split_tag": "$", "open": "<think>", "close": "</think>"});
        assert_eq!(
            run(t.clone(), json!("<think>\nCheck sources…\n</think>\n\nParis is the capital.")),
            Some(json!({"outside": "Paris is the capital.", "inside": "Check sources…"}))
        );
        assert_eq!(run(t.clone(), json!("No tags.")), Some(json!({"outside": "No tags."})));
        assert_eq!(run(t, json!(null)), None);
    }
}
