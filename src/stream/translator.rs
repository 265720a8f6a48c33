//! The per-stream state machine: each upstream event selects its rule by name, updates the
//! stream's state, and writes canonical `chat.completion.chunk` frames as it arrives.

use std::borrow::Cow;
use std::io::Write as _;
use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use serde_json::{Map, Value};

use super::{decoder, Event, Framing, StreamLimits};
use crate::error::{Cause, Error};
use crate::expr::tags::TagSplitter;
use crate::expr::{Ctx, Scope};
use crate::plan::stream::{Action, SplitTag, StreamPlan};

const DONE: &[u8] = b"data: [DONE]\n\n";

/// What the upstream did next.
#[derive(Debug)]
pub enum StreamInput<'a> {
    /// These bytes arrived.
    Data(&'a [u8]),
    /// The upstream closed the stream.
    End,
    /// Reading failed (a broken connection, a timeout).
    Failed(Error),
}

/// The translation of one streamed answer. Feed it the upstream's bytes as they arrive; it
/// writes Server-Sent Events for the client.
pub struct StreamTranslator {
    plan: Arc<StreamPlan>,
    decoder: Box<dyn Framing>,
    events: Vec<Event>,
    state: Value,
    ctx: Ctx,
    created: u64,
    include_usage: bool,
    limits: StreamLimits,
    /// The answer is complete (an `end` step ran or the `done` payload came): the upstream
    /// closing now is no truncation. Events may still follow (a usage summary).
    ended: bool,
    /// The `done` payload came: nothing after it is read.
    closed: bool,
    /// `[DONE]` was written.
    done_written: bool,
    /// A chunk with content (text, a tool call, reasoning, a finish reason) was written: from
    /// here on the client has the answer's first byte, and the call can no longer be retried.
    content_started: bool,
    /// The last usage the stream reported (whether or not the client asked for it).
    usage: Option<Value>,
    failure: Option<Error>,
    /// Where the content of choice 0 is between `split_tag`'s tags (when the plan splits and
    /// its condition held for this call).
    splitter: Option<TagSplitter>,
    /// How many chunks have been written (error events and `[DONE]` are not chunks).
    written: std::cell::Cell<u64>,
    /// What every chunk begins with, up to its choices: `data: {"id":…,"object":…,"created":…,
    /// "model":…,"choices":`. Written once, and again when a rule changes the id or model.
    envelope: Vec<u8>,
}

impl StreamTranslator {
    /// `ctx` is the call's `$ctx`; `id` and `model` seed the state that names every chunk.
    pub(crate) fn new(
        plan: Arc<StreamPlan>,
        ctx: Ctx,
        id: &str,
        model: &str,
        created: u64,
        include_usage: bool,
        limits: StreamLimits,
    ) -> StreamTranslator {
        let mut state = Map::new();
        state.insert("id".into(), Value::String(id.to_string()));
        state.insert("model".into(), Value::String(model.to_string()));
        let splitter = plan.split_tag.as_ref().and_then(|t| {
            let applies = t.when.as_ref().is_none_or(|w| w.holds(&Scope::new(&Value::Null, &ctx, &Value::Null)));
            applies.then(|| TagSplitter::new(&t.open, &t.close))
        });
        let mut t = StreamTranslator {
            splitter,
            envelope: Vec::new(),
            written: std::cell::Cell::new(0),
            decoder: decoder(plan.framing, limits.max_event_bytes),
            plan,
            events: Vec::new(),
            state: Value::Object(state),
            ctx,
            created,
            include_usage,
            limits,
            ended: false,
            closed: false,
            done_written: false,
            content_started: false,
            usage: None,
            failure: None,
        };
        t.write_envelope();
        t
    }

    fn write_envelope(&mut self) {
        let w = &mut self.envelope;
        w.clear();
        w.extend_from_slice(b"data: {\"id\":");
        let _ = serde_json::to_writer(&mut *w, self.state.get("id").unwrap_or(&Value::Null));
        let _ = write!(w, ",\"object\":\"chat.completion.chunk\",\"created\":{},\"model\":", self.created);
        let _ = serde_json::to_writer(&mut *w, self.state.get("model").unwrap_or(&Value::Null));
        w.extend_from_slice(b",\"choices\":");
    }

    /// Whether the stream is over, normally (the upstream's end-of-stream payload came) or by
    /// an error: later input is ignored, and the caller should call
    /// [`StreamTranslator::finish`] and stop reading.
    pub fn is_finished(&self) -> bool {
        self.closed || self.failure.is_some()
    }

