//! API-key checks: the ETL decides (`POST /v1/keys/verify`, signed like a batch), and the
//! isolate caches its answers, positive and negative, for a short time, so an agent's steady
//! stream of requests costs one round trip per TTL.
//!
//! Cache keys are SHA-256 of `public:secret`: a secret is never kept in memory as such.

use std::collections::HashMap;

use agenttrace_redact::Rules;
use agenttrace_schemas::Scope;
use agenttrace_schemas::batch::{KeyCheckRequest, KeyCheckResponse};
use agenttrace_schemas::credentials::Credentials;
use serde::Deserialize;
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyVerdict {
    Valid {
        project_id: String,
        /// What to redact from the project's events before they are buffered.
        redaction: Rules,
    },
    /// Refused, with the HTTP status (401 or 403) and the reason for the agent.
    Refused { status: u16, message: String },
}

/// Reads the ETL's answer to a verification request; `Err` means the ETL could not decide (it
/// is unavailable), which is never cached.
pub fn verdict_from_etl(status: u16, body: &[u8]) -> Result<KeyVerdict, String> {
    #[derive(Deserialize)]
    struct Refused {
        error: String,
        #[serde(default)]
        message: String,
    }
    match status {
        200 => {
            let valid: KeyCheckResponse =
                serde_json::from_slice(body).map_err(|e| format!("unreadable ETL answer: {e}"))?;
            Ok(if Scope::Ingest.granted_by(&valid.scopes) {
                KeyVerdict::Valid {
                    project_id: valid.project_id.to_string(),
                    redaction: valid.redaction,
                }
            } else {
                let held: Vec<&str> = valid.scopes.iter().map(|s| s.as_str()).collect();
                KeyVerdict::Refused {
                    status: 403,
                    message: format!(
                        "this API key lacks the \"ingest\" scope (it has {held:?}); create one with `agenttrace key create --scope ingest`"
                    ),
                }
            })
        }
        401 => {
            let refused: Refused =
                serde_json::from_slice(body).map_err(|e| format!("unreadable ETL answer: {e}"))?;
            let message = if refused.message.is_empty() {
                refused.error
            } else {
                refused.message
            };
            Ok(KeyVerdict::Refused { status: 401, message })
        }
        other => Err(format!("the ETL answered {other} to a key check")),
    }
}

/// The verification request's body.
pub fn verify_request_body(credentials: &Credentials) -> String {
    let request = KeyCheckRequest {
        public_key: credentials.public_key.clone(),
        secret_key: credentials.secret_key.clone(),
    };
    serde_json::to_string(&request).expect("a key check serializes")
}

/// How long a key the ETL accepted keeps working while the ETL cannot be asked: an ETL outage
/// must not stop agents whose events the buffer would keep anyway. (The ETL checks the key
/// again when the batch arrives, so a key revoked meanwhile is still caught.)
pub const STALE_VALID_MS: u64 = 3_600_000;

/// Verdicts by credentials, each until it expires.
#[derive(Debug)]
pub struct KeyCache {
    /// Verdict, fresh until, and when it was given.
    entries: HashMap<[u8; 32], (KeyVerdict, u64, u64)>,
    ttl_ms: u64,
    max_entries: usize,
}

impl KeyCache {
    pub fn new(ttl_ms: u64, max_entries: usize) -> Self {
        KeyCache {
            entries: HashMap::new(),
            ttl_ms,
            max_entries,
        }
    }

