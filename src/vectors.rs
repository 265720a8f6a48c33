//! Golden vectors: a folder per case holding the canonical request, the upstream request it must
//! produce, the upstream reply, and the canonical answer it must produce. Run offline by
//! `lightport check` and by `cargo test`; adding a case needs no Rust.
//!
//! Files of a case (`<vectors>/<provider>/<case>/`):
//! - `request.json`: the client's request (model without the provider prefix).
//! - `upstream_request.json`: `{method, path, query?, headers?, body}`, `path` relative to the base
//!   URL, `headers` a subset (lower-case names). Absent when the gateway must refuse the request.
//! - `upstream_response.json` (`{status, headers?, body}`) or `upstream_response.txt` (raw stream bytes), or
//!   `upstream_events.json` (`[{"event": name, "data": {...}}]`, framed as the mapping's stream
//!   framing says: handy for binary framings).
//! - `response.json`: `{status, headers?, body}`, or `{status, chunks: [...]}` for streams, each
//!   chunk an SSE data payload (JSON, or the string `"[DONE]"`).
//!
//! In vectors, `created` is 1700000000, a generated completion id is `chatcmpl-test`, every
//! provider's key is `test-key` and its base URL `http://upstream.test`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::BytesMut;
use serde_json::{json, Value};

use crate::call::Call;
use crate::engine::Engine;
use crate::error::LoadError;
use crate::plan::load::SourceFile;
use crate::plan::{Endpoint, Provider};
use crate::stream::{encode, StreamInput};

pub const BASE_URL: &str = "http://upstream.test";
pub const CREATED: u64 = 1_700_000_000;

/// The environment vectors run in.
pub fn vector_env(key: &str) -> Option<String> {
    if key.ends_with("_API_KEY") {
        Some("test-key".into())
    } else if key.ends_with("_BASE_URL") {
        Some(BASE_URL.into())
    } else {
        None
    }
}

/// Compile mapping sources the way vectors see them.
pub fn engine_for_vectors(sources: &[SourceFile]) -> (Engine, Vec<LoadError>) {
    Engine::load(sources, &vector_env, None)
}

#[derive(Debug)]
pub struct Failure {
    pub case: PathBuf,
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.case.display(), self.message)
    }
}

/// The case folders of one provider, sorted.
pub fn cases(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.join("request.json").is_file()).collect())
        .unwrap_or_default();
    out.sort();
    out
}

fn read_json(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: invalid JSON: {e}", path.display()))
}

/// The first place two JSON values differ, as `pointer: expected X, got Y`.
pub fn diff(expected: &Value, actual: &Value) -> Option<String> {
    fn walk(e: &Value, a: &Value, ptr: &mut String) -> Option<String> {
        match (e, a) {
            (Value::Object(me), Value::Object(ma)) => {
                for (k, ve) in me {
                    let len = ptr.len();
                    ptr.push('/');
                    ptr.push_str(k);
                    let r = match ma.get(k) {
                        Some(va) => walk(ve, va, ptr),
                        None => Some(format!("{ptr}: expected {ve}, got nothing")),
                    };
                    if r.is_some() {
                        return r;
                    }
                    ptr.truncate(len);
                }
                ma.iter().find(|(k, _)| !me.contains_key(*k)).map(|(k, v)| format!("{ptr}/{k}: unexpected {v}"))
            }
            (Value::Array(le), Value::Array(la)) => {
                for (i, (ve, va)) in le.iter().zip(la).enumerate() {
                    let len = ptr.len();
                    ptr.push_str(&format!("/{i}"));
                    if let Some(r) = walk(ve, va, ptr) {
                        return Some(r);
                    }
                    ptr.truncate(len);
                }
                (le.len() != la.len()).then(|| format!("{ptr}: expected {} items, got {}: {a}", le.len(), la.len()))
            }
            _ => (e != a).then(|| format!("{}: expected {e}, got {a}", if ptr.is_empty() { "/" } else { ptr })),
        }
    }
    walk(expected, actual, &mut String::new())
}

/// Parse canonical SSE output into its data payloads.
pub fn sse_payloads(bytes: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(bytes)
        .split("\n\n")
        .filter_map(|frame| frame.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap_or_else(|_| Value::String(d.to_string())))
        .collect()
}

