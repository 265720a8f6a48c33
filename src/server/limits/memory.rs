//! The per-process store: one mutex over one bounded map.
//!
//! Used as the store itself (`Store::memory`) and as the fail-open fallback of the Redis store.
//! Every entry has an expiry (end of its window or period, last slot lease, breaker idle time);
//! expired entries are swept at most every [`SWEEP_EVERY_MS`] and whenever the map is full.
//! When the map holds `max_keys` live entries, the least recently touched tenth is evicted, so
//! random keys can never grow it without bound.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
#[cfg(test)]
use std::time::Duration;

use super::clock::Clock;
use super::{BreakerDecision, BreakerState, BudgetState, WindowMode, WindowState};

/// How often expired entries are swept, at most.
pub(crate) const SWEEP_EVERY_MS: u64 = 30_000;

/// Breaker timings, in milliseconds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BreakerMs {
    pub failures: u32,
    pub cooldown: u64,
    pub probe_timeout: u64,
    /// How long an untouched breaker entry lives (then it is closed with no failures).
    pub ttl: u64,
}

pub(crate) struct Memory {
    clock: Arc<dyn Clock>,
    max_keys: usize,
    /// Lease of a budget reservation, in milliseconds.
    reservation_lease: u64,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    map: HashMap<String, Entry>,
    tick: u64,
    next_sweep: u64,
    next_id: u64,
}

struct Entry {
    /// `State::tick` at the last access: the eviction order.
    touched: u64,
    /// Milliseconds since the epoch after which the entry is dead.
    expires: u64,
    data: Data,
}

#[derive(Clone)]
enum Data {
    Window {
        no: u64,
        used: u64,
    },
    /// (slot id, lease expiry)
    Slots(Vec<(u64, u64)>),
    Budget {
        no: u64,
        used: u64,
        holds: Vec<Hold>,
    },
    Breaker {
        fails: u32,
        open_until: u64,
        probe_until: u64,
    },
}

#[derive(Clone, Copy)]
struct Hold {
    id: u64,
    amount: u64,
    expires: u64,
}

fn window_key(key: &str, ms: u64) -> String {
    format!("w|{ms}|{key}")
}
fn slots_key(key: &str) -> String {
    format!("s|{key}")
}
fn budget_key(key: &str, ms: u64) -> String {
    format!("b|{ms}|{key}")
}
fn breaker_key(target: &str) -> String {
    format!("c|{target}")
}

impl State {
    fn sweep(&mut self, now: u64) {
        self.map.retain(|_, e| e.expires > now);
    }

    /// Makes room for one more entry: sweeps the expired ones, then evicts the least recently
    /// touched tenth of the cap if the map is still full.
    fn make_room(&mut self, now: u64, max_keys: usize) {
        if self.map.len() < max_keys {
            return;
        }
        self.sweep(now);
        if self.map.len() < max_keys {
            return;
        }
        let keep = max_keys - max_keys / 10 - 1;
        let evict = self.map.len() - keep;
        let mut ticks: Vec<u64> = self.map.values().map(|e| e.touched).collect();
        let (_, threshold, _) = ticks.select_nth_unstable(evict - 1);
        let threshold = *threshold;
        // Ticks are unique, so exactly `evict` entries go.
        self.map.retain(|_, e| e.touched > threshold);
        tracing::debug!(evicted = evict, max_keys, "limits memory store full: evicted least recently used keys");
    }

    /// The live entry for `key`, created (or recreated, if expired) with `init`, and touched.
    fn entry(&mut self, key: String, now: u64, max_keys: usize, init: impl FnOnce() -> Data) -> &mut Entry {
        self.tick += 1;
        let tick = self.tick;
        match self.map.get(&key) {
            Some(e) if e.expires > now => {}
            found => {
                if found.is_none() {
                    self.make_room(now, max_keys);
                }
                let fresh = Entry { touched: tick, expires: u64::MAX, data: init() };
                self.map.insert(key.clone(), fresh);
            }
        }
        let e = self.map.get_mut(&key).expect("entry just ensured");
        e.touched = tick;
        e
    }

    /// The live entry for `key`, if any, without creating or touching it.
    fn peek(&self, key: &str, now: u64) -> Option<&Entry> {
        self.map.get(key).filter(|e| e.expires > now)
    }
}

impl Memory {
    pub(crate) fn new(clock: Arc<dyn Clock>, max_keys: usize, reservation_lease: u64) -> Self {
        Self { clock, max_keys: max_keys.max(10), reservation_lease, state: Mutex::new(State::default()) }
    }

