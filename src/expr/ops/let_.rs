//! `$let`: names bound for an inner transform.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use crate::expr::registry::{OpSpec, Operation};
use crate::expr::{Compiler, Expr, ExprSpec, Frame, Op, Out, Scope};

/// Bind names for the inner transform (`$name`), each evaluated once.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Let")]
pub(crate) struct Spec {
    #[serde(rename = "$let")]
    bindings: BTreeMap<String, ExprSpec>,
    #[serde(rename = "in")]
    body: ExprSpec,
}

impl Operation for Spec {
    const NAME: &'static str = "$let";
    const USAGE: &'static str = "{$let: {name: v}, in: t}";
}

impl OpSpec for Spec {
    fn compile(&self, c: &mut Compiler<'_>) -> Expr {
        let (names, values): (Vec<String>, Vec<Expr>) = c.map(&self.bindings, Self::NAME).into_iter().unzip();
        let body = c.binding(&names, Self::NAME, |c| c.sub(&self.body, "in"));
        Expr::op(Let { names, values, body })
    }
}

#[derive(Debug)]
pub(super) struct Let {
    pub names: Vec<String>,
    pub values: Vec<Expr>,
    pub body: Expr,
}

impl Op for Let {
    fn eval<'s>(&self, scope: &Scope<'s>) -> Out<'s> {
        let frame = Frame {
            names: &self.names,
            values: self.values.iter().map(|e| e.eval_owned(scope).unwrap_or(Value::Null)).collect(),
            parent: scope.frame,
        };
        let inner = Scope { frame: Some(&frame), ..*scope };
        self.body.eval_owned(&inner).map(std::borrow::Cow::Owned)
    }
}

#[cfg(test)]
mod tests {
    use crate::expr::testing::{problems, run};
    use serde_json::json;

    #[test]
    fn bound_names_are_visible_inside() {
        let t = json!({"$let": {"a": "$.x", "b": 2}, "in": {"$sum": ["$a", "$b"]}});
        assert_eq!(run(t, json!({"x": 1})), Some(json!(3)));
        let nested = json!({"$let": {"a": 1}, "in": {"$let": {"b": "$a"}, "in": ["$a", "$b"]}});
        assert_eq!(run(nested, json!({})), Some(json!([1, 1])));
    }

    #[test]
    fn unbound_and_built_in_names_are_problems() {
        assert_eq!(problems(json!({"$let": {"a": 1}, "in": "$b"})).len(), 1);
        assert_eq!(problems(json!({"$let": {"ctx": 1}, "in": 1})).len(), 1);
        assert_eq!(problems(json!(["$a"])).len(), 1);
    }
}
