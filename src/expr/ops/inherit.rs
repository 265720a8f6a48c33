//! `$inherit`: a parent's transform, substituted by `extends` before anything is compiled.

use schemars::JsonSchema;
use serde::Deserialize;

use crate::error::ProblemKind;
use crate::expr::registry::{OpSpec, Operation};
use crate::expr::{Compiler, Expr};

/// In a file that `extends` another: the parent's value at this JSON pointer (e.g.
/// `/chat/request`), substituted when the files are merged.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Inherit")]
pub(crate) struct Spec {
    #[serde(rename = "$inherit")]
    pointer: String,
}

impl Operation for Spec {
    const NAME: &'static str = "$inherit";
    const USAGE: &'static str = "{$inherit: /chat/request}";
}

impl OpSpec for Spec {
    fn compile(&self, c: &mut Compiler<'_>) -> Expr {
        c.problem(
            "/$inherit",
            ProblemKind::Extends,
            format!("$inherit {} is only meaningful in a file that extends another", self.pointer),
        )
    }
}

#[cfg(test)]
mod tests {
    use crate::expr::testing::problems;
    use serde_json::json;

    #[test]
    fn left_over_inherits_are_problems() {
        assert_eq!(problems(json!({"$inherit": "/chat/request"})).len(), 1);
    }
}
