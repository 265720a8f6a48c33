//! The HTTP client to providers: one pooled client (keep-alive, HTTP/2 where offered), bounded
//! waits, and errors that never carry a URL (a query-string key must not leak into a message).

use std::time::Duration;

use bytes::Bytes;

use crate::call::UpstreamRequest;
use crate::error::Error;

#[derive(Clone)]
pub struct Upstream {
    client: reqwest::Client,
    /// Bound on the wait for response headers, for the whole body of a non-stream answer, and
    /// between two chunks of a stream.
    pub timeout: Duration,
}

impl Upstream {
    pub fn new(timeout: Duration) -> Upstream {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10).min(timeout))
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(1024)
            .tcp_nodelay(true)
            .no_proxy()
            .build()
            .expect("the HTTP client builds");
        Upstream { client, timeout }
    }

    /// Send and wait for the response headers.
    pub async fn send(&self, provider: &str, req: UpstreamRequest) -> Result<reqwest::Response, Error> {
        let fut = self.client.request(req.method, &req.url).headers(req.headers).body(req.body).send();
        match tokio::time::timeout(self.timeout, fut).await {
            Err(_) => Err(self.timed_out(provider)),
            Ok(Err(e)) => Err(request_error(provider, e)),
            Ok(Ok(resp)) => Ok(resp),
        }
    }

    /// Read a whole (non-stream) body, bounded by the timeout and by `limit` bytes.
    pub async fn body(&self, provider: &str, mut resp: reqwest::Response, limit: usize) -> Result<Bytes, Error> {
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
        tokio::time::timeout(self.timeout, read).await.unwrap_or_else(|_| Err(self.timed_out(provider)))
    }

    pub fn timed_out(&self, provider: &str) -> Error {
        Error::timeout(format!("provider '{provider}' did not answer within {} s", self.timeout.as_secs_f64()))
    }
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
