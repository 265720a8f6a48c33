//! Upstream authentication end to end: the gateway (built-in mappings) in front of mocks that
//! check credentials the way the real services do.
//! - Bedrock with IAM keys: the mock recomputes the Signature Version 4 from the bytes it
//!   received and the secret key, and refuses a signature that does not match or a date more
//!   than 5 minutes off, as AWS does.
//! - Vertex AI with a service-account file: the mock token endpoint verifies the RS256 JWT
//!   assertion with the account's public key and its claims (RFC 7523), then the upstream takes
//!   only the token it issued.
//! - Azure OpenAI with Entra ID client credentials: the mock token endpoint checks the form
//!   (RFC 6749 §4.4) and the secret.
//!
//! Token caching: many calls make one token request; a token past its expiry is replaced.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::{digest, hmac, signature};
use serde_json::{json, Value};

use common::{client, fixtures, gateway, quick_config};

/// A request as a mock received it, raw body included.
#[derive(Clone, Debug)]
struct Received {
    method: String,
    path_and_query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

type Check = Arc<dyn Fn(&Received) -> Result<Value, (u16, Value)> + Send + Sync>;

#[derive(Clone)]
struct MockState {
    check: Check,
    seen: Arc<Mutex<Vec<Received>>>,
}

/// A mock answering each request with what `check` says (200 with its JSON, or an error).
async fn mock(check: Check) -> (SocketAddr, Arc<Mutex<Vec<Received>>>) {
    async fn handle(State(s): State<MockState>, req: Request) -> Response {
        let (parts, body) = req.into_parts();
        let body = axum::body::to_bytes(body, 1 << 20).await.unwrap().to_vec();
        let received = Received {
            method: parts.method.to_string(),
            path_and_query: parts.uri.path_and_query().map(|p| p.to_string()).unwrap_or_default(),
            headers: parts
                .headers
                .iter()
                .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
                .collect(),
            body,
        };
        s.seen.lock().unwrap().push(received.clone());
        match (s.check)(&received) {
            Ok(v) => axum::Json(v).into_response(),
            Err((status, v)) => (axum::http::StatusCode::from_u16(status).unwrap(), axum::Json(v)).into_response(),
        }
    }
    let seen: Arc<Mutex<Vec<Received>>> = Arc::default();
    let app = axum::Router::new().fallback(handle).with_state(MockState { check, seen: seen.clone() });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, seen)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn form(body: &[u8]) -> HashMap<String, String> {
    url_decode_pairs(std::str::from_utf8(body).unwrap())
}

fn url_decode_pairs(text: &str) -> HashMap<String, String> {
    text.split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| {
            let dec = |s: &str| {
                percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8().unwrap().into_owned()
            };
            (dec(k), dec(v))
        })
        .collect()
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

async fn chat(gw: &common::Gateway, model: &str) -> (u16, Value) {
    let resp = client()
        .post(gw.url("/v1/chat/completions"))
        .json(&json!({"model": model, "messages": [{"role": "user", "content": "Hi"}]}))
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

// ---------------------------------------------------------------- AWS Signature Version 4

const AWS_KEY_ID: &str = "AKIDLIGHTPORTTEST";
const AWS_SECRET: &str = "lightport/test/secret/key/EXAMPLE+KEY";

/// Verifies a SigV4 `Authorization` header against the request as received, the way the
/// service does: rebuild the canonical request from the received method, path, query, the
/// headers the signature names and the body's hash, derive the key from the secret, compare.
fn verify_sigv4(r: &Received, secret: &str, region: &str, service: &str) -> Result<(), String> {
    let auth = r.header("authorization").ok_or("no Authorization header")?;
    let rest = auth.strip_prefix("AWS4-HMAC-SHA256 ").ok_or("not AWS4-HMAC-SHA256")?;
    let fields: HashMap<&str, &str> = rest.split(", ").filter_map(|f| f.split_once('=')).collect();
    let credential = fields.get("Credential").ok_or("no Credential")?;
    let signed_headers = fields.get("SignedHeaders").ok_or("no SignedHeaders")?;
    let signature = fields.get("Signature").ok_or("no Signature")?;
    let scope: Vec<&str> = credential.split('/').collect();
    if scope.len() != 5
        || scope[0] != AWS_KEY_ID
        || scope[2] != region
        || scope[3] != service
        || scope[4] != "aws4_request"
    {
        return Err(format!("credential scope {credential}"));
    }
    let amz_date = r.header("x-amz-date").ok_or("no x-amz-date")?;
    if !amz_date.starts_with(scope[1]) {
        return Err("the scope's date is not the request's".into());
    }
    // The request time must be within 5 minutes of the service's clock.
    let t = time_of(amz_date).ok_or("bad x-amz-date")?;
    if t.abs_diff(now_secs()) > 300 {
        return Err("request time too skewed".into());
    }
    let (path, query) = r.path_and_query.split_once('?').unwrap_or((&r.path_and_query, ""));
    // Non-S3 services sign each path segment encoded once more than it travelled.
    let canonical_path: String = path
        .split('/')
        .map(|seg| percent_encoding::utf8_percent_encode(seg, AWS_URI).to_string())
        .collect::<Vec<_>>()
        .join("/");
    let mut pairs: Vec<(String, String)> = url_decode_pairs(query)
        .into_iter()
        .map(|(k, v)| {
            (
                percent_encoding::utf8_percent_encode(&k, AWS_URI).to_string(),
                percent_encoding::utf8_percent_encode(&v, AWS_URI).to_string(),
            )
        })
        .collect();
    pairs.sort();
    let canonical_query = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
    let mut canonical_headers = String::new();
    for name in signed_headers.split(';') {
        let value = r.header(name).ok_or_else(|| format!("signed header {name} not received"))?;
        canonical_headers.push_str(&format!("{name}:{}\n", value.split_whitespace().collect::<Vec<_>>().join(" ")));
    }
    let body_hash = hex(digest::digest(&digest::SHA256, &r.body).as_ref());
    let canonical = format!(
        "{}\n{canonical_path}\n{canonical_query}\n{canonical_headers}\n{signed_headers}\n{body_hash}",
        r.method
    );
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{}/{region}/{service}/aws4_request\n{}",
        scope[1],
        hex(digest::digest(&digest::SHA256, canonical.as_bytes()).as_ref())
    );
    let mac = |key: &[u8], data: &str| hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data.as_bytes());
    let k = mac(format!("AWS4{secret}").as_bytes(), scope[1]);
    let k = mac(k.as_ref(), region);
    let k = mac(k.as_ref(), service);
    let k = mac(k.as_ref(), "aws4_request");
    let expected = hex(mac(k.as_ref(), &string_to_sign).as_ref());
    if expected != *signature {
        return Err("SignatureDoesNotMatch".into());
    }
    Ok(())
}

