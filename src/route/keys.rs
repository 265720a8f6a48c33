//! Gateway keys: who a client is. Stored as SHA-256 hashes (a config file holds no secret) or
//! read from `LIGHTPORT_API_KEYS`; a presented key is hashed and compared with every stored hash
//! in constant time.

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::config::{KeySpec, LimitsSpec};
use super::Only;

/// A gateway key's identity and permissions (never the key itself).
#[derive(Debug, Clone)]
pub struct GatewayKey {
    pub name: String,
    pub metadata: Value,
    /// Routes it may use (`None`: all).
    pub routes: Option<Vec<String>>,
    pub(crate) only: Option<Only>,
    pub limits: Option<LimitsSpec>,
    hash: [u8; 32],
}

#[derive(Debug, Default)]
pub(crate) struct Keys(Vec<GatewayKey>);

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Equality that takes the same time wherever the inputs differ.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn parse_hex(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

impl Keys {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn add_hashed(&mut self, spec: &KeySpec) -> Result<(), String> {
        let hash =
            parse_hex(&spec.sha256).ok_or("a SHA-256 is 64 hexadecimal digits (`printf %s \"$KEY\" | sha256sum`)")?;
        self.0.push(GatewayKey {
            name: spec.name.clone(),
            metadata: Value::Object(spec.metadata.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
            routes: spec.routes.clone(),
            only: spec.only.as_ref().map(|o| Only { targets: o.targets.clone(), providers: o.providers.clone() }),
            limits: spec.limits.clone(),
            hash,
        });
        Ok(())
    }

    /// `name:key` pairs, comma-separated (a key without a name is named `env-<n>`).
    pub fn add_env(&mut self, spec: &str) -> Result<(), String> {
        for (i, item) in spec.split(',').map(str::trim).filter(|s| !s.is_empty()).enumerate() {
            let (name, key) = match item.split_once(':') {
                Some((n, k)) if !n.is_empty() && !k.is_empty() => (n.to_string(), k),
                _ => (format!("env-{}", i + 1), item),
            };
            if key.len() < 16 {
                return Err(format!("LIGHTPORT_API_KEYS: key '{name}' is shorter than 16 characters"));
            }
            self.0.push(GatewayKey {
                name,
                metadata: Value::Object(Default::default()),
                routes: None,
                only: None,
                limits: None,
                hash: sha256(key.as_bytes()),
            });
        }
        Ok(())
    }

    /// The key `presented` is, if any. Every stored hash is compared, whichever matches.
    pub fn find(&self, presented: &str) -> Option<&GatewayKey> {
        let h = sha256(presented.as_bytes());
        let mut found = None;
        for k in &self.0 {
            if constant_time_eq(&k.hash, &h) && found.is_none() {
                found = Some(k);
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_by_hash_only() {
        let mut keys = Keys::default();
        let hash: String = sha256(b"lp-test-key-0123456789").iter().map(|b| format!("{b:02x}")).collect();
        let spec: KeySpec = serde_json::from_value(serde_json::json!({"name": "team-a", "sha256": hash})).unwrap();
        keys.add_hashed(&spec).unwrap();
        keys.add_env("ops:lp-ops-key-abcdefghij").unwrap();
        assert_eq!(keys.find("lp-test-key-0123456789").map(|k| k.name.as_str()), Some("team-a"));
        assert_eq!(keys.find("lp-ops-key-abcdefghij").map(|k| k.name.as_str()), Some("ops"));
        assert!(keys.find("lp-test-key-012345678").is_none());
        assert!(keys.add_env("short:abc").is_err());
        let bad: KeySpec = serde_json::from_value(serde_json::json!({"name": "x", "sha256": "abc"})).unwrap();
        assert!(keys.add_hashed(&bad).is_err());
    }
}
