//! `$strip_keys`: keys removed at every depth of a tree (schema cleaning).

use std::collections::HashSet;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use crate::expr::registry::{OpSpec, Operation};
use crate::expr::{owned, Compiler, Expr, ExprSpec, Op, Out, Scope};

/// Remove these keys at every depth, except directly under the keys listed in `keep_under`
/// (where keys are names, e.g. a JSON Schema's `properties`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "StripKeys")]
pub(crate) struct Spec {
    #[serde(rename = "$strip_keys")]
    value: ExprSpec,
    keys: Vec<String>,
    #[serde(default)]
    keep_under: Vec<String>,
}

impl Operation for Spec {
    const NAME: &'static str = "$strip_keys";
    const USAGE: &'static str = "{$strip_keys: v, keys: [...], keep_under: [properties]}";
}

impl OpSpec for Spec {
    fn compile(&self, c: &mut Compiler<'_>) -> Expr {
        Expr::op(StripKeys {
            value: c.sub(&self.value, Self::NAME),
            keys: self.keys.iter().cloned().collect(),
            keep_under: self.keep_under.iter().cloned().collect(),
        })
    }
}

#[derive(Debug)]
struct StripKeys {
    value: Expr,
    keys: HashSet<String>,
    keep_under: HashSet<String>,
}

impl Op for StripKeys {
    fn eval<'s>(&self, scope: &Scope<'s>) -> Out<'s> {
        let mut v = self.value.eval_owned(scope)?;
        self.strip(&mut v, false);
        owned(v)
    }
}

impl StripKeys {
    fn strip(&self, v: &mut Value, names_here: bool) {
        match v {
            Value::Object(m) => {
                if !names_here {
                    m.retain(|k, _| !self.keys.contains(k));
                }
                for (k, child) in m.iter_mut() {
                    self.strip(child, !names_here && self.keep_under.contains(k));
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|child| self.strip(child, false)),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::expr::testing::run;
    use serde_json::json;

    #[test]
    fn strips_everywhere_but_under_name_maps() {
        let t = json!({"$strip_keys": "$", "keys": ["title", "x"], "keep_under": ["properties"]});
        let schema =
            json!({"title": "T", "properties": {"title": {"type": "string", "title": "inner"}}, "items": [{"x": 1}]});
        assert_eq!(run(t, schema), Some(json!({"properties": {"title": {"type": "string"}}, "items": [{}]})));
    }
}
