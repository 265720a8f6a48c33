//! A gateway key's limits, checked before a request goes upstream and settled after its answer:
//! requests per minute, tokens per minute (counted from the answers' usage, streams included),
//! requests in flight, and a spend budget (the estimated cost is reserved first and settled
//! from the real usage, so concurrent requests cannot overrun it). Refusals are 429s with
//! `Retry-After`, and every answer carries OpenAI's `x-ratelimit-*` headers.

use std::time::Duration;

use axum::http::HeaderValue;
use axum::response::Response;
use serde_json::Value;

use super::limits::{Reservation, Slot, Store, StoreError, WindowState};
use crate::error::{Cause, Error};
use crate::route::{GatewayKey, LimitsSpec, Period};

const MINUTE: Duration = Duration::from_secs(60);
/// Output tokens assumed for a budget reservation when the request sets no limit.
pub(super) const DEFAULT_OUTPUT_TOKENS: u64 = 4096;

/// What a request holds from its key's limits until its answer is complete.
#[derive(Default)]
pub(super) struct Admission {
    key: Option<String>,
    limits: Option<LimitsSpec>,
    requests: Option<WindowState>,
    tokens: Option<WindowState>,
    slot: Option<Slot>,
    reservation: Option<Reservation>,
}

/// `6m0s`, `1s`, `250ms`: how OpenAI writes a reset time.
fn reset_text(d: Duration) -> String {
    let ms = d.as_millis() as u64;
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let (m, s) = (ms / 60_000, (ms % 60_000) as f64 / 1000.0);
    if m > 0 {
        format!("{m}m{}s", s.round())
    } else {
        format!("{}s", (s * 10.0).round() / 10.0)
    }
}

fn limited(message: String, code: &str, wait: Duration) -> Error {
    let mut e = Error::new(429, "rate_limit_error", message).with_code(code).with_cause(Cause::Gateway);
    e.retry_after = Some(wait.max(Duration::from_secs(1)));
    e
}

fn store_down(e: StoreError) -> Error {
    let mut e = Error::new(503, "overloaded_error", format!("the limits store is unavailable: {e}"))
        .with_code("limits_unavailable")
        .with_cause(Cause::Gateway);
    e.retry_after = Some(Duration::from_secs(1));
    e
}

fn period(p: Period) -> Duration {
    Duration::from_secs(match p {
        Period::Hour => 3600,
        Period::Day => 86_400,
        Period::Month => 30 * 86_400,
    })
}

/// Micro-dollars, the budget's unit.
fn micros(usd: f64) -> u64 {
    (usd.max(0.0) * 1e6).ceil() as u64
}

impl Admission {
    /// Check `key`'s limits for one request (`estimate`: its cost estimate in US dollars, when
    /// its model is priced); refuse with a 429 when one is spent.
    pub async fn admit(store: &Store, key: &GatewayKey, estimate: Option<f64>) -> Result<Admission, Error> {
        let Some(limits) = key.limits.clone() else { return Ok(Admission::default()) };
        let name = &key.name;
        let mut a = Admission { key: Some(name.clone()), limits: Some(limits.clone()), ..Admission::default() };
        if let Some(tpm) = limits.tpm {
            let w = store.window_peek(&format!("key:{name}:tpm"), tpm, MINUTE).await.map_err(store_down)?;
            a.tokens = Some(w);
            if !w.allowed {
                return Err(limited(
                    format!("key '{name}' used its {tpm} tokens for this minute"),
                    "tokens_limit_exceeded",
                    w.reset_after,
                ));
            }
        }
        if let Some(rpm) = limits.rpm {
            let w = store.window(&format!("key:{name}:rpm"), 1, rpm, MINUTE).await.map_err(store_down)?;
            a.requests = Some(w);
            if !w.allowed {
                return Err(limited(
                    format!("key '{name}' made its {rpm} requests for this minute"),
                    "requests_limit_exceeded",
                    w.reset_after,
                ));
            }
        }
        if let Some(n) = limits.concurrent {
            // The lease outlives any request the gateway lets run (its streams are bounded too).
            let slot = store.acquire(&format!("key:{name}:concurrent"), n, Duration::from_secs(4 * 3600)).await;
            match slot.map_err(store_down)? {
                Some(s) => a.slot = Some(s),
                None => {
                    return Err(limited(
                        format!("key '{name}' has {n} requests in flight already"),
                        "concurrency_limit_exceeded",
                        Duration::from_secs(1),
                    ))
                }
            }
        }
        if let Some(budget) = &limits.budget {
            let Some(estimate) = estimate else {
                return Err(Error::new(
                    403,
                    "permission_error",
                    format!("key '{name}' has a spend budget, and this model has no price in its mapping file"),
                )
                .with_code("unpriced_model"));
            };
            let (limit, per) = (micros(budget.usd), period(budget.period));
            let key = format!("key:{name}:budget");
            match store.reserve(&key, micros(estimate), limit, per).await.map_err(store_down)? {
                Some(r) => a.reservation = Some(r),
                None => {
                    let wait = store.budget(&key, limit, per).await.map(|b| b.reset_after).unwrap_or(per);
                    return Err(limited(
                        format!("key '{name}' has spent its budget of {} USD for this {:?}", budget.usd, budget.period)
                            .to_lowercase(),
                        "budget_exceeded",
                        wait,
                    ));
                }
            }
        }
        Ok(a)
    }

    /// OpenAI's rate-limit headers, from the limits as they were when the request was admitted.
    pub fn decorate(&self, resp: &mut Response) {
        let h = resp.headers_mut();
        use crate::names::{LIMIT_REQUESTS, LIMIT_TOKENS, REMAINING_REQUESTS, REMAINING_TOKENS};
        use crate::names::{RESET_REQUESTS, RESET_TOKENS};
        let kinds = [
            (&self.requests, [LIMIT_REQUESTS, REMAINING_REQUESTS, RESET_REQUESTS]),
            (&self.tokens, [LIMIT_TOKENS, REMAINING_TOKENS, RESET_TOKENS]),
        ];
        for (state, [limit, remaining, reset]) in kinds {
            if let Some(w) = state {
                h.insert(limit, w.limit.into());
                h.insert(remaining, w.remaining.into());
                if let Ok(v) = HeaderValue::from_str(&reset_text(w.reset_after)) {
                    h.insert(reset, v);
                }
            }
        }
    }

    /// The answer is complete: count its tokens, settle its cost (0 when unknown), and give back
    /// its slot.
    pub async fn finish(self, store: &Store, usage: Option<&Value>, cost: Option<f64>) {
        let (Some(name), Some(limits)) = (self.key, self.limits) else { return };
        let tokens = usage.map(|u| {
            let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
            n("prompt_tokens") + n("completion_tokens")
        });
        if let (Some(tpm), Some(t)) = (limits.tpm, tokens.filter(|t| *t > 0)) {
            let _ = store.window_record(&format!("key:{name}:tpm"), t, tpm, MINUTE).await;
        }
        if let Some(r) = self.reservation {
            let _ = store.settle(r, micros(cost.unwrap_or(0.0))).await;
        }
        if let Some(s) = self.slot {
            s.release().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_times_read_like_openais() {
        assert_eq!(reset_text(Duration::from_millis(250)), "250ms");
        assert_eq!(reset_text(Duration::from_millis(1500)), "1.5s");
        assert_eq!(reset_text(Duration::from_secs(360)), "6m0s");
    }
}