/// RFC 3986 unreserved characters stay; everything else is `%XX` (SigV4's URI encoding).
const AWS_URI: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// `20261201T123456Z` → Unix seconds.
fn time_of(amz: &str) -> Option<u64> {
    let n = |a: usize, b: usize| amz.get(a..b)?.parse::<u64>().ok();
    let (y, m, d) = (n(0, 4)?, n(4, 6)?, n(6, 8)?);
    let (hh, mm, ss) = (n(9, 11)?, n(11, 13)?, n(13, 15)?);
    // Days from civil (Howard Hinnant's algorithm).
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

fn converse_answer() -> Value {
    json!({
        "output": {"message": {"role": "assistant", "content": [{"text": "Signed and delivered."}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 3, "outputTokens": 4, "totalTokens": 7}
    })
}

/// Bedrock's runtime as far as signatures go: a 403 naming the mismatch, else an answer.
fn bedrock_checking_signatures(region: &'static str) -> Check {
    Arc::new(move |r| {
        verify_sigv4(r, AWS_SECRET, region, "bedrock").map_err(|e| {
            (403, json!({"message": format!("The request signature we calculated does not match: {e}")}))
        })?;
        Ok(converse_answer())
    })
}

#[tokio::test]
async fn bedrock_requests_are_signed_with_sigv4_over_the_bytes_sent() {
    let (addr, seen) = mock(bedrock_checking_signatures("eu-west-3")).await;
    let env = [
        ("BEDROCK_BASE_URL", format!("http://{addr}")),
        ("BEDROCK_REGION", "eu-west-3".to_string()),
        ("AWS_ACCESS_KEY_ID", AWS_KEY_ID.to_string()),
        ("AWS_SECRET_ACCESS_KEY", AWS_SECRET.to_string()),
    ];
    let gw = gateway(&env, quick_config()).await;
    // A model id with a `:` travels as `%3A` and is signed as `%253A`.
    let (status, body) = chat(&gw, "bedrock/anthropic.claude-sonnet-4-6-v1:0").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["message"]["content"], "Signed and delivered.");
    let r = seen.lock().unwrap()[0].clone();
    assert_eq!(r.path_and_query, "/model/anthropic.claude-sonnet-4-6-v1%3A0/converse");
    assert!(r.header("authorization").unwrap().contains("/eu-west-3/bedrock/aws4_request"));
    assert!(r.header("x-amz-security-token").is_none());

    // Temporary credentials: the session token is sent and signed.
    let mut env = env.to_vec();
    env.push(("AWS_SESSION_TOKEN", "FQoGZXIvYXdzEXAMPLETOKEN".to_string()));
    let gw = gateway(&env, quick_config()).await;
    let (status, body) = chat(&gw, "bedrock/anthropic.claude-sonnet-4-6-v1:0").await;
    assert_eq!(status, 200, "{body}");
    let r = seen.lock().unwrap().last().unwrap().clone();
    assert_eq!(r.header("x-amz-security-token"), Some("FQoGZXIvYXdzEXAMPLETOKEN"));
    assert!(r.header("authorization").unwrap().contains("x-amz-security-token"));
}

#[tokio::test]
async fn a_wrong_aws_secret_is_refused_by_the_signature_check() {
    let (addr, _) = mock(bedrock_checking_signatures("us-east-1")).await;
    let env = [
        ("BEDROCK_BASE_URL", format!("http://{addr}")),
        ("AWS_ACCESS_KEY_ID", AWS_KEY_ID.to_string()),
        ("AWS_SECRET_ACCESS_KEY", "not-the-secret".to_string()),
    ];
    let gw = gateway(&env, quick_config()).await;
    let (status, body) = chat(&gw, "bedrock/anthropic.claude-sonnet-4-6-v1:0").await;
    assert_eq!(status, 403, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("SignatureDoesNotMatch"), "{body}");
    assert!(!body.to_string().contains("not-the-secret"));
}

#[tokio::test]
async fn a_bedrock_api_key_comes_before_iam_credentials() {
    let check: Check = Arc::new(|r| match r.header("authorization") {
        Some("Bearer ABSK-gateway-key") => Ok(converse_answer()),
        other => Err((403, json!({"message": format!("unexpected authorization {other:?}")}))),
    });
    let (addr, seen) = mock(check).await;
    let env = [
        ("BEDROCK_BASE_URL", format!("http://{addr}")),
        ("BEDROCK_API_KEY", "ABSK-gateway-key".to_string()),
        ("AWS_ACCESS_KEY_ID", AWS_KEY_ID.to_string()),
        ("AWS_SECRET_ACCESS_KEY", AWS_SECRET.to_string()),
    ];
    let gw = gateway(&env, quick_config()).await;
    let (status, body) = chat(&gw, "bedrock/anthropic.claude-sonnet-4-6-v1:0").await;
    assert_eq!(status, 200, "{body}");
    assert!(seen.lock().unwrap()[0].header("x-amz-date").is_none());
}

// ---------------------------------------------------------------- OAuth token endpoints

/// A token endpoint issuing `tok-<n>` tokens valid for `lifetime` seconds, after `check`
/// accepts the form.
fn token_endpoint(
    lifetime: Arc<AtomicU64>,
    issued: Arc<AtomicU64>,
    check: impl Fn(&HashMap<String, String>) -> Result<(), String> + Send + Sync + 'static,
) -> Check {
    Arc::new(move |r| {
        if r.method != "POST" || r.header("content-type") != Some("application/x-www-form-urlencoded") {
            return Err((400, json!({"error": "invalid_request"})));
        }
        check(&form(&r.body)).map_err(|e| (401, json!({"error": e, "error_description": "rejected by the mock"})))?;
        let n = issued.fetch_add(1, Ordering::SeqCst) + 1;
        Ok(
            json!({"access_token": format!("tok-{n}"), "expires_in": lifetime.load(Ordering::SeqCst), "token_type": "Bearer"}),
        )
    })
}

/// An upstream that takes only the tokens the mock endpoint issued, answering with `answer`.
fn bearer_upstream(issued: Arc<AtomicU64>, answer: Value) -> Check {
    Arc::new(move |r| {
        let token = r.header("authorization").and_then(|v| v.strip_prefix("Bearer tok-"));
        match token.and_then(|n| n.parse::<u64>().ok()) {
            Some(n) if n >= 1 && n <= issued.load(Ordering::SeqCst) => Ok(answer.clone()),
            _ => Err((
                401,
                json!({"error": {"code": 401, "message": "Request had invalid authentication credentials.", "status": "UNAUTHENTICATED"}}),
            )),
        }
    })
}

/// Verifies an RFC 7523 assertion the way Google's token endpoint does: RS256 over the first
/// two parts with the account's public key, `iss`, `aud`, `scope`, and a lifetime of at most
/// an hour around now.
fn verify_assertion(assertion: &str) -> Result<(), String> {
    let account: Value = common::read_json(&fixtures().join("auth/jwt/test-service-account.json"));
    let public_key = std::fs::read(fixtures().join("auth/jwt/test-public-key.der")).unwrap();
    let parts: Vec<&str> = assertion.split('.').collect();
    if parts.len() != 3 {
        return Err("invalid_grant: not a JWT".into());
    }
    let decode = |p: &str| URL_SAFE_NO_PAD.decode(p).map_err(|_| "invalid_grant: bad base64".to_string());
    let header: Value = serde_json::from_slice(&decode(parts[0])?).map_err(|e| e.to_string())?;
    let claims: Value = serde_json::from_slice(&decode(parts[1])?).map_err(|e| e.to_string())?;
    signature::UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, &public_key)
        .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &decode(parts[2])?)
        .map_err(|_| "invalid_grant: Invalid JWT Signature.".to_string())?;
    let now = now_secs();
    let (iat, exp) = (claims["iat"].as_u64().unwrap_or(0), claims["exp"].as_u64().unwrap_or(0));
    let ok = header["alg"] == "RS256"
        && header["kid"] == account["private_key_id"]
        && claims["iss"] == account["client_email"]
        && claims["aud"] == account["token_uri"]
        && claims["scope"] == "https://www.googleapis.com/auth/cloud-platform"
        && iat.abs_diff(now) < 300
        && exp > iat
        && exp - iat <= 3600;
    if ok {
        Ok(())
    } else {
        Err(format!("invalid_grant: bad claims {header} {claims}"))
    }
}

