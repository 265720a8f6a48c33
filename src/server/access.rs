//! The access log: one line per request, written directly to the log's non-blocking writer
//! rather than through `tracing`'s formatter, which cost about a seventh of a request's CPU.
//! The line has the shape of the gateway's other lines (text `time  LEVEL target: message k=v`,
//! or one JSON object), is filtered by `LIGHTPORT_LOG` like them (target `lightport::access`),
//! and holds names, numbers and outcomes only: never a key, a prompt or an answer. Client text
//! (a model name) is escaped, so it cannot forge a line.

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// Where access lines go, set once by the binary; without it (a library user with their own
/// subscriber) the line is a `tracing` event instead.
static SINK: OnceLock<Sink> = OnceLock::new();

struct Sink {
    writer: tracing_appender::non_blocking::NonBlocking,
    json: bool,
    ansi: bool,
}

/// Send access lines to `writer` (the same non-blocking, lossy writer as the other lines).
pub fn install(writer: tracing_appender::non_blocking::NonBlocking, json: bool, ansi: bool) {
    let _ = SINK.set(Sink { writer, json, ansi });
}

/// One field's value.
pub(crate) enum V<'a> {
    Str(&'a str),
    U64(u64),
    F64(f64),
    Bool(bool),
}

/// Write one access line with these fields (absent ones left out). Without an installed sink
/// (a library user with a subscriber of their own) it is a `tracing` event instead.
pub(crate) fn write(fields: &[(&str, Option<V<'_>>)]) {
    let Some(sink) = SINK.get() else {
        let mut text = String::with_capacity(256);
        text_fields(&mut text, fields);
        tracing::info!(target: "lightport::access", "request{text}");
        return;
    };
    if !tracing::enabled!(target: "lightport::access", tracing::Level::INFO) {
        return;
    }
    let mut line = String::with_capacity(512);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    if sink.json {
        line.push_str("{\"timestamp\":\"");
        timestamp(&mut line, now.as_secs(), now.subsec_micros());
        line.push_str("\",\"level\":\"INFO\",\"message\":\"request\"");
        for (k, v) in fields {
            let Some(v) = v else { continue };
            let _ = write!(line, ",\"{k}\":");
            match v {
                V::Str(s) => json_str(&mut line, s),
                V::U64(n) => {
                    let _ = write!(line, "{n}");
                }
                V::F64(x) if x.is_finite() => {
                    let _ = write!(line, "{x}");
                }
                V::F64(_) => line.push_str("null"),
                V::Bool(b) => {
                    let _ = write!(line, "{b}");
                }
            }
        }
        line.push_str(",\"target\":\"lightport::access\"}\n");
    } else {
        timestamp(&mut line, now.as_secs(), now.subsec_micros());
        line.push_str(if sink.ansi { " \x1b[32m INFO\x1b[0m" } else { "  INFO" });
        line.push_str(" lightport::access: request");
        text_fields(&mut line, fields);
        line.push('\n');
    }
    // One write is one line for the log thread (lossy: dropped, never waited for, when full).
    let _ = sink.writer.clone().write_all(line.as_bytes());
}

/// ` key=value` for each present field, onto `out`; text quoted and escaped, so a newline
/// cannot end the line.
fn text_fields(out: &mut String, fields: &[(&str, Option<V<'_>>)]) {
    for (k, v) in fields {
        let Some(v) = v else { continue };
        let _ = match v {
            // Most values need no escaping: copied as they are (escape_debug goes char by char).
            V::Str(s) if s.bytes().all(|b| b == b' ' || (b.is_ascii_graphic() && b != b'"' && b != b'\\')) => {
                write!(out, " {k}=\"{s}\"")
            }
            V::Str(s) => write!(out, " {k}=\"{}\"", s.escape_debug()),
            V::U64(n) => write!(out, " {k}={n}"),
            V::F64(x) => write!(out, " {k}={x}"),
            V::Bool(b) => write!(out, " {k}={b}"),
        };
    }
}

/// A JSON string, escaped.
fn json_str(out: &mut String, s: &str) {
    let mut buf = Vec::with_capacity(s.len() + 2);
    let _ = serde_json::to_writer(&mut buf, s);
    out.push_str(std::str::from_utf8(&buf).unwrap_or("\"\""));
}

/// `2026-12-01T23:17:32.660189Z`, onto `out`.
fn timestamp(out: &mut String, secs: u64, micros: u32) {
    let t = UNIX_EPOCH + std::time::Duration::from_secs(secs);
    let (y, m, d, hh, mm, ss) = crate::auth::time::utc_fields(t).unwrap_or((1970, 1, 1, 0, 0, 0));
    let _ = write!(out, "{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{micros:06}Z");
}

#[cfg(test)]
mod tests {
    use super::V;

    fn text_fields(fields: &[(&str, Option<V<'_>>)]) -> String {
        let mut out = String::new();
        super::text_fields(&mut out, fields);
        out
    }

    fn timestamp(secs: u64, micros: u32) -> String {
        let mut out = String::new();
        super::timestamp(&mut out, secs, micros);
        out
    }

    #[test]
    fn text_values_are_quoted_and_escaped_only_when_needed() {
        let f = [
            ("model", Some(V::Str("openai/gpt-4o mini"))),
            ("odd", Some(V::Str("a\"b\\c\nFORGED"))),
            ("none", None),
            ("n", Some(V::U64(3))),
        ];
        assert_eq!(text_fields(&f), r#" model="openai/gpt-4o mini" odd="a\"b\\c\nFORGED" n=3"#);
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(timestamp(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(timestamp(1_709_251_199, 7), "2024-02-29T23:59:59.000007Z");
        assert_eq!(timestamp(1_764_631_052, 660_189), "2025-12-01T23:17:32.660189Z");
    }
}
