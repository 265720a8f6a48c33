//! `$update`: a value with the parts at a path replaced (jq's `|=`).

use schemars::JsonSchema;
use serde::Deserialize;

use crate::error::ProblemKind;
use crate::expr::registry::{OpSpec, Operation};
use crate::expr::{owned, Compiler, Expr, ExprSpec, Node, Op, Out, Scope, Source};

/// The value (`on`, default `$`) with every part the path selects replaced by `with`, run on
/// that part (`$` is the part); an absent result removes the part from its object. The path
/// may use names, indexes, `[*]` and simple filters: `{$update: "$.choices[*].message", with: ...}`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Update")]
pub(crate) struct Spec {
    /// A path relative to the value, e.g. `$.choices[*].delta`.
    #[serde(rename = "$update")]
    at: String,
    with: ExprSpec,
    /// The value to update (default: the current value).
    #[serde(default)]
    on: Option<ExprSpec>,
}

impl Operation for Spec {
    const NAME: &'static str = "$update";
    const USAGE: &'static str = "{$update: \"$.a[*].b\", with: t, on: v}";
}

impl OpSpec for Spec {
    fn compile(&self, c: &mut Compiler<'_>) -> Expr {
        let on = match &self.on {
            Some(on) => c.sub(on, "on"),
            None => c.sub(&ExprSpec(Node::Path("$".into())), Self::NAME),
        };
        let path = match c.sub(&ExprSpec(Node::Path(self.at.clone())), Self::NAME) {
            Expr::Path(Source::Current, path) if path.updatable() => path,
            Expr::Path(..) => {
                return c.problem(
                    "/$update",
                    ProblemKind::InvalidPath,
                    "an update path starts at $ and uses names, indexes, [*] and simple filters",
                )
            }
            other => return other,
        };
        let with = c.per_item(|c| c.sub(&self.with, "with"));
        Expr::op(Update { on, path, with })
    }
}

#[derive(Debug)]
struct Update {
    on: Expr,
    path: crate::expr::path::Path,
    with: Expr,
}

impl Op for Update {
    fn eval<'s>(&self, scope: &Scope<'s>) -> Out<'s> {
        let mut doc = self.on.eval_owned(scope)?;
        self.path.update(&mut doc, &mut |part| self.with.eval_owned(&scope.with_current(part, scope.index)));
        owned(doc)
    }
}

#[cfg(test)]
mod tests {
    use crate::expr::testing::{problems, run};
    use serde_json::json;

    #[test]
    fn replaces_every_selected_part() {
        let t = json!({"$update": "$.choices[*].message", "with": {"$rename": "$", "keys": {"r": "rc"}}});
        let input = json!({"id": 1, "choices": [{"message": {"r": "x"}}, {"message": {"c": 1}}, {"index": 2}]});
        assert_eq!(
            run(t, input),
            Some(json!({"id": 1, "choices": [{"message": {"rc": "x"}}, {"message": {"c": 1}}, {"index": 2}]}))
        );
        let t = json!({"$update": "$.a", "with": "$.missing"});
        assert_eq!(run(t, json!({"a": {"b": 1}, "k": 2})), Some(json!({"k": 2})));
        let t = json!({"$update": "$", "with": {"wrapped": "$"}});
        assert_eq!(run(t, json!(5)), Some(json!({"wrapped": 5})));
        let t = json!({"$update": "$.xs[?@.t == 'a'].v", "with": "new", "on": "$.doc"});
        assert_eq!(
            run(t, json!({"doc": {"xs": [{"t": "a", "v": 1}, {"t": "b", "v": 2}]}})),
            Some(json!({"xs": [{"t": "a", "v": "new"}, {"t": "b", "v": 2}]}))
        );
    }

    #[test]
    fn paths_that_cannot_be_updated_are_refused() {
        assert_eq!(problems(json!({"$update": "$..a", "with": 1})).len(), 1);
        assert_eq!(problems(json!({"$update": "$root.a", "with": 1})).len(), 1);
    }
}
