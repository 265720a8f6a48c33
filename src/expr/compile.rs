//! Typed transform nodes → compiled expressions. Paths are parsed here, each operation compiles
//! its own options, and every problem is recorded with the JSON pointer of its place in the
//! file. The compiler also records which top-level request fields a transform reads.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::path::Path;
use super::spec::{DefSpec, ExprSpec, Node};
use super::{Expr, Source};
use crate::error::{Problem, ProblemKind};

/// Which top-level fields of the input a transform reads; `everything` when it may read any.
#[derive(Debug, Default, Clone)]
pub struct Reads {
    pub keys: BTreeSet<String>,
    pub everything: bool,
}

/// The definitions a file's transforms may `$use`.
#[derive(Debug, Default)]
pub struct Defs(pub BTreeMap<String, DefSpec>);

/// Names that are built in and cannot be bound.
const BUILT_IN: &[&str] = &["root", "ctx", "state", "index", "request"];

/// A JSON pointer segment for a key.
pub(crate) fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

pub struct Compiler<'a> {
    defs: &'a Defs,
    problems: &'a mut Vec<Problem>,
    reads: &'a mut Reads,
    /// Names bound by enclosing `$let`s (or the parameters of the definition being compiled).
    bound: Vec<String>,
    /// The JSON pointer of the node being compiled.
    ptr: String,
    /// Whether `$` is the transform's input document (not an item inside `$each`).
    at_root: bool,
    /// The definitions being expanded, to refuse a definition that uses itself.
    expanding: Vec<String>,
    /// Whether the transform's input is the client's request (a request transform), so that
    /// its reads of `$` and `$root` are reads of request fields.
    input_is_request: bool,
}

