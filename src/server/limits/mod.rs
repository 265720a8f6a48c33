//! Shared limits for the gateway: fixed-window counters, concurrency slots, spend budgets and
//! circuit breakers, kept in process memory or, with a Redis URL, in Redis so that every replica
//! behind the load balancer enforces one limit.
//!
//! * [`Store::memory`]: per-process, bounded (expired entries are swept, and at most
//!   [`StoreConfig::max_keys`] keys are kept, the least recently used evicted first).
//! * [`Store::redis`]: shared. Every Redis command is bounded by
//!   [`StoreConfig::command_timeout`]; a lost connection is re-established in the background.
//!   While Redis is unreachable, [`FailMode::Open`] serves every operation from a per-process
//!   fallback store (so limits become per-process) and [`FailMode::Closed`] returns
//!   [`StoreError::Unavailable`].
//!
//! **Keys.** Callers pass key names such as `key:<id>:rpm` or a hash of a secret, never a raw API
//! key: key names are stored in Redis as they are (under the `lightport:` prefix) and appear in
//! logs and errors. Keys are 1 to [`MAX_KEY_LEN`] bytes.
//!
//! **Numbers.** Amounts and limits are exact up to 2^53 (Redis scripts compute with doubles);
//! larger values are clamped to 2^53. Durations are whole milliseconds (at least 1 ms).
//!
//! ```
//! use std::time::Duration;
//! use lightport::server::limits::{BreakerConfig, BreakerDecision, Store};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), lightport::server::limits::StoreError> {
//! let store = Store::memory(); // or Store::redis("redis://127.0.0.1:6379/", FailMode::Open).await?
//! let minute = Duration::from_secs(60);
//!
//! // Before the request: requests per minute, tokens per minute so far, concurrency, budget.
//! assert!(store.window("key:3f9a:rpm", 1, 600, minute).await?.allowed);
//! assert!(store.window_peek("key:3f9a:tpm", 100_000, minute).await?.allowed);
//! let slot = store.acquire("key:3f9a:conc", 8, Duration::from_secs(600)).await?.unwrap();
//! let day = Duration::from_secs(86_400);
//! let hold = store.reserve("key:3f9a:spend:day", 20_000, 5_000_000, day).await?.unwrap();
//! let cfg = BreakerConfig::default();
//! assert_eq!(store.breaker_allow("target:east", &cfg).await?, BreakerDecision::Allow);
//!
//! // After the answer: outcome, tokens used, actual cost in micro-dollars.
//! store.breaker_record("target:east", true, &cfg).await?;
//! store.window_record("key:3f9a:tpm", 1_234, 100_000, minute).await?;
//! store.settle(hold, 12_345).await?;
//! slot.release().await;
//! assert_eq!(store.budget("key:3f9a:spend:day", 5_000_000, day).await?.used, 12_345);
//! # Ok(())
//! # }
//! ```

mod clock;
mod memory;
mod remote;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use clock::{Clock, ManualClock, SystemClock};
use memory::{BreakerMs, Memory};
use remote::Remote;

/// Longest key name accepted, in bytes.
pub const MAX_KEY_LEN: usize = 512;
/// Largest amount or limit kept exactly; larger ones are clamped to it.
pub const MAX_AMOUNT: u64 = 1 << 53;
/// Longest window, lease or period, in milliseconds (about 34 years); longer ones are clamped.
const MAX_MS: u128 = 1 << 40;
/// A breaker untouched this long after its cooldown and probe timeout is forgotten (closed).
const BREAKER_IDLE_MS: u64 = 3_600_000;

/// What the Redis store does while Redis is unreachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailMode {
    /// Serve from a per-process memory store (per-process limits); `backend_healthy()` is false.
    Open,
    /// Return [`StoreError::Unavailable`] (the gateway answers 503).
    Closed,
}

/// Tuning of a [`Store`]. `Default` gives the documented defaults.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Bound on every Redis command (a script call is one command). Default 250 ms.
    pub command_timeout: Duration,
    /// Bound on establishing a Redis connection (done in the background). Default 1 s.
    pub connect_timeout: Duration,
    /// Reconnection attempts back off from 50 ms up to this. Default 1 s.
    pub reconnect_max_backoff: Duration,
    /// While healthy, Redis is PINGed this often so that an outage is noticed without traffic.
    /// Default 1 s.
    pub health_interval: Duration,
    /// A budget reservation not settled within this lease stops counting (a crashed replica's
    /// reservations free themselves). Default 15 min.
    pub reservation_lease: Duration,
    /// Most keys the memory store (or the fail-open fallback) keeps. Default 100 000.
    pub max_keys: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            command_timeout: Duration::from_millis(250),
            connect_timeout: Duration::from_secs(1),
            reconnect_max_backoff: Duration::from_secs(1),
            health_interval: Duration::from_secs(1),
            reservation_lease: Duration::from_secs(15 * 60),
            max_keys: 100_000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid Redis URL: {0}")]
    InvalidUrl(String),
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
    /// Redis is unreachable or too slow (fail-closed mode only; fail-open falls back).
    #[error("limits store unavailable: {0}")]
    Unavailable(String),
    /// Redis answered a command with an error (fail-closed mode only; fail-open falls back).
    #[error("limits store error: {0}")]
    Backend(String),
}

