//! The one error type every failure becomes, and its OpenAI shape:
//! `{"error": {"message", "type", "param", "code"}}` with a fitting HTTP status.

use serde_json::{json, Value};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct GatewayError {
    pub status: u16,
    pub message: String,
    pub kind: String,
    pub code: Option<String>,
    pub param: Option<String>,
}

impl GatewayError {
    pub fn new(status: u16, kind: &str, message: impl Into<String>) -> Self {
        GatewayError { status, message: message.into(), kind: kind.to_string(), code: None, param: None }
    }

    pub fn with_code(mut self, code: &str) -> Self {
        self.code = Some(code.to_string());
        self
    }

    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    /// Bad client input: 400 `invalid_request_error`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(400, "invalid_request_error", message)
    }

    pub fn not_found(message: impl Into<String>, code: &str) -> Self {
        Self::new(404, "invalid_request_error", message).with_code(code)
    }

    /// The upstream could not be reached or answered nonsense: 502.
    pub fn bad_gateway(message: impl Into<String>) -> Self {
        Self::new(502, "upstream_error", message).with_code("bad_gateway")
    }

    /// The upstream did not answer in time: 504.
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(504, "upstream_error", message).with_code("timeout")
    }

    /// The OpenAI error type that goes with a status, for errors that do not name one.
    pub fn kind_for_status(status: u16) -> &'static str {
        match status {
            400 | 404 | 405 | 409 | 413 | 415 | 422 | 431 => "invalid_request_error",
            401 => "authentication_error",
            403 => "permission_error",
            429 => "rate_limit_error",
            503 => "overloaded_error",
            504 => "timeout_error",
            _ => "api_error",
        }
    }

    /// The error object, as clients parse it.
    pub fn body(&self) -> Value {
        json!({ "error": { "message": self.message, "type": self.kind, "param": self.param, "code": self.code } })
    }
}