impl<'a> Compiler<'a> {
    pub fn new(defs: &'a Defs, problems: &'a mut Vec<Problem>, reads: &'a mut Reads) -> Compiler<'a> {
        Compiler {
            defs,
            problems,
            reads,
            bound: Vec::new(),
            ptr: String::new(),
            at_root: true,
            expanding: Vec::new(),
            input_is_request: false,
        }
    }

    /// Compile the transform found at `pointer` of the file.
    pub fn compile(&mut self, spec: &ExprSpec, pointer: &str) -> Expr {
        let saved = std::mem::replace(&mut self.ptr, pointer.to_string());
        let e = self.node(spec);
        self.ptr = saved;
        e
    }

    /// Compile a transform whose input is the client's request, recording the fields it reads.
    pub fn compile_request(&mut self, spec: &ExprSpec, pointer: &str) -> Expr {
        self.input_is_request = true;
        let e = self.compile(spec, pointer);
        self.input_is_request = false;
        e
    }

    /// Record a problem at the current node (or below it, at `rel`).
    pub fn problem(&mut self, rel: &str, kind: ProblemKind, message: impl Into<String>) -> Expr {
        self.problems.push(Problem::new(format!("{}{rel}", self.ptr), kind, message));
        Expr::Const(Value::Null)
    }

    /// Record a warning at the current node: the file loads, `lightport check` prints it.
    pub fn warn(&mut self, message: impl Into<String>) {
        self.problems.push(Problem::new(self.ptr.clone(), ProblemKind::Unhandled, message));
    }

    /// Whether the transform being compiled translates the client's request.
    pub fn in_request(&self) -> bool {
        self.input_is_request
    }

    /// Record a problem at an absolute pointer of the file (outside any transform).
    pub fn problem_at(&mut self, pointer: &str, kind: ProblemKind, message: impl Into<String>) {
        self.problems.push(Problem::new(pointer, kind, message));
    }

    /// Compile the transform under `key` of the current node.
    pub fn sub(&mut self, spec: &ExprSpec, key: &str) -> Expr {
        let len = self.ptr.len();
        self.ptr.push('/');
        self.ptr.push_str(&escape(key));
        let e = self.node(spec);
        self.ptr.truncate(len);
        e
    }

    /// Compile an optional transform under `key`.
    pub fn opt(&mut self, spec: &Option<ExprSpec>, key: &str) -> Option<Expr> {
        spec.as_ref().map(|s| self.sub(s, key))
    }

    /// Compile the list of transforms under `key`.
    pub fn list(&mut self, specs: &[ExprSpec], key: &str) -> Vec<Expr> {
        specs.iter().enumerate().map(|(i, s)| self.sub(s, &format!("{key}/{i}"))).collect()
    }

    /// Compile the map of transforms under `key`, in key order.
    pub fn map(&mut self, specs: &BTreeMap<String, ExprSpec>, key: &str) -> Vec<(String, Expr)> {
        specs.iter().map(|(k, s)| (k.clone(), self.sub(s, &format!("{key}/{}", escape(k))))).collect()
    }

    /// Compile with `$` standing for an item (of `$each`, `$object`, ...), not the input document.
    pub fn per_item<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> T {
        let saved = std::mem::replace(&mut self.at_root, false);
        let out = f(self);
        self.at_root = saved;
        out
    }

    /// Compile with these names bound (by `$let`).
    pub fn binding<T>(&mut self, names: &[String], key: &str, f: impl FnOnce(&mut Self) -> T) -> T {
        for n in names {
            if BUILT_IN.contains(&n.as_str()) {
                self.problem(
                    &format!("/{}/{}", escape(key), escape(n)),
                    ProblemKind::InvalidOperation,
                    format!("'{n}' is a built-in name; choose another"),
                );
            }
        }
        let depth = self.bound.len();
        self.bound.extend(names.iter().cloned());
        let out = f(self);
        self.bound.truncate(depth);
        out
    }

    /// Compile the definition `name` for a use at the current node: its body, with only its
    /// parameters bound, problems reported at the definition. `on_item` says whether `$` inside
    /// is the input document (a use without `on:` at the top of a transform).
    pub fn definition(&mut self, name: &str, on_item: bool) -> Option<(Vec<String>, Expr)> {
        let Some(def) = self.defs.0.get(name) else {
            let known: Vec<&str> = self.defs.0.keys().map(String::as_str).collect();
            let hint = crate::error::did_you_mean(name, known.iter().copied())
                .map(|s| format!(" (did you mean '{s}'?)"))
                .unwrap_or_default();
            self.problem("/$use", ProblemKind::UnknownName, format!("no definition named '{name}' in `defs`{hint}"));
            return None;
        };
        if self.expanding.iter().any(|d| d == name) {
            self.problem("/$use", ProblemKind::InvalidOperation, format!("definition '{name}' uses itself"));
            return None;
        }
        let (body, rel) = def.body();
        let params = def.params().to_vec();
        self.expanding.push(name.to_string());
        let saved_bound = std::mem::replace(&mut self.bound, params.clone());
        let saved_ptr = std::mem::replace(&mut self.ptr, format!("/defs/{}{rel}", escape(name)));
        let at_root = self.at_root && !on_item;
        let saved_root = std::mem::replace(&mut self.at_root, at_root);
        let expr = self.node(body);
        self.at_root = saved_root;
        self.ptr = saved_ptr;
        self.bound = saved_bound;
        self.expanding.pop();
        Some((params, expr))
    }

    fn node(&mut self, spec: &ExprSpec) -> Expr {
        match &spec.0 {
            Node::Path(text) => self.path(text),
            Node::Const(v) => Expr::Const(v.clone()),
            // A template that reads nothing is a constant, built once.
            Node::List(_) | Node::Object(_) if spec.constant().is_some() => {
                Expr::Const(spec.constant().expect("checked"))
            }
            Node::List(items) => {
                Expr::List(items.iter().enumerate().map(|(i, e)| self.sub(e, &i.to_string())).collect())
            }
            Node::Object(fields) => Expr::Object(fields.iter().map(|(k, e)| (k.clone(), self.sub(e, k))).collect()),
            Node::Op(op) => op.compile(self),
            Node::Invalid(problems) => {
                for p in problems {
                    self.problems.push(Problem::new(format!("{}{}", self.ptr, p.pointer), p.kind, p.message.clone()));
                }
                Expr::Const(Value::Null)
            }
        }
    }

    fn path(&mut self, text: &str) -> Expr {
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
                    "",
                    ProblemKind::UnknownName,
                    format!(
                        "unknown variable '${other}': a path starts with $ (the current value), $root, $ctx, \
                         $state, $index, $request or a name bound by $let (write {{$const: \"{text}\"}} for a literal string)"
                    ),
                )
            }
        };
        if matches!(source, Source::Index) && !tail.is_empty() {
            return self.problem("", ProblemKind::InvalidPath, "$index is a number and has no members");
        }
        match Path::parse(&format!("${tail}")) {
            Ok(path) => {
                self.note_read(&source, &path);
                // `$ctx.<field>...` reads the field in place; the rest of the path applies to it.
                if let (Source::Ctx, Some((first, rest))) = (&source, path.split_first_key()) {
                    if let Some(field) = super::CtxField::named(&first) {
                        return Expr::Path(Source::CtxField(field), rest);
                    }
                }
                Expr::Path(source, path)
            }
            Err(e) => self.problem("", ProblemKind::InvalidPath, e),
        }
    }

    /// Record the request fields a path reads: the input document's members, the canonical
    /// request's (`$request`), and the facts the engine takes from the request (`$ctx.model`,
    /// `$ctx.stream`, `$ctx.include_usage`).
    fn note_read(&mut self, source: &Source, path: &Path) {
        let first = path.first_key();
        match source {
            Source::Request => self.read(first),
            Source::Root if self.input_is_request => self.read(first),
            Source::Current if self.at_root && self.input_is_request => self.read(first),
            Source::Ctx => match first.as_deref() {
                Some("model") => self.read(Some("model".into())),
                Some("stream") => self.read(Some("stream".into())),
                Some("include_usage") => self.read(Some("stream_options".into())),
                _ => {}
            },
            _ => {}
        }
    }

    /// Record that the request's field `key` is read (`None`: any field may be).
    pub fn read(&mut self, key: Option<String>) {
        match key {
            Some(k) => {
                self.reads.keys.insert(k);
            }
            None => self.reads.everything = true,
        }
    }
}
