//! Upstream authentication beyond a static key: the generic ways a provider can ask a request
//! to prove who sent it, chosen per provider by its mapping file (`auth:`), credentials read
//! from the environment, never from the file.
//!
//! - [`sigv4`]: Signature Version 4 request signing (HMAC-SHA256 over a canonical request),
//!   a pure function of the request bytes, the credentials and a time (core).
//! - [`jwt_bearer`]: the OAuth 2.0 JWT bearer grant (RFC 7523) from a service-account JSON
//!   credentials file, the assertion signed with RS256 (the file is read by the core at load;
//!   the exchange is the server's).
//! - `client_credentials`: the OAuth 2.0 client credentials grant (RFC 6749 §4.4) (server).
//! - `token_cache`: a cached, single-flight token source over either grant (server).
//!
//! Secrets are held in [`Secret`], whose `Debug` prints `***`; no error message carries a
//! secret, a token or a URL.

mod error;
pub(crate) mod jwt_bearer;
mod secret;
pub(crate) mod sigv4;
pub(crate) mod time;

#[cfg(feature = "server")]
pub(crate) mod client_credentials;
#[cfg(feature = "server")]
pub(crate) mod token_cache;
#[cfg(feature = "server")]
mod token_endpoint;

pub(crate) use error::AuthError;
pub(crate) use secret::Secret;