/// A fixed-window counter after an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowState {
    /// [`Store::window`]: the amount was added. [`Store::window_record`]: `used <= limit`.
    /// [`Store::window_peek`]: `used < limit`.
    pub allowed: bool,
    pub used: u64,
    pub limit: u64,
    pub remaining: u64,
    /// Time until the window ends and `used` starts again from 0.
    pub reset_after: Duration,
}

impl WindowState {
    fn new(allowed: bool, used: u64, limit: u64, reset_ms: u64) -> Self {
        Self {
            allowed,
            used,
            limit,
            remaining: limit.saturating_sub(used),
            reset_after: Duration::from_millis(reset_ms),
        }
    }
}

/// A budget in its current period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetState {
    /// Settled spend in the current period.
    pub used: u64,
    /// Outstanding reservations (not yet settled, lease not expired).
    pub reserved: u64,
    pub limit: u64,
    /// `limit - used - reserved`, at least 0.
    pub remaining: u64,
    /// Time until the period ends and `used` starts again from 0.
    pub reset_after: Duration,
}

impl BudgetState {
    fn new(used: u64, reserved: u64, limit: u64, reset_ms: u64) -> Self {
        Self {
            used,
            reserved,
            limit,
            remaining: limit.saturating_sub(used.saturating_add(reserved)),
            reset_after: Duration::from_millis(reset_ms),
        }
    }
}

/// Circuit breaker settings for a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures that open the breaker (at least 1). Default 5.
    pub failures: u32,
    /// How long it stays open before one probe is let through. Default 30 s.
    pub cooldown: Duration,
    /// How long a probe may take before another probe is allowed (a replica may crash while
    /// probing). Default 30 s.
    pub probe_timeout: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self { failures: 5, cooldown: Duration::from_secs(30), probe_timeout: Duration::from_secs(30) }
    }
}

impl BreakerConfig {
    fn ms(&self) -> BreakerMs {
        let cooldown = self.cooldown.as_millis().min(MAX_MS) as u64;
        let probe_timeout = (self.probe_timeout.as_millis().min(MAX_MS) as u64).max(1);
        BreakerMs {
            failures: self.failures.max(1),
            cooldown,
            probe_timeout,
            ttl: cooldown + probe_timeout + BREAKER_IDLE_MS,
        }
    }
}

/// Whether a request may go to a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerDecision {
    /// Closed: send it.
    Allow,
    /// Half-open: send it as the one probe; record its outcome with `breaker_record`.
    AllowProbe,
    /// Open (or a probe is in flight): do not send; try again after `retry_after`.
    Reject { retry_after: Duration },
}

impl BreakerDecision {
    fn reject(ms: u64) -> Self {
        Self::Reject { retry_after: Duration::from_millis(ms) }
    }
}

/// A breaker's state, for admin listings and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Requests flow; `failures` consecutive failures so far.
    Closed { failures: u32 },
    /// Requests are refused until `until` (the store's clock: Redis server time when shared).
    Open { until: SystemTime },
    /// The cooldown is over: one probe is (or may be) in flight.
    HalfOpen,
}

impl BreakerState {
    fn open(until_ms: u64) -> Self {
        Self::Open { until: UNIX_EPOCH + Duration::from_millis(until_ms) }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WindowMode {
    Admit,
    Record,
    Peek,
}

/// The limits store: cheap to clone (all clones share one state and one Redis connection).
#[derive(Clone)]
pub struct Store {
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    Memory(Arc<Memory>),
    Redis(Arc<Remote>),
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.backend {
            Backend::Memory(_) => "memory",
            Backend::Redis(_) => "redis",
        };
        f.debug_struct("Store").field("backend", &kind).field("healthy", &self.backend_healthy()).finish()
    }
}

fn check_key(key: &str) -> Result<(), StoreError> {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(StoreError::InvalidArgument("key must be 1 to 512 bytes"));
    }
    Ok(())
}

