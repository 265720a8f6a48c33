//! `$rename`: an object with some keys renamed.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use crate::expr::registry::{OpSpec, Operation};
use crate::expr::{owned, Compiler, Expr, ExprSpec, Op, Out, Scope};

/// Rename keys of an object (`keys: {old: new}`). The old key is removed; its value moves to
/// the new key unless the new key already holds a value (which is kept). Not an object: as is.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Rename")]
pub(crate) struct Spec {
    #[serde(rename = "$rename")]
    value: ExprSpec,
    keys: BTreeMap<String, String>,
}

impl Operation for Spec {
    const NAME: &'static str = "$rename";
    const USAGE: &'static str = "{$rename: v, keys: {old: new}}";
}

impl OpSpec for Spec {
    fn compile(&self, c: &mut Compiler<'_>) -> Expr {
        Expr::op(Rename(c.sub(&self.value, Self::NAME), self.keys.clone().into_iter().collect()))
    }
}

#[derive(Debug)]
struct Rename(Expr, Vec<(String, String)>);

impl Op for Rename {
    fn eval<'s>(&self, scope: &Scope<'s>) -> Out<'s> {
        let v = self.0.eval(scope)?;
        let Value::Object(m) = v.as_ref() else { return Some(v) };
        if !self.1.iter().any(|(from, _)| m.contains_key(from.as_str())) {
            return Some(v);
        }
        let mut v = v.into_owned();
        if let Value::Object(m) = &mut v {
            for (from, to) in &self.1 {
                let Some(moved) = m.remove(from.as_str()) else { continue };
                if !moved.is_null() && m.get(to.as_str()).is_none_or(Value::is_null) {
                    m.insert(to.clone(), moved);
                }
            }
        }
        owned(v)
    }
}

#[cfg(test)]
mod tests {
    use crate::expr::testing::run;
    use serde_json::json;

    #[test]
    fn moves_values_without_overwriting() {
        let t = json!({"$rename": "$", "keys": {"reasoning": "reasoning_content"}});
        assert_eq!(run(t.clone(), json!({"reasoning": "r", "a": 1})), Some(json!({"reasoning_content": "r", "a": 1})));
        assert_eq!(
            run(t.clone(), json!({"reasoning": "r", "reasoning_content": "kept"})),
            Some(json!({"reasoning_content": "kept"}))
        );
        assert_eq!(
            run(t.clone(), json!({"reasoning": "r", "reasoning_content": null})),
            Some(json!({"reasoning_content": "r"}))
        );
        assert_eq!(run(t.clone(), json!({"reasoning": null})), Some(json!({})));
        assert_eq!(run(t, json!("text")), Some(json!("text")));
    }
}
