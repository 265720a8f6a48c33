//! Spec → plan for transforms: reads the YAML value of a transform, checks every path, operation
//! and template once, and records which top-level request fields the transform reads.

use std::collections::{BTreeSet, HashMap};
use std::sync::LazyLock;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::glob::Glob;
use super::ops::{Op, Table, Template};
use super::path::Path;
use super::{Expr, Source};
use crate::spec::ops::{self as spec_ops, OP_NAMES};
use crate::spec::{ExprSpec, Problem};

/// The one minijinja environment every `$expr` is compiled in.
static ENV: LazyLock<minijinja::Environment<'static>> = LazyLock::new(|| {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Lenient);
    env
});

/// Which top-level fields of the input a transform reads; `everything` when it may read any.
#[derive(Debug, Default, Clone)]
pub struct Reads {
    pub keys: BTreeSet<String>,
    pub everything: bool,
}

/// Compile the transform at `pointer`. Problems are pushed; the returned expression is then
/// a placeholder that is never run (a plan with problems is not built).
pub fn compile(spec: &Value, pointer: &str, problems: &mut Vec<Problem>, reads: &mut Reads) -> Expr {
    let mut c = Compiler { problems, reads, bound: Vec::new() };
    c.expr(spec, pointer, true)
}

struct Compiler<'a> {
    problems: &'a mut Vec<Problem>,
    reads: &'a mut Reads,
    bound: Vec<String>,
}

fn child(ptr: &str, key: &str) -> String {
    format!("{ptr}/{}", key.replace('~', "~0").replace('/', "~1"))
}