fn duration_ms(d: Duration, what: &'static str) -> Result<u64, StoreError> {
    match d.as_millis() {
        0 => Err(StoreError::InvalidArgument(what)),
        ms => Ok(ms.min(MAX_MS) as u64),
    }
}

fn clamp(n: u64) -> u64 {
    n.min(MAX_AMOUNT)
}

impl Store {
    /// A per-process store with the default configuration and the system clock.
    pub fn memory() -> Store {
        Self::memory_with(&StoreConfig::default(), Arc::new(SystemClock))
    }

    /// A per-process store with `config` (`max_keys`, `reservation_lease`) and `clock`.
    pub fn memory_with(config: &StoreConfig, clock: Arc<dyn Clock>) -> Store {
        Store {
            backend: Backend::Memory(Arc::new(Memory::new(
                clock,
                config.max_keys,
                duration_ms(config.reservation_lease, "").unwrap_or(1),
            ))),
        }
    }

    /// A Redis-backed store with the default configuration. See [`Store::redis_with`].
    pub async fn redis(url: &str, fail: FailMode) -> Result<Store, StoreError> {
        Self::redis_with(url, fail, StoreConfig::default()).await
    }

    /// A Redis-backed store (`redis://[:password@]host:port[/db]`, or `rediss://` if the
    /// crate is built with TLS). Connects once (bounded by `connect_timeout`); if Redis is
    /// unreachable the store is still returned, unhealthy, and keeps reconnecting in the
    /// background. Fails only on an invalid URL. Must be called within a Tokio runtime.
    pub async fn redis_with(url: &str, fail: FailMode, config: StoreConfig) -> Result<Store, StoreError> {
        let remote = Remote::start(url, fail, config).await?;
        Ok(Store { backend: Backend::Redis(remote) })
    }

    /// False while the Redis backend is unreachable (fail-open then serves from memory).
    /// Always true for a memory store.
    pub fn backend_healthy(&self) -> bool {
        match &self.backend {
            Backend::Memory(_) => true,
            Backend::Redis(r) => r.healthy(),
        }
    }

    async fn window_op(
        &self,
        key: &str,
        amount: u64,
        limit: u64,
        window: Duration,
        mode: WindowMode,
    ) -> Result<WindowState, StoreError> {
        check_key(key)?;
        let win = duration_ms(window, "window must be at least 1 ms")?;
        let (amount, limit) = (clamp(amount), clamp(limit));
        match &self.backend {
            Backend::Memory(m) => Ok(m.window(key, amount, limit, win, mode)),
            Backend::Redis(r) => match r.window(key, amount, limit, win, mode).await {
                Ok(s) => Ok(s),
                Err(e) => r.or_fallback(e, |m| m.window(key, amount, limit, win, mode)),
            },
        }
    }

    /// Admission on a fixed window (e.g. requests per minute): adds `amount` to `key` in the
    /// current window of length `window` if `used + amount <= limit` (`allowed`), otherwise adds
    /// nothing. Windows are aligned to multiples of `window` since the Unix epoch.
    pub async fn window(
        &self,
        key: &str,
        amount: u64,
        limit: u64,
        window: Duration,
    ) -> Result<WindowState, StoreError> {
        self.window_op(key, amount, limit, window, WindowMode::Admit).await
    }

    /// Adds `amount` unconditionally (usage known after the fact, e.g. tokens per minute);
    /// `allowed` tells whether the window is still within its limit.
    pub async fn window_record(
        &self,
        key: &str,
        amount: u64,
        limit: u64,
        window: Duration,
    ) -> Result<WindowState, StoreError> {
        self.window_op(key, amount, limit, window, WindowMode::Record).await
    }

    /// The current window without adding anything; `allowed` is `used < limit`.
    pub async fn window_peek(&self, key: &str, limit: u64, window: Duration) -> Result<WindowState, StoreError> {
        self.window_op(key, 0, limit, window, WindowMode::Peek).await
    }

