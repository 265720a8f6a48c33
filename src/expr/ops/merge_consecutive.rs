//! `$merge_consecutive`: runs of items with the same key merged into one.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::expr::registry::{OpSpec, Operation};
use crate::expr::{owned, Compiler, Expr, ExprSpec, Op, Out, Scope};

/// Merge runs of consecutive items whose `by` key is equal: the fields named in `concat`
/// are concatenated (as lists), the others are taken from the first item of the run.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "MergeConsecutive")]
pub(crate) struct Spec {
    #[serde(rename = "$merge_consecutive")]
    items: ExprSpec,
    by: ExprSpec,
    concat: Vec<String>,
}

impl Operation for Spec {
    const NAME: &'static str = "$merge_consecutive";
    const USAGE: &'static str = "{$merge_consecutive: list, by: $.role, concat: [content]}";
}

impl OpSpec for Spec {
    fn compile(&self, c: &mut Compiler<'_>) -> Expr {
        let items = c.sub(&self.items, Self::NAME);
        let by = c.per_item(|c| c.sub(&self.by, "by"));
        Expr::op(MergeConsecutive { items, by, concat: self.concat.clone() })
    }
}

#[derive(Debug)]
struct MergeConsecutive {
    items: Expr,
    by: Expr,
    concat: Vec<String>,
}

impl Op for MergeConsecutive {
    fn eval<'s>(&self, scope: &Scope<'s>) -> Out<'s> {
        let v = self.items.eval_owned(scope)?;
        let Value::Array(list) = v else { return owned(v) };
        let mut out: Vec<Value> = Vec::with_capacity(list.len());
        let mut last_key: Option<Value> = None;
        for item in list {
            let key = self.by.eval_owned(&scope.with_current(&item, None));
            let same = key.is_some() && key == last_key;
            match (same, out.last_mut()) {
                (true, Some(Value::Object(prev))) => {
                    if let Value::Object(mut cur) = item {
                        for field in &self.concat {
                            append_list(prev, field, cur.remove(field.as_str()));
                        }
                    }
                }
                _ => {
                    out.push(item);
                    last_key = key;
                }
            }
        }
        owned(Value::Array(out))
    }
}

fn append_list(target: &mut Map<String, Value>, field: &str, add: Option<Value>) {
    let Some(add) = add else { return };
    let slot = target.entry(field.to_string()).or_insert_with(|| Value::Array(Vec::new()));
    if !slot.is_array() {
        let prev = std::mem::take(slot);
        *slot = Value::Array(vec![prev]);
    }
    if let Value::Array(list) = slot {
        match add {
            Value::Array(more) => list.extend(more),
            other => list.push(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::expr::testing::run;
    use serde_json::json;

    #[test]
    fn merges_runs_with_the_same_key() {
        let t = json!({"$merge_consecutive": "$", "by": "$.role", "concat": ["content"]});
        let input = json!([
            {"role": "user", "content": [1], "x": "first"},
            {"role": "user", "content": 2, "x": "second"},
            {"role": "assistant", "content": [3]},
            {"role": "user", "content": [4]}
        ]);
        assert_eq!(
            run(t, input),
            Some(json!([
                {"role": "user", "content": [1, 2], "x": "first"},
                {"role": "assistant", "content": [3]},
                {"role": "user", "content": [4]}
            ]))
        );
    }
}
