//! `$match`: choose a transform by the glob pattern its value matches.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::expr::glob::Glob;
use crate::expr::registry::{OpSpec, Operation};
use crate::expr::{key_text, Compiler, Expr, ExprSpec, Op, Out, Scope};

/// Choose by the value: the case whose glob pattern (`*` = any run) matches its text; when
/// several match, the most specific (an exact name, else the most literal characters) wins.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Match")]
pub(crate) struct Spec {
    #[serde(rename = "$match")]
    value: ExprSpec,
    cases: BTreeMap<String, ExprSpec>,
    #[serde(default)]
    default: Option<ExprSpec>,
}

impl Operation for Spec {
    const NAME: &'static str = "$match";
    const USAGE: &'static str = "{$match: v, cases: {\"glob*\": a}, default: b}";
}

impl OpSpec for Spec {
    fn compile(&self, c: &mut Compiler<'_>) -> Expr {
        let value = c.sub(&self.value, Self::NAME);
        let mut cases: Vec<(Glob, Expr)> =
            c.map(&self.cases, "cases").into_iter().map(|(k, e)| (Glob::new(&k), e)).collect();
        // The most specific pattern wins, whatever order the file lists them in.
        cases.sort_by_key(|(g, _)| std::cmp::Reverse(g.specificity()));
        Expr::op(Match { value, cases, default: c.opt(&self.default, "default") })
    }
}

#[derive(Debug)]
struct Match {
    value: Expr,
    cases: Vec<(Glob, Expr)>,
    default: Option<Expr>,
}

impl Op for Match {
    fn eval<'s>(&self, scope: &Scope<'s>) -> Out<'s> {
        let v = self.value.eval(scope);
        if let Some(text) = v.as_deref().and_then(key_text) {
            if let Some((_, e)) = self.cases.iter().find(|(g, _)| g.matches(&text)) {
                return e.eval(scope);
            }
        }
        self.default.as_ref().and_then(|d| d.eval(scope))
    }
}

#[cfg(test)]
mod tests {
    use crate::expr::testing::run;
    use serde_json::json;

    #[test]
    fn the_most_specific_case_wins() {
        let t = json!({"$match": "$.m", "cases": {"m-*": "family", "m-2*": "two", "m-2": "exact"}, "default": "other"});
        assert_eq!(run(t.clone(), json!({"m": "m-2"})), Some(json!("exact")));
        assert_eq!(run(t.clone(), json!({"m": "m-2.5"})), Some(json!("two")));
        assert_eq!(run(t.clone(), json!({"m": "m-1"})), Some(json!("family")));
        assert_eq!(run(t.clone(), json!({"m": "x"})), Some(json!("other")));
        assert_eq!(run(t, json!({})), Some(json!("other")));
    }
}
