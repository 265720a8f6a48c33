//! String templates for paths, query values and headers: literal text with `{{ expression }}`
//! holes. Holes naming `model`, `stream` or `vars.<name>` are read directly; anything else is a
//! minijinja expression compiled here, once.

use std::fmt::Write as _;
use std::sync::LazyLock;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Everything but unreserved characters (and `@`, as in versioned model names) is escaped, so an interpolated value can never add a
/// path segment, a query or a fragment (`/`, `?`, `#`, `:`, `%`, `..` stays inside its segment).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~').remove(b'@');

static ENV: LazyLock<minijinja::Environment<'static>> = LazyLock::new(minijinja::Environment::new);

#[derive(Debug)]
enum Hole {
    Model,
    Stream,
    Var(String),
    Expr(minijinja::Expression<'static, 'static>),
}

#[derive(Debug)]
enum Part {
    Text(String),
    Hole(Hole),
}

/// What a template can name.
pub struct TemplateVars<'a> {
    pub model: &'a str,
    pub stream: bool,
    pub vars: &'a [(String, String)],
}

#[derive(Debug)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    pub fn compile(source: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = source;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_string()));
            }
            let after = &rest[start + 2..];
            let end = after.find("}}").ok_or_else(|| format!("unclosed '{{{{' in template '{source}'"))?;
            let expr = after[..end].trim();
            let hole = match expr {
                "model" => Hole::Model,
                "stream" => Hole::Stream,
                _ => match expr.strip_prefix("vars.") {
                    Some(name) if name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => {
                        Hole::Var(name.to_string())
                    }
                    _ => Hole::Expr(
                        ENV.compile_expression_owned(expr.to_string())
                            .map_err(|e| format!("invalid expression '{expr}' in template: {e}"))?,
                    ),
                },
            };
            parts.push(Part::Hole(hole));
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Template { parts })
    }

    /// The `vars.<name>` this template reads, to check them at load time.
    pub fn var_names(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Hole(Hole::Var(n)) => Some(n.as_str()),
            _ => None,
        })
    }

    /// Whether the template names the model (`{{ model }}`, or `model` inside an expression).
    pub fn reads_model(&self) -> bool {
        self.parts.iter().any(|p| match p {
            Part::Hole(Hole::Model) => true,
            Part::Hole(Hole::Expr(e)) => e.undeclared_variables(false).contains("model"),
            _ => false,
        })
    }

    /// Render; with `encode`, interpolated values are percent-encoded as one path segment.
    pub fn render<'v>(&self, vars: &TemplateVars<'v>, encode: bool, out: &mut String) {
        for part in &self.parts {
            let value: std::borrow::Cow<'v, str> = match part {
                Part::Text(t) => {
                    out.push_str(t);
                    continue;
                }
                Part::Hole(Hole::Model) => vars.model.into(),
                Part::Hole(Hole::Stream) => if vars.stream { "true" } else { "false" }.into(),
                Part::Hole(Hole::Var(n)) => {
                    vars.vars.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str()).unwrap_or("").into()
                }
                Part::Hole(Hole::Expr(e)) => {
                    let map: std::collections::BTreeMap<String, String> = vars.vars.iter().cloned().collect();
                    let ctx = minijinja::context! { model => vars.model, stream => vars.stream, vars => map };
                    match e.eval(ctx) {
                        Ok(v) if !v.is_undefined() && !v.is_none() => std::borrow::Cow::Owned(v.to_string()),
                        _ => "".into(),
                    }
                }
            };
            if encode {
                let _ = write!(out, "{}", utf8_percent_encode(&value, SEGMENT));
            } else {
                out.push_str(&value);
            }
        }
    }

    pub fn render_string(&self, vars: &TemplateVars<'_>, encode: bool) -> String {
        let mut s = String::new();
        self.render(vars, encode, &mut s);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holes_are_encoded_so_they_cannot_escape_the_segment() {
        let t = Template::compile("/v1beta/models/{{ model }}:generateContent").unwrap();
        let vars = TemplateVars { model: "x:generateContent?key=1/../y", stream: false, vars: &[] };
        assert_eq!(
            t.render_string(&vars, true),
            "/v1beta/models/x%3AgenerateContent%3Fkey%3D1%2F..%2Fy:generateContent"
        );
    }

    #[test]
    fn vars_and_expressions() {
        let vars = [("api_version".to_string(), "2024-10-21".to_string())];
        let v = TemplateVars { model: "m", stream: true, vars: &vars };
        assert_eq!(Template::compile("{{ vars.api_version }}").unwrap().render_string(&v, false), "2024-10-21");
        assert_eq!(Template::compile("a{{ 'x' if stream else 'y' }}b").unwrap().render_string(&v, false), "axb");
        assert!(Template::compile("{{ model").is_err());
    }
}