    /// Whether a chunk with content has been written (everything before it is the role chunk).
    pub fn content_started(&self) -> bool {
        self.content_started
    }

    /// The usage the stream reported, for accounting (tokens, cost), even when the client did
    /// not ask for it.
    pub fn usage(&self) -> Option<&Value> {
        self.usage.as_ref()
    }

    /// How many `chat.completion.chunk`s have been written so far (for time-per-chunk metrics:
    /// one write may carry several).
    pub fn chunks_written(&self) -> u64 {
        self.written.get()
    }

    /// The error the stream ended with, if it did.
    pub fn failure(&self) -> Option<&Error> {
        self.failure.as_ref()
    }

    /// One step of the stream, as the server and `lightport check` drive it: translate what
    /// arrived into `out`, and say whether the client stream is over (after `[DONE]` or an
    /// error event). Once it is, stop reading the upstream.
    pub fn step(&mut self, input: StreamInput<'_>, out: &mut BytesMut) -> bool {
        match input {
            StreamInput::Data(bytes) => {
                self.feed(bytes, out);
                if !self.is_finished() {
                    return false;
                }
                self.finish(out);
            }
            StreamInput::End => self.finish(out),
            StreamInput::Failed(e) => self.fail(out, e),
        }
        true
    }

    /// Translate the events completed by these bytes; canonical SSE frames go to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut BytesMut) {
        if self.is_finished() {
            return;
        }
        let mut events = std::mem::take(&mut self.events);
        let decoded = self.decoder.feed(bytes, &mut events);
        for ev in events.drain(..) {
            self.event(ev, out);
        }
        self.events = events;
        if let Err(e) = decoded {
            self.broken(out, e.0);
        }
    }

    /// The upstream closed (or sent its last event). Ends the client stream with `[DONE]`, or
    /// with an error event when the upstream stopped before its answer was complete.
    pub fn finish(&mut self, out: &mut BytesMut) {
        if self.failure.is_some() || self.done_written {
            return;
        }
        if !self.closed {
            let mut events = std::mem::take(&mut self.events);
            if let Err(e) = self.decoder.finish(&mut events) {
                self.broken(out, e.0);
                return;
            }
            for ev in events.drain(..) {
                self.event(ev, out);
            }
            if self.failure.is_some() {
                return;
            }
        }
        if self.ended || !self.plan.knows_its_end() {
            self.closed = true;
            self.done_written = true;
            out.extend_from_slice(DONE);
        } else {
            self.fail(
                out,
                Error::bad_gateway("the upstream stream ended before the answer was complete")
                    .with_code("stream_truncated"),
            );
        }
    }

    /// End the client stream with a 502 `bad_upstream_stream`: the upstream's stream cannot be
    /// read, or outgrew a limit.
    fn broken(&mut self, out: &mut BytesMut, message: impl Into<String>) {
        self.fail(out, Error::bad_gateway(message).with_code("bad_upstream_stream"));
    }

    /// End the client stream with an error event (the upstream failed or went silent).
    pub fn fail(&mut self, out: &mut BytesMut, error: Error) {
        if self.failure.is_some() {
            return;
        }
        error.write_sse(out);
        self.failure = Some(error);
    }

    fn event(&mut self, ev: Event, out: &mut BytesMut) {
        if self.is_finished() {
            return;
        }
        if self.plan.done.as_deref() == Some(ev.data.trim()) {
            self.ended = true;
            self.closed = true;
            return;
        }
        if self.plan.passthrough && self.splitter.is_some() {
            // The chunks must be read to move tagged text: forwarded like a `forward: $` rule.
            if let Ok(chunk) = serde_json::from_str::<Value>(&ev.data) {
                let mut splitter = self.splitter.take();
                let chunk = split_chunk(&mut splitter, self.plan.split_tag.as_ref(), chunk);
                self.splitter = splitter;
                write_frame(out, &chunk);
                self.written.set(self.written.get() + 1);
                self.content_started = true;
                if let Some(u) = chunk.get("usage").filter(|u| u.is_object()) {
                    self.usage = Some(u.clone());
                }
                return;
            }
            // Not JSON: nothing to split; it is forwarded as it came, like any passthrough event.
        }
        if self.plan.passthrough {
            out.reserve(ev.data.len() + 8);
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(ev.data.as_bytes());
            out.extend_from_slice(b"\n\n");
            self.written.set(self.written.get() + 1);
            self.content_started = true;
            // Only a chunk that carries a usage object is parsed (OpenAI's chunks say
            // `"usage":null` until the last): the others pass through untouched.
            if carries_usage(&ev.data) {
                if let Ok(Value::Object(mut chunk)) = serde_json::from_str::<Value>(&ev.data) {
                    if let Some(u) = chunk.remove("usage").filter(Value::is_object) {
                        self.usage = Some(u);
                    }
                }
            }
            return;
        }
        let data: Value = serde_json::from_str(&ev.data).unwrap_or(Value::String(ev.data));
        let plan = Arc::clone(&self.plan);
        let name = match &plan.event {
            Some(expr) => expr.text(&Scope::new(&data, &self.ctx, &self.state)),
            None => ev.name,
        };
        let actions = name.as_deref().and_then(|n| plan.rules.get(n)).or(plan.fallback.as_ref());
        for action in actions.into_iter().flatten() {
            self.run(action, &data, out);
            if self.failure.is_some() {
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
        for (name, expr) in &a.append {
            let Some(Value::String(text)) = expr.eval_owned(&Scope::new(data, &self.ctx, &self.state)) else {
                continue;
            };
            let Value::Object(s) = &mut self.state else { continue };
            let slot = s.entry(name.clone()).or_insert_with(|| Value::String(String::new()));
            if !slot.is_string() {
                *slot = Value::String(String::new());
            }
            let Value::String(acc) = slot else { continue };
            // What the upstream streams into one string is bounded like one of its events.
            if acc.len() + text.len() > self.limits.max_event_bytes {
                let limit = self.limits.max_event_bytes;
                self.broken(out, format!("the upstream stream's '{name}' grew past {limit} bytes"));
                return;
            }
            acc.push_str(&text);
        }
        for (name, expr) in &a.enumerate {
            let key = expr.text(&Scope::new(data, &self.ctx, &self.state));
            let Some(key) = key else { continue };
            let Value::Object(s) = &mut self.state else { continue };
            let slot = s.entry(name.clone()).or_insert_with(|| Value::Object(Map::new()));
            let Value::Object(m) = slot else { continue };
            if !m.contains_key(&key) {
                // The upstream chooses the keys: a table that keeps growing is a broken stream.
                if m.len() >= self.limits.max_table_entries {
                    let limit = self.limits.max_table_entries;
                    self.broken(out, format!("the upstream stream named more than {limit} distinct '{name}'"));
                    return;
                }
                let next = m.len();
                m.insert(key, Value::from(next));
            }
        }
        if a.renames {
            self.write_envelope();
        }
        let scope = Scope::new(data, &self.ctx, &self.state);
        let mut content = false;
        let mut usage = None;
        let mut splitter = self.splitter.take();
        let split = self.plan.split_tag.as_ref();
        if let Some(emit) = &a.emit {
            let mut one = |f: &Value, out: &mut BytesMut| match split_fragment(&mut splitter, split, f) {
                Some(f) => self.emit(&f, out, &mut usage),
                None => self.emit(f, out, &mut usage),
            };
            match emit.eval(&scope).as_deref() {
                Some(Value::Array(fragments)) => fragments.iter().for_each(|f| content |= one(f, out)),
                Some(fragment) => content |= one(fragment, out),
                None => {}
            }
        }
        if let Some(forward) = &a.forward {
            if let Some(chunk) = forward.eval(&scope) {
                let chunk = match splitter.is_some() {
                    true => Cow::Owned(split_chunk(&mut splitter, split, chunk.into_owned())),
                    false => chunk,
                };
                write_frame(out, chunk.as_ref());
                self.written.set(self.written.get() + 1);
                content = true;
                if let Some(u) = chunk.get("usage").filter(|u| u.is_object()) {
                    usage = Some(u.clone());
                }
            }
        }
        self.splitter = splitter;
        let error = a.error.as_ref().map(|fields| {
            fields.eval(&scope, 502, || "the upstream reported an error mid-stream".into(), Cause::Upstream(502))
        });
        self.content_started |= content;
        if usage.is_some() {
            self.usage = usage;
        }
        if let Some(error) = error {
            self.fail(out, error);
            return;
        }
        if a.end {
            self.ended = true;
        }
    }

    /// Write one choice fragment `{delta, finish_reason, logprobs, usage, index}` as OpenAI chunks;
    /// true when it carried content (more than the role).
    fn emit(&self, fragment: &Value, out: &mut BytesMut, usage_seen: &mut Option<Value>) -> bool {
        let mut content = false;
        if let Some(u) = fragment.get("usage").filter(|u| u.is_object()) {
            *usage_seen = Some(u.clone());
        }
        let delta = fragment.get("delta").filter(|d| !d.is_null());
        let finish = fragment.get("finish_reason").filter(|d| !d.is_null());
        let logprobs = fragment.get("logprobs").filter(|d| !d.is_null());
        if delta.is_some() || finish.is_some() {
            let has_content = |d: &Value| {
                d.as_object()
                    .is_some_and(|m| m.iter().any(|(k, v)| k != "role" && !matches!(v, Value::Null) && v != ""))
            };
            content = finish.is_some() || delta.is_some_and(has_content);
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
        content
    }

    /// `data: {"id":..,"object":"chat.completion.chunk","created":..,"model":..,"choices":<f>}\n\n`
    fn envelope(
        &self,
        out: &mut BytesMut,
        choices: impl FnOnce(&mut bytes::buf::Writer<&mut BytesMut>) -> std::io::Result<()>,
    ) {
        self.written.set(self.written.get() + 1);
        out.extend_from_slice(&self.envelope);
        let mut w = out.writer();
        let _ = (|| -> std::io::Result<()> {
            choices(&mut w)?;
            w.write_all(b"}\n\n")
        })();
    }
}

/// A choice fragment (`{delta, finish_reason, …}`) with its tagged content moved to the split's
/// field; `None` when there is nothing to change. The finish reason flushes what was held back.
fn split_fragment(splitter: &mut Option<TagSplitter>, split: Option<&SplitTag>, f: &Value) -> Option<Value> {
    let (splitter, split) = (splitter.as_mut()?, split?);
    if f.get("index").and_then(Value::as_u64).unwrap_or(0) != 0 {
        return None;
    }
    let text = f.get("delta").and_then(|d| d.get("content")).and_then(Value::as_str);
    let finishing = f.get("finish_reason").is_some_and(|r| !r.is_null());
    if text.is_none() && !finishing {
        return None;
    }
    let (mut outside, mut inside) = (String::new(), String::new());
    if let Some(t) = text {
        splitter.push(t, &mut outside, &mut inside);
    }
    if finishing {
        splitter.finish(&mut outside, &mut inside);
    }
    let mut f = f.clone();
    let Value::Object(frag) = &mut f else { return None };
    let delta = frag.entry("delta").or_insert_with(|| Value::Object(Map::new()));
    if delta.is_null() {
        *delta = Value::Object(Map::new());
    }
    let Value::Object(d) = delta else { return None };
    match outside.is_empty() {
        true => d.remove("content"),
        false => d.insert("content".into(), Value::String(outside)),
    };
    if !inside.is_empty() {
        match d.get_mut(&split.into) {
            Some(Value::String(s)) => s.push_str(&inside),
            _ => {
                d.insert(split.into.clone(), Value::String(inside));
            }
        }
    }
    // A delta left empty is no chunk at all (unless it finishes the answer).
    if d.is_empty() && !finishing {
        frag.insert("delta".into(), Value::Null);
    }
    Some(f)
}

/// A whole canonical chunk with choice 0's tagged content moved (see [`split_fragment`]).
fn split_chunk(splitter: &mut Option<TagSplitter>, split: Option<&SplitTag>, mut chunk: Value) -> Value {
    if let Some(choices) = chunk.get_mut("choices").and_then(Value::as_array_mut) {
        for c in choices.iter_mut() {
            if let Some(new) = split_fragment(splitter, split, c) {
                *c = new;
                if c.get("delta").is_some_and(Value::is_null) {
                    c["delta"] = Value::Object(Map::new());
                }
            }
        }
    }
    chunk
}

/// Whether JSON text has a `"usage"` member whose value is an object.
fn carries_usage(data: &str) -> bool {
    data.match_indices("\"usage\"").any(|(at, m)| {
        let rest = data[at + m.len()..].trim_start();
        rest.strip_prefix(':').is_some_and(|r| r.trim_start().starts_with('{'))
    })
}

fn write_frame(out: &mut BytesMut, v: &Value) {
    let mut w = out.writer();
    let _ = w.write_all(b"data: ");
    let _ = serde_json::to_writer(&mut w, v);
    let _ = w.write_all(b"\n\n");
}

#[cfg(test)]
mod tests {
    use super::carries_usage;

    #[test]
    fn only_a_usage_object_counts() {
        assert!(carries_usage(r#"{"choices":[],"usage":{"prompt_tokens":1}}"#));
        assert!(carries_usage(r#"{"usage" : { "x": 1 }}"#));
        assert!(!carries_usage(r#"{"choices":[{"delta":{"content":"usage"}}],"usage":null}"#));
        assert!(!carries_usage(r#"{"text":"the \"usage\" word"}"#));
    }
}
