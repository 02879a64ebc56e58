//! Prompt reads served near the agents: the ETL's answer to `GET /api/public/v2/prompts/...`
//! is kept for a short time, keyed by the caller's credentials and the URL, first in the
//! isolate's memory and then in the location's Workers Cache (shared by its isolates), so a
//! deployment that fetches its prompt on every request asks the ETL about once per TTL. A label
//! moved elsewhere is therefore seen within one TTL (`PROMPT_CACHE_TTL_MS`, 10 s by default,
//! rounded up to whole seconds for the Workers Cache); a prompt written through an isolate drops
//! that caller's entries in its memory at once.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

/// Whether a request is a prompt read the cache may answer.
pub fn cacheable(method: &str, path: &str) -> bool {
    method == "GET" && path.starts_with("/api/public/v2/prompts/")
}

/// Whether a request changes prompts (so the caller's cached reads are dropped).
pub fn invalidates(method: &str, path: &str) -> bool {
    method != "GET" && path.starts_with("/api/public/v2/prompts")
}

fn caller(authorization: &str) -> [u8; 32] {
    Sha256::digest(authorization.as_bytes()).into()
}

/// The Workers Cache key of a read: a URL only this edge uses, holding a hash of the caller's
/// credentials (never the credentials themselves) and the requested path and query.
pub fn shared_key(authorization: &str, url: &str) -> String {
    format!(
        "https://prompt-cache.agenttrace.invalid/{}{url}",
        hex::encode(caller(authorization))
    )
}

/// `Cache-Control` for the Workers Cache: the TTL in whole seconds, rounded up.
pub fn cache_control(ttl_ms: u64) -> String {
    format!("public, max-age={}", ttl_ms.div_ceil(1000).max(1))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cached {
    pub status: u16,
    pub body: Vec<u8>,
}

pub struct PromptCache {
    ttl_ms: u64,
    max_entries: usize,
    entries: HashMap<([u8; 32], String), (u64, Cached)>,
}

impl PromptCache {
    pub fn new(ttl_ms: u64, max_entries: usize) -> Self {
        PromptCache {
            ttl_ms,
            max_entries,
            entries: HashMap::new(),
        }
    }

    pub fn get(&self, authorization: &str, url: &str, now_ms: u64) -> Option<Cached> {
        let (stored_at, cached) = self.entries.get(&(caller(authorization), url.to_owned()))?;
        (now_ms.saturating_sub(*stored_at) < self.ttl_ms).then(|| cached.clone())
    }

    /// Keeps a successful answer (errors are not cached: a prompt created next is seen at once).
    pub fn put(&mut self, authorization: &str, url: &str, answer: Cached, now_ms: u64) {
        if self.ttl_ms == 0 || answer.status != 200 {
            return;
        }
        if self.entries.len() >= self.max_entries {
            let ttl = self.ttl_ms;
            self.entries.retain(|_, (at, _)| now_ms.saturating_sub(*at) < ttl);
            if self.entries.len() >= self.max_entries {
                self.entries.clear();
            }
        }
        self.entries
            .insert((caller(authorization), url.to_owned()), (now_ms, answer));
    }

    /// Drops the caller's entries (after it wrote a prompt).
    pub fn forget(&mut self, authorization: &str) {
        let key = caller(authorization);
        self.entries.retain(|(who, _), _| *who != key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(body: &str) -> Cached {
        Cached {
            status: 200,
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn reads_are_kept_for_a_ttl_per_caller_and_dropped_on_write() {
        let mut cache = PromptCache::new(10_000, 100);
        let url = "/api/public/v2/prompts/greeting";
        cache.put("Basic a", url, answer("v1"), 1_000);
        assert_eq!(cache.get("Basic a", url, 5_000), Some(answer("v1")));
        assert_eq!(cache.get("Basic b", url, 5_000), None, "another caller's key");
        assert_eq!(cache.get("Basic a", url, 11_000), None, "expired after the TTL");
        cache.put("Basic a", url, answer("v2"), 20_000);
        cache.forget("Basic a");
        assert_eq!(cache.get("Basic a", url, 20_001), None);
        cache.put(
            "Basic a",
            url,
            Cached {
                status: 404,
                body: Vec::new(),
            },
            30_000,
        );
        assert_eq!(cache.get("Basic a", url, 30_001), None, "errors are not kept");
        assert!(cacheable("GET", url) && !cacheable("POST", url));
        assert!(invalidates("PATCH", "/api/public/v2/prompts/greeting/versions/2"));
        let key = shared_key("Basic secret", "/api/public/v2/prompts/greeting?label=production");
        assert!(!key.contains("secret") && key.ends_with("/api/public/v2/prompts/greeting?label=production"));
        assert_eq!(cache_control(1500), "public, max-age=2");
    }
}
