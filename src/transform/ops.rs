//! The built-in operations, compiled: each variant is checked once by `compile` and applied here.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use base64::Engine as _;
use serde_json::{Map, Value};

use super::glob::Glob;
use super::{key_text, Expr, Frame, Out, Scope};
use crate::spec::ops::JsonType;

#[derive(Debug)]
pub enum Table {
    Static(HashMap<String, Value>),
    Dynamic(Expr),
}

/// A compiled minijinja expression with the transforms that feed its names.
pub struct Template {
    pub expr: minijinja::Expression<'static, 'static>,
    pub names: Vec<String>,
    pub values: Vec<Expr>,
}

impl std::fmt::Debug for Template {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Template").field("names", &self.names).finish()
    }
}

#[derive(Debug)]
pub enum Op {
    First(Vec<Expr>),
    Lookup { value: Expr, table: Table, default: Option<Expr> },
    Each { items: Expr, filter: Option<Expr>, map: Option<Expr>, flatten: bool },
    If { cond: Expr, then: Option<Expr>, otherwise: Option<Expr> },
    Match { value: Expr, cases: Vec<(Glob, Expr)>, default: Option<Expr> },
    Exists(Expr),
    Eq(Expr, Expr),
    Ne(Expr, Expr),
    In(Expr, Vec<Value>),
    Not(Expr),
    All(Vec<Expr>),
    Any(Vec<Expr>),
    Like(Expr, Glob),
    Is(Expr, JsonType),
    Join(Expr, String),
    Concat(Vec<Expr>),
    NonEmpty(Expr),
    ToList(Expr),
    MergeConsecutive { items: Expr, by: Expr, concat: Vec<String> },
    DataUrl(Expr),
    ParseJson(Expr),
    ToJson(Expr),
    ToString(Expr),
    StripKeys { value: Expr, keys: HashSet<String>, keep_under: HashSet<String> },
    Omit(Expr, Vec<String>),
    Merge(Vec<Expr>),
    Object { items: Expr, key: Expr, value: Expr },
    Sum(Vec<Expr>),
    Len(Expr),
    Pipe(Vec<Expr>),
    Let { names: Vec<String>, values: Vec<Expr>, body: Expr },
    Template(Template),
    F32Base64(Expr),
    Walk { value: Expr, map: Expr, names_under: HashSet<String> },
}

fn owned<'s>(v: Value) -> Out<'s> {
    Some(Cow::Owned(v))
}

fn boolean<'s>(b: bool) -> Out<'s> {
    owned(Value::Bool(b))
}

