//! The HTTP client to providers: pooled clients (keep-alive, HTTP/2 where offered), bounded
//! waits, no redirects, and errors that never carry a URL (a query-string key must not leak
//! into a message).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;

use crate::call::UpstreamRequest;
use crate::error::Error;

/// The default time to establish a connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Upstream {
    /// One client per connect timeout in use (targets may set their own); a handful at most.
    clients: Mutex<HashMap<Duration, reqwest::Client>>,
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
        Upstream { clients: Mutex::new(HashMap::from([(CONNECT_TIMEOUT, client(CONNECT_TIMEOUT))])) }
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
        let fut = self.client(connect).request(req.method, &req.url).headers(req.headers).body(req.body).send();
        match tokio::time::timeout(first_byte, fut).await {
            Err(_) => Err(timed_out(provider, first_byte)),
            Ok(Err(e)) => Err(request_error(provider, e)),
            Ok(Ok(resp)) => Ok(resp),
        }
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
