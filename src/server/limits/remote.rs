//! The Redis backend: one multiplexed connection, Lua scripts for every read-modify-write (each
//! script runs atomically on the server and reads the server's clock), and a supervisor task
//! that notices outages and reconnects.
//!
//! Data layout (every key under `lightport:`; `{…}` is a Redis Cluster hash tag, so a budget's
//! two keys share a slot):
//!
//! | key | type | content | TTL |
//! | --- | --- | --- | --- |
//! | `lightport:win:{K}:W` | hash | `w` window number (`now_ms / W`), `n` used | end of window |
//! | `lightport:slots:{K}` | sorted set | member slot id, score lease expiry (ms) | longest lease |
//! | `lightport:budget:{K}:P` | hash | `p` period number, `used` | end of period |
//! | `lightport:budget:{K}:P:holds` | sorted set | member `id:amount`, score hold expiry | longest hold |
//! | `lightport:breaker:{T}` | hash | `fails`, `open_until`, `probe_until` (ms) | cooldown + probe timeout + 1 h |

use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ErrorKind, RedisError, RedisResult, Script, ServerErrorKind};
use tokio::sync::Notify;

use super::memory::{BreakerMs, Memory};
use super::{
    BreakerDecision, BreakerState, BudgetState, FailMode, StoreConfig, StoreError, SystemClock, WindowMode, WindowState,
};

/// Every script starts here: effects replication (needed by Redis < 5 before `TIME` followed by
/// writes; a no-op on newer servers) and the server time in milliseconds.
const PRELUDE: &str = r#"
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"#;

/// KEYS[1] window hash. ARGV: amount, limit, window_ms, mode (admit | record | peek).
/// Returns {allowed, used, ms until reset}.
const WINDOW: &str = r#"
local amount = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local win = tonumber(ARGV[3])
local no = math.floor(now / win)
local reset = (no + 1) * win - now
local cur = redis.call('HMGET', KEYS[1], 'w', 'n')
local same = cur[1] and tonumber(cur[1]) == no
local used = 0
if same then used = tonumber(cur[2]) or 0 end
if ARGV[4] == 'peek' then
  if used < limit then return {1, used, reset} end
  return {0, used, reset}
end
if ARGV[4] == 'admit' and used + amount > limit then
  return {0, used, reset}
end
if same then
  used = redis.call('HINCRBY', KEYS[1], 'n', ARGV[1])
else
  redis.call('HSET', KEYS[1], 'w', no, 'n', ARGV[1])
  used = amount
end
redis.call('PEXPIRE', KEYS[1], reset)
if used <= limit then return {1, used, reset} end
return {0, used, reset}
"#;

/// KEYS[1] slots zset. ARGV: limit, lease_ms, member. Returns {granted, in use}.
const ACQUIRE: &str = r#"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local n = redis.call('ZCARD', KEYS[1])
if n >= tonumber(ARGV[1]) then return {0, n} end
local lease = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now + lease, ARGV[3])
if redis.call('PTTL', KEYS[1]) < lease then redis.call('PEXPIRE', KEYS[1], lease) end
return {1, n + 1}
"#;

/// KEYS[1] slots zset. ARGV: lease_ms, member. Returns 1 if renewed, 0 if the slot is gone.
const RENEW: &str = r#"
local s = redis.call('ZSCORE', KEYS[1], ARGV[2])
if (not s) or tonumber(s) <= now then
  redis.call('ZREM', KEYS[1], ARGV[2])
  return 0
end
local lease = tonumber(ARGV[1])
redis.call('ZADD', KEYS[1], now + lease, ARGV[2])
if redis.call('PTTL', KEYS[1]) < lease then redis.call('PEXPIRE', KEYS[1], lease) end
return 1
"#;

