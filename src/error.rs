//! The two error vocabularies: problems found while loading files ([`Problem`], located as
//! [`LoadError`]), and the runtime [`Error`] every failed call becomes, with its HTTP status,
//! its OpenAI shape (`{"error": {"message", "type", "param", "code"}}`) and whether a retry may
//! help.

use std::fmt;

use serde_json::{json, Value};

/// What kind of problem a file has, so that tools can match on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProblemKind {
    /// The file cannot be read.
    Io,
    /// Not valid YAML.
    Syntax,
    /// A key, a type or a value the file's JSON Schema does not allow.
    Schema,
    /// `extends` names no file, forms a cycle, or `$inherit` finds nothing.
    Extends,
    /// An operation name that does not exist.
    UnknownOperation,
    /// An operation's options are wrong.
    InvalidOperation,
    /// A variable, definition or name that nothing defines.
    UnknownName,
    /// A JSONPath that does not parse, or that cannot be used where it is.
    InvalidPath,
    /// A template or expression that does not parse.
    InvalidTemplate,
    /// A value the engine cannot use (a header name, a status, a URL).
    InvalidValue,
    /// A warning, not an error: the file loads, but part of a request could be lost without a
    /// word (a request-side `$match` with no `default` and no `unmatched`).
    Unhandled,
}

impl ProblemKind {
    /// Whether the file still loads with this problem (`lightport check` prints it as a warning).
    pub fn is_warning(self) -> bool {
        matches!(self, ProblemKind::Unhandled)
    }
}

/// One problem of a file, at a JSON pointer inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub pointer: String,
    pub kind: ProblemKind,
    pub message: String,
}

impl Problem {
    pub fn new(pointer: impl Into<String>, kind: ProblemKind, message: impl Into<String>) -> Problem {
        Problem { pointer: pointer.into(), kind, message: message.into() }
    }
}

/// A problem located in a file: printed as `file:line: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    pub file: String,
    pub line: usize,
    pub kind: ProblemKind,
    pub message: String,
    /// The id of the file (its name without the extension).
    pub id: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

impl std::error::Error for LoadError {}

/// The closest known name, when it is close enough to be a typo.
pub(crate) fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Where a runtime error came from, which decides whether trying again (or elsewhere) may help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The client's request is wrong: no retry helps.
    Client,
    /// The gateway is not set up for this call (no key, no base URL): no retry helps.
    Setup,
    /// The provider answered with an error status (the upstream's own status).
    Upstream(u16),
    /// The provider could not be reached, or the connection broke before an answer.
    Connect,
    /// The provider did not answer in time.
    Timeout,
    /// The gateway itself is overloaded or shutting down.
    Gateway,
}

/// A failed call, as the client will see it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    /// The HTTP status answered to the client.
    pub status: u16,
    pub message: String,
    /// OpenAI's error `type` (`invalid_request_error`, `rate_limit_error`, ...).
    pub kind: String,
    pub code: Option<String>,
    pub param: Option<String>,
    pub cause: Cause,
    /// How long the client (or a retry) should wait, when known (`Retry-After`).
    pub retry_after: Option<std::time::Duration>,
}

impl Error {
    pub fn new(status: u16, kind: &str, message: impl Into<String>) -> Self {
        let cause = if status < 500 { Cause::Client } else { Cause::Gateway };
        Error {
            status,
            message: message.into(),
            kind: kind.to_string(),
            code: None,
            param: None,
            cause,
            retry_after: None,
        }
    }

    pub fn with_code(mut self, code: &str) -> Self {
        self.code = Some(code.to_string());
        self
    }

    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    pub fn with_cause(mut self, cause: Cause) -> Self {
        self.cause = cause;
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
        Self::new(502, "upstream_error", message).with_code("bad_gateway").with_cause(Cause::Connect)
    }

    /// The upstream did not answer in time: 504.
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(504, "upstream_error", message).with_code("timeout").with_cause(Cause::Timeout)
    }

    /// The gateway is not set up for this call (no key, no base URL).
    pub fn setup(status: u16, kind: &str, message: impl Into<String>) -> Self {
        Self::new(status, kind, message).with_cause(Cause::Setup)
    }

    /// Whether the same request may succeed if tried again, here or at another target: rate
    /// limits, overload and server errors of the provider, connection failures and timeouts.
    pub fn retryable(&self) -> bool {
        match self.cause {
            Cause::Upstream(s) => s == 408 || s == 409 || s == 429 || s >= 500,
            Cause::Connect | Cause::Timeout => true,
            Cause::Client | Cause::Setup | Cause::Gateway => false,
        }
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

    /// The error as one Server-Sent Event (`data: {"error": ...}\n\n`), for a stream that ends
    /// with it.
    pub fn write_sse(&self, out: &mut bytes::BytesMut) {
        use bytes::BufMut;
        use std::io::Write;
        let mut w = out.writer();
        let _ = w.write_all(b"data: ");
        let _ = serde_json::to_writer(&mut w, &self.body());
        let _ = w.write_all(b"\n\n");
    }
}
