//! Signature Version 4 request signing (the HMAC-SHA256 algorithm), as a pure function of the
//! request, the credentials and a time.
//!
//! [`sign`] adds `Authorization`, `X-Amz-Date`, `X-Amz-Security-Token` (with a session token)
//! and, on request, `X-Amz-Content-Sha256` to a header map; the caller then sends exactly
//! that method, URL, header map and body. Signing follows the specification's rules for
//! every service but the object store (which encodes paths once and never normalises them;
//! that variant is not implemented here):
//!
//! 1. canonical request = method, canonical URI, canonical query, canonical headers, signed
//!    headers and the hex SHA-256 of the body, joined by newlines;
//! 2. string to sign = algorithm, timestamp, credential scope (`date/region/service/` and a
//!    fixed terminator) and the hex SHA-256 of the canonical request;
//! 3. signature = hex HMAC-SHA256 of the string to sign under a key derived by chaining
//!    HMAC-SHA256 over the date, region, service and the scope terminator.

use std::collections::BTreeMap;
use std::fmt;
use std::time::SystemTime;

use http::header::{AUTHORIZATION, HOST};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use percent_encoding::{percent_decode_str, percent_encode, AsciiSet, NON_ALPHANUMERIC};
use ring::{digest, hmac};

use super::time::utc_fields;
use super::{AuthError, Secret};

// Protocol constants: the algorithm name, the signing-key prefix and the scope terminator are
// fixed strings of the wire format.
const ALGORITHM: &str = "AWS4-HMAC-SHA256";
const KEY_PREFIX: &str = "AWS4";
const SCOPE_TERMINATOR: &str = "aws4_request";

pub const DATE_HEADER: HeaderName = HeaderName::from_static("x-amz-date");
pub const SECURITY_TOKEN_HEADER: HeaderName = HeaderName::from_static("x-amz-security-token");
pub const CONTENT_SHA256_HEADER: HeaderName = HeaderName::from_static("x-amz-content-sha256");

/// Headers never signed: hop-by-hop headers and those that a client or proxy may add, drop
/// or rewrite on the way, which would break the signature for no gain.
const UNSIGNED_HEADERS: &[&str] = &[
    "authorization",
    "connection",
    "expect",
    "keep-alive",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "x-amzn-trace-id",
];

/// RFC 3986 unreserved characters stay as they are; every other byte is `%XX` (upper hex).
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
/// The same, keeping the path separator.
const UNRESERVED_AND_SLASH: &AsciiSet = &UNRESERVED.remove(b'/');

/// An access key pair, with the session token that comes with temporary credentials.
/// `Debug` shows the access key id (it is sent in clear in every `Authorization` header) and
/// hides the secret key and the token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub session_token: Option<Secret>,
}

impl Credentials {
    pub fn new(
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<Secret>,
        session_token: Option<Secret>,
    ) -> Credentials {
        Credentials { access_key_id: access_key_id.into(), secret_access_key: secret_access_key.into(), session_token }
    }

    /// [`Credentials::from_env`] over any name-to-value lookup (a config map, a test fixture).
    pub fn from_lookup(
        access_key_id_var: &str,
        secret_access_key_var: &str,
        session_token_var: &str,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Credentials, AuthError> {
        let get = |name: &str| lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let missing = |name: &str| AuthError::MissingCredential(format!("{name} is not set"));
        let access_key_id = get(access_key_id_var).ok_or_else(|| missing(access_key_id_var))?;
        let secret = get(secret_access_key_var).ok_or_else(|| missing(secret_access_key_var))?;
        let token = get(session_token_var).map(Secret::from);
        Ok(Credentials::new(access_key_id, secret, token))
    }
}

/// Where and when the request is signed for.
#[derive(Clone, Copy, Debug)]
pub struct SigningParams<'a> {
    /// The region of the endpoint, e.g. `us-east-1`.
    pub region: &'a str,
    /// The signing name of the service (which may differ from the endpoint's host prefix).
    pub service: &'a str,
    /// The signing time; the service rejects signatures more than a few minutes off its clock.
    pub time: SystemTime,
    /// Also send the payload hash as `X-Amz-Content-Sha256` (some services require it).
    pub content_sha256_header: bool,
}

