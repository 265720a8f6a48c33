use thiserror::Error;

/// What went wrong while authenticating an upstream request. Messages say what failed and
/// never carry a secret, a token, a request body or a URL (a URL can hold a key in its query).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum AuthError {
    /// A credential the configuration names is absent (e.g. an unset environment variable).
    #[error("missing credential: {0}")]
    MissingCredential(String),

    /// The credentials file could not be read or lacks what the grant needs.
    #[error("credentials file: {0}")]
    CredentialsFile(String),

    /// The private key could not be decoded or is not usable for RS256.
    #[error("private key: {0}")]
    PrivateKey(String),

    /// The request could not be signed (a malformed URL, a header value that is not text...).
    #[error("request signing: {0}")]
    Signing(String),

    /// No HTTP answer came back from the token endpoint.
    #[error("token endpoint could not be reached: {reason}")]
    TokenEndpointUnreachable { reason: String, retryable: bool },

    /// The token endpoint answered with an error status; `error_code` is the OAuth `error`
    /// field of its answer (e.g. `invalid_client`) when it had a well-formed one.
    #[error("token endpoint answered HTTP {status}{}", error_code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default())]
    TokenEndpointStatus { status: u16, error_code: Option<String> },

    /// The token endpoint answered 2xx with something that is not a usable token.
    #[error("token endpoint answer: {0}")]
    TokenResponse(String),

    /// The clock is before 1970 or too far in the future to be encoded.
    #[error("clock: {0}")]
    Clock(String),
}

impl AuthError {
    /// Whether trying the same thing again later may succeed: true for a token endpoint that
    /// could not be reached or answered 408, 429 or 5xx; false for anything a retry cannot
    /// fix (bad credentials, a rejected client, a malformed file or key).
    pub fn is_retryable(&self) -> bool {
        match self {
            AuthError::TokenEndpointUnreachable { retryable, .. } => *retryable,
            AuthError::TokenEndpointStatus { status, .. } => matches!(*status, 408 | 429 | 500..=599),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_and_retry_flags() {
        let e = AuthError::TokenEndpointStatus { status: 401, error_code: Some("invalid_client".into()) };
        assert_eq!(e.to_string(), "token endpoint answered HTTP 401 (invalid_client)");
        assert!(!e.is_retryable());
        let e = AuthError::TokenEndpointStatus { status: 503, error_code: None };
        assert_eq!(e.to_string(), "token endpoint answered HTTP 503");
        assert!(e.is_retryable());
        assert!(AuthError::TokenEndpointStatus { status: 429, error_code: None }.is_retryable());
        let e = AuthError::TokenEndpointUnreachable { reason: "timed out".into(), retryable: true };
        assert!(e.is_retryable());
        let e = AuthError::CredentialsFile("missing field client_email".into());
        assert_eq!(e.to_string(), "credentials file: missing field client_email");
        assert!(!e.is_retryable());
    }
}
