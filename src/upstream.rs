//! The HTTP client to providers: pooled clients (keep-alive, HTTP/2 where offered), bounded
//! waits, no redirects, and errors that never carry a URL (a query-string key must not leak
//! into a message).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use crate::auth::client_credentials::ClientCredentials;
use crate::auth::jwt_bearer::JwtBearer;
use crate::auth::token_cache::{CachedToken, Token, TokenSource};
use crate::auth::AuthError;
use crate::call::UpstreamRequest;
use crate::error::Error;
use crate::plan::{Credentials, TokenGrant};

/// The default time to establish a connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The most OAuth grants whose tokens are cached at once (one per provider and credential in
/// use; a reload that changes a credential makes a new one). Past it the cache starts afresh.
pub const MAX_TOKEN_GRANTS: usize = 256;

pub struct Upstream {
    /// One client per connect timeout in use (targets may set their own); a handful at most.
    clients: Mutex<HashMap<Duration, reqwest::Client>>,
    /// Access tokens by grant, shared by every provider and reload that uses the same one.
    tokens: Mutex<HashMap<u64, Arc<CachedToken<Grant>>>>,
}

/// An OAuth grant the gateway runs for tokens.
enum Grant {
    JwtBearer(JwtBearer),
    ClientCredentials(ClientCredentials),
}

impl TokenSource for Grant {
    async fn fetch(&self, now: SystemTime) -> Result<Token, AuthError> {
        match self {
            Grant::JwtBearer(g) => g.fetch(now).await,
            Grant::ClientCredentials(g) => g.fetch(now).await,
        }
    }
}

fn client(connect: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(connect)
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(1024)
        .tcp_nodelay(true)
        // A redirect would carry the request (its key headers, its prompt) to another host: an
        // upstream's 3xx is answered as an upstream failure instead.
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .expect("the HTTP client builds")
}

impl Default for Upstream {
    fn default() -> Self {
        Upstream::new()
    }
}

impl Upstream {
    pub fn new() -> Upstream {
        Upstream {
            clients: Mutex::new(HashMap::from([(CONNECT_TIMEOUT, client(CONNECT_TIMEOUT))])),
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// The cached token source of a grant, made on first use.
    fn tokens(&self, grant: &TokenGrant) -> Arc<CachedToken<Grant>> {
        let key = grant.cache_key();
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = tokens.get(&key) {
            return t.clone();
        }
        if tokens.len() >= MAX_TOKEN_GRANTS {
            tokens.clear();
        }
        let http = self.client(None);
        let source = match grant {
            TokenGrant::JwtBearer { account, scopes, token_url } => {
                let g = JwtBearer::new(account.clone(), scopes, http);
                Grant::JwtBearer(match token_url {
                    Some(url) => g.with_token_endpoint(url.clone()),
                    None => g,
                })
            }
            TokenGrant::ClientCredentials { token_url, client_id, client_secret, scopes } => Grant::ClientCredentials(
                ClientCredentials::new(token_url.clone(), client_id.clone(), client_secret.clone(), http)
                    .with_scopes(scopes),
            ),
        };
        tokens.entry(key).or_insert_with(|| Arc::new(CachedToken::new(source))).clone()
    }

    /// Finish a request's authentication: a bearer token from its grant, then its signature.
    async fn authorize(
        &self,
        provider: &str,
        req: &mut UpstreamRequest,
    ) -> Result<Option<(Arc<CachedToken<Grant>>, Token)>, Error> {
        let mut used = None;
        if let Some(Credentials::Token(grant)) = &req.pending {
            let cache = self.tokens(grant);
            let token = cache.token().await.map_err(|e| token_error(provider, &e))?;
            let value = token.authorization_header().map_err(|e| token_error(provider, &e))?;
            req.headers.insert(http::header::AUTHORIZATION, value);
            used = Some((cache, token));
        }
        if req.pending.is_some() {
            req.sign(SystemTime::now())?;
        }
        Ok(used)
    }

    fn client(&self, connect: Option<Duration>) -> reqwest::Client {
        let connect = connect.unwrap_or(CONNECT_TIMEOUT);
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        clients.entry(connect).or_insert_with(|| client(connect)).clone()
    }

    /// Send, and wait at most `first_byte` for the response headers.
    pub async fn send(
        &self,
        provider: &str,
        req: UpstreamRequest,
        connect: Option<Duration>,
        first_byte: Duration,
    ) -> Result<reqwest::Response, Error> {
        let client = self.client(connect);
        let fut = async {
            let mut req = req;
            let token = self.authorize(provider, &mut req).await?;
            let resp = client
                .request(req.method, req.url)
                .headers(req.headers)
                .body(req.body)
                .send()
                .await
                .map_err(|e| request_error(provider, e))?;
            // A token refused before its expiry (revoked, rotated): the next call fetches anew.
            if resp.status() == reqwest::StatusCode::UNAUTHORIZED {
                if let Some((cache, token)) = token {
                    cache.invalidate(&token);
                }
            }
            Ok(resp)
        };
        tokio::time::timeout(first_byte, fut).await.unwrap_or_else(|_| Err(timed_out(provider, first_byte)))
    }

    /// Read a whole (non-stream) body, within `wait` and at most `limit` bytes.
    pub async fn body(
        &self,
        provider: &str,
        mut resp: reqwest::Response,
        limit: usize,
        wait: Duration,
    ) -> Result<Bytes, Error> {
        let read = async {
            let mut buf = bytes::BytesMut::new();
            while let Some(chunk) = resp.chunk().await.map_err(|e| request_error(provider, e))? {
                if buf.len() + chunk.len() > limit {
                    return Err(Error::bad_gateway(format!(
                        "provider '{provider}' answered with more than {limit} bytes"
                    )));
                }
                buf.extend_from_slice(&chunk);
            }
            Ok(buf.freeze())
        };
        tokio::time::timeout(wait, read).await.unwrap_or_else(|_| Err(timed_out(provider, wait)))
    }
}

/// No access token: the grant failed. The message names the provider and what the token
/// endpoint said (an OAuth error code at most), never a credential or the endpoint's URL.
fn token_error(provider: &str, e: &AuthError) -> Error {
    let code = if e.is_retryable() { "token_unavailable" } else { "auth_failed" };
    Error::setup(502, "upstream_error", format!("provider '{provider}': no access token: {e}")).with_code(code)
}

pub fn timed_out(provider: &str, wait: Duration) -> Error {
    Error::timeout(format!("provider '{provider}' did not answer within {} s", wait.as_secs_f64()))
}

/// A transport error as the client may see it: what failed, never where (no URL).
pub fn request_error(provider: &str, e: reqwest::Error) -> Error {
    let e = e.without_url();
    if e.is_timeout() {
        return Error::timeout(format!("provider '{provider}' timed out"));
    }
    let what = if e.is_connect() { "cannot connect to" } else { "lost the connection to" };
    Error::bad_gateway(format!("{what} provider '{provider}'"))
}
