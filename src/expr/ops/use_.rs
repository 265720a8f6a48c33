//! `$use`: run a named definition of the file's `defs`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use crate::error::ProblemKind;
use crate::expr::registry::{OpSpec, Operation};
use crate::expr::{Compiler, Expr, ExprSpec, Frame, Op, Out, Scope};

/// Run the definition `name` from the file's `defs` (inherited through `extends`), with `$` the
/// value of `on` (default: the current value) and its parameters given by `with`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Use")]
pub(crate) struct Spec {
    #[serde(rename = "$use")]
    name: String,
    /// The input of the definition (default: the current value).
    #[serde(default)]
    on: Option<ExprSpec>,
    /// A value for each of the definition's `params`.
    #[serde(default)]
    with: BTreeMap<String, ExprSpec>,
}

impl Operation for Spec {
    const NAME: &'static str = "$use";
    const USAGE: &'static str = "{$use: name, on: v, with: {param: x}}";
}

impl OpSpec for Spec {
    fn compile(&self, c: &mut Compiler<'_>) -> Expr {
        let on = c.opt(&self.on, "on");
        let mut given = c.map(&self.with, "with");
        let Some((params, body)) = c.definition(&self.name, on.is_some()) else {
            return Expr::Const(Value::Null);
        };
        for (n, _) in &given {
            if !params.contains(n) {
                c.problem(
                    &format!("/with/{n}"),
                    ProblemKind::InvalidOperation,
                    format!("definition '{}' has no parameter '{n}' (it takes: {})", self.name, params.join(", ")),
                );
            }
        }
        let mut values = Vec::with_capacity(params.len());
        for p in &params {
            match given.iter().position(|(n, _)| n == p) {
                Some(i) => values.push(given.swap_remove(i).1),
                None => values.push(c.problem(
                    "",
                    ProblemKind::InvalidOperation,
                    format!("definition '{}' needs `with: {{{p}: ...}}`", self.name),
                )),
            }
        }
        Expr::op(Use { on, names: params, values, body })
    }
}

#[derive(Debug)]
struct Use {
    on: Option<Expr>,
    names: Vec<String>,
    values: Vec<Expr>,
    body: Expr,
}

impl Op for Use {
    fn eval<'s>(&self, scope: &Scope<'s>) -> Out<'s> {
        let input = match &self.on {
            Some(on) => Some(on.eval(scope)?),
            None => None,
        };
        // A definition sees its parameters only, never the names bound around its use.
        let frame = Frame {
            names: &self.names,
            values: self.values.iter().map(|e| e.eval_owned(scope).unwrap_or(Value::Null)).collect(),
            parent: None,
        };
        let current = input.as_deref().unwrap_or(scope.current);
        let inner = Scope { current, frame: Some(&frame), ..*scope };
        self.body.eval_owned(&inner).map(std::borrow::Cow::Owned)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::{json, Value};

    use crate::expr::{Compiler, Ctx, DefSpec, Defs, Reads, Scope};

    fn run_with_defs(defs: Value, transform: Value, input: Value) -> Result<Option<Value>, Vec<String>> {
        let defs: BTreeMap<String, DefSpec> = serde_json::from_value(defs).unwrap();
        let defs = Defs(defs);
        let spec = serde_json::from_value(transform).unwrap();
        let mut problems = Vec::new();
        let mut reads = Reads::default();
        let expr = Compiler::new(&defs, &mut problems, &mut reads).compile(&spec, "/t");
        if !problems.is_empty() {
            return Err(problems.into_iter().map(|p| format!("{}: {}", p.pointer, p.message)).collect());
        }
        Ok(expr.eval_owned(&Scope::new(&input, &Ctx::default(), &Value::Null)))
    }

    #[test]
    fn definitions_run_on_their_input_with_their_parameters() {
        let defs = json!({
            "finish": {"$lookup": "$", "table": {"end_turn": "stop"}, "default": "other"},
            "pair": {"params": ["a"], "body": ["$a", "$.v"]}
        });
        let t = json!({"f": {"$use": "finish", "on": "$.reason"}, "p": {"$use": "pair", "with": {"a": "$.x"}}});
        assert_eq!(
            run_with_defs(defs, t, json!({"reason": "end_turn", "x": 1, "v": 2})).unwrap(),
            Some(json!({"f": "stop", "p": [1, 2]}))
        );
    }

    #[test]
    fn problems_are_found_at_the_use_and_at_the_definition() {
        let defs = json!({"d": {"params": ["a"], "body": "$b"}, "loop": {"$use": "loop"}});
        let err = run_with_defs(defs.clone(), json!({"$use": "d"}), json!({})).unwrap_err();
        assert!(err.iter().any(|e| e.starts_with("/defs/d/body: unknown variable '$b'")), "{err:?}");
        assert!(err.iter().any(|e| e.contains("needs `with: {a: ...}`")), "{err:?}");
        let err = run_with_defs(defs.clone(), json!({"$use": "dd"}), json!({})).unwrap_err();
        assert!(err[0].contains("did you mean 'd'"), "{err:?}");
        let err = run_with_defs(defs, json!({"$use": "loop"}), json!({})).unwrap_err();
        assert!(err.iter().any(|e| e.contains("uses itself")), "{err:?}");
    }
}