/// KEYS[1] budget hash, KEYS[2] holds zset. ARGV: amount, limit, period_ms, member ('' to only
/// read), lease_ms. Returns {granted, used, reserved (including this one), ms until reset}.
const RESERVE: &str = r#"
local amount = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local period = tonumber(ARGV[3])
local no = math.floor(now / period)
local reset = (no + 1) * period - now
local cur = redis.call('HMGET', KEYS[1], 'p', 'used')
local used = 0
if cur[1] and tonumber(cur[1]) == no then used = tonumber(cur[2]) or 0 end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local held = 0
for _, m in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  held = held + (tonumber(string.match(m, ':(%d+)$')) or 0)
end
if ARGV[4] == '' then return {1, used, held, reset} end
if used + held + amount > limit then return {0, used, held, reset} end
local lease = tonumber(ARGV[5])
redis.call('ZADD', KEYS[2], now + lease, ARGV[4])
if redis.call('PTTL', KEYS[2]) < lease then redis.call('PEXPIRE', KEYS[2], lease) end
return {1, used, held + amount, reset}
"#;

/// KEYS[1] budget hash, KEYS[2] holds zset. ARGV: actual, period_ms, member ('' for none).
/// Frees the hold and charges `actual` to the current period. Returns used.
const SETTLE: &str = r#"
local period = tonumber(ARGV[2])
local no = math.floor(now / period)
local reset = (no + 1) * period - now
if ARGV[3] ~= '' then redis.call('ZREM', KEYS[2], ARGV[3]) end
local cur = redis.call('HGET', KEYS[1], 'p')
local used
if cur and tonumber(cur) == no then
  used = redis.call('HINCRBY', KEYS[1], 'used', ARGV[1])
else
  redis.call('HSET', KEYS[1], 'p', no, 'used', ARGV[1])
  used = tonumber(ARGV[1])
end
redis.call('PEXPIRE', KEYS[1], reset)
return used
"#;

/// KEYS[1] breaker hash. ARGV: probe_timeout_ms, ttl_ms.
/// Returns {0 allow | 1 probe | 2 reject, retry after ms}.
const BREAKER_ALLOW: &str = r#"
local h = redis.call('HMGET', KEYS[1], 'open_until', 'probe_until')
local open_until = tonumber(h[1]) or 0
if open_until == 0 then return {0, 0} end
if open_until > now then return {2, open_until - now} end
local probe_until = tonumber(h[2]) or 0
if probe_until > now then return {2, probe_until - now} end
redis.call('HSET', KEYS[1], 'probe_until', now + tonumber(ARGV[1]))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {1, 0}
"#;

/// KEYS[1] breaker hash. ARGV: success (1|0), failures, cooldown_ms, ttl_ms.
/// Returns {0 closed | 1 half-open | 2 open, failures or open until (ms)}.
const BREAKER_RECORD: &str = r#"
local h = redis.call('HMGET', KEYS[1], 'fails', 'open_until')
local fails = tonumber(h[1]) or 0
local open_until = tonumber(h[2]) or 0
if open_until > now then return {2, open_until} end
if ARGV[1] == '1' then
  redis.call('DEL', KEYS[1])
  return {0, 0}
end
fails = redis.call('HINCRBY', KEYS[1], 'fails', 1)
redis.call('PEXPIRE', KEYS[1], ARGV[4])
if open_until > 0 or fails >= tonumber(ARGV[2]) then
  local u = math.max(now + tonumber(ARGV[3]), 1)
  redis.call('HSET', KEYS[1], 'open_until', u, 'probe_until', 0)
  return {2, u}
end
return {0, fails}
"#;

/// KEYS[1] breaker hash. Returns {0 closed | 1 half-open | 2 open, failures or open until}.
const BREAKER_STATE: &str = r#"
local h = redis.call('HMGET', KEYS[1], 'fails', 'open_until')
local fails = tonumber(h[1]) or 0
local open_until = tonumber(h[2]) or 0
if open_until == 0 then return {0, fails} end
if open_until > now then return {2, open_until} end
return {1, 0}
"#;

fn script(body: &str) -> Script {
    Script::new(&format!("{PRELUDE}{body}"))
}