    fn lock(&self) -> (MutexGuard<'_, State>, u64) {
        let now = self.clock.now_ms();
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if now >= st.next_sweep {
            st.sweep(now);
            st.next_sweep = now.saturating_add(SWEEP_EVERY_MS);
        }
        (st, now)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.state.lock().unwrap().map.len()
    }

    #[cfg(test)]
    pub(crate) fn contains_window(&self, key: &str, ms: u64) -> bool {
        self.state.lock().unwrap().map.contains_key(&window_key(key, ms))
    }

    // ---- fixed windows ----

    pub(crate) fn window(&self, key: &str, amount: u64, limit: u64, win: u64, mode: WindowMode) -> WindowState {
        let (mut st, now) = self.lock();
        let no = now / win;
        let end = (no + 1).saturating_mul(win);
        let reset_ms = end - now;
        let k = window_key(key, win);
        if mode == WindowMode::Peek {
            let used = match st.peek(&k, now).map(|e| &e.data) {
                Some(Data::Window { no: n, used }) if *n == no => *used,
                _ => 0,
            };
            return WindowState::new(used < limit, used, limit, reset_ms);
        }
        let e = st.entry(k, now, self.max_keys, || Data::Window { no, used: 0 });
        let Data::Window { no: eno, used } = &mut e.data else { unreachable!("window key holds a window") };
        if *eno != no {
            *eno = no;
            *used = 0;
        }
        let allowed = match mode {
            WindowMode::Admit if used.saturating_add(amount) > limit => false,
            _ => {
                *used = used.saturating_add(amount);
                *used <= limit
            }
        };
        let used = *used;
        e.expires = end;
        WindowState::new(allowed, used, limit, reset_ms)
    }

    // ---- concurrency slots ----

    /// Takes a slot: `Some((id, slots in use including this one))`.
    pub(crate) fn acquire(&self, key: &str, limit: u64, lease: u64) -> Option<(u64, u64)> {
        let (mut st, now) = self.lock();
        st.next_id += 1;
        let id = st.next_id;
        let e = st.entry(slots_key(key), now, self.max_keys, || Data::Slots(Vec::new()));
        let Data::Slots(slots) = &mut e.data else { unreachable!("slots key holds slots") };
        slots.retain(|&(_, exp)| exp > now);
        let granted = (slots.len() as u64) < limit;
        if granted {
            slots.push((id, now.saturating_add(lease)));
        }
        let in_use = slots.len() as u64;
        e.expires = slots.iter().map(|&(_, exp)| exp).max().unwrap_or(now);
        granted.then_some((id, in_use))
    }

    pub(crate) fn release(&self, key: &str, id: u64) {
        let (mut st, _now) = self.lock();
        if let Some(Entry { data: Data::Slots(slots), .. }) = st.map.get_mut(&slots_key(key)) {
            slots.retain(|&(sid, _)| sid != id);
        }
    }

    /// Extends a live slot's lease to `lease` from now; false if the slot is gone.
    pub(crate) fn renew(&self, key: &str, id: u64, lease: u64) -> bool {
        let (mut st, now) = self.lock();
        let k = slots_key(key);
        if st.peek(&k, now).is_none() {
            return false;
        }
        let Some(e) = st.map.get_mut(&k) else {
            return false;
        };
        let Data::Slots(slots) = &mut e.data else {
            return false;
        };
        let Some(slot) = slots.iter_mut().find(|s| s.0 == id && s.1 > now) else {
            return false;
        };
        slot.1 = now.saturating_add(lease);
        e.expires = e.expires.max(slot.1);
        true
    }

    /// Slots currently held for `key`.
    #[cfg(test)]
    pub(crate) fn slots_in_use(&self, key: &str) -> u64 {
        let (st, now) = self.lock();
        match st.peek(&slots_key(key), now).map(|e| &e.data) {
            Some(Data::Slots(s)) => s.iter().filter(|s| s.1 > now).count() as u64,
            _ => 0,
        }
    }

    // ---- budgets ----

    fn budget_view(data: &mut Data, no: u64, now: u64) -> (u64, u64) {
        let Data::Budget { no: bno, used, holds } = data else { unreachable!("budget key holds a budget") };
        if *bno != no {
            *bno = no;
            *used = 0;
        }
        holds.retain(|h| h.expires > now);
        (*used, holds.iter().fold(0u64, |a, h| a.saturating_add(h.amount)))
    }