fn gemini_answer() -> Value {
    json!({
        "candidates": [{"content": {"role": "model", "parts": [{"text": "Hello from Vertex."}]}, "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 2, "candidatesTokenCount": 4, "totalTokenCount": 6},
        "modelVersion": "gemini-3.5-flash"
    })
}

struct OAuthSetup {
    gw: common::Gateway,
    token_requests: Arc<Mutex<Vec<Received>>>,
    upstream: Arc<Mutex<Vec<Received>>>,
    lifetime: Arc<AtomicU64>,
}

async fn vertex(lifetime: u64) -> OAuthSetup {
    let lifetime = Arc::new(AtomicU64::new(lifetime));
    let issued = Arc::new(AtomicU64::new(0));
    let endpoint = token_endpoint(lifetime.clone(), issued.clone(), |f| {
        if f.get("grant_type").map(String::as_str) != Some("urn:ietf:params:oauth:grant-type:jwt-bearer") {
            return Err("unsupported_grant_type".into());
        }
        verify_assertion(f.get("assertion").ok_or("invalid_request")?)
    });
    let (token_addr, token_requests) = mock(endpoint).await;
    let (up_addr, upstream) = mock(bearer_upstream(issued, gemini_answer())).await;
    let env = [
        ("VERTEX_AI_BASE_URL", format!("http://{up_addr}")),
        ("VERTEX_AI_PROJECT", "lightport-test".to_string()),
        ("VERTEX_AI_TOKEN_URL", format!("http://{token_addr}/token")),
        ("GOOGLE_APPLICATION_CREDENTIALS", fixtures().join("auth/jwt/test-service-account.json").display().to_string()),
    ];
    OAuthSetup { gw: gateway(&env, quick_config()).await, token_requests, upstream, lifetime }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vertex_with_a_service_account_fetches_one_token_for_many_calls() {
    let s = vertex(3600).await;
    let calls = (0..20).map(|_| chat(&s.gw, "vertex-ai/gemini-3.5-flash"));
    for (status, body) in futures_util::future::join_all(calls).await {
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["choices"][0]["message"]["content"], "Hello from Vertex.");
    }
    assert_eq!(s.token_requests.lock().unwrap().len(), 1, "one token request for 20 calls");
    let upstream = s.upstream.lock().unwrap();
    assert_eq!(upstream.len(), 20);
    assert!(upstream.iter().all(|r| r.header("authorization") == Some("Bearer tok-1")));
    assert!(
        upstream[0].path_and_query.starts_with("/v1/projects/lightport-test/locations/"),
        "{}",
        upstream[0].path_and_query
    );
}

#[tokio::test]
async fn an_expired_token_is_replaced() {
    // A 2-second token is refreshed at half its life; after it has expired the next call must
    // not reuse it, however slow the machine.
    let s = vertex(2).await;
    let (status, body) = chat(&s.gw, "vertex-ai/gemini-3.5-flash").await;
    assert_eq!(status, 200, "{body}");
    s.lifetime.store(3600, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, body) = chat(&s.gw, "vertex-ai/gemini-3.5-flash").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(s.token_requests.lock().unwrap().len(), 2);
    let upstream = s.upstream.lock().unwrap();
    assert_eq!(upstream[0].header("authorization"), Some("Bearer tok-1"));
    assert_eq!(upstream[1].header("authorization"), Some("Bearer tok-2"));
}

#[tokio::test]
async fn an_unreadable_credentials_file_answers_502_naming_the_variable() {
    let env = [
        ("VERTEX_AI_BASE_URL", "http://127.0.0.1:9".to_string()),
        ("GOOGLE_APPLICATION_CREDENTIALS", fixtures().join("auth/jwt/README.md").display().to_string()),
    ];
    let gw = gateway(&env, quick_config()).await;
    let (status, body) = chat(&gw, "vertex-ai/gemini-3.5-flash").await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "auth_misconfigured");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("GOOGLE_APPLICATION_CREDENTIALS") && message.contains("not valid JSON"), "{message}");
}

