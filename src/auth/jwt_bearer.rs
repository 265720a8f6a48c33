//! The OAuth 2.0 JWT bearer grant (RFC 7523 §2.1) for a service account: sign a short-lived
//! JWT with the account's RSA key (RS256) and exchange it at the token endpoint for an
//! access token.
//!
//! The account comes from a JSON credentials file with the fields `type`
//! (`service_account`), `client_email`, `private_key` (a PEM PKCS#8 `PRIVATE KEY`, or PKCS#1
//! `RSA PRIVATE KEY`), `private_key_id` and `token_uri`; other fields are ignored.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use serde::Serialize;
use serde_json::Value;

use super::time::unix_seconds;
#[cfg(feature = "server")]
use super::token_cache::{Token, TokenSource};
#[cfg(feature = "server")]
use super::token_endpoint::{TokenRequest, DEFAULT_TIMEOUT};
use super::AuthError;

/// The `grant_type` of the exchange (RFC 7523 §2.1).
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// How long the signed assertion is valid: `exp = iat + 3600`, the longest most token
/// endpoints accept.
pub const ASSERTION_LIFETIME: Duration = Duration::from_secs(3600);

/// A service account read from a JSON credentials file. `Debug` hides the private key.
#[derive(Clone)]
pub struct ServiceAccount {
    pub client_email: String,
    pub private_key_id: Option<String>,
    /// The token endpoint named by the file; also the `aud` of every assertion.
    pub token_uri: String,
    key: Arc<RsaKeyPair>,
}

impl fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("client_email", &self.client_email)
            .field("private_key_id", &self.private_key_id)
            .field("token_uri", &self.token_uri)
            .field("private_key", &"***")
            .finish()
    }
}

impl ServiceAccount {
    /// Reads and parses a credentials file (e.g. the path in the variable that a deployment
    /// uses for it). The error names the path but never quotes the file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<ServiceAccount, AuthError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path)
            .map_err(|e| AuthError::CredentialsFile(format!("cannot read {}: {e}", path.display())))?;
        ServiceAccount::from_json(&bytes)
    }

    /// Parses the JSON content of a credentials file.
    pub fn from_json(json: &[u8]) -> Result<ServiceAccount, AuthError> {
        let file_error = |what: String| AuthError::CredentialsFile(what);
        // Parse to a `Value` first: serde's typed errors may quote the offending value.
        let value: Value = serde_json::from_slice(json)
            .map_err(|e| file_error(format!("not valid JSON (line {}, column {})", e.line(), e.column())))?;
        let object = value.as_object().ok_or_else(|| file_error("not a JSON object".into()))?;
        let field = |name: &str| -> Result<Option<&str>, AuthError> {
            match object.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.trim())),
                Some(_) => Err(file_error(format!("field {name} is not a string"))),
            }
        };
        let required = |name: &str| field(name)?.ok_or_else(|| file_error(format!("missing field {name}")));

        if let Some(kind) = field("type")? {
            if kind != "service_account" {
                let shown = if kind.len() <= 40 && kind.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                    format!("'{kind}'")
                } else {
                    "of this file".to_owned()
                };
                return Err(file_error(format!("type {shown} is not supported (expected service_account)")));
            }
        }
        let client_email = required("client_email")?.to_owned();
        let token_uri = required("token_uri")?.to_owned();
        let private_key_id = field("private_key_id")?.map(str::to_owned);
        let key = parse_private_key(required("private_key")?)?;
        Ok(ServiceAccount { client_email, private_key_id, token_uri, key: Arc::new(key) })
    }
}

/// Decodes a PEM private key: PKCS#8 (`PRIVATE KEY`) or PKCS#1 (`RSA PRIVATE KEY`), RSA of
/// 2048 to 8192 bits.
fn parse_private_key(pem: &str) -> Result<RsaKeyPair, AuthError> {
    let key_error = |what: &str| AuthError::PrivateKey(what.to_owned());
    let (label, der) = pem_block(pem).ok_or_else(|| key_error("not a PEM block"))?;
    let parsed = match label {
        "PRIVATE KEY" => RsaKeyPair::from_pkcs8(&der),
        "RSA PRIVATE KEY" => RsaKeyPair::from_der(&der),
        "ENCRYPTED PRIVATE KEY" => return Err(key_error("encrypted keys are not supported")),
        _ => return Err(key_error("the PEM block is not a private key")),
    };
    parsed.map_err(|e| AuthError::PrivateKey(format!("not a usable RSA key ({e})")))
}

/// The label and decoded body of the first PEM block in `text`.
fn pem_block(text: &str) -> Option<(&str, Vec<u8>)> {
    let begin = text.find("-----BEGIN ")?;
    let after_begin = &text[begin + "-----BEGIN ".len()..];
    let label_end = after_begin.find("-----")?;
    let label = &after_begin[..label_end];
    let body_and_rest = &after_begin[label_end + "-----".len()..];
    let end = body_and_rest.find(&format!("-----END {label}-----"))?;
    let body: String = body_and_rest[..end].chars().filter(|c| !c.is_whitespace()).collect();
    STANDARD.decode(body).ok().map(|der| (label, der))
}

