//! The memory store through the public API, on a manual clock (no sleeps).

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use lightport::server::limits::{
    BreakerConfig, BreakerDecision, BreakerState, ManualClock, Store, StoreConfig, StoreError,
};

/// A whole number of minutes, hours and days since the epoch: windows start here.
const T0: u64 = 20_000 * 86_400_000;
const MIN: Duration = Duration::from_secs(60);

fn store() -> (Store, ManualClock) {
    let clock = ManualClock::new(T0);
    let config = StoreConfig { reservation_lease: Duration::from_secs(120), ..StoreConfig::default() };
    (Store::memory_with(&config, Arc::new(clock.clone())), clock)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[tokio::test]
async fn window_counts_refuses_and_resets() {
    let (s, clock) = store();
    clock.advance(ms(15_000));
    for i in 1..=3 {
        let w = s.window("key:a:rpm", 1, 3, MIN).await.unwrap();
        assert!(w.allowed);
        assert_eq!((w.used, w.remaining, w.limit), (i, 3 - i, 3));
        assert_eq!(w.reset_after, ms(45_000));
    }
    let w = s.window("key:a:rpm", 1, 3, MIN).await.unwrap();
    assert!(!w.allowed);
    assert_eq!((w.used, w.remaining), (3, 0), "a refused hit adds nothing");

    // Still the same window 1 ms before its end.
    clock.advance(ms(44_999));
    let w = s.window("key:a:rpm", 1, 3, MIN).await.unwrap();
    assert!(!w.allowed);
    assert_eq!(w.reset_after, ms(1));

    // The next window starts from zero.
    clock.advance(ms(1));
    let w = s.window("key:a:rpm", 1, 3, MIN).await.unwrap();
    assert!(w.allowed);
    assert_eq!((w.used, w.remaining), (1, 2));
    assert_eq!(w.reset_after, MIN);

    // Other keys and other window lengths are separate counters.
    let w = s.window("key:b:rpm", 2, 3, MIN).await.unwrap();
    assert_eq!(w.used, 2);
    let w = s.window("key:a:rpm", 1, 3, Duration::from_secs(3600)).await.unwrap();
    assert_eq!(w.used, 1);
    // An amount larger than the limit never fits.
    let w = s.window("key:c:rpm", 4, 3, MIN).await.unwrap();
    assert!(!w.allowed);
    assert_eq!(w.used, 0);
}

#[tokio::test]
async fn window_record_and_peek() {
    let (s, clock) = store();
    let w = s.window_peek("key:a:tpm", 1000, MIN).await.unwrap();
    assert!(w.allowed);
    assert_eq!((w.used, w.remaining), (0, 1000));

    let w = s.window_record("key:a:tpm", 700, 1000, MIN).await.unwrap();
    assert!(w.allowed);
    assert_eq!(w.used, 700);
    // Usage is recorded even past the limit.
    let w = s.window_record("key:a:tpm", 500, 1000, MIN).await.unwrap();
    assert!(!w.allowed);
    assert_eq!((w.used, w.remaining), (1200, 0));

    let w = s.window_peek("key:a:tpm", 1000, MIN).await.unwrap();
    assert!(!w.allowed);
    assert_eq!(w.used, 1200);
    // Peeking adds nothing.
    assert_eq!(s.window_peek("key:a:tpm", 1000, MIN).await.unwrap().used, 1200);

    clock.advance(MIN);
    let w = s.window_peek("key:a:tpm", 1000, MIN).await.unwrap();
    assert!(w.allowed);
    assert_eq!(w.used, 0);
}

#[tokio::test]
async fn slots_limit_release_and_lease_expiry() {
    let (s, clock) = store();
    let lease = ms(10_000);
    let a = s.acquire("key:a:conc", 2, lease).await.unwrap().expect("first slot");
    let b = s.acquire("key:a:conc", 2, lease).await.unwrap().expect("second slot");
    assert_eq!((a.in_use(), b.in_use()), (1, 2));
    assert!(s.acquire("key:a:conc", 2, lease).await.unwrap().is_none(), "full");
    // Other keys have their own slots.
    assert!(s.acquire("key:b:conc", 2, lease).await.unwrap().is_some());

    a.release().await;
    let c = s.acquire("key:a:conc", 2, lease).await.unwrap().expect("released slot reused");
    assert_eq!(c.in_use(), 2);
    drop(c);
    let d = s.acquire("key:a:conc", 2, lease).await.unwrap().expect("dropped slot reused");
    assert!(s.acquire("key:a:conc", 2, lease).await.unwrap().is_none());

    // `b` and `d` are never released: their leases end (a crashed replica's slots come back).
    clock.advance(ms(9_999));
    assert!(s.acquire("key:a:conc", 2, lease).await.unwrap().is_none());
    clock.advance(ms(1));
    let e = s.acquire("key:a:conc", 2, lease).await.unwrap().expect("expired lease freed");
    assert_eq!(e.in_use(), 1);
    assert!(!b.renew(lease).await.unwrap(), "an expired slot cannot be renewed");
    drop((b, d));

    // Renewal keeps a slot past its first lease.
    clock.advance(ms(5_000));
    assert!(e.renew(lease).await.unwrap());
    clock.advance(ms(9_000)); // 14 s after taking it, 9 s after renewing
    let f = s.acquire("key:a:conc", 1, lease).await.unwrap();
    assert!(f.is_none(), "the renewed slot is still held");
    clock.advance(ms(1_000));
    assert!(s.acquire("key:a:conc", 1, lease).await.unwrap().is_some());
}

#[tokio::test]
async fn budget_reserve_settle_arithmetic() {
    let (s, clock) = store();
    let day = Duration::from_secs(86_400);
    let key = "key:a:spend:day";
    let r1 = s.reserve(key, 30, 100, day).await.unwrap().expect("30 fits");
    assert_eq!(r1.amount(), 30);
    let st = r1.state();
    assert_eq!((st.used, st.reserved, st.remaining), (0, 30, 70));
    let r2 = s.reserve(key, 60, 100, day).await.unwrap().expect("90 fits");
    assert_eq!(r2.state().remaining, 10);
    assert!(s.reserve(key, 11, 100, day).await.unwrap().is_none(), "101 > 100");

    // Settling for less frees the difference.
    s.settle(r1, 10).await.unwrap();
    let b = s.budget(key, 100, day).await.unwrap();
    assert_eq!((b.used, b.reserved, b.remaining), (10, 60, 30));
    let r3 = s.reserve(key, 30, 100, day).await.unwrap().expect("exactly 100 fits");
    assert_eq!(r3.state().remaining, 0);
    assert!(s.reserve(key, 1, 100, day).await.unwrap().is_none());

    // Settling for more than reserved is charged in full.
    s.settle(r2, 80).await.unwrap();
    let b = s.budget(key, 100, day).await.unwrap();
    assert_eq!((b.used, b.reserved, b.remaining), (90, 30, 0));

    // A dropped reservation is freed without charge.
    drop(r3);
    let b = s.budget(key, 100, day).await.unwrap();
    assert_eq!((b.used, b.reserved, b.remaining), (90, 0, 10));

    // A reservation never settled stops counting after its lease (120 s here)...
    let r4 = s.reserve(key, 10, 100, day).await.unwrap().expect("10 fits");
    clock.advance(ms(120_000));
    let b = s.budget(key, 100, day).await.unwrap();
    assert_eq!((b.used, b.reserved), (90, 0));
    // ...but a late settle still charges the actual amount.
    s.settle(r4, 7).await.unwrap();
    assert_eq!(s.budget(key, 100, day).await.unwrap().used, 97);

    // The next period starts from zero; outstanding holds carry over.
    clock.set_ms(T0 + 86_399_000);
    let r5 = s.reserve(key, 3, 100, day).await.unwrap().expect("3 fits");
    assert_eq!(r5.state().remaining, 0);
    clock.advance(ms(1_000));
    let b = s.budget(key, 100, day).await.unwrap();
    assert_eq!((b.used, b.reserved, b.remaining), (0, 3, 97));
    assert_eq!(b.reset_after, day);
    s.settle(r5, 3).await.unwrap();
    assert_eq!(s.budget(key, 100, day).await.unwrap().used, 3);
}

#[tokio::test]
async fn breaker_opens_probes_and_closes() {
    let (s, clock) = store();
    let cfg = BreakerConfig { failures: 3, cooldown: ms(10_000), probe_timeout: ms(5_000) };
    let t = "target:a";
    assert_eq!(s.breaker_allow(t, &cfg).await.unwrap(), BreakerDecision::Allow);
    assert_eq!(s.breaker_record(t, false, &cfg).await.unwrap(), BreakerState::Closed { failures: 1 });
    s.breaker_record(t, false, &cfg).await.unwrap();
    // A success resets the consecutive count.
    assert_eq!(s.breaker_record(t, true, &cfg).await.unwrap(), BreakerState::Closed { failures: 0 });
    s.breaker_record(t, false, &cfg).await.unwrap();
    s.breaker_record(t, false, &cfg).await.unwrap();
    let until = UNIX_EPOCH + ms(T0 + 10_000);
    assert_eq!(s.breaker_record(t, false, &cfg).await.unwrap(), BreakerState::Open { until });
    assert_eq!(s.breaker_state(t, &cfg).await.unwrap(), BreakerState::Open { until });
    assert_eq!(s.breaker_allow(t, &cfg).await.unwrap(), BreakerDecision::Reject { retry_after: ms(10_000) });
    // A late success from before the breaker opened is ignored.
    assert_eq!(s.breaker_record(t, true, &cfg).await.unwrap(), BreakerState::Open { until });

    // Cooldown over: half-open, one probe at a time.
    clock.advance(ms(10_000));
    assert_eq!(s.breaker_state(t, &cfg).await.unwrap(), BreakerState::HalfOpen);
    assert_eq!(s.breaker_allow(t, &cfg).await.unwrap(), BreakerDecision::AllowProbe);
    assert_eq!(s.breaker_allow(t, &cfg).await.unwrap(), BreakerDecision::Reject { retry_after: ms(5_000) });
    // The probe fails: open again for a full cooldown.
    assert_eq!(
        s.breaker_record(t, false, &cfg).await.unwrap(),
        BreakerState::Open { until: UNIX_EPOCH + ms(T0 + 20_000) }
    );
    clock.advance(ms(10_000));
    assert_eq!(s.breaker_allow(t, &cfg).await.unwrap(), BreakerDecision::AllowProbe);
    // The probe never reports: after the probe timeout another probe goes.
    clock.advance(ms(5_000));
    assert_eq!(s.breaker_allow(t, &cfg).await.unwrap(), BreakerDecision::AllowProbe);
    // It succeeds: closed.
    assert_eq!(s.breaker_record(t, true, &cfg).await.unwrap(), BreakerState::Closed { failures: 0 });
    assert_eq!(s.breaker_allow(t, &cfg).await.unwrap(), BreakerDecision::Allow);
    assert_eq!(s.breaker_state(t, &cfg).await.unwrap(), BreakerState::Closed { failures: 0 });
    // Other targets were never affected.
    assert_eq!(s.breaker_allow("target:b", &cfg).await.unwrap(), BreakerDecision::Allow);
}

#[tokio::test]
async fn invalid_arguments_are_refused() {
    let (s, _clock) = store();
    assert!(matches!(s.window("", 1, 1, MIN).await, Err(StoreError::InvalidArgument(_))));
    assert!(matches!(s.window(&"x".repeat(513), 1, 1, MIN).await, Err(StoreError::InvalidArgument(_))));
    assert!(matches!(s.window("k", 1, 1, Duration::ZERO).await, Err(StoreError::InvalidArgument(_))));
    assert!(matches!(s.acquire("k", 1, Duration::from_micros(10)).await, Err(StoreError::InvalidArgument(_))));
    assert!(matches!(s.reserve("k", 1, 1, Duration::ZERO).await, Err(StoreError::InvalidArgument(_))));
    assert!(s.backend_healthy(), "a memory store is always healthy");
}

#[tokio::test]
async fn clones_share_state() {
    let (s, _clock) = store();
    let t = s.clone();
    s.window("k", 1, 2, MIN).await.unwrap();
    assert_eq!(t.window("k", 1, 2, MIN).await.unwrap().used, 2);
    assert!(!s.window("k", 1, 2, MIN).await.unwrap().allowed);
}
