//! `$lookup`: a table lookup, the table literal (a hash map built at load) or computed.

use std::collections::HashMap;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use crate::expr::registry::{OpSpec, Operation};
use crate::expr::{key_text, owned, Compiler, Expr, ExprSpec, Op, Out, Scope};

/// Look the value up in a table (keys are strings; numbers and booleans match their text).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Lookup")]
pub(crate) struct Spec {
    #[serde(rename = "$lookup")]
    value: ExprSpec,
    /// A literal table, or a transform giving an object (e.g. `$state.tools`).
    table: ExprSpec,
    /// The result when the key is not in the table (default: absent).
    #[serde(default)]
    default: Option<ExprSpec>,
}

impl Operation for Spec {
    const NAME: &'static str = "$lookup";
    const USAGE: &'static str = "{$lookup: v, table: {k: x}, default: d}";
}

impl OpSpec for Spec {
    fn compile(&self, c: &mut Compiler<'_>) -> Expr {
        let value = c.sub(&self.value, Self::NAME);
        // A table whose values are all constants is a hash map, built once.
        let table = match self.table.constant() {
            Some(Value::Object(map)) => Table::Literal(map.into_iter().collect()),
            _ => Table::Computed(c.sub(&self.table, "table")),
        };
        Expr::op(Lookup { value, table, default: c.opt(&self.default, "default") })
    }
}

#[derive(Debug)]
enum Table {
    Literal(HashMap<String, Value>),
    Computed(Expr),
}

#[derive(Debug)]
struct Lookup {
    value: Expr,
    table: Table,
    default: Option<Expr>,
}

impl Op for Lookup {
    fn eval<'s>(&self, scope: &Scope<'s>) -> Out<'s> {
        let found = self.value.eval(scope).and_then(|v| {
            let key = key_text(&v)?;
            match &self.table {
                Table::Literal(map) => map.get(key.as_ref()).cloned(),
                Table::Computed(expr) => match expr.eval(scope)?.as_ref() {
                    Value::Object(m) => m.get(key.as_ref()).cloned(),
                    _ => None,
                },
            }
        });
        match found {
            Some(v) => owned(v),
            None => self.default.as_ref().and_then(|d| d.eval(scope)),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::expr::testing::run;
    use serde_json::json;

    #[test]
    fn literal_and_computed_tables() {
        let t = json!({"$lookup": "$.k", "table": {"a": 1, "2": "two", "true": "yes"}, "default": "none"});
        assert_eq!(run(t.clone(), json!({"k": "a"})), Some(json!(1)));
        assert_eq!(run(t.clone(), json!({"k": 2})), Some(json!("two")));
        assert_eq!(run(t.clone(), json!({"k": true})), Some(json!("yes")));
        assert_eq!(run(t, json!({"k": "zz"})), Some(json!("none")));
        let computed = json!({"$lookup": "$.k", "table": "$.t"});
        assert_eq!(run(computed.clone(), json!({"k": "x", "t": {"x": [1]}})), Some(json!([1])));
        assert_eq!(run(computed, json!({"k": "x", "t": 5})), None);
    }
}
