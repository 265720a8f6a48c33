//! Reading a client's request body: bounded before and after decompression.

use axum::body::Body;
use axum::http::{header, HeaderMap};
use bytes::Bytes;
use serde_json::Value;

use crate::error::Error;

/// The body, decompressed, at most `limit` bytes.
pub(super) async fn read(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, Error> {
    let too_large = || {
        Error::new(413, "invalid_request_error", format!("the request body is larger than {limit} bytes"))
            .with_code("request_too_large")
    };
    let raw = axum::body::to_bytes(body, limit).await.map_err(|_| too_large())?;
    let encoding = headers.get(header::CONTENT_ENCODING).map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase());
    match encoding.as_deref() {
        None | Some("") | Some("identity") => Ok(raw),
        Some("gzip") | Some("x-gzip") => {
            use std::io::Read;
            let mut out = Vec::new();
            let mut dec = flate2::read::GzDecoder::new(&raw[..]).take(limit as u64 + 1);
            dec.read_to_end(&mut out).map_err(|_| Error::invalid("the body is not valid gzip"))?;
            if out.len() > limit {
                return Err(too_large());
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
