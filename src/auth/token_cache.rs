//! A cached token source: one token shared by every request until it is close to expiry,
//! fetched by one caller at a time, with an injectable clock.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use http::HeaderValue;

use super::{AuthError, Secret};

/// An access token and the time it stops being accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    pub value: Secret,
    pub expires_at: SystemTime,
}

impl Token {
    /// `Bearer <token>` as a header value marked sensitive (so `http`'s `Debug` hides it too).
    pub fn authorization_header(&self) -> Result<HeaderValue, AuthError> {
        let mut value = HeaderValue::try_from(format!("Bearer {}", self.value.expose()))
            .map_err(|_| AuthError::TokenResponse("the access token is not a valid header value".into()))?;
        value.set_sensitive(true);
        Ok(value)
    }
}

/// Something that can get a new token, e.g. by an OAuth 2.0 grant.
pub trait TokenSource: Send + Sync {
    /// Gets a new token. `now` is the cache's clock reading, for anything time-stamped in
    /// the request (a JWT's `iat`) and to turn a lifetime into an expiry time.
    fn fetch(&self, now: SystemTime) -> impl Future<Output = Result<Token, AuthError>> + Send;
}

/// The time, injectable so that tests move it instead of sleeping.
pub trait Clock: Send + Sync {
    fn now(&self) -> SystemTime;
}

/// The system's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that only moves when told to; clones share the same time.
#[cfg(test)]
#[derive(Clone, Debug)]
pub struct ManualClock(Arc<Mutex<SystemTime>>);

#[cfg(test)]
impl ManualClock {
    pub fn new(start: SystemTime) -> ManualClock {
        ManualClock(Arc::new(Mutex::new(start)))
    }

    pub fn advance(&self, by: Duration) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) += by;
    }
}

#[cfg(test)]
impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Default for how long before expiry a token is replaced.
pub const DEFAULT_REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);
/// Default for how long to keep serving a still-valid token after a failed refresh before
/// trying the token endpoint again.
pub const DEFAULT_RETRY_INTERVAL: Duration = Duration::from_secs(10);

struct Cached {
    token: Token,
    /// When to start fetching a replacement.
    refresh_at: SystemTime,
}

/// State of the fetches, under the async lock that makes them one at a time.
struct Flight {
    /// How many fetches have finished (mirrored in `CachedToken::finished` for lock-free reads).
    finished: u64,
    /// The last fetch's failure, while no fetch has succeeded since.
    last_failure: Option<(SystemTime, AuthError)>,
}

/// A [`TokenSource`] behind a cache.
///
/// - [`CachedToken::token`] returns the cached token until `expires_at - margin`, where the
///   margin is the refresh margin (default 5 minutes) or half the token's lifetime, whichever
///   is shorter (so a 4-minute token is replaced after 2 minutes, not fetched on every call).
/// - Single flight: at most one fetch runs at a time; callers that arrive while one runs wait
///   for it and share its outcome, success or error, instead of starting their own.
/// - A failed refresh is an error, except while the previous token has not yet expired: then
///   that token is served, and the endpoint is tried again at most every retry interval. A
///   token past its expiry is never returned.
/// - Cancellation-safe: if the caller running a fetch is dropped, the next waiter fetches.
pub struct CachedToken<S> {
    source: S,
    clock: Arc<dyn Clock>,
    refresh_margin: Duration,
    retry_interval: Duration,
    cached: Mutex<Option<Cached>>,
    finished: AtomicU64,
    flight: tokio::sync::Mutex<Flight>,
}

impl<S: TokenSource> CachedToken<S> {
    pub fn new(source: S) -> CachedToken<S> {
        CachedToken {
            source,
            clock: Arc::new(SystemClock),
            refresh_margin: DEFAULT_REFRESH_MARGIN,
            retry_interval: DEFAULT_RETRY_INTERVAL,
            cached: Mutex::new(None),
            finished: AtomicU64::new(0),
            flight: tokio::sync::Mutex::new(Flight { finished: 0, last_failure: None }),
        }
    }