    /// Reserves `amount`: `Ok((id, state after))`, or `Err(state)` when it does not fit.
    pub(crate) fn reserve(
        &self,
        key: &str,
        amount: u64,
        limit: u64,
        period: u64,
    ) -> Result<(u64, BudgetState), BudgetState> {
        let lease = self.reservation_lease;
        let (mut st, now) = self.lock();
        st.next_id += 1;
        let id = st.next_id;
        let no = now / period;
        let end = (no + 1).saturating_mul(period);
        let e =
            st.entry(budget_key(key, period), now, self.max_keys, || Data::Budget { no, used: 0, holds: Vec::new() });
        let (used, held) = Self::budget_view(&mut e.data, no, now);
        let fits = used.saturating_add(held).saturating_add(amount) <= limit;
        let mut reserved = held;
        if fits {
            if let Data::Budget { holds, .. } = &mut e.data {
                holds.push(Hold { id, amount, expires: now.saturating_add(lease) });
            }
            reserved = held.saturating_add(amount);
        }
        let hold_end = match &e.data {
            Data::Budget { holds, .. } => holds.iter().map(|h| h.expires).max().unwrap_or(0),
            _ => 0,
        };
        e.expires = end.max(hold_end);
        let state = BudgetState::new(used, reserved, limit, end - now);
        if fits {
            Ok((id, state))
        } else {
            Err(state)
        }
    }

    /// Frees hold `id` (if still there) and charges `actual` to the current period.
    pub(crate) fn settle(&self, key: &str, id: Option<u64>, actual: u64, period: u64) -> u64 {
        let (mut st, now) = self.lock();
        let no = now / period;
        let end = (no + 1).saturating_mul(period);
        let e =
            st.entry(budget_key(key, period), now, self.max_keys, || Data::Budget { no, used: 0, holds: Vec::new() });
        Self::budget_view(&mut e.data, no, now);
        let Data::Budget { used, holds, .. } = &mut e.data else { unreachable!("budget key holds a budget") };
        if let Some(id) = id {
            holds.retain(|h| h.id != id);
        }
        *used = used.saturating_add(actual);
        let used = *used;
        let hold_end = holds.iter().map(|h| h.expires).max().unwrap_or(0);
        e.expires = end.max(hold_end);
        used
    }

    /// Frees hold `id` without charging anything.
    pub(crate) fn cancel(&self, key: &str, id: u64, period: u64) {
        let (mut st, _now) = self.lock();
        if let Some(Entry { data: Data::Budget { holds, .. }, .. }) = st.map.get_mut(&budget_key(key, period)) {
            holds.retain(|h| h.id != id);
        }
    }

    pub(crate) fn budget(&self, key: &str, limit: u64, period: u64) -> BudgetState {
        let (st, now) = self.lock();
        let no = now / period;
        let end = (no + 1).saturating_mul(period);
        let (used, reserved) = match st.peek(&budget_key(key, period), now) {
            Some(e) => {
                let mut data = e.data.clone();
                Self::budget_view(&mut data, no, now)
            }
            None => (0, 0),
        };
        BudgetState::new(used, reserved, limit, end - now)
    }

    // ---- circuit breakers ----

    pub(crate) fn breaker_allow(&self, target: &str, cfg: BreakerMs) -> BreakerDecision {
        let (mut st, now) = self.lock();
        let k = breaker_key(target);
        let Some(Entry { data: Data::Breaker { open_until, probe_until, .. }, .. }) = st.peek(&k, now) else {
            return BreakerDecision::Allow;
        };
        let (open_until, probe_until) = (*open_until, *probe_until);
        if open_until == 0 {
            return BreakerDecision::Allow;
        }
        if open_until > now {
            return BreakerDecision::reject(open_until - now);
        }
        if probe_until > now {
            return BreakerDecision::reject(probe_until - now);
        }
        let e = st.entry(k, now, self.max_keys, || Data::Breaker { fails: 0, open_until: 0, probe_until: 0 });
        if let Data::Breaker { probe_until, .. } = &mut e.data {
            *probe_until = now.saturating_add(cfg.probe_timeout);
        }
        e.expires = now.saturating_add(cfg.ttl);
        BreakerDecision::AllowProbe
    }

