//! Stream event rules, compiled, and the per-stream state machine that runs them: each upstream
//! event selects its rule by name, updates the stream's state, and writes canonical chunks.

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use serde_json::{Map, Value};

use super::decode::{Decoder, Event};
use crate::spec::Framing;
use crate::transform::{key_text_of, Expr, Scope};

/// One compiled step of a rule.
pub struct Action {
    pub when: Option<Expr>,
    pub set: Vec<(String, Expr)>,
    pub add: Vec<(String, Expr)>,
    pub enumerate: Vec<(String, Expr)>,
    pub emit: Option<Expr>,
    pub forward: Option<Expr>,
    pub error: Option<Expr>,
    pub end: bool,
}

pub struct StreamPlan {
    pub framing: Framing,
    pub passthrough: bool,
    pub done: Option<String>,
    pub event: Option<Expr>,
    pub rules: HashMap<String, Vec<Action>>,
    pub fallback: Option<Vec<Action>>,
}

impl StreamPlan {
    /// Whether the stream has a recognisable normal end; without one, end of input is the end.
    fn knows_its_end(&self) -> bool {
        self.done.is_some() || self.rules.values().chain(self.fallback.iter()).flatten().any(|a| a.end)
    }
}

/// The per-stream state of one translation.
pub struct StreamTranslator {
    plan: Arc<StreamPlan>,
    decoder: Decoder,
    events: Vec<Event>,
    state: Value,
    ctx: Value,
    created: u64,
    include_usage: bool,
    ended: bool,
    failed: bool,
}

const DONE: &[u8] = b"data: [DONE]\n\n";

impl StreamTranslator {
    /// `ctx` is the call context (`$ctx`); it must hold `id` and `model`, which seed the state.
    pub fn new(plan: Arc<StreamPlan>, ctx: Value) -> StreamTranslator {
        let mut state = Map::new();
        state.insert("id".into(), ctx.get("id").cloned().unwrap_or(Value::Null));
        state.insert("model".into(), ctx.get("model").cloned().unwrap_or(Value::Null));
        let include_usage = ctx.get("include_usage").and_then(Value::as_bool).unwrap_or(false);
        let created = ctx.get("created").and_then(Value::as_u64).unwrap_or(0);
        StreamTranslator {
            decoder: Decoder::new(plan.framing),
            plan,
            events: Vec::new(),
            state: Value::Object(state),
            ctx,
            created,
            include_usage,
            ended: false,
            failed: false,
        }
    }

    /// Whether the stream is over (normally or by an error); later input is ignored.
    pub fn is_finished(&self) -> bool {
        self.failed
    }