    fn key(credentials: &Credentials) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(credentials.public_key.as_bytes());
        hasher.update(b":");
        hasher.update(credentials.secret_key.as_bytes());
        hasher.finalize().into()
    }

    pub fn get(&self, credentials: &Credentials, now_ms: u64) -> Option<KeyVerdict> {
        self.entries
            .get(&Self::key(credentials))
            .filter(|(_, expires, _)| now_ms < *expires)
            .map(|(verdict, _, _)| verdict.clone())
    }

    /// A positive verdict given less than [`STALE_VALID_MS`] ago, for when the ETL cannot be
    /// asked.
    pub fn get_stale_valid(&self, credentials: &Credentials, now_ms: u64) -> Option<KeyVerdict> {
        self.entries
            .get(&Self::key(credentials))
            .filter(|(verdict, _, given)| {
                matches!(verdict, KeyVerdict::Valid { .. }) && now_ms.saturating_sub(*given) < STALE_VALID_MS
            })
            .map(|(verdict, _, _)| verdict.clone())
    }

    pub fn put(&mut self, credentials: &Credentials, verdict: KeyVerdict, now_ms: u64) {
        if self.ttl_ms == 0 {
            return;
        }
        if self.entries.len() >= self.max_entries {
            // Expired entries go first; if all are fresh, start over (a flood of distinct bad
            // keys must not grow the isolate's memory).
            self.entries.retain(|_, (_, expires, _)| now_ms < *expires);
            if self.entries.len() >= self.max_entries {
                self.entries.clear();
            }
        }
        self.entries
            .insert(Self::key(credentials), (verdict, now_ms + self.ttl_ms, now_ms));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credentials(secret: &str) -> Credentials {
        Credentials {
            public_key: "pk-at-1".into(),
            secret_key: secret.into(),
        }
    }

    #[test]
    fn reads_the_etl_answers() {
        let valid = verdict_from_etl(
            200,
            br#"{"project_id": "0190a2b4-0000-7000-8000-000000000001", "scopes": ["ingest"]}"#,
        )
        .unwrap();
        assert_eq!(
            valid,
            KeyVerdict::Valid {
                project_id: "0190a2b4-0000-7000-8000-000000000001".into(),
                redaction: Rules::default(),
            },
            "an ETL that names no rules leaves the default"
        );
        let KeyVerdict::Refused { status, message } = verdict_from_etl(
            200,
            br#"{"project_id": "0190a2b4-0000-7000-8000-000000000001", "scopes": ["query"]}"#,
        )
        .unwrap() else {
            panic!("a key without the ingest scope is refused");
        };
        assert_eq!(status, 403);
        assert!(message.contains("lacks the \"ingest\" scope"), "{message}");
        let revoked = verdict_from_etl(
            401,
            br#"{"error": "revoked", "message": "the API key was revoked"}"#,
        )
        .unwrap();
        assert_eq!(
            revoked,
            KeyVerdict::Refused {
                status: 401,
                message: "the API key was revoked".into()
            }
        );
        assert!(verdict_from_etl(503, b"{}").is_err());
    }

    #[test]
    fn caches_positive_and_negative_answers_until_they_expire() {
        let mut cache = KeyCache::new(1_000, 2);
        let good = credentials("sk-at-good");
        let bad = credentials("sk-at-bad");
        cache.put(
            &good,
            KeyVerdict::Valid {
                project_id: "p".into(),
                redaction: Rules::default(),
            },
            0,
        );
        let refused = KeyVerdict::Refused {
            status: 401,
            message: "wrong secret".into(),
        };
        cache.put(&bad, refused.clone(), 0);
        assert_eq!(cache.get(&bad, 999), Some(refused));
        assert!(matches!(cache.get(&good, 999), Some(KeyVerdict::Valid { .. })));
        assert_eq!(cache.get(&good, 1_000), None);
        // While the ETL is unreachable, a recent positive verdict still counts; a negative never.
        assert!(cache.get_stale_valid(&good, 1_000).is_some());
        assert!(cache.get_stale_valid(&good, STALE_VALID_MS).is_none());
        assert!(cache.get_stale_valid(&bad, 1_000).is_none());
        // Full: expired entries make room.
        cache.put(
            &credentials("sk-at-third"),
            KeyVerdict::Valid {
                project_id: "p".into(),
                redaction: Rules::default(),
            },
            1_500,
        );
        assert!(cache.get(&credentials("sk-at-third"), 1_600).is_some());
        assert_eq!(KeyCache::new(0, 2).get(&good, 0), None);
    }
}
