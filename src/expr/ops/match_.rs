//! `$match`: choose a transform by the glob pattern its value matches.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::error::ProblemKind;
use crate::expr::glob::Glob;
use crate::expr::registry::{OpSpec, Operation};
use crate::expr::{key_text, Compiler, Expr, ExprSpec, Op, Out, Scope};

/// Choose by the value: the case whose glob pattern (`*` = any run) matches its text; when
/// several match, the most specific (an exact name, else the most literal characters) wins.
/// A value no case names gives `default`; in a request transform, `unmatched: drop` leaves it
/// out and reports it (`x-lightport-dropped-params`, by its JSON path) and `unmatched: refuse`
/// answers 400 naming it. A request-side `$match` with neither is a warning of `lightport check`:
/// what it does not name would vanish without a word.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Match")]
pub(crate) struct Spec {
    #[serde(rename = "$match")]
    value: ExprSpec,
    cases: BTreeMap<String, ExprSpec>,
    #[serde(default)]
    default: Option<ExprSpec>,
    #[serde(default)]
    unmatched: Option<Unmatched>,
}

/// What a request-side `$match` does with a value no case names.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Unmatched {
    /// Leave it out, and report it.
    Drop,
    /// Answer 400 naming it.
    Refuse,
}

impl Operation for Spec {
    const NAME: &'static str = "$match";
    const USAGE: &'static str = "{$match: v, cases: {\"glob*\": a}, default: b | unmatched: drop|refuse}";
}

impl OpSpec for Spec {
    fn compile(&self, c: &mut Compiler<'_>) -> Expr {
        let value = c.sub(&self.value, Self::NAME);
        let mut cases: Vec<(Glob, Expr)> =
            c.map(&self.cases, "cases").into_iter().map(|(k, e)| (Glob::new(&k), e)).collect();
        // The most specific pattern wins, whatever order the file lists them in.
        cases.sort_by_key(|(g, _)| std::cmp::Reverse(g.specificity()));
        match (&self.default, self.unmatched) {
            (Some(_), Some(_)) => {
                c.problem("/unmatched", ProblemKind::InvalidOperation, "give `default` or `unmatched`, not both");
            }
            (None, None) if c.in_request() && !self.cases.contains_key("*") => {
                let known: Vec<&str> = self.cases.keys().map(String::as_str).collect();
                c.warn(format!(
                    "this $match of the request has no `default` and no `unmatched`: a value other than {} \
                     would vanish without a word; add `unmatched: drop` (left out and reported) or \
                     `unmatched: refuse` (400)",
                    known.join(", ")
                ));
            }
            _ => {}
        }
        Expr::op(Match { value, cases, default: c.opt(&self.default, "default"), unmatched: self.unmatched })
    }
}

#[derive(Debug)]
struct Match {
    value: Expr,
    cases: Vec<(Glob, Expr)>,
    default: Option<Expr>,
    unmatched: Option<Unmatched>,
}

impl Op for Match {
    fn eval<'s>(&self, scope: &Scope<'s>) -> Out<'s> {
        let v = self.value.eval(scope);
        let text = v.as_deref().and_then(key_text);
        if let Some(text) = &text {
            if let Some((_, e)) = self.cases.iter().find(|(g, _)| g.matches(text)) {
                return e.eval(scope);
            }
        }
        if let (Some(how), Some(report)) = (self.unmatched, scope.report) {
            // An absent value is not a value to report: only one no case names.
            if let Some(value) = v.as_deref().filter(|v| !v.is_null()) {
                let shown = text.map(|t| t.into_owned()).unwrap_or_else(|| value.to_string());
                // Where it is: the value itself when it was read from the request, else the
                // item being translated.
                let at = match &v {
                    Some(std::borrow::Cow::Borrowed(r)) => r,
                    _ => scope.current,
                };
                report.record(scope.root, at, &shown, how == Unmatched::Refuse);
            }
            return None;
        }
        self.default.as_ref().and_then(|d| d.eval(scope))
    }
}

#[cfg(test)]
mod tests {
    use crate::expr::testing::{compile, problems, run};
    use crate::expr::{Compiler, Ctx, Defs, Reads, Report, Scope};
    use serde_json::{json, Value};

    /// Run a request transform with a report; what it returns and what it reported.
    fn run_request(transform: Value, input: Value) -> (Option<Value>, Vec<(String, String, bool)>) {
        let expr = compile(transform).unwrap();
        let report = Report::default();
        let out = expr.eval_owned(&Scope::new(&input, &Ctx::default(), &Value::Null).with_report(&report));
        (out, report.take().into_iter().map(|u| (u.path, u.value, u.refuse)).collect())
    }

    #[test]
    fn unmatched_values_are_reported_where_they_are() {
        let t =
            json!({"$each": "$.parts", "map": {"$match": "$.type", "cases": {"text": "$.text"}, "unmatched": "drop"}});
        let input = json!({"parts": [{"type": "text", "text": "a"}, {"type": "input_audio"}, {"text": "no type"}]});
        let (out, reported) = run_request(t, input);
        assert_eq!(out, Some(json!(["a"])));
        // A part without a type is absent, not a value to report.
        assert_eq!(reported, vec![("parts[1].type".to_string(), "input_audio".to_string(), false)]);
        let t = json!({"$match": "$.role", "cases": {"user": 1}, "unmatched": "refuse"});
        let (_, reported) = run_request(t, json!({"role": "critic"}));
        assert_eq!(reported, vec![("role".to_string(), "critic".to_string(), true)]);
    }

    #[test]
    fn a_request_match_without_default_or_unmatched_is_a_warning() {
        let t: crate::expr::ExprSpec =
            serde_json::from_value(json!({"$match": "$.type", "cases": {"text": 1}})).unwrap();
        let (mut problems, defs, mut reads) = (Vec::new(), Defs::default(), Reads::default());
        Compiler::new(&defs, &mut problems, &mut reads).compile_request(&t, "/chat/request");
        assert_eq!(problems.len(), 1);
        assert!(problems[0].kind.is_warning() && problems[0].message.contains("unmatched: drop"), "{problems:?}");
        // Outside a request (an answer, a stream), or with a catch-all case: no warning.
        let (mut problems, mut reads) = (Vec::new(), Reads::default());
        Compiler::new(&defs, &mut problems, &mut reads).compile(&t, "/chat/response");
        assert!(problems.is_empty());
        let t: crate::expr::ExprSpec = serde_json::from_value(json!({"$match": "$.type", "cases": {"*": 1}})).unwrap();
        Compiler::new(&defs, &mut problems, &mut reads).compile_request(&t, "/chat/request");
        assert!(problems.is_empty());
    }

    #[test]
    fn default_and_unmatched_together_is_a_problem() {
        let p = problems(json!({"$match": "$.t", "cases": {"a": 1}, "default": 2, "unmatched": "drop"}));
        assert_eq!(p, vec!["/unmatched: give `default` or `unmatched`, not both"]);
    }

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