    #[cfg(test)]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> CachedToken<S> {
        self.clock = clock;
        self
    }

    #[cfg(test)]
    pub fn source(&self) -> &S {
        &self.source
    }

    /// A token valid now: the cached one while it is fresh, else a new one.
    pub async fn token(&self) -> Result<Token, AuthError> {
        // Read the fetch count before looking at the cache: if a fetch finishes in between,
        // the count differs once the lock is taken and its outcome is shared below.
        let seen = self.finished.load(Ordering::Acquire);
        if let Some(token) = self.fresh(self.clock.now()) {
            return Ok(token);
        }
        let mut flight = self.flight.lock().await;
        let now = self.clock.now();
        if let Some(token) = self.fresh(now) {
            return Ok(token);
        }
        let usable = self.unexpired(now);
        if let Some((failed_at, error)) = &flight.last_failure {
            // A fetch finished while this caller waited and failed: share its outcome.
            if flight.finished != seen {
                return usable.ok_or_else(|| error.clone());
            }
            // Keep serving a still-valid token rather than hammering a failing endpoint.
            if let Some(token) = usable.clone() {
                if now < *failed_at + self.retry_interval {
                    return Ok(token);
                }
            }
        }

        let result = self.source.fetch(now).await;
        flight.finished += 1;
        self.finished.store(flight.finished, Ordering::Release);
        match result {
            Ok(token) => {
                flight.last_failure = None;
                let lifetime = token.expires_at.duration_since(now).unwrap_or_default();
                let margin = self.refresh_margin.min(lifetime / 2);
                let refresh_at = token.expires_at.checked_sub(margin).unwrap_or(now);
                *self.lock_cached() = Some(Cached { token: token.clone(), refresh_at });
                Ok(token)
            }
            Err(error) => {
                flight.last_failure = Some((now, error.clone()));
                usable.ok_or(error)
            }
        }
    }

    /// Drops the cached token if it is `token`, so that the next call fetches a new one (for
    /// when the upstream rejects it before its expiry, e.g. after a revocation). A token
    /// already replaced by a newer one is left alone.
    pub fn invalidate(&self, token: &Token) {
        let mut cached = self.lock_cached();
        if cached.as_ref().is_some_and(|c| c.token == *token) {
            *cached = None;
        }
    }

    fn fresh(&self, now: SystemTime) -> Option<Token> {
        self.lock_cached().as_ref().filter(|c| now < c.refresh_at).map(|c| c.token.clone())
    }

    fn unexpired(&self, now: SystemTime) -> Option<Token> {
        self.lock_cached().as_ref().filter(|c| now < c.token.expires_at).map(|c| c.token.clone())
    }

    fn lock_cached(&self) -> std::sync::MutexGuard<'_, Option<Cached>> {
        self.cached.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::UNIX_EPOCH;

    /// Hands out `token-N` with the given lifetime, or fails while `fail` is set.
    struct Counting {
        calls: AtomicUsize,
        lifetime: Duration,
        fail: Mutex<Option<AuthError>>,
    }

    impl TokenSource for Counting {
        async fn fetch(&self, now: SystemTime) -> Result<Token, AuthError> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            if let Some(e) = self.fail.lock().unwrap().clone() {
                return Err(e);
            }
            Ok(Token { value: Secret::new(format!("token-{n}")), expires_at: now + self.lifetime })
        }
    }

    fn setup(lifetime: Duration) -> (CachedToken<Counting>, ManualClock) {
        let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
        let source = Counting { calls: AtomicUsize::new(0), lifetime, fail: Mutex::new(None) };
        (CachedToken::new(source).with_clock(Arc::new(clock.clone())), clock)
    }

    fn calls(c: &CachedToken<Counting>) -> usize {
        c.source().calls.load(Ordering::SeqCst)
    }

    #[tokio::test]
    async fn refreshes_at_expiry_minus_margin() {
        let (cache, clock) = setup(Duration::from_secs(3600));
        assert_eq!(cache.token().await.unwrap().value.expose(), "token-1");
        clock.advance(Duration::from_secs(3600 - 300 - 1));
        assert_eq!(cache.token().await.unwrap().value.expose(), "token-1");
        assert_eq!(calls(&cache), 1);
        clock.advance(Duration::from_secs(1));
        assert_eq!(cache.token().await.unwrap().value.expose(), "token-2");
        assert_eq!(calls(&cache), 2);
    }

    #[tokio::test]
    async fn short_tokens_refresh_at_half_life() {
        let (cache, clock) = setup(Duration::from_secs(240));
        cache.token().await.unwrap();
        clock.advance(Duration::from_secs(119));
        assert_eq!(cache.token().await.unwrap().value.expose(), "token-1");
        clock.advance(Duration::from_secs(1));
        assert_eq!(cache.token().await.unwrap().value.expose(), "token-2");
    }

    #[tokio::test]
    async fn failure_serves_unexpired_token_but_never_an_expired_one() {
        let (cache, clock) = setup(Duration::from_secs(3600));
        cache.token().await.unwrap();
        *cache.source().fail.lock().unwrap() = Some(AuthError::TokenEndpointStatus { status: 503, error_code: None });
        // In the refresh window: the refresh fails, the still-valid token is served.
        clock.advance(Duration::from_secs(3500));
        assert_eq!(cache.token().await.unwrap().value.expose(), "token-1");
        assert_eq!(calls(&cache), 2);
        // Within the retry interval the endpoint is left alone.
        clock.advance(Duration::from_secs(5));
        assert_eq!(cache.token().await.unwrap().value.expose(), "token-1");
        assert_eq!(calls(&cache), 2);
        // Past expiry: an error, not the stale token.
        clock.advance(Duration::from_secs(100));
        let err = cache.token().await.unwrap_err();
        assert_eq!(err, AuthError::TokenEndpointStatus { status: 503, error_code: None });
        assert_eq!(calls(&cache), 3);
        // Recovery.
        *cache.source().fail.lock().unwrap() = None;
        assert_eq!(cache.token().await.unwrap().value.expose(), "token-4");
    }

    #[tokio::test]
    async fn invalidate_forces_a_new_fetch_once() {
        let (cache, _clock) = setup(Duration::from_secs(3600));
        let first = cache.token().await.unwrap();
        cache.invalidate(&first);
        let second = cache.token().await.unwrap();
        assert_eq!(second.value.expose(), "token-2");
        // A late invalidation of the old token leaves the new one alone.
        cache.invalidate(&first);
        assert_eq!(cache.token().await.unwrap(), second);
        assert_eq!(calls(&cache), 2);
    }

    #[test]
    fn bearer_header_is_sensitive() {
        let token = Token { value: Secret::new("abc"), expires_at: UNIX_EPOCH };
        let header = token.authorization_header().unwrap();
        assert_eq!(header.to_str().unwrap(), "Bearer abc");
        assert!(header.is_sensitive());
        assert!(!format!("{header:?}").contains("abc"));
        assert!(!format!("{token:?}").contains("abc"));
    }
}
