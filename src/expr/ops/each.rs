//! `$each`: map and filter a list.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use crate::expr::registry::{OpSpec, Operation};
use crate::expr::{owned, Compiler, Expr, ExprSpec, Op, Out, Scope};

/// Map each item of a list (`$` is the item, `$index` its position); absent results are dropped.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Each")]
pub(crate) struct Spec {
    #[serde(rename = "$each")]
    items: ExprSpec,
    /// Keep only items for which this holds.
    #[serde(default, rename = "where")]
    filter: Option<ExprSpec>,
    /// The transform for each item (default: the item itself).
    #[serde(default)]
    map: Option<ExprSpec>,
    /// Splice list results into the output instead of nesting them.
    #[serde(default)]
    flatten: bool,
}

impl Operation for Spec {
    const NAME: &'static str = "$each";
    const USAGE: &'static str = "{$each: list, where: cond, map: t, flatten: true}";
}

impl OpSpec for Spec {
    fn compile(&self, c: &mut Compiler<'_>) -> Expr {
        let items = c.sub(&self.items, Self::NAME);
        let (filter, map) = c.per_item(|c| (c.opt(&self.filter, "where"), c.opt(&self.map, "map")));
        Expr::op(Each { items, filter, map, flatten: self.flatten })
    }
}

#[derive(Debug)]
struct Each {
    items: Expr,
    filter: Option<Expr>,
    map: Option<Expr>,
    flatten: bool,
}

impl Op for Each {
    fn eval<'s>(&self, scope: &Scope<'s>) -> Out<'s> {
        let source = self.items.eval(scope)?;
        let Value::Array(list) = source.as_ref() else { return None };
        let mut out = Vec::with_capacity(list.len());
        for (i, item) in list.iter().enumerate() {
            let inner = scope.with_current(item, Some(i));
            if self.filter.as_ref().is_some_and(|f| !f.holds(&inner)) {
                continue;
            }
            let result = match &self.map {
                Some(m) => m.eval_owned(&inner),
                None => Some(item.clone()),
            };
            match result {
                Some(Value::Array(a)) if self.flatten => out.extend(a),
                Some(v) => out.push(v),
                None => {}
            }
        }
        owned(Value::Array(out))
    }
}

#[cfg(test)]
mod tests {
    use crate::expr::testing::run;
    use serde_json::json;

    #[test]
    fn maps_filters_and_flattens() {
        let input = json!({"xs": [{"n": 1}, {"n": 2}, {"n": 3}]});
        let t = json!({"$each": "$.xs", "where": {"$ne": ["$.n", 2]}, "map": {"v": "$.n", "i": "$index"}});
        assert_eq!(run(t, input.clone()), Some(json!([{"v": 1, "i": 0}, {"v": 3, "i": 2}])));
        let t = json!({"$each": "$.xs", "map": ["$.n", "$.n"], "flatten": true});
        assert_eq!(run(t, input.clone()), Some(json!([1, 1, 2, 2, 3, 3])));
        assert_eq!(run(json!({"$each": "$.missing"}), input.clone()), None);
        assert_eq!(run(json!({"$each": "$.xs", "map": "$.zz"}), input), Some(json!([])));
    }
}