impl<'a> SigningParams<'a> {
    pub fn new(region: &'a str, service: &'a str, time: SystemTime) -> SigningParams<'a> {
        SigningParams { region, service, time, content_sha256_header: false }
    }
}

/// The intermediate strings of one signature, for tests and for diagnosing a rejected
/// signature. `Debug` leaves out the canonical request, which holds the session token.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningDetails {
    pub canonical_request: String,
    pub string_to_sign: String,
    pub signature: String,
    pub authorization: String,
}

impl fmt::Debug for SigningDetails {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningDetails")
            .field("canonical_request", &"<not shown: may hold the session token>")
            .field("string_to_sign", &self.string_to_sign)
            .field("signature", &self.signature)
            .finish()
    }
}

/// Signs a request: sets `X-Amz-Date`, `X-Amz-Security-Token` (when the credentials have a
/// session token), `X-Amz-Content-Sha256` (when `params.content_sha256_header`) and
/// `Authorization` in `headers`, replacing earlier values.
///
/// `url` is the absolute URL exactly as it will be sent: its path already percent-encoded for
/// the wire (see [`canonical_uri`]). Every header in `headers` except the hop-by-hop ones is
/// signed, so add them all before signing and change none after. When `headers` has no
/// `Host`, the host (and a non-default port) of `url` is signed as `host`, which is what HTTP
/// clients send; the header is not added to the map.
///
/// Signing the same bytes at the same time gives the same headers.
pub fn sign(
    method: &Method,
    url: &str,
    headers: &mut HeaderMap,
    body: &[u8],
    credentials: &Credentials,
    params: &SigningParams<'_>,
) -> Result<(), AuthError> {
    sign_with_details(method, url, headers, body, credentials, params).map(drop)
}

/// [`sign`], returning the canonical request, string to sign and signature it computed.
pub fn sign_with_details(
    method: &Method,
    url: &str,
    headers: &mut HeaderMap,
    body: &[u8],
    credentials: &Credentials,
    params: &SigningParams<'_>,
) -> Result<SigningDetails, AuthError> {
    for (what, value) in [("region", params.region), ("service", params.service)] {
        if value.is_empty() || value.contains(['/', '\n']) {
            return Err(AuthError::Signing(format!("the {what} must be non-empty and free of '/'")));
        }
    }
    let target = split_url(url)?;
    let (year, month, day, hour, minute, second) = utc_fields(params.time)?;
    let date = format!("{year:04}{month:02}{day:02}");
    let timestamp = format!("{date}T{hour:02}{minute:02}{second:02}Z");

    // Set the headers that take part in the signature, dropping any from an earlier signing.
    headers.remove(AUTHORIZATION);
    headers.insert(DATE_HEADER, HeaderValue::from_str(&timestamp).expect("digits and letters"));
    if let Some(token) = &credentials.session_token {
        let mut value = HeaderValue::from_str(token.expose())
            .map_err(|_| AuthError::Signing("the session token is not a valid header value".into()))?;
        value.set_sensitive(true);
        headers.insert(SECURITY_TOKEN_HEADER, value);
    }
    let payload_hash = match headers.get(&CONTENT_SHA256_HEADER) {
        // A caller-set value (e.g. `UNSIGNED-PAYLOAD`) stands for the body in the signature.
        Some(value) if !params.content_sha256_header => value
            .to_str()
            .map_err(|_| AuthError::Signing("the content hash header is not visible ASCII".into()))?
            .trim()
            .to_owned(),
        _ => hex(digest::digest(&digest::SHA256, body).as_ref()),
    };
    if params.content_sha256_header {
        headers.insert(CONTENT_SHA256_HEADER, HeaderValue::from_str(&payload_hash).expect("hex digits"));
    }

    let (canonical_headers, signed_headers) = canonical_headers(headers, &target.host)?;
    let canonical_request = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        method.as_str(),
        canonical_uri(target.path),
        canonical_query(target.query),
        canonical_headers,
        signed_headers,
        payload_hash
    );

    let scope = format!("{date}/{}/{}/{SCOPE_TERMINATOR}", params.region, params.service);
    let string_to_sign = format!(
        "{ALGORITHM}\n{timestamp}\n{scope}\n{}",
        hex(digest::digest(&digest::SHA256, canonical_request.as_bytes()).as_ref())
    );

    let secret = format!("{KEY_PREFIX}{}", credentials.secret_access_key.expose());
    let mut key = hmac_sha256(secret.as_bytes(), date.as_bytes());
    for part in [params.region, params.service, SCOPE_TERMINATOR] {
        key = hmac_sha256(&key, part.as_bytes());
    }
    let signature = hex(&hmac_sha256(&key, string_to_sign.as_bytes()));

    let authorization = format!(
        "{ALGORITHM} Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
        credentials.access_key_id
    );
    let mut value = HeaderValue::from_str(&authorization)
        .map_err(|_| AuthError::Signing("the access key id is not a valid header value".into()))?;
    value.set_sensitive(true);
    headers.insert(AUTHORIZATION, value);

    Ok(SigningDetails { canonical_request, string_to_sign, signature, authorization })
}