static S_WINDOW: LazyLock<Script> = LazyLock::new(|| script(WINDOW));
static S_ACQUIRE: LazyLock<Script> = LazyLock::new(|| script(ACQUIRE));
static S_RENEW: LazyLock<Script> = LazyLock::new(|| script(RENEW));
static S_RESERVE: LazyLock<Script> = LazyLock::new(|| script(RESERVE));
static S_SETTLE: LazyLock<Script> = LazyLock::new(|| script(SETTLE));
static S_BREAKER_ALLOW: LazyLock<Script> = LazyLock::new(|| script(BREAKER_ALLOW));
static S_BREAKER_RECORD: LazyLock<Script> = LazyLock::new(|| script(BREAKER_RECORD));
static S_BREAKER_STATE: LazyLock<Script> = LazyLock::new(|| script(BREAKER_STATE));

pub(crate) fn window_key(key: &str, ms: u64) -> String {
    format!("lightport:win:{{{key}}}:{ms}")
}
pub(crate) fn slots_key(key: &str) -> String {
    format!("lightport:slots:{{{key}}}")
}
pub(crate) fn budget_keys(key: &str, ms: u64) -> (String, String) {
    let base = format!("lightport:budget:{{{key}}}:{ms}");
    let holds = format!("{base}:holds");
    (base, holds)
}
pub(crate) fn breaker_key(target: &str) -> String {
    format!("lightport:breaker:{{{target}}}")
}

