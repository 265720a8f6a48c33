//! `$f32_base64`: numbers as base64 of little-endian float32.

use base64::Engine as _;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use crate::expr::registry::{OpSpec, Operation};
use crate::expr::{owned, Compiler, Expr, ExprSpec, Op, Out, Scope};

/// Encode a list of numbers as base64 of little-endian float32 (OpenAI's `encoding_format:
/// base64`); a value that is not a list is returned as it is.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "F32Base64")]
pub(crate) struct Spec {
    #[serde(rename = "$f32_base64")]
    value: ExprSpec,
}

impl Operation for Spec {
    const NAME: &'static str = "$f32_base64";
    const USAGE: &'static str = "{$f32_base64: list}";
}

impl OpSpec for Spec {
    fn compile(&self, c: &mut Compiler<'_>) -> Expr {
        Expr::op(F32Base64(c.sub(&self.value, Self::NAME)))
    }
}

#[derive(Debug)]
struct F32Base64(Expr);

impl Op for F32Base64 {
    fn eval<'s>(&self, scope: &Scope<'s>) -> Out<'s> {
        let v = self.0.eval(scope)?;
        let Value::Array(nums) = v.as_ref() else { return Some(v) };
        let mut bytes = Vec::with_capacity(nums.len() * 4);
        for n in nums {
            bytes.extend_from_slice(&(n.as_f64().unwrap_or(0.0) as f32).to_le_bytes());
        }
        owned(Value::String(base64::engine::general_purpose::STANDARD.encode(bytes)))
    }
}

#[cfg(test)]
mod tests {
    use crate::expr::testing::run;
    use serde_json::json;

    #[test]
    fn little_endian_float32() {
        // 1.0f32 = 00 00 80 3f
        assert_eq!(run(json!({"$f32_base64": "$"}), json!([1.0])), Some(json!("AACAPw==")));
        assert_eq!(run(json!({"$f32_base64": "$"}), json!("x")), Some(json!("x")));
    }
}
