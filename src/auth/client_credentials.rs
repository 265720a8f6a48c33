//! The OAuth 2.0 client credentials grant (RFC 6749 §4.4): a confidential client trades its
//! id and secret (sent as form fields, §2.3.1, as Microsoft Entra ID takes them) for an access
//! token at the token endpoint.

use std::time::{Duration, SystemTime};

use super::token_cache::{Token, TokenSource};
use super::token_endpoint::{TokenRequest, DEFAULT_TIMEOUT};
use super::{AuthError, Secret};

/// A [`TokenSource`] that gets access tokens with the client credentials grant.
/// `Debug` hides the client secret.
#[derive(Debug)]
pub struct ClientCredentials {
    token_url: String,
    client_id: String,
    client_secret: Secret,
    scope: String,
    client: reqwest::Client,
    timeout: Duration,
}

impl ClientCredentials {
    /// `client` is the HTTP client for the token endpoint (the gateway's shared one will do).
    pub fn new(
        token_url: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<Secret>,
        client: reqwest::Client,
    ) -> ClientCredentials {
        ClientCredentials {
            token_url: token_url.into(),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            scope: String::new(),
            client,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The `scope` form field, space-separated; left out when empty.
    pub fn with_scopes<I>(mut self, scopes: I) -> ClientCredentials
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        self.scope = scopes.into_iter().map(|s| s.as_ref().to_owned()).collect::<Vec<_>>().join(" ");
        self
    }
}

impl TokenSource for ClientCredentials {
    async fn fetch(&self, now: SystemTime) -> Result<Token, AuthError> {
        let mut form = vec![
            ("grant_type", "client_credentials"),
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.expose()),
        ];
        if !self.scope.is_empty() {
            form.push(("scope", &self.scope));
        }
        TokenRequest { client: &self.client, url: &self.token_url, form, timeout: self.timeout }.send(now).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_secret() {
        let cc = ClientCredentials::new("http://127.0.0.1:1/token", "id", "hunter2", reqwest::Client::new());
        let shown = format!("{cc:?}");
        assert!(shown.contains("client_secret: ***"), "{shown}");
        assert!(!shown.contains("hunter2"));
    }
}