/// The raw upstream stream of a case: `upstream_response.txt` as it is, or `upstream_events.json`
/// framed the way the mapping's stream says. `None` for a non-stream case.
pub fn upstream_stream(provider: &Provider, endpoint: Endpoint, case: &Path) -> Result<Option<Vec<u8>>, String> {
    let raw = case.join("upstream_response.txt");
    if raw.exists() {
        return std::fs::read(&raw).map(Some).map_err(|e| e.to_string());
    }
    let events = case.join("upstream_events.json");
    if !events.exists() {
        return Ok(None);
    }
    let framing = provider.endpoint(endpoint).and_then(|e| e.stream.as_ref()).map(|s| s.framing).unwrap_or_default();
    let list = read_json(&events)?;
    let mut out = Vec::new();
    for ev in list.as_array().ok_or("upstream_events.json must be a list")? {
        let name = ev.get("event").and_then(Value::as_str).unwrap_or("message");
        let data = match ev.get("data") {
            Some(Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
            None => String::new(),
        };
        out.extend(encode(framing, name, &data));
    }
    Ok(Some(out))
}

/// The endpoint a case's request is for.
pub fn endpoint_of(request: &Value) -> Endpoint {
    if request.get("input").is_some() && request.get("messages").is_none() {
        Endpoint::Embeddings
    } else {
        Endpoint::Chat
    }
}

/// The call a case makes, as the server makes it: id `chatcmpl-test`, created 1700000000.
pub fn call_for(provider: &Arc<Provider>, request: &Value) -> Result<Call, crate::Error> {
    Ok(Call::new(Arc::clone(provider), endpoint_of(request), request)?.with_id("chatcmpl-test").with_created(CREATED))
}

/// Feed `bytes` to a stream translator in pieces ending at `cuts` (positions, ascending), then
/// the end of the stream, as the server does; the canonical SSE it wrote.
pub fn drive_stream(t: &mut crate::StreamTranslator, bytes: &[u8], cuts: &[usize]) -> BytesMut {
    let mut out = BytesMut::new();
    let mut start = 0;
    for &cut in cuts.iter().chain(std::iter::once(&bytes.len())) {
        let cut = cut.clamp(start, bytes.len());
        if t.step(StreamInput::Data(&bytes[start..cut]), &mut out) {
            return out;
        }
        start = cut;
    }
    t.step(StreamInput::End, &mut out);
    out
}

/// Run one case against a provider, through the same call steps the server runs.
pub fn run_case(provider: &Arc<Provider>, case: &Path) -> Result<(), String> {
    let request = read_json(&case.join("request.json"))?;
    let expected = read_json(&case.join("response.json"))?;
    let endpoint = endpoint_of(&request);
    let expected_status = expected.get("status").and_then(Value::as_u64).unwrap_or(200);
    let refused = |e: crate::Error| -> Result<(), String> {
        if case.join("upstream_request.json").exists() {
            return Err(format!("the gateway refused the request: {e}"));
        }
        let got = json!({"status": e.status, "body": e.body()});
        let want = json!({"status": expected_status, "body": expected.get("body").cloned().unwrap_or(Value::Null)});
        diff(&want, &got).map_or(Ok(()), |d| Err(format!("refusal differs at {d}")))
    };
    let mut call = match call_for(provider, &request) {
        Ok(c) => c,
        Err(e) => return refused(e),
    };
    let up = match call.request(request, None) {
        Ok(up) => up,
        Err(e) => return refused(e),
    };
    let want_up = read_json(&case.join("upstream_request.json"))?;
    let got_body: Value = serde_json::from_slice(&up.body).map_err(|e| e.to_string())?;
    let (path, query) = up.path_and_query().split_once('?').unwrap_or((up.path_and_query(), ""));
    if let Some(m) = want_up.get("method").and_then(Value::as_str) {
        if m != up.method.as_str() {
            return Err(format!("upstream method: expected {m}, got {}", up.method));
        }
    }
    if let Some(p) = want_up.get("path").and_then(Value::as_str) {
        if p != path {
            return Err(format!("upstream path: expected {p}, got {path}"));
        }
    }
    if let Some(q) = want_up.get("query") {
        let got: serde_json::Map<String, Value> = query
            .split('&')
            .filter(|s| !s.is_empty())
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| {
                (k.to_string(), Value::String(percent_encoding::percent_decode_str(v).decode_utf8_lossy().into_owned()))
            })
            .collect();
        if let Some(d) = diff(q, &Value::Object(got)) {
            return Err(format!("upstream query differs at {d}"));
        }
    }
    if let Some(Value::Object(h)) = want_up.get("headers") {
        for (k, v) in h {
            let got = up.headers.get(k.as_str()).and_then(|x| x.to_str().ok());
            if got != v.as_str() {
                return Err(format!("upstream header {k}: expected {v}, got {got:?}"));
            }
        }
    }
    if let Some(d) = want_up.get("body").and_then(|b| diff(b, &got_body)) {
        return Err(format!("upstream body differs at {d}"));
    }
    if let Some(Value::Object(h)) = expected.get("headers") {
        for (k, v) in h {
            if k == "x-lightport-dropped-params" {
                let got = call.dropped().join(",");
                if v.as_str() != Some(got.as_str()) {
                    return Err(format!("dropped params: expected {v}, got \"{got}\""));
                }
            }
        }
    }
    if let Some(raw) = upstream_stream(provider, endpoint, case)? {
        let want = expected.get("chunks").cloned().unwrap_or(Value::Null);
        // The same bytes, whole and one byte at a time, must translate the same.
        for piece in [raw.len().max(1), 1] {
            let mut t = call.stream().ok_or("the request is no stream, or the mapping has no stream rules")?;
            let cuts: Vec<usize> = (piece..raw.len()).step_by(piece).collect();
            let out = drive_stream(&mut t, &raw, &cuts);
            let got = Value::Array(sse_payloads(&out));
            if let Some(d) = diff(&want, &got) {
                return Err(format!("stream chunks differ (fed {piece} byte(s) at a time) at {d}"));
            }
        }
        return Ok(());
    }
    let upstream = read_json(&case.join("upstream_response.json"))?;
    let status = upstream.get("status").and_then(Value::as_u64).unwrap_or(200) as u16;
    let body = serde_json::to_vec(upstream.get("body").unwrap_or(&Value::Null)).map_err(|e| e.to_string())?;
    let got = if (200..300).contains(&status) {
        match call.response(&body) {
            Ok(v) => json!({"status": 200, "body": v}),
            Err(e) => json!({"status": e.status, "body": e.body()}),
        }
    } else {
        let mut headers = http::HeaderMap::new();
        for (k, v) in upstream.get("headers").and_then(Value::as_object).into_iter().flatten() {
            if let (Ok(name), Some(Ok(value))) =
                (http::HeaderName::from_bytes(k.as_bytes()), v.as_str().map(http::HeaderValue::from_str))
            {
                headers.insert(name, value);
            }
        }
        let e = call.error(status, &headers, &body);
        json!({"status": e.status, "body": e.body()})
    };
    let want = json!({"status": expected_status, "body": expected.get("body").cloned().unwrap_or(Value::Null)});
    diff(&want, &got).map_or(Ok(()), |d| Err(format!("response differs at {d}")))
}

