//! The generic JSON transform engine: a compiled expression tree ([`Expr`]) and its evaluator.
//! Evaluation is pure: a value and a scope in, a value (or absent) out. No parsing happens here.

mod compile;
pub mod glob;
mod ops;
pub mod path;

use std::borrow::Cow;

use serde_json::Value;

pub use compile::{compile, Reads};
pub use ops::Op;
use path::Path;

/// Where a path starts.
#[derive(Debug, Clone)]
pub enum Source {
    /// `$`: the value being transformed (the item, inside `$each`).
    Current,
    /// `$root`: the document the whole transform started from.
    Root,
    /// `$ctx`: facts about the call (model, stream, status, id, created, ...).
    Ctx,
    /// `$state`: the per-stream state.
    State,
    /// `$index`: the position of the current item inside `$each`.
    Index,
    /// `$request`: the client's canonical request (in response and error transforms).
    Request,
    /// A name bound by `$let`.
    Var(String),
}

/// A compiled transform.
#[derive(Debug)]
pub enum Expr {
    Const(Value),
    Path(Source, Path),
    /// An object template: absent values leave their key out.
    Object(Vec<(String, Expr)>),
    /// A list template: absent items are left out.
    List(Vec<Expr>),
    Op(Box<Op>),
}

/// Names bound by `$let`, innermost first.
pub struct Frame<'s> {
    names: &'s [String],
    values: Vec<Value>,
    parent: Option<&'s Frame<'s>>,
}

/// What an expression can see.
#[derive(Clone, Copy)]
pub struct Scope<'s> {
    pub current: &'s Value,
    pub root: &'s Value,
    pub ctx: &'s Value,
    pub state: &'s Value,
    pub request: &'s Value,
    pub index: Option<usize>,
    frame: Option<&'s Frame<'s>>,
}

static NULL: Value = Value::Null;

impl<'s> Scope<'s> {
    /// A scope over a document, with call facts and stream state.
    pub fn new(root: &'s Value, ctx: &'s Value, state: &'s Value) -> Scope<'s> {
        Scope { current: root, root, ctx, state, request: &NULL, index: None, frame: None }
    }

    /// The same scope, with the client's request visible as `$request`.
    pub fn with_request(self, request: &'s Value) -> Scope<'s> {
        Scope { request, ..self }
    }

    fn with_current<'c>(&self, current: &'c Value, index: Option<usize>) -> Scope<'c>
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
pub type Out<'s> = Option<Cow<'s, Value>>;

impl Expr {
    /// The identity transform `$`.
    pub fn is_identity(&self) -> bool {
        matches!(self, Expr::Path(Source::Current, Path::Steps(s)) if s.is_empty())
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
                    Source::Ctx => scope.ctx,
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

/// `key_text` as an owned string.
pub fn key_text_of(v: &Value) -> Option<String> {
    key_text(v).map(Cow::into_owned)
}
