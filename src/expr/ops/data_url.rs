//! `$data_url`: a `data:` URL taken apart.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::expr::registry::{OpSpec, Operation};
use crate::expr::{owned, Compiler, Expr, ExprSpec, Op, Out, Scope};

/// Parse a `data:` URL (RFC 2397) into `{mime, data, base64}`: the media type (default
/// `text/plain`), the payload as written, and whether it is base64; absent when it is not one.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "DataUrl")]
pub(crate) struct Spec {
    #[serde(rename = "$data_url")]
    value: ExprSpec,
}

impl Operation for Spec {
    const NAME: &'static str = "$data_url";
    const USAGE: &'static str = "{$data_url: url}";
}

impl OpSpec for Spec {
    fn compile(&self, c: &mut Compiler<'_>) -> Expr {
        Expr::op(DataUrl(c.sub(&self.value, Self::NAME)))
    }
}

#[derive(Debug)]
struct DataUrl(Expr);

impl Op for DataUrl {
    fn eval<'s>(&self, scope: &Scope<'s>) -> Out<'s> {
        let v = self.0.eval(scope)?;
        let (meta, data) = v.as_str()?.strip_prefix("data:")?.split_once(',')?;
        let (mime, base64) = match meta.strip_suffix(";base64") {
            Some(m) => (m, true),
            None => (meta, false),
        };
        let mime = if mime.is_empty() { "text/plain" } else { mime.split(';').next().unwrap_or(mime) };
        let mut m = Map::new();
        m.insert("mime".into(), Value::String(mime.to_string()));
        m.insert("data".into(), Value::String(data.to_string()));
        m.insert("base64".into(), Value::Bool(base64));
        owned(Value::Object(m))
    }
}

#[cfg(test)]
mod tests {
    use crate::expr::testing::run;
    use serde_json::json;

    #[test]
    fn splits_data_urls() {
        let t = json!({"$data_url": "$"});
        assert_eq!(
            run(t.clone(), json!("data:image/png;base64,iVBO")),
            Some(json!({"mime": "image/png", "data": "iVBO", "base64": true}))
        );
        assert_eq!(
            run(t.clone(), json!("data:,hello%20x")),
            Some(json!({"mime": "text/plain", "data": "hello%20x", "base64": false}))
        );
        assert_eq!(
            run(t.clone(), json!("data:text/plain;charset=utf-8;base64,aGk=")),
            Some(json!({"mime": "text/plain", "data": "aGk=", "base64": true}))
        );
        assert_eq!(run(t, json!("https://x/y.png")), None);
    }
}