/// A unique id for a slot or a hold: a per-process random nonce and a counter.
pub(crate) fn new_member() -> String {
    static NONCE: LazyLock<u64> = LazyLock::new(|| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        h.write_u128(
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0),
        );
        h.finish()
    });
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!("{:016x}{:x}", *NONCE, COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// Errors after which the connection is dropped and the backend counts as down. Other errors
/// are replies to one command (a script error, a wrong type): that call fails, the backend
/// stays up.
fn is_outage(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_timeout()
        || e.is_unrecoverable_error()
        || matches!(
            e.kind(),
            ErrorKind::AuthenticationFailed
                | ErrorKind::Server(
                    ServerErrorKind::BusyLoading
                        | ServerErrorKind::TryAgain
                        | ServerErrorKind::ClusterDown
                        | ServerErrorKind::MasterDown
                        | ServerErrorKind::ReadOnly
                )
        )
}

const MIN_BACKOFF: Duration = Duration::from_millis(50);
/// Command errors (not outages) are logged at most this often.
const COMMAND_WARN_EVERY_MS: u64 = 60_000;

pub(crate) struct Remote {
    client: redis::Client,
    fail: FailMode,
    cfg: StoreConfig,
    /// The live connection and its generation (so that a late failure on an old connection
    /// does not drop a new one).
    conn: Mutex<Option<(u64, MultiplexedConnection)>>,
    generation: AtomicU64,
    healthy: AtomicBool,
    /// An outage was logged and its end not yet.
    in_outage: AtomicBool,
    wake: Arc<Notify>,
    fallback: Arc<Memory>,
    last_command_warn: AtomicU64,
}

impl Drop for Remote {
    fn drop(&mut self) {
        // Lets the supervisor notice that the store is gone and exit.
        self.wake.notify_one();
    }
}

impl Remote {
    pub(crate) async fn start(url: &str, fail: FailMode, cfg: StoreConfig) -> Result<Arc<Remote>, StoreError> {
        let client = redis::Client::open(url).map_err(|e| StoreError::InvalidUrl(e.to_string()))?;
        let lease = cfg.reservation_lease.as_millis().clamp(1, u64::MAX as u128) as u64;
        let remote = Arc::new(Remote {
            client,
            fail,
            fallback: Arc::new(Memory::new(Arc::new(SystemClock), cfg.max_keys, lease)),
            cfg,
            conn: Mutex::new(None),
            generation: AtomicU64::new(0),
            healthy: AtomicBool::new(false),
            in_outage: AtomicBool::new(false),
            wake: Arc::new(Notify::new()),
            last_command_warn: AtomicU64::new(0),
        });
        if let Err(reason) = remote.connect().await {
            remote.in_outage.store(true, Ordering::SeqCst);
            tracing::warn!(
                %reason,
                fail_mode = ?fail,
                "limits store: Redis unreachable at start; {}; reconnecting in the background",
                remote.outage_effect()
            );
        }
        tokio::spawn(supervise(Arc::downgrade(&remote), remote.wake.clone()));
        Ok(remote)
    }

    pub(crate) fn healthy(&self) -> bool {
        self.healthy.load(Ordering::SeqCst)
    }

    pub(crate) fn fallback(&self) -> &Arc<Memory> {
        &self.fallback
    }

    fn outage_effect(&self) -> &'static str {
        match self.fail {
            FailMode::Open => "serving per-process limits from memory (fail-open)",
            FailMode::Closed => "refusing limited requests (fail-closed)",
        }
    }

    /// In fail-open mode, answers from the per-process fallback; in fail-closed mode, `e`.
    pub(crate) fn or_fallback<T>(&self, e: StoreError, f: impl FnOnce(&Arc<Memory>) -> T) -> Result<T, StoreError> {
        match self.fail {
            FailMode::Open => Ok(f(&self.fallback)),
            FailMode::Closed => Err(e),
        }
    }

    /// Opens a connection and checks it with PING; on success it becomes the live one.
    async fn connect(&self) -> Result<(), String> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.cfg.connect_timeout))
            .set_response_timeout(Some(self.cfg.command_timeout));
        let attempt = async {
            let mut c = self.client.get_multiplexed_async_connection_with_config(&config).await?;
            redis::cmd("PING").query_async::<String>(&mut c).await?;
            Ok::<_, RedisError>(c)
        };
        let bound = self.cfg.connect_timeout + self.cfg.command_timeout;
        let c = match tokio::time::timeout(bound, attempt).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err(format!("no answer within {bound:?}")),
        };
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        *self.conn.lock().unwrap_or_else(|p| p.into_inner()) = Some((generation, c));
        if self.in_outage.swap(false, Ordering::SeqCst) {
            tracing::info!("limits store: Redis reachable again; shared limits restored");
        }
        self.healthy.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Drops connection `generation` (if still the live one) and, on the first failure of an
    /// outage, logs it once and wakes the supervisor.
    fn mark_down(&self, generation: u64, reason: &str) {
        {
            let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
            match &*conn {
                Some((g, _)) if *g == generation => *conn = None,
                Some(_) => return, // a newer connection is already up
                None => {}
            }
        }
        if self.healthy.swap(false, Ordering::SeqCst) {
            self.in_outage.store(true, Ordering::SeqCst);
            tracing::warn!(
                %reason,
                fail_mode = ?self.fail,
                "limits store: Redis unreachable; {}; reconnecting in the background",
                self.outage_effect()
            );
            self.wake.notify_one();
        }
    }

    fn warn_command_error(&self, e: &RedisError) {
        let now = super::Clock::now_ms(&SystemClock);
        let last = self.last_command_warn.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= COMMAND_WARN_EVERY_MS
            && self.last_command_warn.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
        {
            tracing::warn!(error = %e, "limits store: Redis command failed");
        }
    }

    /// Runs `f` on the live connection, bounded by the command timeout.
    async fn exec<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let live = self.conn.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let Some((generation, conn)) = live else {
            return Err(StoreError::Unavailable("Redis unreachable (reconnecting)".into()));
        };
        match tokio::time::timeout(self.cfg.command_timeout, f(conn)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) if is_outage(&e) => {
                self.mark_down(generation, &e.to_string());
                Err(StoreError::Unavailable(e.to_string()))
            }
            Ok(Err(e)) => {
                self.warn_command_error(&e);
                Err(StoreError::Backend(e.to_string()))
            }
            Err(_) => {
                let reason = format!("no answer within {:?}", self.cfg.command_timeout);
                self.mark_down(generation, &reason);
                Err(StoreError::Unavailable(reason))
            }
        }
    }

    async fn run(&self, script: &'static Script, keys: Vec<String>, args: Vec<String>) -> Result<Vec<i64>, StoreError> {
        self.exec(move |mut c| async move {
            let mut inv = script.prepare_invoke();
            for k in &keys {
                inv.key(k);
            }
            for a in &args {
                inv.arg(a);
            }
            inv.invoke_async::<redis::Value>(&mut c).await
        })
        .await
        .and_then(|v| ints(&v).ok_or_else(|| StoreError::Backend(format!("unexpected script reply {v:?}"))))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.exec(|mut c| async move {
            redis::cmd("PING").query_async::<String>(&mut c).await?;
            Ok(())
        })
        .await
    }

    pub(crate) async fn window(
        &self,
        key: &str,
        amount: u64,
        limit: u64,
        win: u64,
        mode: WindowMode,
    ) -> Result<WindowState, StoreError> {
        let mode = match mode {
            WindowMode::Admit => "admit",
            WindowMode::Record => "record",
            WindowMode::Peek => "peek",
        };
        let r = self
            .run(
                &S_WINDOW,
                vec![window_key(key, win)],
                vec![amount.to_string(), limit.to_string(), win.to_string(), mode.into()],
            )
            .await?;
        let [allowed, used, reset] = triple(&r)?;
        Ok(WindowState::new(allowed == 1, u(used), limit, u(reset)))
    }

    /// `Some(in use)` if granted.
    pub(crate) async fn acquire(
        &self,
        key: &str,
        limit: u64,
        lease: u64,
        member: &str,
    ) -> Result<Option<u64>, StoreError> {
        let r = self
            .run(&S_ACQUIRE, vec![slots_key(key)], vec![limit.to_string(), lease.to_string(), member.into()])
            .await?;
        match r.as_slice() {
            [1, n] => Ok(Some(u(*n))),
            [0, _] => Ok(None),
            _ => Err(unexpected(&r)),
        }
    }

    /// Best effort: if it fails the lease expires.
    pub(crate) async fn release(&self, key: &str, member: &str) {
        let (k, m) = (slots_key(key), member.to_owned());
        let result =
            self.exec(|mut c| async move { redis::cmd("ZREM").arg(k).arg(m).query_async::<i64>(&mut c).await }).await;
        if let Err(e) = result {
            tracing::debug!(error = %e, "limits store: slot release failed; its lease will expire");
        }
    }

    pub(crate) async fn renew(&self, key: &str, member: &str, lease: u64) -> Result<bool, StoreError> {
        let r = self.run(&S_RENEW, vec![slots_key(key)], vec![lease.to_string(), member.into()]).await?;
        Ok(r.first() == Some(&1))
    }

    async fn budget_op(
        &self,
        key: &str,
        amount: u64,
        limit: u64,
        period: u64,
        member: &str,
    ) -> Result<(bool, BudgetState), StoreError> {
        let (k, holds) = budget_keys(key, period);
        let lease = self.cfg.reservation_lease.as_millis().clamp(1, 1 << 40) as u64;
        let r = self
            .run(
                &S_RESERVE,
                vec![k, holds],
                vec![amount.to_string(), limit.to_string(), period.to_string(), member.into(), lease.to_string()],
            )
            .await?;
        match r.as_slice() {
            [granted, used, reserved, reset] => {
                Ok((*granted == 1, BudgetState::new(u(*used), u(*reserved), limit, u(*reset))))
            }
            _ => Err(unexpected(&r)),
        }
    }

    pub(crate) async fn reserve(
        &self,
        key: &str,
        amount: u64,
        limit: u64,
        period: u64,
        member: &str,
    ) -> Result<(bool, BudgetState), StoreError> {
        self.budget_op(key, amount, limit, period, member).await
    }

    pub(crate) async fn budget(&self, key: &str, limit: u64, period: u64) -> Result<BudgetState, StoreError> {
        Ok(self.budget_op(key, 0, limit, period, "").await?.1)
    }

    pub(crate) async fn settle(&self, key: &str, member: &str, actual: u64, period: u64) -> Result<u64, StoreError> {
        let (k, holds) = budget_keys(key, period);
        let r =
            self.run(&S_SETTLE, vec![k, holds], vec![actual.to_string(), period.to_string(), member.into()]).await?;
        r.first().map(|&n| u(n)).ok_or_else(|| unexpected(&r))
    }

    /// Best effort: if it fails the hold expires with its lease.
    pub(crate) async fn cancel(&self, key: &str, member: &str, period: u64) {
        let (_, holds) = budget_keys(key, period);
        let m = member.to_owned();
        let result = self
            .exec(|mut c| async move { redis::cmd("ZREM").arg(holds).arg(m).query_async::<i64>(&mut c).await })
            .await;
        if let Err(e) = result {
            tracing::debug!(error = %e, "limits store: reservation cancel failed; its lease will expire");
        }
    }

    pub(crate) async fn breaker_allow(&self, target: &str, cfg: BreakerMs) -> Result<BreakerDecision, StoreError> {
        let r = self
            .run(&S_BREAKER_ALLOW, vec![breaker_key(target)], vec![cfg.probe_timeout.to_string(), cfg.ttl.to_string()])
            .await?;
        match r.as_slice() {
            [0, _] => Ok(BreakerDecision::Allow),
            [1, _] => Ok(BreakerDecision::AllowProbe),
            [2, ms] => Ok(BreakerDecision::reject(u(*ms))),
            _ => Err(unexpected(&r)),
        }
    }

    pub(crate) async fn breaker_record(
        &self,
        target: &str,
        success: bool,
        cfg: BreakerMs,
    ) -> Result<BreakerState, StoreError> {
        let r = self
            .run(
                &S_BREAKER_RECORD,
                vec![breaker_key(target)],
                vec![
                    if success { "1" } else { "0" }.into(),
                    cfg.failures.to_string(),
                    cfg.cooldown.to_string(),
                    cfg.ttl.to_string(),
                ],
            )
            .await?;
        breaker_state_of(&r)
    }

    pub(crate) async fn breaker_state(&self, target: &str) -> Result<BreakerState, StoreError> {
        let r = self.run(&S_BREAKER_STATE, vec![breaker_key(target)], vec![]).await?;
        breaker_state_of(&r)
    }
}

