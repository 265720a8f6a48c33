//! `$hash_id`: map an id to the fixed form a provider requires, the same way every time.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use crate::expr::registry::{OpSpec, Operation};
use crate::expr::{owned, Compiler, Expr, ExprSpec, Op, Out, Scope};

const BASE62: &[u8; 62] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// An id in a fixed form: `length` characters of `[0-9a-zA-Z]`. An id already of that form is
/// kept; any other becomes the first `length` base-62 digits of its SHA-256 (most significant
/// first, `0`-padded), so a tool-call id from another provider maps to the same id in the
/// assistant turn and in the tool result, in every request of a conversation.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "HashId")]
pub(crate) struct Spec {
    #[serde(rename = "$hash_id")]
    value: ExprSpec,
    /// How many characters (1 to 43).
    length: usize,
}

impl Operation for Spec {
    const NAME: &'static str = "$hash_id";
    const USAGE: &'static str = "{$hash_id: id, length: 9}";
}

impl OpSpec for Spec {
    fn compile(&self, c: &mut Compiler<'_>) -> Expr {
        if !(1..=43).contains(&self.length) {
            // 43 base-62 digits hold a 256-bit number.
            return c.problem("/length", crate::error::ProblemKind::InvalidOperation, "length must be 1 to 43");
        }
        Expr::op(HashId { value: c.sub(&self.value, Self::NAME), length: self.length })
    }
}

#[derive(Debug)]
struct HashId {
    value: Expr,
    length: usize,
}

impl Op for HashId {
    fn eval<'s>(&self, scope: &Scope<'s>) -> Out<'s> {
        let v = self.value.eval(scope)?;
        let id = v.as_str()?;
        if id.len() == self.length && id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Some(v);
        }
        owned(Value::String(hash_id(id, self.length)))
    }
}

/// The first `length` base-62 digits of SHA-256(`id`) read as a big-endian number.
fn hash_id(id: &str, length: usize) -> String {
    let mut n = ring::digest::digest(&ring::digest::SHA256, id.as_bytes()).as_ref().to_vec();
    // Long division by 62, least significant digit first.
    let mut digits = Vec::with_capacity(44);
    while n.iter().any(|&b| b != 0) {
        let mut rem = 0u32;
        for b in n.iter_mut() {
            let cur = (rem << 8) | u32::from(*b);
            *b = (cur / 62) as u8;
            rem = cur % 62;
        }
        digits.push(BASE62[rem as usize]);
    }
    digits.reverse();
    let mut out: String = digits.iter().take(length).map(|&d| d as char).collect();
    while out.len() < length {
        out.push('0');
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::expr::testing::{problems, run};
    use serde_json::json;

    #[test]
    fn foreign_ids_map_to_nine_alphanumerics_and_native_ones_stay() {
        // Computed independently in Python (sha256, base-62, first 9 digits), as the mapping
        // that uses it cites.
        let t = json!({"$hash_id": "$", "length": 9});
        for (id, want) in
            [("call_abc123", "eyvxv1det"), ("call_1", "rwU906w5h"), ("toolu_01A09q90qw90lq917835lq9", "jiBQ0xlgB")]
        {
            assert_eq!(run(t.clone(), json!(id)), Some(json!(want)), "{id}");
        }
        assert_eq!(run(t.clone(), json!("Ab3dE6gH9")), Some(json!("Ab3dE6gH9")));
        assert_eq!(run(t.clone(), json!(7)), None);
        assert_eq!(problems(json!({"$hash_id": "$", "length": 0})), vec!["/length: length must be 1 to 43"]);
    }
}