/// The canonical URI: the path as it goes on the wire, normalised, then percent-encoded once
/// more, segment by segment (every byte but the unreserved ones and `/`).
///
/// Why a second encoding: the specification says that for every service except the object
/// store "each path segment must be URI-encoded twice". The first encoding is the one that
/// put the path on the wire (a model id `claude:0` travels as `claude%3A0`); the signer adds
/// the second, so the canonical URI holds `claude%253A0`. Decoding before encoding (which
/// would give `%3A`) yields a signature the service rejects. The reference SDK signer does
/// the same (it quotes the already-encoded URL path with only `/` and `~` left alone), and the
/// published test suite agrees: its requests carry raw paths (`/ሴ`, `/example space/`) that
/// its canonical requests show encoded exactly once by the signer (`/%E1%88%B4`,
/// `/example%20space/`), i.e. the signer always encodes whatever path it is given once.
///
/// Normalisation (also not done for the object store): `.` and `..` segments are resolved and
/// empty segments (`//`) dropped; a trailing `/` is kept; an empty path is `/`.
pub fn canonical_uri(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut normalized = String::with_capacity(path.len() + 1);
    normalized.push('/');
    normalized.push_str(&segments.join("/"));
    if path.ends_with('/') && !segments.is_empty() {
        normalized.push('/');
    }
    percent_encode(normalized.as_bytes(), UNRESERVED_AND_SLASH).to_string()
}

/// The canonical query string: each `name=value` pair percent-decoded, then encoded (every
/// byte but the unreserved ones, so `%2F` stays `%2F` and a raw `ሴ` becomes `%E1%88%B4`),
/// sorted by encoded name then encoded value, joined by `&`; a name without `=` gets an
/// empty value. A `+` is taken literally (`%2B`), as RFC 3986 reads it: encode a space in
/// the URL as `%20`.
pub fn canonical_query(query: &str) -> String {
    let encode = |s: &str| percent_encode(&percent_decode_str(s).collect::<Vec<u8>>(), UNRESERVED).to_string();
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (encode(name), encode(value))
        })
        .collect();
    pairs.sort();
    pairs.iter().map(|(name, value)| format!("{name}={value}")).collect::<Vec<_>>().join("&")
}

/// The canonical headers block (`name:value\n` per header, sorted by lower-case name, values
/// trimmed with inner runs of white space collapsed, repeated headers joined by `,` in order)
/// and the signed headers list (`name;name;...`).
fn canonical_headers(headers: &HeaderMap, url_host: &str) -> Result<(String, String), AuthError> {
    let mut entries: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for name in headers.keys() {
        let name = name.as_str();
        if UNSIGNED_HEADERS.contains(&name) {
            continue;
        }
        let values = headers
            .get_all(name)
            .iter()
            .map(|value| {
                let text = value
                    .to_str()
                    .map_err(|_| AuthError::Signing(format!("the value of header '{name}' is not visible ASCII")))?;
                Ok(text.split_ascii_whitespace().collect::<Vec<_>>().join(" "))
            })
            .collect::<Result<Vec<_>, AuthError>>()?;
        entries.insert(name, values);
    }
    if !headers.contains_key(HOST) {
        entries.insert("host", vec![url_host.to_owned()]);
    }
    let mut block = String::new();
    for (name, values) in &entries {
        block.push_str(name);
        block.push(':');
        block.push_str(&values.join(","));
        block.push('\n');
    }
    let signed = entries.keys().copied().collect::<Vec<_>>().join(";");
    Ok((block, signed))
}