    /// Takes one of at most `limit` concurrent slots of `key`, or `None` when all are held.
    /// The slot is a lease: it frees itself after `lease` unless renewed, so a crashed
    /// replica's slots come back. Release it with [`Slot::release`] or by dropping it.
    pub async fn acquire(&self, key: &str, limit: u64, lease: Duration) -> Result<Option<Slot>, StoreError> {
        check_key(key)?;
        let lease = duration_ms(lease, "lease must be at least 1 ms")?;
        let limit = clamp(limit);
        let from_memory = |m: &Arc<Memory>| {
            m.acquire(key, limit, lease).map(|(id, in_use)| Slot {
                key: key.to_owned(),
                in_use,
                lease: Lease::Memory(m.clone(), id),
            })
        };
        match &self.backend {
            Backend::Memory(m) => Ok(from_memory(m)),
            Backend::Redis(r) => {
                let member = remote::new_member();
                match r.acquire(key, limit, lease, &member).await {
                    Ok(granted) => Ok(granted.map(|in_use| Slot {
                        key: key.to_owned(),
                        in_use,
                        lease: Lease::Redis(r.clone(), member),
                    })),
                    Err(e) => r.or_fallback(e, |_| from_memory(r.fallback())),
                }
            }
        }
    }

    /// Reserves an estimated `amount` against `key`'s budget of `limit` for the current
    /// period (aligned to multiples of `period` since the Unix epoch). `None` when
    /// `used + reserved + amount > limit`: concurrent reservations never overrun the limit.
    /// Settle it with [`Store::settle`]; a dropped reservation frees its amount unspent.
    pub async fn reserve(
        &self,
        key: &str,
        amount: u64,
        limit: u64,
        period: Duration,
    ) -> Result<Option<Reservation>, StoreError> {
        check_key(key)?;
        let period = duration_ms(period, "period must be at least 1 ms")?;
        let (amount, limit) = (clamp(amount), clamp(limit));
        let from_memory = |m: &Arc<Memory>| {
            m.reserve(key, amount, limit, period).ok().map(|(id, state)| Reservation {
                key: key.to_owned(),
                amount,
                period,
                state,
                hold: Hold::Memory(m.clone(), id),
            })
        };
        match &self.backend {
            Backend::Memory(m) => Ok(from_memory(m)),
            Backend::Redis(r) => {
                let member = format!("{}:{amount}", remote::new_member());
                match r.reserve(key, amount, limit, period, &member).await {
                    Ok((true, state)) => Ok(Some(Reservation {
                        key: key.to_owned(),
                        amount,
                        period,
                        state,
                        hold: Hold::Redis(r.clone(), member),
                    })),
                    Ok((false, _)) => Ok(None),
                    Err(e) => r.or_fallback(e, |_| from_memory(r.fallback())),
                }
            }
        }
    }

    /// Frees the reservation and charges `actual` (more or less than reserved) to the current
    /// period. Use `actual = 0` to cancel. A reservation is settled where it was made: one made
    /// from the fail-open fallback is settled in memory. If Redis fails during the settle,
    /// fail-open charges the fallback store instead; fail-closed returns the error (the charge
    /// is lost; the hold expires with its lease).
    pub async fn settle(&self, mut r: Reservation, actual: u64) -> Result<(), StoreError> {
        let actual = clamp(actual);
        match std::mem::replace(&mut r.hold, Hold::Done) {
            Hold::Memory(m, id) => {
                m.settle(&r.key, Some(id), actual, r.period);
                Ok(())
            }
            Hold::Redis(remote, member) => match remote.settle(&r.key, &member, actual, r.period).await {
                Ok(_) => Ok(()),
                Err(e) => remote.or_fallback(e, |m| {
                    m.settle(&r.key, None, actual, r.period);
                }),
            },
            Hold::Done => Ok(()),
        }
    }

    /// The budget of `key` in the current period, without reserving anything.
    pub async fn budget(&self, key: &str, limit: u64, period: Duration) -> Result<BudgetState, StoreError> {
        check_key(key)?;
        let period = duration_ms(period, "period must be at least 1 ms")?;
        let limit = clamp(limit);
        match &self.backend {
            Backend::Memory(m) => Ok(m.budget(key, limit, period)),
            Backend::Redis(r) => match r.budget(key, limit, period).await {
                Ok(s) => Ok(s),
                Err(e) => r.or_fallback(e, |m| m.budget(key, limit, period)),
            },
        }
    }

    /// Whether a request may go to `target` now. In half-open state exactly one caller (across
    /// replicas) gets [`BreakerDecision::AllowProbe`] per `probe_timeout`.
    pub async fn breaker_allow(&self, target: &str, cfg: &BreakerConfig) -> Result<BreakerDecision, StoreError> {
        check_key(target)?;
        let cfg = cfg.ms();
        match &self.backend {
            Backend::Memory(m) => Ok(m.breaker_allow(target, cfg)),
            Backend::Redis(r) => match r.breaker_allow(target, cfg).await {
                Ok(d) => Ok(d),
                Err(e) => r.or_fallback(e, |m| m.breaker_allow(target, cfg)),
            },
        }
    }