fn breaker_state_of(r: &[i64]) -> Result<BreakerState, StoreError> {
    match r {
        [0, fails] => Ok(BreakerState::Closed { failures: u32::try_from(*fails).unwrap_or(u32::MAX) }),
        [1, _] => Ok(BreakerState::HalfOpen),
        [2, until] => Ok(BreakerState::open(u(*until))),
        _ => Err(unexpected(r)),
    }
}

/// A script reply (an integer or an array of integers) as integers. Decoded here rather than
/// by the driver so that a malformed reply is a command error, not a connection failure.
fn ints(v: &redis::Value) -> Option<Vec<i64>> {
    match v {
        redis::Value::Int(n) => Some(vec![*n]),
        redis::Value::Array(items) => items
            .iter()
            .map(|i| match i {
                redis::Value::Int(n) => Some(*n),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

fn u(n: i64) -> u64 {
    n.max(0) as u64
}

fn triple(r: &[i64]) -> Result<[i64; 3], StoreError> {
    <[i64; 3]>::try_from(r).map_err(|_| unexpected(r))
}

fn unexpected(r: &[i64]) -> StoreError {
    StoreError::Backend(format!("unexpected script reply {r:?}"))
}

/// Keeps the connection alive: while healthy, PINGs every `health_interval` (or right away when
/// woken); while down, reconnects with exponential backoff. Exits when the store is dropped.
async fn supervise(remote: Weak<Remote>, wake: Arc<Notify>) {
    let mut backoff = MIN_BACKOFF;
    loop {
        let Some(r) = remote.upgrade() else { return };
        if r.healthy() {
            let interval = r.cfg.health_interval;
            drop(r);
            let _ = tokio::time::timeout(interval, wake.notified()).await;
            let Some(r) = remote.upgrade() else { return };
            if r.healthy() {
                // An error here marks the backend down (and logs it once).
                let _ = r.ping().await;
            }
            backoff = MIN_BACKOFF;
            continue;
        }
        let max_backoff = r.cfg.reconnect_max_backoff.max(MIN_BACKOFF);
        let connected = r.connect().await.is_ok();
        drop(r);
        if connected {
            backoff = MIN_BACKOFF;
            continue;
        }
        let _ = tokio::time::timeout(backoff, wake.notified()).await;
        backoff = (backoff * 2).min(max_backoff);
    }
}
