//! A stream's event rules, compiled: for each upstream event name, the steps to run. The
//! per-stream interpreter is `crate::stream::StreamTranslator`.

use std::collections::HashMap;

use super::errors::ErrorFields;
use crate::error::ProblemKind;
use crate::expr::{escape, Compiler, Expr};
use crate::spec::{Framing, StreamSpec};

/// One compiled step of a rule.
#[derive(Debug)]
pub(crate) struct Action {
    pub when: Option<Expr>,
    pub set: Vec<(String, Expr)>,
    pub add: Vec<(String, Expr)>,
    pub append: Vec<(String, Expr)>,
    pub enumerate: Vec<(String, Expr)>,
    pub emit: Option<Expr>,
    pub forward: Option<Expr>,
    pub error: Option<ErrorFields>,
    pub end: bool,
    /// It changes the state's `id` or `model`, which every chunk's envelope names.
    pub renames: bool,
}

/// A compiled `split_tag`.
#[derive(Debug)]
pub(crate) struct SplitTag {
    pub open: String,
    pub close: String,
    pub into: String,
    pub when: Option<Expr>,
}

#[derive(Debug)]
pub(crate) struct StreamPlan {
    pub framing: Framing,
    pub passthrough: bool,
    pub done: Option<String>,
    pub event: Option<Expr>,
    pub rules: HashMap<String, Vec<Action>>,
    pub fallback: Option<Vec<Action>>,
    pub split_tag: Option<SplitTag>,
}

impl StreamPlan {
    pub fn compile(s: &StreamSpec, ptr: &str, c: &mut Compiler<'_>) -> StreamPlan {
        let mut rules = HashMap::new();
        let mut fallback = None;
        for (event, actions) in &s.on {
            let base = format!("{ptr}/on/{}", escape(event));
            let compiled: Vec<Action> = actions
                .iter()
                .enumerate()
                .map(|(i, a)| {
                    let at = format!("{base}/{i}");
                    let one = |e: &Option<crate::spec::ExprSpec>, field: &str, c: &mut Compiler<'_>| {
                        e.as_ref().map(|e| c.compile(e, &format!("{at}/{field}")))
                    };
                    let map = |m: &std::collections::BTreeMap<String, crate::spec::ExprSpec>,
                               field: &str,
                               c: &mut Compiler<'_>| {
                        m.iter()
                            .map(|(k, v)| (k.clone(), c.compile(v, &format!("{at}/{field}/{}", escape(k)))))
                            .collect()
                    };
                    if a.emit.is_some() && a.forward.is_some() {
                        c.problem_at(&at, ProblemKind::InvalidValue, "a step emits or forwards, not both");
                    }
                    let renames = [&a.set, &a.add, &a.append, &a.enumerate]
                        .iter()
                        .any(|m| m.contains_key("id") || m.contains_key("model"));
                    Action {
                        renames,
                        when: one(&a.when, "when", c),
                        set: map(&a.set, "set", c),
                        add: map(&a.add, "add", c),
                        append: map(&a.append, "append", c),
                        enumerate: map(&a.enumerate, "enumerate", c),
                        emit: one(&a.emit, "emit", c),
                        forward: one(&a.forward, "forward", c),
                        error: a.error.as_ref().map(|e| ErrorFields::compile(e.fields(), &format!("{at}/error"), c)),
                        end: a.end,
                    }
                })
                .collect();
            if event == "*" {
                fallback = Some(compiled);
            } else {
                rules.insert(event.clone(), compiled);
            }
        }
        StreamPlan {
            framing: s.framing,
            passthrough: s.passthrough,
            done: s.done.clone(),
            event: s.event.as_ref().map(|e| c.compile(e, &format!("{ptr}/event"))),
            rules,
            fallback,
            split_tag: s.split_tag.as_ref().map(|t| {
                if t.open.is_empty() || t.close.is_empty() {
                    c.problem_at(
                        &format!("{ptr}/split_tag"),
                        ProblemKind::InvalidValue,
                        "open and close must not be empty",
                    );
                }
                SplitTag {
                    open: t.open.clone(),
                    close: t.close.clone(),
                    into: t.into.clone(),
                    when: t.when.as_ref().map(|w| c.compile(w, &format!("{ptr}/split_tag/when"))),
                }
            }),
        }
    }

    /// Whether the stream has a recognisable normal end; without one, end of input is the end.
    pub fn knows_its_end(&self) -> bool {
        self.done.is_some() || self.rules.values().chain(self.fallback.iter()).flatten().any(|a| a.end)
    }
}
