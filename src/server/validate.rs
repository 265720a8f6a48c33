//! Checks of the canonical (OpenAI) request shape, so bad input gets a 400 naming the field
//! instead of reaching a provider. Only types are checked here; values are the provider's call.

use serde_json::{Map, Value};

use crate::error::Error;

fn bad(field: &str, msg: &str) -> Error {
    Error::invalid(format!("{field}: {msg}")).with_param(field.to_string())
}

fn expect(obj: &Map<String, Value>, key: &str, field: &str, ok: fn(&Value) -> bool, what: &str) -> Result<(), Error> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(()),
        Some(v) if ok(v) => Ok(()),
        Some(_) => Err(bad(field, &format!("expected {what}"))),
    }
}

fn required_str<'a>(obj: &'a Map<String, Value>, key: &str, field: &str) -> Result<&'a str, Error> {
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
    required_str(body, "model", "model")
}

pub fn chat(body: &Map<String, Value>) -> Result<(), Error> {
    model(body)?;
    for k in NUMBERS {
        expect(body, k, k, Value::is_number, "a number")?;
    }
    for k in INTEGERS {
        expect(body, k, k, |v| v.is_i64() || v.is_u64(), "an integer")?;
    }
    for k in BOOLS {
        expect(body, k, k, Value::is_boolean, "a boolean")?;
    }
    expect(
        body,
        "stop",
        "stop",
        |v| v.is_string() || v.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
        "a string or an array of strings",
    )?;
    expect(body, "stream_options", "stream_options", Value::is_object, "an object")?;
    expect(body, "response_format", "response_format", Value::is_object, "an object")?;
    expect(body, "tool_choice", "tool_choice", |v| v.is_string() || v.is_object(), "a string or an object")?;
    let messages = match body.get("messages") {
        Some(Value::Array(m)) if !m.is_empty() => m,
        Some(Value::Array(_)) => return Err(bad("messages", "must not be empty")),
        None | Some(Value::Null) => return Err(bad("messages", "is required")),
        Some(_) => return Err(bad("messages", "expected an array of messages")),
    };
    for (i, m) in messages.iter().enumerate() {
        message(m, &format!("messages[{i}]"))?;
    }
    if let Some(tools) = body.get("tools").filter(|v| !v.is_null()) {
        let Value::Array(tools) = tools else {
            return Err(bad("tools", "expected an array"));
        };
        for (i, t) in tools.iter().enumerate() {
            let field = format!("tools[{i}]");
            let Value::Object(t) = t else {
                return Err(bad(&field, "expected an object"));
            };
            let Some(Value::Object(f)) = t.get("function") else {
                return Err(bad(&format!("{field}.function"), "expected an object"));
            };
            required_str(f, "name", &format!("{field}.function.name"))?;
            expect(f, "parameters", &format!("{field}.function.parameters"), Value::is_object, "an object")?;
        }
    }
    Ok(())
}

fn message(m: &Value, field: &str) -> Result<(), Error> {
    let Value::Object(m) = m else {
        return Err(bad(field, "expected an object"));
    };
    let role = required_str(m, "role", &format!("{field}.role"))?;
    if !matches!(role, "system" | "developer" | "user" | "assistant" | "tool" | "function") {
        return Err(bad(&format!("{field}.role"), "expected one of system, developer, user, assistant, tool"));
    }
    match m.get("content") {
        None | Some(Value::Null) | Some(Value::String(_)) => {}
        Some(Value::Array(parts)) => {
            for (j, p) in parts.iter().enumerate() {
                let pf = format!("{field}.content[{j}]");
                let Value::Object(p) = p else {
                    return Err(bad(&pf, "expected a content part object"));
                };
                match required_str(p, "type", &format!("{pf}.type"))? {
                    "text" if !p.get("text").is_some_and(Value::is_string) => {
                        return Err(bad(&format!("{pf}.text"), "expected a string"));
                    }
                    "image_url" => {
                        let url = p.get("image_url").and_then(|u| u.get("url").or(Some(u))).filter(|u| u.is_string());
                        if url.is_none() {
                            return Err(bad(&format!("{pf}.image_url.url"), "expected a string"));
                        }
                    }
                    _ => {}
                }
            }
        }
        Some(_) => return Err(bad(&format!("{field}.content"), "expected a string or an array of content parts")),
    }
    if role == "tool" {
        required_str(m, "tool_call_id", &format!("{field}.tool_call_id"))?;
    }
    if let Some(calls) = m.get("tool_calls").filter(|v| !v.is_null()) {
        let Value::Array(calls) = calls else {
            return Err(bad(&format!("{field}.tool_calls"), "expected an array"));
        };
        for (j, c) in calls.iter().enumerate() {
            let cf = format!("{field}.tool_calls[{j}]");
            let Value::Object(c) = c else {
                return Err(bad(&cf, "expected an object"));
            };
            let Some(Value::Object(f)) = c.get("function") else {
                return Err(bad(&format!("{cf}.function"), "expected an object"));
            };
            required_str(f, "name", &format!("{cf}.function.name"))?;
            expect(f, "arguments", &format!("{cf}.function.arguments"), Value::is_string, "a string")?;
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
        None | Some(Value::Null) => return Err(bad("input", "is required")),
        _ => false,
    };
    if !ok {
        return Err(bad("input", "expected a string, an array of strings, or token arrays"));
    }
    expect(body, "dimensions", "dimensions", |v| v.is_u64(), "a positive integer")?;
    expect(
        body,
        "encoding_format",
        "encoding_format",
        |v| matches!(v.as_str(), Some("float" | "base64")),
        "'float' or 'base64'",
    )?;
    Ok(())
}
