//! A JSONPath compiled once. Plain member/index chains (`$.a.b[0]`) are walked directly,
//! without allocation; anything richer (wildcards, filters, descendants) runs through
//! jsonpath-rust's parsed query and yields the list of matches.

use jsonpath_rust::parser::model::{
    Comparable, Comparison, Filter, FilterAtom, JpQuery, Literal, Segment, Selector, SingularQuery,
    SingularQuerySegment, Test,
};
use jsonpath_rust::parser::parse_json_path;
use jsonpath_rust::query::js_path_process;
use serde_json::Value;
use std::borrow::Cow;

#[derive(Debug, Clone)]
pub enum Step {
    Key(String),
    Index(i64),
}

/// One step of a query that may match several nodes.
#[derive(Debug, Clone)]
pub enum QStep {
    Key(String),
    Index(i64),
    Wildcard,
    Filter(Pred),
}

/// A filter predicate on the candidate node (`@`).
#[derive(Debug, Clone)]
pub enum Pred {
    Exists(Vec<Step>),
    Eq(Vec<Step>, Value),
    Ne(Vec<Step>, Value),
    Not(Box<Pred>),
    And(Vec<Pred>),
    Or(Vec<Pred>),
}

#[derive(Debug, Clone)]
pub enum Path {
    /// A chain of member names and indexes (possibly empty: the value itself).
    Steps(Vec<Step>),
    /// Names, indexes, wildcards and simple filters, walked directly.
    Nodes(Vec<QStep>),
    /// Any other query, run by jsonpath-rust.
    Query(Box<JpQuery>),
}

fn singular(segs: &[SingularQuerySegment]) -> Vec<Step> {
    segs.iter()
        .map(|s| match s {
            SingularQuerySegment::Name(n) => Step::Key(unquote(n)),
            SingularQuerySegment::Index(i) => Step::Index(*i),
        })
        .collect()
}

fn literal(l: &Literal) -> Value {
    match l {
        Literal::Int(i) => Value::from(*i),
        Literal::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        Literal::String(s) => Value::String(unquote(s)),
        Literal::Bool(b) => Value::Bool(*b),
        Literal::Null => Value::Null,
    }
}

fn rel_steps(segs: &[Segment]) -> Option<Vec<Step>> {
    segs.iter()
        .map(|s| match s {
            Segment::Selector(Selector::Name(n)) => Some(Step::Key(unquote(n))),
            Segment::Selector(Selector::Index(i)) => Some(Step::Index(*i)),
            _ => None,
        })
        .collect()
}

/// The predicates the direct walker knows; anything else is left to jsonpath-rust.
fn pred(f: &Filter) -> Option<Pred> {
    match f {
        Filter::Or(fs) => fs.iter().map(pred).collect::<Option<Vec<_>>>().map(Pred::Or),
        Filter::And(fs) => fs.iter().map(pred).collect::<Option<Vec<_>>>().map(Pred::And),
        Filter::Atom(FilterAtom::Filter { expr, not }) => {
            pred(expr).map(|p| if *not { Pred::Not(Box::new(p)) } else { p })
        }
        Filter::Atom(FilterAtom::Test { expr, not }) => match expr.as_ref() {
            Test::RelQuery(segs) => {
                rel_steps(segs).map(|st| if *not { Pred::Not(Box::new(Pred::Exists(st))) } else { Pred::Exists(st) })
            }
            _ => None,
        },
        Filter::Atom(FilterAtom::Comparison(c)) => {
            let (a, b, eq) = match c.as_ref() {
                Comparison::Eq(a, b) => (a, b, true),
                Comparison::Ne(a, b) => (a, b, false),
                _ => return None,
            };
            let (q, l) = match (a, b) {
                (Comparable::SingularQuery(SingularQuery::Current(q)), Comparable::Literal(l))
                | (Comparable::Literal(l), Comparable::SingularQuery(SingularQuery::Current(q))) => {
                    (singular(q), literal(l))
                }
                _ => return None,
            };
            Some(if eq { Pred::Eq(q, l) } else { Pred::Ne(q, l) })
        }
    }
}