impl Compiler<'_> {
    fn problem(&mut self, ptr: &str, msg: impl Into<String>) -> Expr {
        self.problems.push(Problem::new(ptr, msg));
        Expr::Const(Value::Null)
    }

    fn expr(&mut self, v: &Value, ptr: &str, root: bool) -> Expr {
        match v {
            Value::String(s) if s.starts_with('$') => self.path(s, ptr, root),
            Value::Array(items) => Expr::List(
                items.iter().enumerate().map(|(i, e)| self.expr(e, &child(ptr, &i.to_string()), root)).collect(),
            ),
            Value::Object(map) => {
                let ops: Vec<&String> = map.keys().filter(|k| k.starts_with('$')).collect();
                match ops.as_slice() {
                    [] => {
                        Expr::Object(map.iter().map(|(k, e)| (k.clone(), self.expr(e, &child(ptr, k), root))).collect())
                    }
                    [name] => {
                        let name = name.to_string();
                        self.op(&name, v, ptr, root)
                    }
                    _ => {
                        let names: Vec<&str> = ops.iter().map(|s| s.as_str()).collect();
                        self.problem(ptr, format!("an object holds one operation, found {}", names.join(", ")))
                    }
                }
            }
            other => Expr::Const(other.clone()),
        }
    }

    fn sub(&mut self, spec: &ExprSpec, ptr: &str, field: &str, root: bool) -> Expr {
        self.expr(&spec.0, &child(ptr, field), root)
    }

    fn opt(&mut self, spec: &Option<ExprSpec>, ptr: &str, field: &str, root: bool) -> Option<Expr> {
        spec.as_ref().map(|s| self.sub(s, ptr, field, root))
    }

    fn list(&mut self, specs: &[ExprSpec], ptr: &str, field: &str, root: bool) -> Vec<Expr> {
        let base = child(ptr, field);
        specs.iter().enumerate().map(|(i, s)| self.expr(&s.0, &child(&base, &i.to_string()), root)).collect()
    }

    fn path(&mut self, text: &str, ptr: &str, root: bool) -> Expr {
        let rest = &text[1..];
        let name_len = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
        let (name, tail) = rest.split_at(name_len);
        let source = match name {
            "" => Source::Current,
            "root" => Source::Root,
            "ctx" => Source::Ctx,
            "state" => Source::State,
            "index" => Source::Index,
            "request" => Source::Request,
            other if self.bound.iter().any(|b| b == other) => Source::Var(other.to_string()),
            other => {
                return self.problem(
                    ptr,
                    format!(
                        "unknown variable '${other}': a path starts with $ (the current value), $root, $ctx, \
                         $state, $index, $request or a name bound by $let (write {{$const: \"{text}\"}} for a literal string)"
                    ),
                )
            }
        };
        if matches!(source, Source::Index) && !tail.is_empty() {
            return self.problem(ptr, "$index is a number and has no members");
        }
        match Path::parse(&format!("${tail}")) {
            Ok(path) => {
                let reads_input = matches!(source, Source::Root) || (root && matches!(source, Source::Current));
                if reads_input {
                    match path.first_key() {
                        Some(k) => {
                            self.reads.keys.insert(k);
                        }
                        None => self.reads.everything = true,
                    }
                }
                Expr::Path(source, path)
            }
            Err(e) => self.problem(ptr, e),
        }
    }

    fn parse<T: DeserializeOwned>(&mut self, v: &Value, ptr: &str, name: &str) -> Option<T> {
        match serde_json::from_value::<T>(v.clone()) {
            Ok(t) => Some(t),
            Err(e) => {
                self.problems.push(Problem::new(ptr, format!("{name}: {e}")));
                None
            }
        }
    }

    fn op(&mut self, name: &str, v: &Value, ptr: &str, root: bool) -> Expr {
        macro_rules! parse {
            ($t:ty) => {
                match self.parse::<$t>(v, ptr, name) {
                    Some(t) => t,
                    None => return Expr::Const(Value::Null),
                }
            };
        }
        let key = name;
        let op = match name {
            "$const" => return Expr::Const(parse!(spec_ops::Const).value),
            "$first" => Op::First({
                let s = parse!(spec_ops::First);
                self.list(&s.items, ptr, key, root)
            }),
            "$lookup" => {
                let s = parse!(spec_ops::Lookup);
                let table = match &s.table.0 {
                    Value::Object(m) if !m.keys().any(|k| k.starts_with('$')) => {
                        Table::Static(m.iter().map(|(k, v)| (k.clone(), v.clone())).collect::<HashMap<_, _>>())
                    }
                    _ => Table::Dynamic(self.sub(&s.table, ptr, "table", root)),
                };
                Op::Lookup {
                    value: self.sub(&s.value, ptr, key, root),
                    table,
                    default: self.opt(&s.default, ptr, "default", root),
                }
            }
            "$each" => {
                let s = parse!(spec_ops::Each);
                Op::Each {
                    items: self.sub(&s.items, ptr, key, root),
                    filter: self.opt(&s.filter, ptr, "where", false),
                    map: self.opt(&s.map, ptr, "map", false),
                    flatten: s.flatten,
                }
            }
            "$if" => {
                let s = parse!(spec_ops::If);
                Op::If {
                    cond: self.sub(&s.cond, ptr, key, root),
                    then: self.opt(&s.then, ptr, "then", root),
                    otherwise: self.opt(&s.otherwise, ptr, "else", root),
                }
            }
            "$match" => {
                let s = parse!(spec_ops::Match);
                let base = child(ptr, "cases");
                let mut cases: Vec<(Glob, Expr)> =
                    s.cases.iter().map(|(k, e)| (Glob::new(k), self.expr(&e.0, &child(&base, k), root))).collect();
                // The most specific pattern wins, whatever order the file lists them in.
                cases.sort_by_key(|(g, _)| std::cmp::Reverse(g.specificity()));
                Op::Match {
                    value: self.sub(&s.value, ptr, key, root),
                    cases,
                    default: self.opt(&s.default, ptr, "default", root),
                }
            }
            "$exists" => Op::Exists({
                let s = parse!(spec_ops::Exists);
                self.sub(&s.value, ptr, key, root)
            }),
            "$eq" | "$ne" => {
                let pair = if name == "$eq" { parse!(spec_ops::Eq).pair } else { parse!(spec_ops::Ne).pair };
                let base = child(ptr, key);
                let a = self.expr(&pair[0].0, &child(&base, "0"), root);
                let b = self.expr(&pair[1].0, &child(&base, "1"), root);
                if name == "$eq" {
                    Op::Eq(a, b)
                } else {
                    Op::Ne(a, b)
                }
            }
            "$in" => {
                let s = parse!(spec_ops::In);
                Op::In(self.sub(&s.value, ptr, key, root), s.values)
            }
            "$not" => Op::Not({
                let s = parse!(spec_ops::Not);
                self.sub(&s.cond, ptr, key, root)
            }),
            "$all" => Op::All({
                let s = parse!(spec_ops::All);
                self.list(&s.conds, ptr, key, root)
            }),
            "$any" => Op::Any({
                let s = parse!(spec_ops::Any);
                self.list(&s.conds, ptr, key, root)
            }),
            "$like" => {
                let s = parse!(spec_ops::Like);
                Op::Like(self.sub(&s.value, ptr, key, root), Glob::new(&s.pattern))
            }
            "$is" => {
                let s = parse!(spec_ops::Is);
                Op::Is(self.sub(&s.value, ptr, key, root), s.kind)
            }
            "$join" => {
                let s = parse!(spec_ops::Join);
                Op::Join(self.sub(&s.items, ptr, key, root), s.sep)
            }
            "$concat" => Op::Concat({
                let s = parse!(spec_ops::Concat);
                self.list(&s.items, ptr, key, root)
            }),
            "$nonempty" => Op::NonEmpty({
                let s = parse!(spec_ops::NonEmpty);
                self.sub(&s.value, ptr, key, root)
            }),
            "$to_list" => Op::ToList({
                let s = parse!(spec_ops::ToList);
                self.sub(&s.value, ptr, key, root)
            }),
            "$merge_consecutive" => {
                let s = parse!(spec_ops::MergeConsecutive);
                Op::MergeConsecutive {
                    items: self.sub(&s.items, ptr, key, root),
                    by: self.sub(&s.by, ptr, "by", false),
                    concat: s.concat,
                }
            }
            "$data_url" => Op::DataUrl({
                let s = parse!(spec_ops::DataUrl);
                self.sub(&s.value, ptr, key, root)
            }),
            "$parse_json" => Op::ParseJson({
                let s = parse!(spec_ops::ParseJson);
                self.sub(&s.value, ptr, key, root)
            }),
            "$to_json" => Op::ToJson({
                let s = parse!(spec_ops::ToJson);
                self.sub(&s.value, ptr, key, root)
            }),
            "$string" => Op::ToString({
                let s = parse!(spec_ops::ToString);
                self.sub(&s.value, ptr, key, root)
            }),
            "$strip_keys" => {
                let s = parse!(spec_ops::StripKeys);
                Op::StripKeys {
                    value: self.sub(&s.value, ptr, key, root),
                    keys: s.keys.into_iter().collect(),
                    keep_under: s.keep_under.into_iter().collect(),
                }
            }
            "$omit" => {
                let s = parse!(spec_ops::Omit);
                Op::Omit(self.sub(&s.value, ptr, key, root), s.keys)
            }
            "$merge" => Op::Merge({
                let s = parse!(spec_ops::Merge);
                self.list(&s.items, ptr, key, root)
            }),
            "$object" => {
                let s = parse!(spec_ops::Object);
                Op::Object {
                    items: self.sub(&s.items, ptr, key, root),
                    key: self.sub(&s.key, ptr, "key", false),
                    value: self.sub(&s.value, ptr, "value", false),
                }
            }
            "$sum" => Op::Sum({
                let s = parse!(spec_ops::Sum);
                self.list(&s.items, ptr, key, root)
            }),
            "$len" => Op::Len({
                let s = parse!(spec_ops::Len);
                self.sub(&s.value, ptr, key, root)
            }),
            "$pipe" => {
                let s = parse!(spec_ops::Pipe);
                let base = child(ptr, key);
                let steps = s
                    .steps
                    .iter()
                    .enumerate()
                    .map(|(i, e)| self.expr(&e.0, &child(&base, &i.to_string()), root && i == 0))
                    .collect();
                Op::Pipe(steps)
            }
            "$let" => {
                let s = parse!(spec_ops::Let);
                let base = child(ptr, key);
                let values = s.bindings.iter().map(|(n, e)| self.expr(&e.0, &child(&base, n), root)).collect();
                let names: Vec<String> = s.bindings.keys().cloned().collect();
                for n in &names {
                    if matches!(n.as_str(), "root" | "ctx" | "state" | "index" | "request") {
                        self.problems
                            .push(Problem::new(child(&base, n), format!("'{n}' is a built-in name; choose another")));
                    }
                }
                let depth = self.bound.len();
                self.bound.extend(names.iter().cloned());
                let body = self.sub(&s.body, ptr, "in", root);
                self.bound.truncate(depth);
                Op::Let { names, values, body }
            }
            "$expr" => {
                let s = parse!(spec_ops::Expr);
                let base = child(ptr, "with");
                let values = s.with.iter().map(|(n, e)| self.expr(&e.0, &child(&base, n), root)).collect();
                match ENV.compile_expression_owned(s.source.clone()) {
                    Ok(expr) => Op::Template(Template { expr, names: s.with.keys().cloned().collect(), values }),
                    Err(e) => return self.problem(&child(ptr, key), format!("invalid expression: {e}")),
                }
            }
            "$f32_base64" => Op::F32Base64({
                let s = parse!(spec_ops::F32Base64);
                self.sub(&s.value, ptr, key, root)
            }),
            "$inherit" => {
                return self.problem(&child(ptr, key), "$inherit is only meaningful in a file that extends another");
            }
            "$walk" => {
                let s = parse!(spec_ops::Walk);
                Op::Walk {
                    value: self.sub(&s.value, ptr, key, root),
                    map: self.sub(&s.map, ptr, "map", false),
                    names_under: s.names_under.into_iter().collect(),
                }
            }
            unknown => {
                let hint =
                    did_you_mean(unknown, OP_NAMES).map(|s| format!(" (did you mean '{s}'?)")).unwrap_or_default();
                return self.problem(&child(ptr, unknown), format!("unknown operation '{unknown}'{hint}"));
            }
        };
        Expr::Op(Box::new(op))
    }
}

/// The closest known name, when it is close enough to be a typo.
pub fn did_you_mean<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}
