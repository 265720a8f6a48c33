//! The expression engine: a transform as written in a file ([`ExprSpec`], parsed into typed
//! nodes), compiled once into an [`Expr`] tree, and evaluated over JSON values.
//!
//! Every built-in operation is one module under [`ops`] (its spec, its compile step, its
//! evaluator and its tests) and one row of [`registry::OPS`], from which the operation names,
//! the mapping JSON Schema and the operation table of `docs/mappings.md` are generated.

mod compile;
mod ctx;
pub(crate) mod glob;
mod ops;
pub(crate) mod path;
pub(crate) mod registry;
mod report;
mod spec;
pub(crate) mod tags;

use std::borrow::Cow;
use std::fmt;

use serde_json::Value;

pub(crate) use compile::{escape, Compiler, Defs, Reads};
pub use ctx::Ctx;
pub(crate) use ctx::CtxField;
use path::Path;
pub(crate) use report::Report;
pub use spec::ExprSpec;
pub(crate) use spec::{DefSpec, Node};

/// Where a path starts.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    /// `$`: the value being transformed (the item, inside `$each`).
    Current,
    /// `$root`: the document the whole transform started from.
    Root,
    /// `$ctx`: facts about the call, as a whole object.
    Ctx,
    /// `$ctx.<field>`: one fact, read in place.
    CtxField(CtxField),
    /// `$state`: the per-stream state.
    State,
    /// `$index`: the position of the current item inside `$each`.
    Index,
    /// `$request`: the client's canonical request (in response and error transforms).
    Request,
    /// A name bound by `$let` or by a definition's parameters.
    Var(String),
}

/// A compiled operation: evaluated many times, compiled once.
pub(crate) trait Op: fmt::Debug + Send + Sync {
    fn eval<'s>(&self, scope: &Scope<'s>) -> Out<'s>;
}

/// A compiled transform.
#[derive(Debug)]
pub(crate) enum Expr {
    Const(Value),
    Path(Source, Path),
    /// An object template: absent values leave their key out.
    Object(Vec<(String, Expr)>),
    /// A list template: absent items are left out.
    List(Vec<Expr>),
    Op(Box<dyn Op>),
}

/// Names bound by `$let` (or a definition's parameters), innermost first.
pub(crate) struct Frame<'s> {
    pub names: &'s [String],
    pub values: Vec<Value>,
    pub parent: Option<&'s Frame<'s>>,
}

/// What an expression can see.
#[derive(Clone, Copy)]
pub(crate) struct Scope<'s> {
    pub current: &'s Value,
    pub root: &'s Value,
    pub ctx: &'s Ctx,
    pub state: &'s Value,
    pub request: &'s Value,
    pub index: Option<usize>,
    pub frame: Option<&'s Frame<'s>>,
    /// Where a request transform reports what it leaves out or refuses (`$match` `unmatched`).
    pub report: Option<&'s Report>,
}

static NULL: Value = Value::Null;

impl<'s> Scope<'s> {
    /// A scope over a document, with call facts and stream state.
    pub fn new(root: &'s Value, ctx: &'s Ctx, state: &'s Value) -> Scope<'s> {
        Scope { current: root, root, ctx, state, request: &NULL, index: None, frame: None, report: None }
    }

    /// The same scope, reporting what `$match` leaves out or refuses to `report`.
    pub fn with_report(self, report: &'s Report) -> Scope<'s> {
        Scope { report: Some(report), ..self }
    }

    /// The same scope, with the client's request visible as `$request`.
    pub fn with_request(self, request: &'s Value) -> Scope<'s> {
        Scope { request, ..self }
    }

    /// The same scope, looking at another value (an item of a list, a node of a tree).
    pub fn with_current<'c>(&self, current: &'c Value, index: Option<usize>) -> Scope<'c>
    where
        's: 'c,
    {
        Scope { current, index, ..*self }
    }

    fn var(&self, name: &str) -> Option<&'s Value> {
        let mut frame = self.frame;
        while let Some(f) = frame {
            if let Some(i) = f.names.iter().position(|n| n == name) {
                return Some(&f.values[i]);
            }
            frame = f.parent;
        }
        None
    }
}

/// The result of an evaluation: borrowed from the input where possible; `None` is absent.
pub(crate) type Out<'s> = Option<Cow<'s, Value>>;

/// An owned result.
pub(crate) fn owned<'s>(v: Value) -> Out<'s> {
    Some(Cow::Owned(v))
}

/// A boolean result.
pub(crate) fn boolean<'s>(b: bool) -> Out<'s> {
    owned(Value::Bool(b))
}

impl Expr {
    /// The identity transform `$`.
    pub fn is_identity(&self) -> bool {
        matches!(self, Expr::Path(Source::Current, Path::Steps(s)) if s.is_empty())
    }