    /// Translate the events completed by these bytes; canonical SSE frames go to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut BytesMut) {
        let mut events = std::mem::take(&mut self.events);
        self.decoder.feed(bytes, &mut events);
        for ev in events.drain(..) {
            self.event(ev, out);
        }
        self.events = events;
    }

    /// The upstream closed. Ends the client stream with `[DONE]`, or with an error event when the
    /// upstream stopped before its answer was complete.
    pub fn finish(&mut self, out: &mut BytesMut) {
        let mut events = std::mem::take(&mut self.events);
        self.decoder.finish(&mut events);
        for ev in events.drain(..) {
            self.event(ev, out);
        }
        if self.failed {
            return;
        }
        if self.ended || !self.plan.knows_its_end() {
            out.extend_from_slice(DONE);
        } else {
            self.fail(
                out,
                "the upstream stream ended before the answer was complete",
                "upstream_error",
                Some("stream_truncated"),
            );
        }
    }

    /// End the client stream with an error event (e.g. the upstream went silent for too long).
    pub fn fail(&mut self, out: &mut BytesMut, message: &str, kind: &str, code: Option<&str>) {
        if self.failed {
            return;
        }
        self.failed = true;
        let err = serde_json::json!({"error": {"message": message, "type": kind, "param": null, "code": code}});
        write_frame(out, &err);
    }

    fn event(&mut self, ev: Event, out: &mut BytesMut) {
        if self.failed || self.ended && self.plan.done.is_some() {
            return;
        }
        if self.plan.done.as_deref() == Some(ev.data.trim()) {
            self.ended = true;
            return;
        }
        if self.plan.passthrough {
            out.reserve(ev.data.len() + 8);
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(ev.data.as_bytes());
            out.extend_from_slice(b"\n\n");
            return;
        }
        let data: Value = serde_json::from_str(&ev.data).unwrap_or(Value::String(ev.data));
        let plan = Arc::clone(&self.plan);
        let name = match &plan.event {
            Some(expr) => {
                let scope = Scope::new(&data, &self.ctx, &self.state);
                expr.eval(&scope).as_deref().and_then(key_text_of)
            }
            None => ev.name,
        };
        let actions = name.as_deref().and_then(|n| plan.rules.get(n)).or(plan.fallback.as_ref());
        let Some(actions) = actions else { return };
        for action in actions {
            self.run(action, &data, out);
            if self.failed {
                return;
            }
        }
    }

    fn run(&mut self, a: &Action, data: &Value, out: &mut BytesMut) {
        if let Some(w) = &a.when {
            if !w.holds(&Scope::new(data, &self.ctx, &self.state)) {
                return;
            }
        }
        for (name, expr) in &a.set {
            let v = expr.eval_owned(&Scope::new(data, &self.ctx, &self.state));
            if let (Some(v), Value::Object(s)) = (v, &mut self.state) {
                s.insert(name.clone(), v);
            }
        }
        for (name, expr) in &a.add {
            let add = expr.eval_owned(&Scope::new(data, &self.ctx, &self.state));
            if let (Some(add), Value::Object(s)) = (add, &mut self.state) {
                let slot = s.entry(name.clone()).or_insert(Value::from(0));
                *slot = match (slot.as_i64(), add.as_i64()) {
                    (Some(x), Some(y)) => Value::from(x.saturating_add(y)),
                    _ => Value::from(slot.as_f64().unwrap_or(0.0) + add.as_f64().unwrap_or(0.0)),
                };
            }
        }
        for (name, expr) in &a.enumerate {
            let key = expr.eval(&Scope::new(data, &self.ctx, &self.state)).as_deref().and_then(key_text_of);
            if let (Some(key), Value::Object(s)) = (key, &mut self.state) {
                let slot = s.entry(name.clone()).or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(m) = slot {
                    let next = m.len();
                    m.entry(key).or_insert(Value::from(next));
                }
            }
        }
        let scope = Scope::new(data, &self.ctx, &self.state);
        if let Some(emit) = &a.emit {
            match emit.eval(&scope).as_deref() {
                Some(Value::Array(fragments)) => fragments.iter().for_each(|f| self.emit(f, out)),
                Some(fragment) => self.emit(fragment, out),
                None => {}
            }
        }
        if let Some(forward) = &a.forward {
            if let Some(chunk) = forward.eval(&scope) {
                write_frame(out, chunk.as_ref());
            }
        }
        if let Some(error) = &a.error {
            let e = error.eval_owned(&scope).unwrap_or(Value::Null);
            let text = |k: &str| e.get(k).and_then(key_text_of);
            let message = text("message").unwrap_or_else(|| "the upstream reported an error mid-stream".into());
            let kind = text("type").unwrap_or_else(|| "upstream_error".into());
            let err = serde_json::json!({"error": {"message": message, "type": kind, "param": text("param"), "code": text("code")}});
            self.failed = true;
            write_frame(out, &err);
            return;
        }
        if a.end {
            self.ended = true;
        }
    }

    /// Write one choice fragment `{delta, finish_reason, logprobs, usage, index}` as OpenAI chunks.
    fn emit(&self, fragment: &Value, out: &mut BytesMut) {
        let delta = fragment.get("delta").filter(|d| !d.is_null());
        let finish = fragment.get("finish_reason").filter(|d| !d.is_null());
        let logprobs = fragment.get("logprobs").filter(|d| !d.is_null());
        if delta.is_some() || finish.is_some() {
            let index = fragment.get("index").and_then(Value::as_u64).unwrap_or(0);
            self.envelope(out, |w| {
                write!(w, "[{{\"index\":{index},\"delta\":")?;
                match delta {
                    Some(d) => serde_json::to_writer(&mut *w, d)?,
                    None => w.write_all(b"{}")?,
                }
                w.write_all(b",\"finish_reason\":")?;
                serde_json::to_writer(&mut *w, &finish.unwrap_or(&Value::Null))?;
                if let Some(lp) = logprobs {
                    w.write_all(b",\"logprobs\":")?;
                    serde_json::to_writer(&mut *w, lp)?;
                }
                w.write_all(b"}]")?;
                Ok(())
            });
        }
        if let (true, Some(usage)) = (self.include_usage, fragment.get("usage").filter(|u| u.is_object())) {
            self.envelope(out, |w| {
                w.write_all(b"[],\"usage\":")?;
                serde_json::to_writer(&mut *w, usage)?;
                Ok(())
            });
        }
    }

    /// `data: {"id":..,"object":"chat.completion.chunk","created":..,"model":..,"choices":<f>}\n\n`
    fn envelope(
        &self,
        out: &mut BytesMut,
        choices: impl FnOnce(&mut bytes::buf::Writer<&mut BytesMut>) -> std::io::Result<()>,
    ) {
        let mut w = out.writer();
        let _ = (|| -> std::io::Result<()> {
            w.write_all(b"data: {\"id\":")?;
            serde_json::to_writer(&mut w, self.state.get("id").unwrap_or(&Value::Null))?;
            write!(w, ",\"object\":\"chat.completion.chunk\",\"created\":{},\"model\":", self.created)?;
            serde_json::to_writer(&mut w, self.state.get("model").unwrap_or(&Value::Null))?;
            w.write_all(b",\"choices\":")?;
            choices(&mut w)?;
            w.write_all(b"}\n\n")
        })();
    }
}

fn write_frame(out: &mut BytesMut, v: &Value) {
    let mut w = out.writer();
    let _ = w.write_all(b"data: ");
    let _ = serde_json::to_writer(&mut w, v);
    let _ = w.write_all(b"\n\n");
}