impl Op {
    pub fn eval<'s>(&self, scope: &Scope<'s>) -> Out<'s> {
        match self {
            Op::First(items) => items.iter().find_map(|e| e.eval(scope)),
            Op::Lookup { value, table, default } => {
                let found = value.eval(scope).and_then(|v| {
                    let key = key_text(&v)?.into_owned();
                    match table {
                        Table::Static(map) => map.get(&key).cloned(),
                        Table::Dynamic(expr) => match expr.eval(scope)?.as_ref() {
                            Value::Object(m) => m.get(&key).cloned(),
                            _ => None,
                        },
                    }
                });
                match found {
                    Some(v) => owned(v),
                    None => default.as_ref().and_then(|d| d.eval(scope)),
                }
            }
            Op::Each { items, filter, map, flatten } => {
                let source = items.eval(scope)?;
                let list = match source.as_ref() {
                    Value::Array(a) => a.as_slice(),
                    _ => return None,
                };
                let mut out = Vec::with_capacity(list.len());
                for (i, item) in list.iter().enumerate() {
                    let inner = scope.with_current(item, Some(i));
                    if let Some(f) = filter {
                        if !f.holds(&inner) {
                            continue;
                        }
                    }
                    let result = match map {
                        Some(m) => m.eval_owned(&inner),
                        None => Some(item.clone()),
                    };
                    match result {
                        Some(Value::Array(a)) if *flatten => out.extend(a),
                        Some(v) => out.push(v),
                        None => {}
                    }
                }
                owned(Value::Array(out))
            }
            Op::If { cond, then, otherwise } => {
                let branch = if cond.holds(scope) { then } else { otherwise };
                branch.as_ref().and_then(|e| e.eval(scope))
            }
            Op::Match { value, cases, default } => {
                let v = value.eval(scope);
                let text = v.as_deref().and_then(key_text);
                if let Some(text) = text {
                    // Cases are kept most specific first (see compile), so the first match wins.
                    if let Some((_, e)) = cases.iter().find(|(g, _)| g.matches(&text)) {
                        return e.eval(scope);
                    }
                }
                default.as_ref().and_then(|d| d.eval(scope))
            }
            Op::Exists(e) => boolean(e.eval(scope).is_some_and(|v| !v.is_null())),
            Op::Eq(a, b) => boolean(a.eval(scope) == b.eval(scope)),
            Op::Ne(a, b) => boolean(a.eval(scope) != b.eval(scope)),
            Op::In(e, values) => boolean(e.eval(scope).is_some_and(|v| values.contains(&v))),
            Op::Not(e) => boolean(!e.holds(scope)),
            Op::All(es) => boolean(es.iter().all(|e| e.holds(scope))),
            Op::Any(es) => boolean(es.iter().any(|e| e.holds(scope))),
            Op::Like(e, glob) => boolean(e.eval(scope).as_deref().and_then(key_text).is_some_and(|t| glob.matches(&t))),
            Op::Is(e, kind) => boolean(e.eval(scope).is_some_and(|v| is_type(&v, *kind))),
            Op::Join(e, sep) => {
                let v = e.eval(scope)?;
                let Value::Array(items) = v.as_ref() else {
                    return match v.as_ref() {
                        Value::String(_) => Some(v),
                        _ => None,
                    };
                };
                let mut out = String::new();
                let mut any = false;
                for s in items.iter().filter_map(Value::as_str) {
                    if any {
                        out.push_str(sep);
                    }
                    out.push_str(s);
                    any = true;
                }
                any.then_some(Cow::Owned(Value::String(out)))
            }
            Op::Concat(es) => {
                let mut out = Vec::new();
                for e in es {
                    match e.eval_owned(scope) {
                        Some(Value::Array(a)) => out.extend(a),
                        Some(v) => out.push(v),
                        None => {}
                    }
                }
                owned(Value::Array(out))
            }
            Op::NonEmpty(e) => {
                let v = e.eval(scope)?;
                let empty = match v.as_ref() {
                    Value::Array(a) => a.is_empty(),
                    Value::Object(o) => o.is_empty(),
                    Value::String(s) => s.is_empty(),
                    _ => false,
                };
                (!empty).then_some(v)
            }
            Op::ToList(e) => {
                let v = e.eval(scope)?;
                match v.as_ref() {
                    Value::Array(_) => Some(v),
                    _ => owned(Value::Array(vec![v.into_owned()])),
                }
            }
            Op::MergeConsecutive { items, by, concat } => {
                let v = items.eval_owned(scope)?;
                let Value::Array(list) = v else {
                    return owned(v);
                };
                let mut out: Vec<Value> = Vec::with_capacity(list.len());
                let mut last_key: Option<Value> = None;
                for item in list {
                    let key = by.eval_owned(&scope.with_current(&item, None));
                    let same = key.is_some() && key == last_key;
                    match (same, out.last_mut()) {
                        (true, Some(Value::Object(prev))) => {
                            if let Value::Object(mut cur) = item {
                                for field in concat {
                                    let add = cur.remove(field.as_str());
                                    append_list(prev, field, add);
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
            Op::DataUrl(e) => {
                let v = e.eval(scope)?;
                let url = v.as_str()?.strip_prefix("data:")?;
                let (meta, data) = url.split_once(',')?;
                let media_type = meta.strip_suffix(";base64").unwrap_or(meta);
                let mut m = Map::new();
                m.insert("media_type".into(), Value::String(media_type.to_string()));
                m.insert("data".into(), Value::String(data.to_string()));
                owned(Value::Object(m))
            }
            Op::ParseJson(e) => {
                let v = e.eval(scope)?;
                match v.as_ref() {
                    Value::String(s) => serde_json::from_str(s).ok().map(Cow::Owned),
                    _ => Some(v),
                }
            }
            Op::ToJson(e) => {
                let v = e.eval(scope)?;
                match v.as_ref() {
                    Value::String(_) => Some(v),
                    other => owned(Value::String(other.to_string())),
                }
            }
            Op::ToString(e) => {
                let v = e.eval(scope)?;
                match v.as_ref() {
                    Value::String(_) => Some(v),
                    other => owned(Value::String(other.to_string())),
                }
            }
            Op::StripKeys { value, keys, keep_under } => {
                let mut v = value.eval_owned(scope)?;
                strip_keys(&mut v, keys, keep_under, false);
                owned(v)
            }
            Op::Omit(e, keys) => {
                let v = e.eval(scope)?;
                match v.as_ref() {
                    Value::Object(m) if keys.iter().any(|k| m.contains_key(k.as_str())) => {
                        let mut m = m.clone();
                        for k in keys {
                            m.remove(k.as_str());
                        }
                        owned(Value::Object(m))
                    }
                    _ => Some(v),
                }
            }
            Op::Merge(es) => {
                let mut out = Map::new();
                for e in es {
                    if let Some(Value::Object(m)) = e.eval_owned(scope) {
                        out.extend(m);
                    }
                }
                owned(Value::Object(out))
            }
            Op::Object { items, key, value } => {
                let source = items.eval(scope)?;
                let Value::Array(list) = source.as_ref() else {
                    return None;
                };
                let mut out = Map::new();
                for (i, item) in list.iter().enumerate() {
                    let inner = scope.with_current(item, Some(i));
                    let k = key.eval(&inner);
                    if let (Some(k), Some(v)) = (k.as_deref().and_then(key_text), value.eval_owned(&inner)) {
                        out.insert(k.into_owned(), v);
                    }
                }
                owned(Value::Object(out))
            }
            Op::Sum(es) => {
                let mut int: i64 = 0;
                let mut float: f64 = 0.0;
                let mut any = false;
                let mut is_float = false;
                for v in es.iter().filter_map(|e| e.eval(scope)) {
                    if let Some(i) = v.as_i64() {
                        int = int.saturating_add(i);
                        any = true;
                    } else if let Some(f) = v.as_f64() {
                        float += f;
                        is_float = true;
                        any = true;
                    }
                }
                if !any {
                    None
                } else if is_float {
                    owned(serde_json::Number::from_f64(float + int as f64).map_or(Value::Null, Value::Number))
                } else {
                    owned(Value::from(int))
                }
            }
            Op::Len(e) => {
                let v = e.eval(scope)?;
                let n = match v.as_ref() {
                    Value::Array(a) => a.len(),
                    Value::Object(o) => o.len(),
                    Value::String(s) => s.chars().count(),
                    _ => return None,
                };
                owned(Value::from(n))
            }
            Op::Pipe(steps) => {
                let (first, rest) = steps.split_first()?;
                let mut cur = first.eval_owned(scope)?;
                for step in rest {
                    cur = step.eval_owned(&scope.with_current(&cur, scope.index))?;
                }
                owned(cur)
            }
            Op::Let { names, values, body } => {
                let frame = Frame {
                    names,
                    values: values.iter().map(|e| e.eval_owned(scope).unwrap_or(Value::Null)).collect(),
                    parent: scope.frame,
                };
                let inner = Scope { frame: Some(&frame), ..*scope };
                body.eval_owned(&inner).map(Cow::Owned)
            }
            Op::Template(t) => {
                let ctx: std::collections::BTreeMap<&str, minijinja::Value> = t
                    .names
                    .iter()
                    .zip(&t.values)
                    .map(|(n, e)| {
                        let v = e.eval(scope).map_or(minijinja::Value::UNDEFINED, |v| {
                            minijinja::Value::from(minijinja::value::Serde(v.as_ref()))
                        });
                        (n.as_str(), v)
                    })
                    .collect();
                let result = t.expr.eval(ctx).ok()?;
                if result.is_undefined() || result.is_none() {
                    return None;
                }
                serde_json::to_value(&result).ok().map(Cow::Owned)
            }
            Op::Walk { value, map, names_under } => {
                let v = value.eval_owned(scope)?;
                owned(walk(v, map, names_under, scope, true))
            }
            Op::F32Base64(e) => {
                let v = e.eval(scope)?;
                let Value::Array(nums) = v.as_ref() else {
                    return Some(v);
                };
                let mut bytes = Vec::with_capacity(nums.len() * 4);
                for n in nums {
                    bytes.extend_from_slice(&(n.as_f64().unwrap_or(0.0) as f32).to_le_bytes());
                }
                owned(Value::String(base64::engine::general_purpose::STANDARD.encode(bytes)))
            }
        }
    }
}

/// `$walk`: map every object node, top down, then descend into the mapped result.
fn walk(v: Value, map: &Expr, names_under: &HashSet<String>, scope: &Scope<'_>, is_node: bool) -> Value {
    match v {
        Value::Object(_) if is_node => {
            let mapped = map.eval_owned(&scope.with_current(&v, scope.index)).unwrap_or(Value::Null);
            match mapped {
                Value::Object(m) => Value::Object(
                    m.into_iter()
                        .map(|(k, child)| {
                            let child = if names_under.contains(&k) {
                                walk(child, map, names_under, scope, false)
                            } else {
                                walk(child, map, names_under, scope, true)
                            };
                            (k, child)
                        })
                        .collect(),
                ),
                other => other,
            }
        }
        Value::Object(m) => {
            Value::Object(m.into_iter().map(|(k, c)| (k, walk(c, map, names_under, scope, true))).collect())
        }
        Value::Array(a) => Value::Array(a.into_iter().map(|c| walk(c, map, names_under, scope, true)).collect()),
        other => other,
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

fn strip_keys(v: &mut Value, keys: &HashSet<String>, keep_under: &HashSet<String>, names_here: bool) {
    match v {
        Value::Object(m) => {
            if !names_here {
                m.retain(|k, _| !keys.contains(k));
            }
            for (k, child) in m.iter_mut() {
                let child_names = !names_here && keep_under.contains(k);
                strip_keys(child, keys, keep_under, child_names);
            }
        }
        Value::Array(a) => {
            for child in a {
                strip_keys(child, keys, keep_under, false);
            }
        }
        _ => {}
    }
}

fn is_type(v: &Value, kind: JsonType) -> bool {
    match kind {
        JsonType::String => v.is_string(),
        JsonType::Number => v.is_number(),
        JsonType::Integer => v.is_i64() || v.is_u64(),
        JsonType::Boolean => v.is_boolean(),
        JsonType::Array => v.is_array(),
        JsonType::Object => v.is_object(),
        JsonType::Null => v.is_null(),
    }
}