fn walk_steps<'v>(mut cur: &'v Value, steps: &[Step]) -> Option<&'v Value> {
    for step in steps {
        cur = match (step, cur) {
            (Step::Key(k), Value::Object(m)) => m.get(k.as_str())?,
            (Step::Index(i), Value::Array(a)) => {
                let idx = if *i < 0 { a.len().checked_sub(i.unsigned_abs() as usize)? } else { *i as usize };
                a.get(idx)?
            }
            _ => return None,
        };
    }
    Some(cur)
}

fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

impl Pred {
    fn holds(&self, v: &Value) -> bool {
        match self {
            Pred::Exists(st) => walk_steps(v, st).is_some(),
            Pred::Eq(st, l) => walk_steps(v, st).is_some_and(|x| json_eq(x, l)),
            Pred::Ne(st, l) => !walk_steps(v, st).is_some_and(|x| json_eq(x, l)),
            Pred::Not(p) => !p.holds(v),
            Pred::And(ps) => ps.iter().all(|p| p.holds(v)),
            Pred::Or(ps) => ps.iter().any(|p| p.holds(v)),
        }
    }
}

fn children(v: &Value) -> Box<dyn Iterator<Item = &Value> + '_> {
    match v {
        Value::Array(a) => Box::new(a.iter()),
        Value::Object(m) => Box::new(m.values()),
        _ => Box::new(std::iter::empty()),
    }
}

fn walk_nodes<'v>(v: &'v Value, steps: &[QStep], out: &mut Vec<&'v Value>) {
    let Some((step, rest)) = steps.split_first() else {
        out.push(v);
        return;
    };
    match step {
        QStep::Key(k) => {
            if let Some(next) = v.as_object().and_then(|m| m.get(k.as_str())) {
                walk_nodes(next, rest, out);
            }
        }
        QStep::Index(i) => {
            if let Some(next) = walk_steps(v, &[Step::Index(*i)]) {
                walk_nodes(next, rest, out);
            }
        }
        QStep::Wildcard => children(v).for_each(|c| walk_nodes(c, rest, out)),
        QStep::Filter(p) => children(v).filter(|c| p.holds(c)).for_each(|c| walk_nodes(c, rest, out)),
    }
}

impl Path {
    /// Parse `$...` (the text after a variable name is given with a leading `$`).
    pub fn parse(text: &str) -> Result<Path, String> {
        let query = parse_json_path(text).map_err(|e| format!("invalid JSONPath '{text}': {e}"))?;
        if let Some(steps) = rel_steps(&query.segments) {
            return Ok(Path::Steps(steps));
        }
        let nodes: Option<Vec<QStep>> = query
            .segments
            .iter()
            .map(|seg| match seg {
                Segment::Selector(Selector::Name(n)) => Some(QStep::Key(unquote(n))),
                Segment::Selector(Selector::Index(i)) => Some(QStep::Index(*i)),
                Segment::Selector(Selector::Wildcard) => Some(QStep::Wildcard),
                Segment::Selector(Selector::Filter(f)) => pred(f).map(QStep::Filter),
                _ => None,
            })
            .collect();
        Ok(match nodes {
            Some(n) => Path::Nodes(n),
            None => Path::Query(Box::new(query)),
        })
    }

    /// A plain chain's first member name and the rest of the chain.
    pub fn split_first_key(&self) -> Option<(String, Path)> {
        match self {
            Path::Steps(steps) => match steps.split_first() {
                Some((Step::Key(k), rest)) => Some((k.clone(), Path::Steps(rest.to_vec()))),
                _ => None,
            },
            Path::Nodes(steps) => match steps.split_first() {
                Some((QStep::Key(k), rest)) => Some((k.clone(), Path::Nodes(rest.to_vec()))),
                _ => None,
            },
            Path::Query(_) => None,
        }
    }

