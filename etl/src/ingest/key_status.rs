//! Whether the API key a batch was accepted under still may send: asked of PostgreSQL, cached.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::control::api_keys::KeyRejection;

/// What PostgreSQL says about a public key, without its secret (the edge checked that).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyStatus {
    /// The key may send for its project (whose name rows are stamped with).
    Active {
        project_id: Uuid,
        project_name: String,
    },
    Rejected(KeyRejection),
}

pub async fn key_status(
    client: &impl GenericClient,
    public_key: &str,
) -> Result<KeyStatus, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT k.project_id, k.revoked_at IS NOT NULL AS revoked, p.archived_at IS NOT NULL AS archived,
                    p.name AS project_name
             FROM api_keys k JOIN projects p ON p.id = k.project_id WHERE k.public_key = $1",
            &[&public_key],
        )
        .await?;
    Ok(match row {
        None => KeyStatus::Rejected(KeyRejection::UnknownPublicKey),
        Some(row) if row.get::<_, bool>("revoked") => KeyStatus::Rejected(KeyRejection::Revoked),
        Some(row) if row.get::<_, bool>("archived") => KeyStatus::Rejected(KeyRejection::ProjectArchived),
        Some(row) => KeyStatus::Active {
            project_id: row.get("project_id"),
            project_name: row.get("project_name"),
        },
    })
}

/// Caches key status (negative answers too) for a short TTL so PostgreSQL is not asked per
/// batch. A revocation therefore takes effect within one TTL.
pub struct KeyCache {
    ttl: Duration,
    max_entries: usize,
    entries: Mutex<HashMap<String, (Instant, KeyStatus)>>,
}

impl KeyCache {
    pub fn new(ttl: Duration, max_entries: usize) -> Self {
        KeyCache {
            ttl,
            max_entries,
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub fn get(&self, public_key: &str) -> Option<KeyStatus> {
        let entries = self.entries.lock().expect("key cache lock");
        entries
            .get(public_key)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, status)| status.clone())
    }

    pub fn put(&self, public_key: &str, status: KeyStatus) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.lock().expect("key cache lock");
        if entries.len() >= self.max_entries {
            let ttl = self.ttl;
            entries.retain(|_, (at, _)| at.elapsed() < ttl);
            if entries.len() >= self.max_entries {
                entries.clear();
            }
        }
        entries.insert(public_key.to_owned(), (Instant::now(), status));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_cache_expires_and_can_be_disabled() {
        let status = KeyStatus::Rejected(KeyRejection::Revoked);
        let cache = KeyCache::new(Duration::from_secs(60), 2);
        cache.put("a", status.clone());
        assert_eq!(cache.get("a"), Some(status.clone()));
        cache.put("b", status.clone());
        cache.put("c", status.clone());
        assert!(
            cache.get("c").is_some(),
            "inserting past the bound still caches the newest"
        );

        let disabled = KeyCache::new(Duration::ZERO, 10);
        disabled.put("a", status);
        assert_eq!(disabled.get("a"), None);
    }
}