    pub(crate) fn breaker_record(&self, target: &str, success: bool, cfg: BreakerMs) -> BreakerState {
        let (mut st, now) = self.lock();
        let k = breaker_key(target);
        if success {
            match st.peek(&k, now).map(|e| &e.data) {
                Some(Data::Breaker { open_until, .. }) if *open_until > now => {
                    // A late success from a request sent before the breaker opened.
                    return BreakerState::open(*open_until);
                }
                Some(_) => {
                    st.map.remove(&k);
                }
                None => {}
            }
            return BreakerState::Closed { failures: 0 };
        }
        let e = st.entry(k, now, self.max_keys, || Data::Breaker { fails: 0, open_until: 0, probe_until: 0 });
        let Data::Breaker { fails, open_until, probe_until } = &mut e.data else {
            unreachable!("breaker key holds a breaker")
        };
        if *open_until > now {
            return BreakerState::open(*open_until);
        }
        *fails = fails.saturating_add(1);
        e.expires = now.saturating_add(cfg.ttl);
        // Half-open (the probe failed) or the threshold is reached: open for a cooldown.
        if *open_until > 0 || *fails >= cfg.failures {
            *open_until = now.saturating_add(cfg.cooldown).max(1);
            *probe_until = 0;
            return BreakerState::open(*open_until);
        }
        BreakerState::Closed { failures: *fails }
    }

    pub(crate) fn breaker_state(&self, target: &str) -> BreakerState {
        let (st, now) = self.lock();
        match st.peek(&breaker_key(target), now).map(|e| &e.data) {
            Some(Data::Breaker { fails, open_until, .. }) => {
                if *open_until == 0 {
                    BreakerState::Closed { failures: *fails }
                } else if *open_until > now {
                    BreakerState::open(*open_until)
                } else {
                    BreakerState::HalfOpen
                }
            }
            _ => BreakerState::Closed { failures: 0 },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::clock::ManualClock;
    use super::super::WindowMode::{Admit, Peek};
    use super::*;

    const T0: u64 = 1_000_000 * 60_000;

    fn mem(max_keys: usize) -> (Memory, ManualClock) {
        let clock = ManualClock::new(T0);
        (Memory::new(Arc::new(clock.clone()), max_keys, 60_000), clock)
    }

    #[test]
    fn key_cap_evicts_least_recently_used() {
        let (m, _clock) = mem(100);
        m.window("first", 1, 10, 60_000, Admit);
        for i in 0..1000 {
            m.window(&format!("k{i}"), 1, 10, 60_000, Admit);
            // Keep "first" recently used for the first half, then let it age.
            if i < 500 {
                m.window("first", 0, 10, 60_000, Admit);
            }
            assert!(m.len() <= 100, "len {} over the cap", m.len());
        }
        assert!(m.contains_window("k999", 60_000), "newest key kept");
        assert!(!m.contains_window("k0", 60_000), "oldest key evicted");
        assert!(!m.contains_window("first", 60_000), "aged key evicted");
        // The newest key still counts correctly.
        assert_eq!(m.window("k999", 1, 10, 60_000, Admit).used, 2);
    }

    #[test]
    fn full_map_sweeps_expired_before_evicting_live_keys() {
        let (m, clock) = mem(100);
        for i in 0..99 {
            m.window(&format!("old{i}"), 1, 10, 1_000, Admit);
        }
        assert_eq!(m.len(), 99);
        clock.advance(Duration::from_secs(2)); // every `old` window has ended
        for i in 0..99 {
            m.window(&format!("new{i}"), 1, 10, 1_000, Admit);
        }
        assert_eq!(m.len(), 99, "expired entries made room; no live one evicted");
        for i in 0..99 {
            assert!(m.contains_window(&format!("new{i}"), 1_000));
        }
    }

    #[test]
    fn expired_entries_are_swept_periodically() {
        let (m, clock) = mem(100_000);
        for i in 0..50 {
            m.window(&format!("k{i}"), 1, 10, 60_000, Admit);
            m.acquire(&format!("s{i}"), 1, 5_000);
            let _ = m.reserve(&format!("b{i}"), 1, 10, 60_000);
        }
        assert_eq!(m.len(), 150);
        clock.advance(Duration::from_millis(SWEEP_EVERY_MS + 60_000));
        m.window("fresh", 1, 10, 60_000, Admit);
        assert_eq!(m.len(), 1, "only the fresh window is left");
    }

    #[test]
    fn peeks_do_not_create_entries() {
        let (m, _clock) = mem(100);
        for i in 0..500 {
            let s = m.window(&format!("k{i}"), 0, 10, 60_000, Peek);
            assert_eq!(s.used, 0);
            m.budget(&format!("b{i}"), 10, 60_000);
            m.breaker_state(&format!("c{i}"));
        }
        assert_eq!(m.len(), 0);
        assert_eq!(m.slots_in_use("nothing"), 0);
    }
}
