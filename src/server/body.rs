//! Reading a client's request body: bounded before and after decompression.

use axum::body::Body;
use axum::http::{header, HeaderMap};
use bytes::Bytes;
use serde_json::Value;

use crate::error::Error;

/// How much larger than its compressed form a body may inflate: ordinary JSON compresses ten or
/// twenty times; a body that inflates far more is a decompression bomb.
pub(super) const MAX_INFLATION: usize = 64;

/// The body, decompressed, at most `limit` bytes (and at most `MAX_INFLATION` times its
/// compressed size).
pub(super) async fn read(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, Error> {
    let too_large = || {
        Error::new(413, "invalid_request_error", format!("the request body is larger than {limit} bytes"))
            .with_code("request_too_large")
    };
    // A declared length over the limit is refused before any of the body is read (and before a
    // `100 Continue` invites the client to send it).
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let raw = axum::body::to_bytes(body, limit).await.map_err(|e| {
        if super::listener::is_body_timeout(&e) {
            Error::new(408, "invalid_request_error", "the request body was not received in time")
                .with_code("request_timeout")
        } else {
            too_large()
        }
    })?;
    let encoding = headers.get(header::CONTENT_ENCODING).map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase());
    match encoding.as_deref() {
        None | Some("") | Some("identity") => Ok(raw),
        Some("gzip") | Some("x-gzip") => {
            use std::io::Read;
            let mut out = Vec::new();
            let bound = limit.min(raw.len().saturating_mul(MAX_INFLATION).max(4096));
            let mut dec = flate2::read::GzDecoder::new(&raw[..]).take(bound as u64 + 1);
            dec.read_to_end(&mut out).map_err(|_| Error::invalid("the body is not valid gzip"))?;
            if out.len() > bound {
                return Err(Error::new(
                    413,
                    "invalid_request_error",
                    format!("the request body inflates beyond {bound} bytes (at most {MAX_INFLATION} times its compressed size, and {limit} bytes)"),
                )
                .with_code("request_too_large"));
            }
            Ok(out.into())
        }
        Some(other) => Err(Error::new(
            415,
            "invalid_request_error",
            format!("unsupported Content-Encoding '{other}': send identity or gzip"),
        )
        .with_code("unsupported_media_type")),
    }
}

/// The body as a JSON object.
pub(super) fn parse_object(bytes: &[u8]) -> Result<Value, Error> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(Error::invalid("the request body must be a JSON object")),
        Err(e) => Err(Error::invalid(format!("the request body is not valid JSON: {e}")).with_code("invalid_json")),
    }
}