/// Run every case under `root/<provider id>/` for each provider. Returns (cases run, failures).
pub fn run_all(providers: &[Arc<Provider>], root: &Path) -> (usize, Vec<Failure>) {
    let mut ran = 0;
    let mut failures = Vec::new();
    for provider in providers {
        for case in cases(&root.join(provider.id())) {
            ran += 1;
            if let Err(message) = run_case(provider, &case) {
                failures.push(Failure { case, message });
            }
        }
    }
    (ran, failures)
}

/// The entry points of the fuzz targets (`fuzz/`): arbitrary bytes through the stream framings
/// and rules, the request path and the answer and error paths. Each must end cleanly for any
/// input: no panic, no hang, a stream always closed by `[DONE]` or an error event. `cargo test`
/// runs them on the seed corpus and on deterministic mutations of it.
pub mod fuzz {
    use super::*;

    /// Any of the engine's providers, so every framing and operation in the mappings is reached.
    fn provider(engine: &Engine, selector: u8) -> &Arc<Provider> {
        let all = engine.providers();
        &all[usize::from(selector) % all.len()]
    }

    /// `data[0]` picks the provider, `data[1]` how the rest is cut into pieces.
    pub fn stream(engine: &Engine, data: &[u8]) {
        let (Some(&which), Some(&pieces)) = (data.first(), data.get(1)) else { return };
        let bytes = &data[2.min(data.len())..];
        let request = json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
        let provider = provider(engine, which);
        let Ok(mut call) = call_for(provider, &request) else { return };
        if call.request(request, None).is_err() {
            return;
        }
        let step = (bytes.len() / usize::from(pieces % 16 + 1)).max(1);
        let cuts: Vec<usize> = (step..bytes.len()).step_by(step).collect();
        let out = drive_stream(&mut call.stream().expect("a stream"), bytes, &cuts);
        let payloads = sse_payloads(&out);
        let last = payloads.last().expect("a stream always ends with something");
        assert!(last == "[DONE]" || last.get("error").is_some(), "a stream ended with {last}");
    }

    /// `data[0]` picks the provider; the rest is the client's request body.
    pub fn request(engine: &Engine, data: &[u8]) {
        let Some((&which, body)) = data.split_first() else { return };
        let Ok(mut body) = serde_json::from_slice::<Value>(body) else { return };
        if !body.is_object() {
            return;
        }
        body["model"] = Value::String(format!("{}/m", provider(engine, which).id()));
        if let Ok(mut call) = engine.call(endpoint_of(&body), &mut body, None) {
            let _ = call.request(body, Some("fuzz-key"));
        }
    }

    /// `data[0]` picks the provider, `data[1]` an HTTP status; the rest is the upstream's body,
    /// read as an answer and as an error.
    pub fn response(engine: &Engine, data: &[u8]) {
        let (Some(&which), Some(&status)) = (data.first(), data.get(1)) else { return };
        let body = &data[2.min(data.len())..];
        let request =
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "encoding_format": "base64"});
        let Ok(mut call) = call_for(provider(engine, which), &request) else { return };
        if call.request(request, None).is_err() {
            return;
        }
        let _ = call.response(body);
        let e = call.error(400 + u16::from(status) % 200, &http::HeaderMap::new(), body);
        assert!((400..600).contains(&e.status));
    }
}
