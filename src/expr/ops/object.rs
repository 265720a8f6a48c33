//! `$object`: an object built from a list.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::expr::registry::{OpSpec, Operation};
use crate::expr::{key_text, owned, Compiler, Expr, ExprSpec, Op, Out, Scope};

/// Build an object from a list: one entry per item, with `key` and `value` evaluated on it.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Object")]
pub(crate) struct Spec {
    #[serde(rename = "$object")]
    items: ExprSpec,
    key: ExprSpec,
    value: ExprSpec,
}

impl Operation for Spec {
    const NAME: &'static str = "$object";
    const USAGE: &'static str = "{$object: list, key: k, value: v}";
}

impl OpSpec for Spec {
    fn compile(&self, c: &mut Compiler<'_>) -> Expr {
        let items = c.sub(&self.items, Self::NAME);
        let (key, value) = c.per_item(|c| (c.sub(&self.key, "key"), c.sub(&self.value, "value")));
        Expr::op(Object { items, key, value })
    }
}

#[derive(Debug)]
struct Object {
    items: Expr,
    key: Expr,
    value: Expr,
}

impl Op for Object {
    fn eval<'s>(&self, scope: &Scope<'s>) -> Out<'s> {
        let source = self.items.eval(scope)?;
        let Value::Array(list) = source.as_ref() else { return None };
        let mut out = Map::new();
        for (i, item) in list.iter().enumerate() {
            let inner = scope.with_current(item, Some(i));
            let k = self.key.eval(&inner);
            if let (Some(k), Some(v)) = (k.as_deref().and_then(key_text), self.value.eval_owned(&inner)) {
                out.insert(k.into_owned(), v);
            }
        }
        owned(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use crate::expr::testing::run;
    use serde_json::json;

    #[test]
    fn one_entry_per_item() {
        let t = json!({"$object": "$", "key": "$.id", "value": "$.name"});
        assert_eq!(
            run(t, json!([{"id": "a", "name": "x"}, {"id": 2, "name": "y"}, {"name": "no key"}])),
            Some(json!({"a": "x", "2": "y"}))
        );
    }
}
