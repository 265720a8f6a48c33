//! Checks of the canonical (OpenAI) request shape, so bad input gets a 400 naming the field
//! instead of reaching a provider. Only types are checked here; values are the provider's call.

use std::fmt;

use serde_json::{Map, Value};

use crate::error::Error;

/// Where a field is (`messages[2].content[0].type`), spelled out only for an error: a valid
/// request builds no names.
#[derive(Clone, Copy)]
enum At<'a> {
    Key(Option<&'a At<'a>>, &'static str),
    Index(&'a At<'a>, usize),
}

impl<'a> At<'a> {
    fn key(&'a self, name: &'static str) -> At<'a> {
        At::Key(Some(self), name)
    }

    fn index(&'a self, i: usize) -> At<'a> {
        At::Index(self, i)
    }
}

impl fmt::Display for At<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            At::Key(None, name) => f.write_str(name),
            At::Key(Some(parent), name) => write!(f, "{parent}.{name}"),
            At::Index(parent, i) => write!(f, "{parent}[{i}]"),
        }
    }
}

fn top(name: &'static str) -> At<'static> {
    At::Key(None, name)
}

fn bad(field: At<'_>, msg: &str) -> Error {
    let field = field.to_string();
    Error::invalid(format!("{field}: {msg}")).with_param(field)
}

fn expect(obj: &Map<String, Value>, key: &str, field: At<'_>, ok: fn(&Value) -> bool, what: &str) -> Result<(), Error> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(()),
        Some(v) if ok(v) => Ok(()),
        Some(_) => Err(bad(field, &format!("expected {what}"))),
    }
}

fn required_str<'a>(obj: &'a Map<String, Value>, key: &str, field: At<'_>) -> Result<&'a str, Error> {
    match obj.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(Value::String(_)) => Err(bad(field, "must not be empty")),
        None | Some(Value::Null) => Err(bad(field, "is required")),
        Some(_) => Err(bad(field, "expected a string")),
    }
}

const NUMBERS: &[&str] = &["temperature", "top_p", "frequency_penalty", "presence_penalty"];
const INTEGERS: &[&str] = &["max_tokens", "max_completion_tokens", "n", "seed", "top_logprobs"];
const BOOLS: &[&str] = &["stream", "logprobs", "parallel_tool_calls"];

/// The model name of a request, after checking its type.
pub fn model(body: &Map<String, Value>) -> Result<&str, Error> {
    required_str(body, "model", top("model"))
}

pub fn chat(body: &Map<String, Value>) -> Result<(), Error> {
    model(body)?;
    for k in NUMBERS {
        expect(body, k, top(k), Value::is_number, "a number")?;
    }
    for k in INTEGERS {
        expect(body, k, top(k), |v| v.is_i64() || v.is_u64(), "an integer")?;
    }
    for k in BOOLS {
        expect(body, k, top(k), Value::is_boolean, "a boolean")?;
    }
    expect(
        body,
        "stop",
        top("stop"),
        |v| v.is_string() || v.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
        "a string or an array of strings",
    )?;
    expect(body, "stream_options", top("stream_options"), Value::is_object, "an object")?;
    expect(body, "response_format", top("response_format"), Value::is_object, "an object")?;
    expect(body, "tool_choice", top("tool_choice"), |v| v.is_string() || v.is_object(), "a string or an object")?;
    let messages = match body.get("messages") {
        Some(Value::Array(m)) if !m.is_empty() => m,
        Some(Value::Array(_)) => return Err(bad(top("messages"), "must not be empty")),
        None | Some(Value::Null) => return Err(bad(top("messages"), "is required")),
        Some(_) => return Err(bad(top("messages"), "expected an array of messages")),
    };
    for (i, m) in messages.iter().enumerate() {
        message(m, top("messages").index(i))?;
    }
    if let Some(tools) = body.get("tools").filter(|v| !v.is_null()) {
        let Value::Array(tools) = tools else {
            return Err(bad(top("tools"), "expected an array"));
        };
        let list = top("tools");
        for (i, t) in tools.iter().enumerate() {
            let field = list.index(i);
            let Value::Object(t) = t else {
                return Err(bad(field, "expected an object"));
            };
            let function = field.key("function");
            let Some(Value::Object(f)) = t.get("function") else {
                return Err(bad(function, "expected an object"));
            };
            required_str(f, "name", function.key("name"))?;
            expect(f, "parameters", function.key("parameters"), Value::is_object, "an object")?;
        }
    }
    Ok(())
}

fn message(m: &Value, field: At<'_>) -> Result<(), Error> {
    let Value::Object(m) = m else {
        return Err(bad(field, "expected an object"));
    };
    let role = required_str(m, "role", field.key("role"))?;
    if !matches!(role, "system" | "developer" | "user" | "assistant" | "tool" | "function") {
        return Err(bad(field.key("role"), "expected one of system, developer, user, assistant, tool"));
    }
    match m.get("content") {
        None | Some(Value::Null) | Some(Value::String(_)) => {}
        Some(Value::Array(parts)) => {
            let content = field.key("content");
            for (j, p) in parts.iter().enumerate() {
                let pf = content.index(j);
                let Value::Object(p) = p else {
                    return Err(bad(pf, "expected a content part object"));
                };
                match required_str(p, "type", pf.key("type"))? {
                    "text" if !p.get("text").is_some_and(Value::is_string) => {
                        return Err(bad(pf.key("text"), "expected a string"));
                    }
                    "image_url" => {
                        let url = p.get("image_url").and_then(|u| u.get("url").or(Some(u))).filter(|u| u.is_string());
                        if url.is_none() {
                            return Err(bad(pf.key("image_url").key("url"), "expected a string"));
                        }
                    }
                    _ => {}
                }
            }
        }
        Some(_) => return Err(bad(field.key("content"), "expected a string or an array of content parts")),
    }
    if role == "tool" {
        required_str(m, "tool_call_id", field.key("tool_call_id"))?;
    }
    if let Some(calls) = m.get("tool_calls").filter(|v| !v.is_null()) {
        let Value::Array(calls) = calls else {
            return Err(bad(field.key("tool_calls"), "expected an array"));
        };
        let list = field.key("tool_calls");
        for (j, c) in calls.iter().enumerate() {
            let cf = list.index(j);
            let Value::Object(c) = c else {
                return Err(bad(cf, "expected an object"));
            };
            let function = cf.key("function");
            let Some(Value::Object(f)) = c.get("function") else {
                return Err(bad(function, "expected an object"));
            };
            required_str(f, "name", function.key("name"))?;
            expect(f, "arguments", function.key("arguments"), Value::is_string, "a string")?;
        }
    }
    Ok(())
}

pub fn embeddings(body: &Map<String, Value>) -> Result<(), Error> {
    model(body)?;
    let ok = match body.get("input") {
        Some(Value::String(_)) => true,
        Some(Value::Array(items)) if !items.is_empty() => {
            items.iter().all(Value::is_string)
                || items.iter().all(|v| v.is_u64())
                || items.iter().all(|v| v.as_array().is_some_and(|a| a.iter().all(Value::is_u64)))
        }
        None | Some(Value::Null) => return Err(bad(top("input"), "is required")),
        _ => false,
    };
    if !ok {
        return Err(bad(top("input"), "expected a string, an array of strings, or token arrays"));
    }
    expect(body, "dimensions", top("dimensions"), |v| v.is_u64(), "a positive integer")?;
    expect(
        body,
        "encoding_format",
        top("encoding_format"),
        |v| matches!(v.as_str(), Some("float" | "base64")),
        "'float' or 'base64'",
    )?;
    Ok(())
}
