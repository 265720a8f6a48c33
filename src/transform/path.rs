//! A JSONPath compiled once. Plain member/index chains (`$.a.b[0]`) are walked directly,
//! without allocation; anything richer (wildcards, filters, descendants) runs through
//! jsonpath-rust's parsed query and yields the list of matches.

use jsonpath_rust::parser::model::{JpQuery, Segment, Selector};
use jsonpath_rust::parser::parse_json_path;
use jsonpath_rust::query::js_path_process;
use serde_json::Value;
use std::borrow::Cow;

#[derive(Debug, Clone)]
pub enum Step {
    Key(String),
    Index(i64),
}

#[derive(Debug, Clone)]
pub enum Path {
    /// A chain of member names and indexes (possibly empty: the value itself).
    Steps(Vec<Step>),
    /// A query that may match several nodes.
    Query(Box<JpQuery>),
}

impl Path {
    /// Parse `$...` (the text after a variable name is given with a leading `$`).
    pub fn parse(text: &str) -> Result<Path, String> {
        let query = parse_json_path(text).map_err(|e| format!("invalid JSONPath '{text}': {e}"))?;
        let mut steps = Vec::with_capacity(query.segments.len());
        for seg in &query.segments {
            match seg {
                Segment::Selector(Selector::Name(n)) => steps.push(Step::Key(unquote(n))),
                Segment::Selector(Selector::Index(i)) => steps.push(Step::Index(*i)),
                _ => return Ok(Path::Query(Box::new(query))),
            }
        }
        Ok(Path::Steps(steps))
    }

    /// The first member name read from the value, when it is known statically.
    /// `None` means the path may read any member (the whole value, or a wildcard).
    pub fn first_key(&self) -> Option<String> {
        match self {
            Path::Steps(steps) => match steps.first() {
                Some(Step::Key(k)) => Some(k.clone()),
                _ => None,
            },
            Path::Query(q) => match q.segments.first() {
                Some(Segment::Selector(Selector::Name(n))) => Some(unquote(n)),
                _ => None,
            },
        }
    }

    /// Apply to a value. A missing member, an out-of-range index, a JSON null or a query with no
    /// match is absent.
    pub fn apply<'v>(&self, value: &'v Value) -> Option<Cow<'v, Value>> {
        match self {
            Path::Steps(steps) => {
                let mut cur = value;
                for step in steps {
                    cur = match (step, cur) {
                        (Step::Key(k), Value::Object(m)) => m.get(k.as_str())?,
                        (Step::Index(i), Value::Array(a)) => {
                            let idx =
                                if *i < 0 { a.len().checked_sub(i.unsigned_abs() as usize)? } else { *i as usize };
                            a.get(idx)?
                        }
                        _ => return None,
                    };
                }
                if cur.is_null() {
                    None
                } else {
                    Some(Cow::Borrowed(cur))
                }
            }
            Path::Query(q) => {
                let found = js_path_process(q, value).ok()?;
                let items: Vec<Value> = found.into_iter().map(|r| r.val().clone()).filter(|v| !v.is_null()).collect();
                if items.is_empty() {
                    None
                } else {
                    Some(Cow::Owned(Value::Array(items)))
                }
            }
        }
    }
}

/// jsonpath-rust keeps the quotes of bracketed names (`$['a-b']`); member names never have them.
fn unquote(name: &str) -> String {
    let t = name.trim();
    if t.len() >= 2 && ((t.starts_with('\'') && t.ends_with('\'')) || (t.starts_with('"') && t.ends_with('"'))) {
        t[1..t.len() - 1].to_string()
    } else {
        t.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn simple_chains_and_queries() {
        let v = json!({"a": {"b": [1, 2, {"c": "x"}]}, "n": null, "k-v": 3,
                       "m": [{"role": "system", "t": 1}, {"role": "user", "t": 2}]});
        assert_eq!(Path::parse("$.a.b[2].c").unwrap().apply(&v).unwrap().as_ref(), &json!("x"));
        assert_eq!(Path::parse("$.a.b[-1].c").unwrap().apply(&v).unwrap().as_ref(), &json!("x"));
        assert!(Path::parse("$.a.zz").unwrap().apply(&v).is_none());
        assert!(Path::parse("$.n").unwrap().apply(&v).is_none());
        assert_eq!(Path::parse("$['k-v']").unwrap().apply(&v).unwrap().as_ref(), &json!(3));
        let q = Path::parse("$.m[?@.role == 'user'].t").unwrap();
        assert!(matches!(q, Path::Query(_)));
        assert_eq!(q.apply(&v).unwrap().as_ref(), &json!([2]));
        assert!(Path::parse("$.a[").is_err());
    }
}