/// The parts of an absolute URL that the signature covers.
struct Target<'a> {
    /// Host as HTTP clients send it: lower case, with the port unless it is the default one.
    host: String,
    path: &'a str,
    query: &'a str,
}

/// Splits `scheme://[userinfo@]host[:port][/path][?query][#fragment]` without validating
/// more than needed, so that a path with raw spaces or UTF-8 can still be signed. Error
/// messages never quote the URL.
fn split_url(url: &str) -> Result<Target<'_>, AuthError> {
    let (scheme, rest) =
        url.split_once("://").ok_or_else(|| AuthError::Signing("the URL is not absolute (no scheme)".into()))?;
    let rest = rest.split_once('#').map_or(rest, |(before, _)| before);
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path_and_query) = rest.split_at(authority_end);
    let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, host_port)| host_port);
    let (host, port) = if host_port.starts_with('[') {
        let end = host_port.find(']').ok_or_else(|| AuthError::Signing("the URL has a malformed IPv6 host".into()))?;
        let (host, after) = host_port.split_at(end + 1);
        (host, after.strip_prefix(':').unwrap_or(""))
    } else {
        host_port.split_once(':').unwrap_or((host_port, ""))
    };
    if host.is_empty() {
        return Err(AuthError::Signing("the URL has no host".into()));
    }
    if !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AuthError::Signing("the URL has a malformed port".into()));
    }
    let default_port = matches!((scheme.to_ascii_lowercase().as_str(), port), ("https", "443") | ("http", "80"));
    let host = host.to_ascii_lowercase();
    let host = if port.is_empty() || default_port { host } else { format!("{host}:{port}") };
    Ok(Target { host, path, query })
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), message).as_ref().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

#[cfg(test)]
#[path = "sigv4_suite.rs"]
mod suite;

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn canonical_uri_encodes_the_wire_path_once_more() {
        assert_eq!(canonical_uri("/model/us.vendor.model-v1%3A0/converse"), "/model/us.vendor.model-v1%253A0/converse");
        assert_eq!(canonical_uri(""), "/");
        assert_eq!(canonical_uri("/"), "/");
        assert_eq!(canonical_uri("/a b/ሴ/$x"), "/a%20b/%E1%88%B4/%24x");
        assert_eq!(canonical_uri("//a//b/./c/../d/"), "/a/b/d/");
        assert_eq!(canonical_uri("/a/.."), "/");
        assert_eq!(canonical_uri("/-._~"), "/-._~");
    }

    #[test]
    fn canonical_query_sorts_and_encodes() {
        assert_eq!(canonical_query(""), "");
        assert_eq!(canonical_query("b=2&a=x%2Fy&a=1&empty="), "a=1&a=x%2Fy&b=2&empty=");
        assert_eq!(canonical_query("flag&x=a b+c"), "flag=&x=a%20b%2Bc");
        assert_eq!(canonical_query("ሴ=bar"), "%E1%88%B4=bar");
        assert_eq!(canonical_query("k=%7e"), "k=~");
    }

    #[test]
    fn url_parts() {
        let t = split_url("https://user:pw@Example.COM:443/p%20q?x=1#frag").unwrap();
        assert_eq!((t.host.as_str(), t.path, t.query), ("example.com", "/p%20q", "x=1"));
        let t = split_url("http://h:8080?x").unwrap();
        assert_eq!((t.host.as_str(), t.path, t.query), ("h:8080", "", "x"));
        let t = split_url("https://[::1]:9000/a").unwrap();
        assert_eq!((t.host.as_str(), t.path), ("[::1]:9000", "/a"));
        assert!(split_url("/relative/only").is_err());
        assert!(split_url("https:///nohost").is_err());
        assert!(split_url("https://h:x/").is_err());
    }

    #[test]
    fn errors_do_not_quote_the_url() {
        let creds = Credentials::new("AKID", "secret", None);
        let params = SigningParams::new("r", "s", UNIX_EPOCH + Duration::from_secs(1_700_000_000));
        let err = sign(&Method::GET, "no-scheme/?key=abc123", &mut HeaderMap::new(), b"", &creds, &params).unwrap_err();
        assert!(!err.to_string().contains("abc123"), "{err}");
    }
}