    /// Records a request's outcome. A failure counts towards `failures` consecutive ones (then
    /// the breaker opens for `cooldown`); a failure while half-open opens it again. A success
    /// resets the count and closes a half-open breaker; a success while open (a request sent
    /// before it opened) is ignored.
    pub async fn breaker_record(
        &self,
        target: &str,
        success: bool,
        cfg: &BreakerConfig,
    ) -> Result<BreakerState, StoreError> {
        check_key(target)?;
        let cfg = cfg.ms();
        match &self.backend {
            Backend::Memory(m) => Ok(m.breaker_record(target, success, cfg)),
            Backend::Redis(r) => match r.breaker_record(target, success, cfg).await {
                Ok(s) => Ok(s),
                Err(e) => r.or_fallback(e, |m| m.breaker_record(target, success, cfg)),
            },
        }
    }

    /// The breaker's state, for admin listings and metrics.
    pub async fn breaker_state(&self, target: &str, cfg: &BreakerConfig) -> Result<BreakerState, StoreError> {
        check_key(target)?;
        let _ = cfg; // the state needs no settings today; kept for symmetry and future use
        match &self.backend {
            Backend::Memory(m) => Ok(m.breaker_state(target)),
            Backend::Redis(r) => match r.breaker_state(target).await {
                Ok(s) => Ok(s),
                Err(e) => r.or_fallback(e, |m| m.breaker_state(target)),
            },
        }
    }
}

enum Lease {
    Memory(Arc<Memory>, u64),
    Redis(Arc<Remote>, String),
    Done,
}

/// A held concurrency slot. Dropping it releases it (for a Redis slot, in a spawned task when
/// a Tokio runtime is available; otherwise its lease expires).
pub struct Slot {
    key: String,
    in_use: u64,
    lease: Lease,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot").field("key", &self.key).field("in_use", &self.in_use).finish()
    }
}

impl Slot {
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Slots of this key held when this one was taken (including it).
    pub fn in_use(&self) -> u64 {
        self.in_use
    }

    /// Frees the slot now.
    pub async fn release(mut self) {
        match std::mem::replace(&mut self.lease, Lease::Done) {
            Lease::Memory(m, id) => m.release(&self.key, id),
            Lease::Redis(r, member) => r.release(&self.key, &member).await,
            Lease::Done => {}
        }
    }

    /// Extends the lease to `lease` from now (for long streams). `Ok(false)` if the slot had
    /// already expired (it is not taken again). A Redis slot cannot be renewed while Redis is
    /// unreachable: that returns the error in both fail modes.
    pub async fn renew(&self, lease: Duration) -> Result<bool, StoreError> {
        let lease = duration_ms(lease, "lease must be at least 1 ms")?;
        match &self.lease {
            Lease::Memory(m, id) => Ok(m.renew(&self.key, *id, lease)),
            Lease::Redis(r, member) => r.renew(&self.key, member, lease).await,
            Lease::Done => Ok(false),
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        match std::mem::replace(&mut self.lease, Lease::Done) {
            Lease::Memory(m, id) => m.release(&self.key, id),
            Lease::Redis(r, member) => {
                if let Ok(rt) = tokio::runtime::Handle::try_current() {
                    let key = std::mem::take(&mut self.key);
                    rt.spawn(async move { r.release(&key, &member).await });
                }
            }
            Lease::Done => {}
        }
    }
}

enum Hold {
    Memory(Arc<Memory>, u64),
    Redis(Arc<Remote>, String),
    Done,
}

/// An outstanding budget reservation. Settle it with [`Store::settle`]; dropping it frees the
/// reserved amount without charging anything.
pub struct Reservation {
    key: String,
    amount: u64,
    period: u64,
    state: BudgetState,
    hold: Hold,
}

impl std::fmt::Debug for Reservation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reservation")
            .field("key", &self.key)
            .field("amount", &self.amount)
            .field("state", &self.state)
            .finish()
    }
}

impl Reservation {
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The reserved amount.
    pub fn amount(&self) -> u64 {
        self.amount
    }

    /// The budget right after this reservation (it is included in `reserved`).
    pub fn state(&self) -> BudgetState {
        self.state
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        match std::mem::replace(&mut self.hold, Hold::Done) {
            Hold::Memory(m, id) => m.cancel(&self.key, id, self.period),
            Hold::Redis(r, member) => {
                if let Ok(rt) = tokio::runtime::Handle::try_current() {
                    let key = std::mem::take(&mut self.key);
                    let period = self.period;
                    rt.spawn(async move { r.cancel(&key, &member, period).await });
                }
            }
            Hold::Done => {}
        }
    }
}