    /// Wrap a compiled operation.
    pub fn op(op: impl Op + 'static) -> Expr {
        Expr::Op(Box::new(op))
    }

    /// Evaluate into an owned value (absent stays absent).
    pub fn eval_owned(&self, scope: &Scope<'_>) -> Option<Value> {
        self.eval(scope).map(Cow::into_owned)
    }

    pub fn eval<'s>(&self, scope: &Scope<'s>) -> Out<'s> {
        match self {
            Expr::Const(v) => Some(Cow::Owned(v.clone())),
            Expr::Path(source, path) => {
                let base: &'s Value = match source {
                    Source::Current => scope.current,
                    Source::Root => scope.root,
                    Source::CtxField(f) => scope.ctx.field(*f),
                    Source::Ctx => {
                        let whole = scope.ctx.to_value();
                        return path.apply(&whole).map(|v| Cow::Owned(v.into_owned()));
                    }
                    Source::State => scope.state,
                    Source::Request => scope.request,
                    Source::Index => {
                        return scope.index.map(|i| Cow::Owned(Value::from(i)));
                    }
                    Source::Var(name) => scope.var(name).unwrap_or(&NULL),
                };
                path.apply(base)
            }
            Expr::Object(fields) => {
                let mut map = serde_json::Map::with_capacity(fields.len());
                for (key, expr) in fields {
                    if let Some(v) = expr.eval(scope) {
                        map.insert(key.clone(), v.into_owned());
                    }
                }
                Some(Cow::Owned(Value::Object(map)))
            }
            Expr::List(items) => {
                Some(Cow::Owned(Value::Array(items.iter().filter_map(|e| e.eval_owned(scope)).collect())))
            }
            Expr::Op(op) => op.eval(scope),
        }
    }

    /// Evaluate as a condition: present and not `false`/`null`.
    pub fn holds(&self, scope: &Scope<'_>) -> bool {
        truthy(self.eval(scope).as_deref())
    }

    /// Evaluate to text, as error fields and table keys read a value.
    pub fn text(&self, scope: &Scope<'_>) -> Option<String> {
        self.eval(scope).as_deref().and_then(key_text).map(Cow::into_owned)
    }
}

pub(crate) fn truthy(v: Option<&Value>) -> bool {
    !matches!(v, None | Some(Value::Null) | Some(Value::Bool(false)))
}

/// The text a value matches against tables and patterns: strings as they are, scalars as JSON.
pub(crate) fn key_text(v: &Value) -> Option<Cow<'_, str>> {
    match v {
        Value::String(s) => Some(Cow::Borrowed(s)),
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        Value::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
        _ => None,
    }
}

/// Helpers for the operations' unit tests: compile a transform written as JSON and run it.
#[cfg(test)]
pub(crate) mod testing {
    use serde_json::Value;

    use super::{Compiler, Ctx, Defs, Expr, Reads, Scope};
    use crate::error::Problem;

    pub fn compile(transform: Value) -> Result<Expr, Vec<Problem>> {
        let spec: super::ExprSpec = serde_json::from_value(transform).expect("any JSON value is a transform");
        let mut problems = Vec::new();
        let defs = Defs::default();
        let mut reads = Reads::default();
        let expr = Compiler::new(&defs, &mut problems, &mut reads).compile(&spec, "");
        if problems.is_empty() {
            Ok(expr)
        } else {
            Err(problems)
        }
    }

    /// Run `transform` on `input`; `None` is absent.
    pub fn run(transform: Value, input: Value) -> Option<Value> {
        let expr = compile(transform).unwrap_or_else(|p| panic!("does not compile: {p:?}"));
        expr.eval_owned(&Scope::new(&input, &Ctx::default(), &Value::Null))
    }

    /// The messages of the problems `transform` has.
    pub fn problems(transform: Value) -> Vec<String> {
        match compile(transform) {
            Ok(_) => Vec::new(),
            Err(p) => p.into_iter().map(|p| format!("{}: {}", p.pointer, p.message)).collect(),
        }
    }
}