const AZURE_CLIENT_SECRET: &str = "entra~client~secret~value";

async fn azure(secret: &str) -> OAuthSetup {
    let lifetime = Arc::new(AtomicU64::new(3599));
    let issued = Arc::new(AtomicU64::new(0));
    let endpoint = token_endpoint(lifetime.clone(), issued.clone(), |f| {
        let want = [
            ("grant_type", "client_credentials"),
            ("client_id", "00000000-1111-2222-3333-444444444444"),
            ("scope", "https://cognitiveservices.azure.com/.default"),
        ];
        if want.iter().any(|(k, v)| f.get(*k).map(String::as_str) != Some(v)) {
            return Err("invalid_request".into());
        }
        if f.get("client_secret").map(String::as_str) != Some(AZURE_CLIENT_SECRET) {
            return Err("invalid_client".into());
        }
        Ok(())
    });
    let (token_addr, token_requests) = mock(endpoint).await;
    let answer = json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-5.1",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello from Azure."}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 2, "completion_tokens": 4, "total_tokens": 6}
    });
    let (up_addr, upstream) = mock(bearer_upstream(issued, answer)).await;
    let env = [
        ("AZURE_OPENAI_BASE_URL", format!("http://{up_addr}")),
        ("AZURE_OPENAI_TOKEN_URL", format!("http://{token_addr}/tenant/oauth2/v2.0/token")),
        ("AZURE_CLIENT_ID", "00000000-1111-2222-3333-444444444444".to_string()),
        ("AZURE_CLIENT_SECRET", secret.to_string()),
    ];
    OAuthSetup { gw: gateway(&env, quick_config()).await, token_requests, upstream, lifetime }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_with_entra_client_credentials_fetches_one_token_for_many_calls() {
    let s = azure(AZURE_CLIENT_SECRET).await;
    let calls = (0..20).map(|_| chat(&s.gw, "azure-openai/my-gpt-deployment"));
    for (status, body) in futures_util::future::join_all(calls).await {
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["choices"][0]["message"]["content"], "Hello from Azure.");
    }
    assert_eq!(s.token_requests.lock().unwrap().len(), 1);
    let upstream = s.upstream.lock().unwrap();
    assert!(upstream
        .iter()
        .all(|r| r.header("authorization") == Some("Bearer tok-1") && r.header("api-key").is_none()));
    let _ = &s.lifetime;
}

#[tokio::test]
async fn a_refused_client_secret_is_a_502_that_quotes_no_secret() {
    let s = azure("the-wrong-secret").await;
    let (status, body) = chat(&s.gw, "azure-openai/my-gpt-deployment").await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "auth_failed");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("invalid_client"), "{message}");
    assert!(!body.to_string().contains("the-wrong-secret") && !body.to_string().contains("127.0.0.1"), "{body}");
    assert!(s.upstream.lock().unwrap().is_empty(), "nothing goes upstream without a token");
}
