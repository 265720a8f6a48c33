//! The Redis store against a real redis-server started by each test: two `Store`s stand for two
//! replicas sharing one Redis.

mod common;

use std::time::Duration;

use common::redis::{fast_config, raw, wait_until, RedisServer, LONG};
use lightport::server::limits::{
    BreakerConfig, BreakerDecision, BreakerState, FailMode, Store, StoreConfig, StoreError,
};

async fn two_replicas(server: &RedisServer, fail: FailMode) -> (Store, Store) {
    let a = Store::redis_with(&server.url(), fail, fast_config()).await.unwrap();
    let b = Store::redis_with(&server.url(), fail, fast_config()).await.unwrap();
    assert!(a.backend_healthy() && b.backend_healthy());
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_one_window() {
    let server = RedisServer::start();
    let (a, b) = two_replicas(&server, FailMode::Closed).await;
    let mut tasks = Vec::new();
    for i in 0..100 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move { s.window("key:k1:rpm", 1, 60, LONG).await.unwrap() }));
    }
    let mut allowed = 0;
    for t in tasks {
        let w = t.await.unwrap();
        assert!(w.used <= 60, "never over the limit: {w:?}");
        allowed += w.allowed as u32;
    }
    assert_eq!(allowed, 60, "exactly 60 of 100 allowed across both replicas");
    let w = b.window_peek("key:k1:rpm", 60, LONG).await.unwrap();
    assert_eq!((w.used, w.remaining, w.allowed), (60, 0, false));

    // Recorded usage (tokens) goes past the limit and is seen by the other replica.
    let w = a.window_record("key:k1:tpm", 900, 1000, LONG).await.unwrap();
    assert!(w.allowed);
    let w = b.window_record("key:k1:tpm", 200, 1000, LONG).await.unwrap();
    assert_eq!((w.used, w.remaining, w.allowed), (1100, 0, false));
    assert_eq!(a.window_peek("key:k1:tpm", 1000, LONG).await.unwrap().used, 1100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_resets_on_server_time() {
    let server = RedisServer::start();
    let s = Store::redis_with(&server.url(), FailMode::Closed, fast_config()).await.unwrap();
    let win = Duration::from_millis(300);
    let first = s.window("key:k2:rpm", 5, 5, win).await.unwrap();
    assert!(first.allowed);
    assert!(first.reset_after <= win && first.reset_after > Duration::ZERO);
    // Within a window the counter is full, so the first hit allowed again is the first of a
    // new window (refused hits add nothing): it counts exactly 1. Polled, bounded.
    let start = std::time::Instant::now();
    let next = loop {
        let w = s.window("key:k2:rpm", 1, 5, win).await.unwrap();
        if w.allowed {
            break w;
        }
        assert_eq!(w.used, 5);
        assert!(start.elapsed() < common::redis::DEADLINE, "the window never reset");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!((next.used, next.remaining), (1, 4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_one_budget() {
    let server = RedisServer::start();
    let (a, b) = two_replicas(&server, FailMode::Closed).await;
    let mut tasks = Vec::new();
    for i in 0..50 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move { s.reserve("key:k3:spend", 10, 200, LONG).await.unwrap() }));
    }
    let mut granted = Vec::new();
    for t in tasks {
        if let Some(r) = t.await.unwrap() {
            assert!(r.state().used + r.state().reserved <= 200, "{:?}", r.state());
            granted.push(r);
        }
    }
    assert_eq!(granted.len(), 20, "exactly 20 reservations of 10 fit in 200");
    let st = b.budget("key:k3:spend", 200, LONG).await.unwrap();
    assert_eq!((st.used, st.reserved, st.remaining), (0, 200, 0));

    // Settle half for less (5 each) and cancel the rest.
    for (i, r) in granted.into_iter().enumerate() {
        let s = if i % 2 == 0 { &a } else { &b };
        s.settle(r, if i < 10 { 5 } else { 0 }).await.unwrap();
    }
    let st = a.budget("key:k3:spend", 200, LONG).await.unwrap();
    assert_eq!((st.used, st.reserved, st.remaining), (50, 0, 150));

    // Settling above the estimate is charged in full; the next reservation sees it.
    let r = a.reserve("key:k3:spend", 100, 200, LONG).await.unwrap().unwrap();
    b.settle(r, 140).await.unwrap();
    let st = b.budget("key:k3:spend", 200, LONG).await.unwrap();
    assert_eq!((st.used, st.reserved, st.remaining), (190, 0, 10));
    assert!(a.reserve("key:k3:spend", 11, 200, LONG).await.unwrap().is_none());

    // A dropped reservation frees its hold (in a spawned task: poll, bounded).
    let r = a.reserve("key:k3:spend", 10, 200, LONG).await.unwrap().unwrap();
    assert_eq!(b.budget("key:k3:spend", 200, LONG).await.unwrap().reserved, 10);
    drop(r);
    wait_until("the dropped hold is freed", async || b.budget("key:k3:spend", 200, LONG).await.unwrap().reserved == 0)
        .await;
    assert_eq!(b.budget("key:k3:spend", 200, LONG).await.unwrap().used, 190);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_slots_and_leases_expire() {
    let server = RedisServer::start();
    let (a, b) = two_replicas(&server, FailMode::Closed).await;
    let lease = Duration::from_secs(60);
    let mut tasks = Vec::new();
    for i in 0..40 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move { s.acquire("key:k4:conc", 5, lease).await.unwrap() }));
    }
    let mut held = Vec::new();
    for t in tasks {
        held.extend(t.await.unwrap());
    }
    assert_eq!(held.len(), 5, "exactly 5 concurrent slots across both replicas");
    assert!(b.acquire("key:k4:conc", 5, lease).await.unwrap().is_none());
    held.pop().unwrap().release().await;
    let s = b.acquire("key:k4:conc", 5, lease).await.unwrap().expect("freed slot");
    assert_eq!(s.in_use(), 5);
    assert!(s.renew(lease).await.unwrap());

    // A slot whose holder vanished (never released) frees itself when its lease ends.
    let short = Duration::from_millis(1000);
    let crashed = a.acquire("key:k5:conc", 1, short).await.unwrap().expect("slot");
    std::mem::forget(crashed);
    assert!(b.acquire("key:k5:conc", 1, short).await.unwrap().is_none());
    wait_until("the lease expires", async || b.acquire("key:k5:conc", 1, lease).await.unwrap().is_some()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breaker_state_is_shared() {
    let server = RedisServer::start();
    let (a, b) = two_replicas(&server, FailMode::Closed).await;
    let cfg =
        BreakerConfig { failures: 3, cooldown: Duration::from_millis(1500), probe_timeout: Duration::from_secs(60) };
    let t = "target:t1";
    assert_eq!(a.breaker_allow(t, &cfg).await.unwrap(), BreakerDecision::Allow);
    a.breaker_record(t, false, &cfg).await.unwrap();
    b.breaker_record(t, false, &cfg).await.unwrap();
    assert_eq!(b.breaker_state(t, &cfg).await.unwrap(), BreakerState::Closed { failures: 2 });
    let opened = a.breaker_record(t, false, &cfg).await.unwrap();
    assert!(matches!(opened, BreakerState::Open { .. }), "{opened:?}");
    // Opened through `a`, open in `b`.
    assert_eq!(b.breaker_state(t, &cfg).await.unwrap(), opened);
    match b.breaker_allow(t, &cfg).await.unwrap() {
        BreakerDecision::Reject { retry_after } => {
            assert!(retry_after > Duration::ZERO && retry_after <= cfg.cooldown)
        }
        d => panic!("expected a rejection, got {d:?}"),
    }

    // After the cooldown exactly one replica gets the probe.
    wait_until("half-open", async || b.breaker_state(t, &cfg).await.unwrap() == BreakerState::HalfOpen).await;
    assert_eq!(b.breaker_allow(t, &cfg).await.unwrap(), BreakerDecision::AllowProbe);
    assert!(matches!(a.breaker_allow(t, &cfg).await.unwrap(), BreakerDecision::Reject { .. }));
    // The probe succeeds through `b`: closed for `a` too.
    assert_eq!(b.breaker_record(t, true, &cfg).await.unwrap(), BreakerState::Closed { failures: 0 });
    assert_eq!(a.breaker_allow(t, &cfg).await.unwrap(), BreakerDecision::Allow);
    assert_eq!(a.breaker_state(t, &cfg).await.unwrap(), BreakerState::Closed { failures: 0 });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_prefixed_and_expire() {
    let server = RedisServer::start();
    let s = Store::redis_with(&server.url(), FailMode::Closed, fast_config()).await.unwrap();
    s.window("key:k6", 1, 10, Duration::from_secs(60)).await.unwrap();
    let _slot = s.acquire("key:k6", 1, Duration::from_secs(30)).await.unwrap().unwrap();
    let _r = s.reserve("key:k6", 5, 10, Duration::from_secs(86_400)).await.unwrap().unwrap();
    s.breaker_record("target:k6", false, &BreakerConfig::default()).await.unwrap();

    let mut c = raw(&server).await;
    let mut keys: Vec<String> = redis::cmd("KEYS").arg("*").query_async(&mut c).await.unwrap();
    keys.sort();
    assert_eq!(
        keys,
        [
            "lightport:breaker:{target:k6}",
            "lightport:budget:{key:k6}:86400000:holds",
            "lightport:slots:{key:k6}",
            "lightport:win:{key:k6}:60000",
        ]
    );
    for k in &keys {
        let ttl: i64 = redis::cmd("PTTL").arg(k).query_async(&mut c).await.unwrap();
        assert!(ttl > 0, "{k} has no TTL ({ttl})");
    }
    let ttl: i64 = redis::cmd("PTTL").arg("lightport:win:{key:k6}:60000").query_async(&mut c).await.unwrap();
    assert!(ttl <= 60_000);
    // Settling creates the period's spend hash, which expires with the period.
    s.settle(_r, 4).await.unwrap();
    let ttl: i64 = redis::cmd("PTTL").arg("lightport:budget:{key:k6}:86400000").query_async(&mut c).await.unwrap();
    assert!(ttl > 0 && ttl <= 86_400_000, "{ttl}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_open_serves_from_memory_and_recovers() {
    let mut server = RedisServer::start();
    let s = Store::redis_with(&server.url(), FailMode::Open, fast_config()).await.unwrap();
    let cfg = BreakerConfig::default();
    assert_eq!(s.window("key:k7", 1, 60, LONG).await.unwrap().used, 1);
    assert_eq!(s.window("key:k7", 1, 60, LONG).await.unwrap().used, 2);
    let redis_slot = s.acquire("key:k7", 10, LONG).await.unwrap().unwrap();
    let redis_hold = s.reserve("key:k7", 10, 100, LONG).await.unwrap().unwrap();

    server.stop();
    // Every operation still answers, from the per-process fallback (fresh counters).
    let w = s.window("key:k7", 1, 60, LONG).await.unwrap();
    assert_eq!(w.used, 1, "served from memory");
    assert!(!s.backend_healthy());
    assert_eq!(s.window("key:k7", 1, 60, LONG).await.unwrap().used, 2);
    assert!(s.acquire("key:k7", 1, LONG).await.unwrap().is_some());
    let held = s.acquire("key:k7", 1, LONG).await.unwrap().unwrap();
    assert!(s.acquire("key:k7", 1, LONG).await.unwrap().is_none(), "memory limit applies");
    let hold = s.reserve("key:k7", 60, 100, LONG).await.unwrap().unwrap();
    assert!(s.reserve("key:k7", 50, 100, LONG).await.unwrap().is_none());
    s.settle(hold, 30).await.unwrap();
    // A reservation made in Redis, settled during the outage, is charged to memory.
    s.settle(redis_hold, 20).await.unwrap();
    assert_eq!(s.budget("key:k7", 100, LONG).await.unwrap().used, 50);
    redis_slot.release().await; // best effort, no error
    drop(held);
    assert_eq!(s.breaker_allow("target:k7", &cfg).await.unwrap(), BreakerDecision::Allow);
    assert_eq!(s.breaker_record("target:k7", false, &cfg).await.unwrap(), BreakerState::Closed { failures: 1 });
    assert!(!s.backend_healthy());

    server.restart();
    wait_until("the store is healthy again", async || s.backend_healthy()).await;
    // Back on Redis: the restarted server is empty, so the counter starts again at 1 (the
    // fallback's would say 3).
    assert_eq!(s.window("key:k7", 1, 60, LONG).await.unwrap().used, 1);
    let mut c = raw(&server).await;
    let n: i64 =
        redis::cmd("HGET").arg("lightport:win:{key:k7}:1099511627776").arg("n").query_async(&mut c).await.unwrap();
    assert_eq!(n, 1, "the count lives in Redis again");
    assert_eq!(s.breaker_state("target:k7", &cfg).await.unwrap(), BreakerState::Closed { failures: 0 });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_closed_returns_errors_and_recovers() {
    let mut server = RedisServer::start();
    let s = Store::redis_with(&server.url(), FailMode::Closed, fast_config()).await.unwrap();
    assert_eq!(s.window("key:k8", 1, 60, LONG).await.unwrap().used, 1);
    let r = s.reserve("key:k8", 10, 100, LONG).await.unwrap().unwrap();

    server.stop();
    assert!(matches!(s.window("key:k8", 1, 60, LONG).await, Err(StoreError::Unavailable(_))));
    assert!(!s.backend_healthy());
    assert!(s.window_peek("key:k8", 60, LONG).await.is_err());
    assert!(s.acquire("key:k8", 1, LONG).await.is_err());
    assert!(s.reserve("key:k8", 1, 100, LONG).await.is_err());
    assert!(s.settle(r, 5).await.is_err());
    assert!(s.budget("key:k8", 100, LONG).await.is_err());
    let cfg = BreakerConfig::default();
    assert!(s.breaker_allow("target:k8", &cfg).await.is_err());
    assert!(s.breaker_record("target:k8", false, &cfg).await.is_err());
    assert!(s.breaker_state("target:k8", &cfg).await.is_err());

    server.restart();
    wait_until("the store is healthy again", async || s.backend_healthy()).await;
    assert_eq!(s.window("key:k8", 1, 60, LONG).await.unwrap().used, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_redis_is_bounded_by_the_command_timeout() {
    let server = RedisServer::start();
    let config = StoreConfig { command_timeout: Duration::from_millis(250), ..fast_config() };
    let open = Store::redis_with(&server.url(), FailMode::Open, config.clone()).await.unwrap();
    let closed = Store::redis_with(&server.url(), FailMode::Closed, config).await.unwrap();
    assert_eq!(open.window("key:k9", 1, 60, LONG).await.unwrap().used, 1);
    assert_eq!(closed.window("key:k9", 1, 60, LONG).await.unwrap().used, 2);

    server.pause(true); // accepts connections, answers nothing
                        // The guard only stops a hang from blocking the suite; the store must answer by itself.
    let guard = common::redis::DEADLINE;
    let w = tokio::time::timeout(guard, open.window("key:k9", 1, 60, LONG))
        .await
        .expect("bounded by the command timeout")
        .unwrap();
    assert_eq!(w.used, 1, "fail-open answered from memory");
    assert!(!open.backend_healthy());
    let e = tokio::time::timeout(guard, closed.window("key:k9", 1, 60, LONG))
        .await
        .expect("bounded by the command timeout");
    assert!(matches!(e, Err(StoreError::Unavailable(_))), "{e:?}");

    server.pause(false);
    wait_until("both stores are healthy again", async || open.backend_healthy() && closed.backend_healthy()).await;
    // Commands that timed out were still queued in the paused server's socket, which may run
    // them on resume: a timeout can over-count (here up to 4), never under-count.
    let used = closed.window_peek("key:k9", 60, LONG).await.unwrap().used;
    assert!((2..=4).contains(&used), "{used}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_at_start() {
    let mut server = RedisServer::start();
    let url = server.url();
    server.stop();

    let open = Store::redis_with(&url, FailMode::Open, fast_config()).await.unwrap();
    assert!(!open.backend_healthy());
    assert_eq!(open.window("key:k10", 1, 60, LONG).await.unwrap().used, 1);
    let closed = Store::redis_with(&url, FailMode::Closed, fast_config()).await.unwrap();
    assert!(!closed.backend_healthy());
    assert!(matches!(closed.window("key:k10", 1, 60, LONG).await, Err(StoreError::Unavailable(_))));

    server.restart();
    wait_until("both stores connect", async || open.backend_healthy() && closed.backend_healthy()).await;
    assert_eq!(open.window("key:k10", 1, 60, LONG).await.unwrap().used, 1);
    assert_eq!(closed.window("key:k10", 1, 60, LONG).await.unwrap().used, 2);

    assert!(matches!(Store::redis("not a url", FailMode::Open).await, Err(StoreError::InvalidUrl(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_store_stops_its_supervisor() {
    let server = RedisServer::start();
    let s = Store::redis_with(&server.url(), FailMode::Open, fast_config()).await.unwrap();
    // Clones share one backend (one connection); the last drop closes it and ends the
    // background task (which holds only a weak reference).
    let clone = s.clone();
    assert!(clone.backend_healthy());
    let mut c = raw(&server).await;
    let clients: String = redis::cmd("CLIENT").arg("LIST").query_async(&mut c).await.unwrap();
    assert_eq!(clients.lines().count(), 2, "one store connection and this one");
    drop(s);
    assert!(clone.window("key:k11", 1, 1, LONG).await.unwrap().allowed);
    drop(clone);
    wait_until("the store's connection is closed", async || {
        let clients: String = redis::cmd("CLIENT").arg("LIST").query_async(&mut c).await.unwrap();
        clients.lines().count() == 1 // only this inspecting connection
    })
    .await;
}
