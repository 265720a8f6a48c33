//! `$expr`: a minijinja expression over named values.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::error::ProblemKind;
use crate::expr::registry::{OpSpec, Operation};
use crate::expr::{Compiler, Expr, ExprSpec, Op, Out, Scope};

/// The one minijinja environment every `$expr` is compiled in.
static ENV: LazyLock<minijinja::Environment<'static>> = LazyLock::new(|| {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Lenient);
    env
});

/// A minijinja expression over named values: `{ $expr: "a + b", with: { a: ..., b: ... } }`;
/// an undefined or none result is absent.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Expr")]
pub(crate) struct Spec {
    #[serde(rename = "$expr")]
    source: String,
    #[serde(default)]
    with: BTreeMap<String, ExprSpec>,
}

impl Operation for Spec {
    const NAME: &'static str = "$expr";
    const USAGE: &'static str = "{$expr: \"a + b\", with: {a: x, b: y}}";
}

impl OpSpec for Spec {
    fn compile(&self, c: &mut Compiler<'_>) -> Expr {
        let (names, values) = c.map(&self.with, "with").into_iter().unzip();
        match ENV.compile_expression_owned(self.source.clone()) {
            Ok(expr) => Expr::op(Template { expr, names, values }),
            Err(e) => c.problem("/$expr", ProblemKind::InvalidTemplate, format!("invalid expression: {e}")),
        }
    }
}

/// A compiled minijinja expression with the transforms that feed its names.
struct Template {
    expr: minijinja::Expression<'static, 'static>,
    names: Vec<String>,
    values: Vec<Expr>,
}

impl std::fmt::Debug for Template {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Template").field("names", &self.names).finish()
    }
}

impl Op for Template {
    fn eval<'s>(&self, scope: &Scope<'s>) -> Out<'s> {
        let ctx: BTreeMap<&str, minijinja::Value> = self
            .names
            .iter()
            .zip(&self.values)
            .map(|(n, e)| {
                let v = e.eval(scope).map_or(minijinja::Value::UNDEFINED, |v| {
                    minijinja::Value::from(minijinja::value::Serde(v.as_ref()))
                });
                (n.as_str(), v)
            })
            .collect();
        let result = self.expr.eval(ctx).ok()?;
        if result.is_undefined() || result.is_none() {
            return None;
        }
        serde_json::to_value(&result).ok().map(std::borrow::Cow::Owned)
    }
}

#[cfg(test)]
mod tests {
    use crate::expr::testing::{problems, run};
    use serde_json::json;

    #[test]
    fn evaluates_over_named_values() {
        let t = json!({"$expr": "(t | split(':'))[0]", "with": {"t": "$.h"}});
        assert_eq!(run(t, json!({"h": "Throttling:http://x"})), Some(json!("Throttling")));
        assert_eq!(run(json!({"$expr": "a * 2", "with": {"a": "$.n"}}), json!({"n": 4})), Some(json!(8)));
        assert_eq!(run(json!({"$expr": "a", "with": {"a": "$.none"}}), json!({})), None);
        assert_eq!(problems(json!({"$expr": "a +"})).len(), 1);
    }
}