#[derive(Serialize)]
struct Header<'a> {
    alg: &'static str,
    typ: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    kid: Option<&'a str>,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    scope: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
}

/// A [`TokenSource`] that gets access tokens with the JWT bearer grant.
#[cfg(feature = "server")]
#[derive(Debug)]
pub struct JwtBearer {
    account: ServiceAccount,
    scope: String,
    token_endpoint: Option<String>,
    client: reqwest::Client,
    timeout: Duration,
    rng: SystemRandom,
}

#[cfg(feature = "server")]
impl JwtBearer {
    /// `scopes` go in the assertion's `scope` claim, space-separated. `client` is the HTTP
    /// client for the token endpoint (the gateway's shared one will do).
    pub fn new<I>(account: ServiceAccount, scopes: I, client: reqwest::Client) -> JwtBearer
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let scope = scopes.into_iter().map(|s| s.as_ref().to_owned()).collect::<Vec<_>>().join(" ");
        JwtBearer { account, scope, token_endpoint: None, client, timeout: DEFAULT_TIMEOUT, rng: SystemRandom::new() }
    }

    /// Posts to this URL instead of the file's `token_uri` (a private endpoint, a test mock).
    /// The assertion's `aud` stays the file's `token_uri`, the audience the account's issuer
    /// expects.
    pub fn with_token_endpoint(mut self, url: impl Into<String>) -> JwtBearer {
        self.token_endpoint = Some(url.into());
        self
    }

    /// The signed assertion for `now`: `base64url(header).base64url(claims).base64url(signature)`
    /// with header `{"alg":"RS256","typ":"JWT","kid":private_key_id}` and claims `iss`
    /// (client_email), `scope`, `aud` (token_uri), `iat` (now) and `exp` (now + 1 h).
    pub fn assertion(&self, now: SystemTime) -> Result<String, AuthError> {
        let iat = unix_seconds(now)?;
        let header = Header { alg: "RS256", typ: "JWT", kid: self.account.private_key_id.as_deref() };
        let claims = Claims {
            iss: &self.account.client_email,
            scope: &self.scope,
            aud: &self.account.token_uri,
            iat,
            exp: iat + ASSERTION_LIFETIME.as_secs(),
        };
        let signing_input = format!("{}.{}", base64url_json(&header), base64url_json(&claims));
        let key = &self.account.key;
        let mut signature = vec![0; key.public().modulus_len()];
        key.sign(&RSA_PKCS1_SHA256, &self.rng, signing_input.as_bytes(), &mut signature)
            .map_err(|_| AuthError::PrivateKey("signing failed".into()))?;
        Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }
}

#[cfg(feature = "server")]
impl TokenSource for JwtBearer {
    async fn fetch(&self, now: SystemTime) -> Result<Token, AuthError> {
        let assertion = self.assertion(now)?;
        TokenRequest {
            client: &self.client,
            url: self.token_endpoint.as_deref().unwrap_or(&self.account.token_uri),
            form: vec![("grant_type", GRANT_TYPE), ("assertion", &assertion)],
            timeout: self.timeout,
        }
        .send(now)
        .await
    }
}

fn base64url_json(value: &impl Serialize) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).expect("plain structs of strings and integers serialize"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_blocks() {
        let (label, der) =
            pem_block("junk\n-----BEGIN PRIVATE KEY-----\nAAEC\nAw==\n-----END PRIVATE KEY-----\n").unwrap();
        assert_eq!((label, der), ("PRIVATE KEY", vec![0, 1, 2, 3]));
        assert!(pem_block("-----BEGIN PRIVATE KEY-----\nAAEC\n-----END RSA PRIVATE KEY-----").is_none());
        assert!(pem_block("no pem here").is_none());
    }

    #[test]
    fn file_errors_name_the_field_and_quote_nothing() {
        let err =
            ServiceAccount::from_json(br#"{"type":"service_account","private_key":"k","token_uri":"t"}"#).unwrap_err();
        assert_eq!(err.to_string(), "credentials file: missing field client_email");
        let err = ServiceAccount::from_json(br#"{"client_email":"a@b","token_uri":"t","private_key":"hunter2"}"#)
            .unwrap_err();
        assert_eq!(err.to_string(), "private key: not a PEM block");
        let err = ServiceAccount::from_json(br#"{"client_email":"a","token_uri":"t","private_key":42}"#).unwrap_err();
        assert_eq!(err.to_string(), "credentials file: field private_key is not a string");
        let err = ServiceAccount::from_json(br#"{"type":"authorized_user","refresh_token":"hunter2"}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "credentials file: type 'authorized_user' is not supported (expected service_account)"
        );
        let err = ServiceAccount::from_json(b"{\"private_key\": \"hunter2").unwrap_err();
        assert!(err.to_string().starts_with("credentials file: not valid JSON (line 1"), "{err}");
        assert!(!err.to_string().contains("hunter2"));
    }
}
