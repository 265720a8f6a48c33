//! What a call costs: a model's prices (from its mapping file) applied to the usage an answer
//! reports, cache reads and writes, reasoning tokens, per-request fees and prompt-length tiers
//! included. A model without a price is unpriced, never free.

use serde_json::Value;

use crate::expr::glob::Glob;
use crate::spec::PriceSpec;

/// The prices of a provider's models, most specific pattern first.
#[derive(Debug, Default)]
pub(crate) struct Prices(Vec<(Glob, PriceSpec)>);

impl Prices {
    pub fn new(specs: &std::collections::BTreeMap<String, PriceSpec>) -> Prices {
        let mut v: Vec<(Glob, PriceSpec)> = specs.iter().map(|(k, p)| (Glob::new(k), p.clone())).collect();
        v.sort_by_key(|(g, _)| std::cmp::Reverse(g.specificity()));
        Prices(v)
    }

    /// The price of `model`, if it has one.
    pub fn of(&self, model: &str) -> Option<&PriceSpec> {
        self.0.iter().find(|(g, _)| g.matches(model)).map(|(_, p)| p)
    }
}

/// Token counts read from an OpenAI-shaped `usage` object.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tokens {
    /// All prompt tokens, cached ones included.
    pub prompt: u64,
    pub completion: u64,
    pub cache_read: u64,
    /// Prompt tokens written to the cache (all lifetimes).
    pub cache_write: u64,
    /// Of those, written to a 1-hour cache.
    pub cache_write_1h: u64,
    /// Completion tokens spent on reasoning.
    pub reasoning: u64,
}

impl Tokens {
    /// Read a canonical `usage` object.
    pub fn from_usage(usage: &Value) -> Tokens {
        let n = |v: Option<&Value>, k: &str| v.and_then(|v| v.get(k)).and_then(Value::as_u64).unwrap_or(0);
        let (u, prompt, completion) =
            (Some(usage), usage.get("prompt_tokens_details"), usage.get("completion_tokens_details"));
        Tokens {
            prompt: n(u, "prompt_tokens"),
            completion: n(u, "completion_tokens"),
            cache_read: n(prompt, "cached_tokens"),
            cache_write: n(prompt, "cache_write_tokens"),
            cache_write_1h: n(prompt, "cache_write_1h_tokens"),
            reasoning: n(completion, "reasoning_tokens"),
        }
    }
}

/// The cost of these tokens at this price, in US dollars.
pub fn cost(price: &PriceSpec, t: &Tokens) -> f64 {
    let tier = price.tiers.iter().filter(|tier| t.prompt > tier.above).max_by_key(|tier| tier.above);
    let input = tier.and_then(|t| t.input).unwrap_or(price.input);
    let output = tier.and_then(|t| t.output).unwrap_or(price.output);
    let cache_read = tier.and_then(|t| t.cache_read).or(price.cache_read).unwrap_or(input);
    let cache_write = tier.and_then(|t| t.cache_write).or(price.cache_write).unwrap_or(input);
    let cache_write_1h = price.cache_write_1h.unwrap_or(cache_write);
    let reasoning = price.reasoning.unwrap_or(output);
    let write_1h = t.cache_write_1h.min(t.cache_write);
    let write_5m = t.cache_write - write_1h;
    let uncached = t.prompt.saturating_sub(t.cache_read + t.cache_write);
    let reasoning_tokens = t.reasoning.min(t.completion);
    let per_million = uncached as f64 * input
        + t.cache_read as f64 * cache_read
        + write_5m as f64 * cache_write
        + write_1h as f64 * cache_write_1h
        + (t.completion - reasoning_tokens) as f64 * output
        + reasoning_tokens as f64 * reasoning;
    per_million / 1_000_000.0 + price.request.unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn price(v: Value) -> PriceSpec {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn costs_match_hand_computed_ones() {
        // 3 $/M in, 15 $/M out, cache read 0.30, 5-minute write 3.75, 1-hour write 6.00.
        let p =
            price(json!({"input": 3.0, "output": 15.0, "cache_read": 0.3, "cache_write": 3.75, "cache_write_1h": 6.0}));
        let usage = json!({"prompt_tokens": 10_000, "completion_tokens": 2_000, "prompt_tokens_details":
            {"cached_tokens": 6_000, "cache_write_tokens": 3_000, "cache_write_1h_tokens": 1_000}});
        let t = Tokens::from_usage(&usage);
        // 1,000 uncached × 3 + 6,000 × 0.30 + 2,000 × 3.75 + 1,000 × 6.00 + 2,000 × 15, per million.
        let hand = (1_000.0 * 3.0 + 6_000.0 * 0.3 + 2_000.0 * 3.75 + 1_000.0 * 6.0 + 2_000.0 * 15.0) / 1e6;
        assert!((cost(&p, &t) - hand).abs() < 1e-12, "{} vs {hand}", cost(&p, &t));
        assert!((hand - 0.0483).abs() < 1e-12);

        // Reasoning priced apart, a request fee, and a long-prompt tier.
        let p = price(json!({"input": 1.25, "output": 10.0, "reasoning": 12.0, "request": 0.001,
            "tiers": [{"above": 200_000, "input": 2.5, "output": 15.0}]}));
        let short = Tokens { prompt: 100_000, completion: 1_000, reasoning: 400, ..Tokens::default() };
        let hand = (100_000.0 * 1.25 + 600.0 * 10.0 + 400.0 * 12.0) / 1e6 + 0.001;
        assert!((cost(&p, &short) - hand).abs() < 1e-12);
        let long = Tokens { prompt: 250_000, completion: 1_000, ..Tokens::default() };
        let hand = (250_000.0 * 2.5 + 1_000.0 * 15.0) / 1e6 + 0.001;
        assert!((cost(&p, &long) - hand).abs() < 1e-12);
    }

    #[test]
    fn the_most_specific_pattern_prices_a_model() {
        let specs = [
            ("model-*".to_string(), price(json!({"input": 1.0, "output": 2.0}))),
            ("model-large*".to_string(), price(json!({"input": 5.0, "output": 10.0}))),
        ]
        .into_iter()
        .collect();
        let prices = Prices::new(&specs);
        assert_eq!(prices.of("model-large-2").unwrap().input, 5.0);
        assert_eq!(prices.of("model-small").unwrap().input, 1.0);
        assert!(prices.of("other").is_none());
    }
}
