//! The HTTP exchange shared by the OAuth 2.0 grants: POST a form to the token endpoint, read
//! a bounded answer, and turn it into a [`Token`] or an [`AuthError`] that carries no secret.

use std::time::{Duration, SystemTime};

use http::header::ACCEPT;
use serde_json::Value;

use super::token_cache::Token;
use super::{AuthError, Secret};

/// Default bound on one token request, from connecting to the end of the answer.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Lifetime assumed when the answer has no `expires_in` (RFC 6749 §5.1 makes it optional).
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);
/// A token answer is a few kilobytes at most; anything much larger is not one.
const MAX_ANSWER_BYTES: usize = 256 * 1024;

pub(crate) struct TokenRequest<'a> {
    pub client: &'a reqwest::Client,
    pub url: &'a str,
    pub form: Vec<(&'a str, &'a str)>,
    pub timeout: Duration,
}

impl TokenRequest<'_> {
    pub(crate) async fn send(self, now: SystemTime) -> Result<Token, AuthError> {
        let request =
            self.client.post(self.url).header(ACCEPT, "application/json").form(&self.form).timeout(self.timeout);
        let mut response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(AuthError::TokenResponse(format!("the answer is larger than {MAX_ANSWER_BYTES} bytes")));
            }
            body.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            return Err(AuthError::TokenEndpointStatus { status: status.as_u16(), error_code: error_code(&body) });
        }
        parse_token(&body, now)
    }
}

/// An error with no HTTP answer. The URL is dropped from the message (it may hold a key).
fn unreachable(error: reqwest::Error) -> AuthError {
    let error = error.without_url();
    let retryable = error.is_timeout() || error.is_connect() || error.is_request() || error.is_body();
    let mut reason = if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_connect() {
        "connection failed".to_owned()
    } else if error.is_builder() {
        "the token endpoint URL is not usable".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        reason.push_str(": ");
        reason.push_str(&cause.to_string());
        source = cause.source();
    }
    AuthError::TokenEndpointUnreachable { reason, retryable }
}

/// The OAuth `error` code of an error answer (RFC 6749 §5.2), kept only when it looks like a
/// code: the free-text `error_description` is dropped, as it could echo what was sent.
fn error_code(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let code = value.get("error")?.as_str()?;
    let looks_like_a_code = !code.is_empty()
        && code.len() <= 64
        && code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
    looks_like_a_code.then(|| code.to_owned())
}

/// A successful answer (RFC 6749 §5.1): `access_token`, `token_type` (bearer) and
/// `expires_in` in seconds, a number or, from some servers, a string of digits.
pub(crate) fn parse_token(body: &[u8], now: SystemTime) -> Result<Token, AuthError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|_| AuthError::TokenResponse("the answer is not JSON".into()))?;
    let object = value.as_object().ok_or_else(|| AuthError::TokenResponse("the answer is not a JSON object".into()))?;
    let access_token = match object.get("access_token") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(_) => return Err(AuthError::TokenResponse("field access_token is not a non-empty string".into())),
        None => return Err(AuthError::TokenResponse("missing field access_token".into())),
    };
    match object.get("token_type") {
        None => {}
        Some(Value::String(t)) if t.eq_ignore_ascii_case("bearer") => {}
        Some(Value::String(t)) if t.len() <= 32 && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') => {
            return Err(AuthError::TokenResponse(format!("token type '{t}' is not supported (expected Bearer)")));
        }
        Some(_) => return Err(AuthError::TokenResponse("token type is not supported (expected Bearer)".into())),
    }
    let lifetime = match object.get("expires_in") {
        None | Some(Value::Null) => DEFAULT_LIFETIME,
        Some(Value::Number(n)) => n
            .as_f64()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(Duration::from_secs_f64)
            .ok_or_else(|| AuthError::TokenResponse("field expires_in is not a number of seconds".into()))?,
        Some(Value::String(s)) => s
            .trim()
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| AuthError::TokenResponse("field expires_in is not a number of seconds".into()))?,
        Some(_) => return Err(AuthError::TokenResponse("field expires_in is not a number of seconds".into())),
    };
    let expires_at =
        now.checked_add(lifetime).ok_or_else(|| AuthError::TokenResponse("field expires_in is out of range".into()))?;
    Ok(Token { value: Secret::new(access_token), expires_at })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn parses_answers() {
        let now = UNIX_EPOCH + Duration::from_secs(1000);
        let t = parse_token(br#"{"access_token":"abc","expires_in":3599,"token_type":"Bearer"}"#, now).unwrap();
        assert_eq!((t.value.expose(), t.expires_at), ("abc", now + Duration::from_secs(3599)));
        let t = parse_token(br#"{"access_token":"abc","expires_in":"120","token_type":"bearer"}"#, now).unwrap();
        assert_eq!(t.expires_at, now + Duration::from_secs(120));
        let t = parse_token(br#"{"access_token":"abc"}"#, now).unwrap();
        assert_eq!(t.expires_at, now + DEFAULT_LIFETIME);
    }

    #[test]
    fn rejects_bad_answers_without_echoing_them() {
        let now = UNIX_EPOCH;
        let cases: [&[u8]; 5] = [
            b"<html>secret-ish</html>",
            br#"{"token":"secret-ish"}"#,
            br#"{"access_token":"secret-ish","token_type":"mac"}"#,
            br#"{"access_token":"secret-ish","expires_in":"soon"}"#,
            br#"{"access_token":"secret-ish","expires_in":-5}"#,
        ];
        for body in cases {
            let err = parse_token(body, now).unwrap_err();
            assert!(!err.to_string().contains("secret-ish"), "{err}");
        }
    }

    #[test]
    fn keeps_only_well_formed_error_codes() {
        assert_eq!(
            error_code(br#"{"error":"invalid_grant","error_description":"key abc"}"#).as_deref(),
            Some("invalid_grant")
        );
        assert_eq!(error_code(br#"{"error":"bad secret: hunter2"}"#), None);
        assert_eq!(error_code(b"not json"), None);
    }
}