    /// The first member name read from the value, when it is known statically.
    /// `None` means the path may read any member (the whole value, or a wildcard).
    pub fn first_key(&self) -> Option<String> {
        match self {
            Path::Steps(steps) => match steps.first() {
                Some(Step::Key(k)) => Some(k.clone()),
                _ => None,
            },
            Path::Nodes(steps) => match steps.first() {
                Some(QStep::Key(k)) => Some(k.clone()),
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
            Path::Steps(steps) => walk_steps(value, steps).filter(|v| !v.is_null()).map(Cow::Borrowed),
            Path::Nodes(steps) => {
                let mut found = Vec::new();
                walk_nodes(value, steps, &mut found);
                let items: Vec<Value> = found.into_iter().filter(|v| !v.is_null()).cloned().collect();
                (!items.is_empty()).then_some(Cow::Owned(Value::Array(items)))
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

impl Path {
    /// Whether [`Path::update`] can follow this path (names, indexes, wildcards, simple filters).
    pub fn updatable(&self) -> bool {
        !matches!(self, Path::Query(_))
    }

    /// Replace every part of `value` the path selects with `f(part)`; `None` removes the part
    /// from its object (an array item is left as it is).
    pub fn update(&self, value: &mut Value, f: &mut dyn FnMut(&Value) -> Option<Value>) {
        let steps: Vec<QStep> = match self {
            Path::Steps(steps) => steps
                .iter()
                .map(|s| match s {
                    Step::Key(k) => QStep::Key(k.clone()),
                    Step::Index(i) => QStep::Index(*i),
                })
                .collect(),
            Path::Nodes(steps) => steps.clone(),
            Path::Query(_) => return,
        };
        if steps.is_empty() {
            if let Some(new) = f(value) {
                *value = new;
            }
            return;
        }
        update_nodes(value, &steps, f);
    }
}

fn update_nodes(v: &mut Value, steps: &[QStep], f: &mut dyn FnMut(&Value) -> Option<Value>) {
    let Some((step, rest)) = steps.split_first() else { return };
    let visit = |child: &mut Value, f: &mut dyn FnMut(&Value) -> Option<Value>| -> bool {
        if rest.is_empty() {
            match f(child) {
                Some(new) => *child = new,
                None => return false,
            }
        } else {
            update_nodes(child, rest, f);
        }
        true
    };
    match (step, v) {
        (QStep::Key(k), Value::Object(m)) => {
            if let Some(child) = m.get_mut(k.as_str()) {
                if !visit(child, f) {
                    m.remove(k.as_str());
                }
            }
        }
        (QStep::Index(i), Value::Array(a)) => {
            let idx = if *i < 0 { a.len().checked_sub(i.unsigned_abs() as usize) } else { Some(*i as usize) };
            if let Some(child) = idx.and_then(|i| a.get_mut(i)) {
                visit(child, f);
            }
        }
        (QStep::Wildcard, Value::Array(a)) => a.iter_mut().for_each(|c| {
            visit(c, f);
        }),
        (QStep::Wildcard, Value::Object(m)) => m.retain(|_, c| visit(c, f)),
        (QStep::Filter(p), Value::Array(a)) => a.iter_mut().filter(|c| p.holds(c)).for_each(|c| {
            visit(c, f);
        }),
        (QStep::Filter(p), Value::Object(m)) => m.retain(|_, c| !p.holds(c) || visit(c, f)),
        _ => {}
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
        assert!(matches!(q, Path::Nodes(_)));
        assert_eq!(q.apply(&v).unwrap().as_ref(), &json!([2]));
        let q = Path::parse("$.m[?@.role != 'user' && @.t].t").unwrap();
        assert!(matches!(q, Path::Nodes(_)));
        assert_eq!(q.apply(&v).unwrap().as_ref(), &json!([1]));
        assert_eq!(Path::parse("$.m[*].role").unwrap().apply(&v).unwrap().as_ref(), &json!(["system", "user"]));
        assert_eq!(
            Path::parse("$.m[?@.t == 2]").unwrap().apply(&v).unwrap().as_ref(),
            &json!([{"role": "user", "t": 2}])
        );
        assert!(Path::parse("$.m[?@.nope]").unwrap().apply(&v).is_none());
        // Anything richer still runs, through jsonpath-rust.
        let q = Path::parse("$..t").unwrap();
        assert!(matches!(q, Path::Query(_)));
        assert_eq!(q.apply(&v).unwrap().as_ref(), &json!([1, 2]));
        assert!(Path::parse("$.a[").is_err());
    }
}
