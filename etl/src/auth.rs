//! Who may send batches: the edge's signing keys, and the API keys events were accepted under.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use agenttrace_schemas::signature::{SignatureError, SignatureHeader};
use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::keys::KeyRejection;

/// The shared secrets the edge signs with, by key id. Several may be active during rotation.
#[derive(Clone, Default)]
pub struct Keyring {
    secrets: HashMap<String, Vec<u8>>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("key_ids", &self.secrets.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    #[error("unknown signing key id {0:?}")]
    UnknownKeyId(String),
    #[error(transparent)]
    Signature(#[from] SignatureError),
}

impl Keyring {
    /// Parses `id:secret[,id:secret...]` (the `AGENTTRACE_SIGNING_KEYS` format).
    pub fn parse(spec: &str) -> Result<Keyring, String> {
        let mut secrets = HashMap::new();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (id, secret) = entry
                .split_once(':')
                .ok_or_else(|| format!("signing key {entry:?} must look like id:secret"))?;
            if id.is_empty() || secret.len() < 16 {
                return Err(format!(
                    "signing key {id:?} needs an id and a secret of at least 16 characters"
                ));
            }
            secrets.insert(id.to_owned(), secret.as_bytes().to_vec());
        }
        if secrets.is_empty() {
            return Err("no signing keys configured".into());
        }
        Ok(Keyring { secrets })
    }

    /// Verifies a signed request: the key id is known, the timestamp is fresh, the MAC matches.
    pub fn verify(
        &self,
        key_id: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
        now_secs: i64,
    ) -> Result<(), AuthError> {
        use agenttrace_schemas::signature::{KEY_ID_HEADER, SIGNATURE_HEADER};
        let key_id = key_id.ok_or(AuthError::MissingHeader(KEY_ID_HEADER))?;
        let signature = signature.ok_or(AuthError::MissingHeader(SIGNATURE_HEADER))?;
        let secret = self
            .secrets
            .get(key_id)
            .ok_or_else(|| AuthError::UnknownKeyId(key_id.to_owned()))?;
        SignatureHeader::parse(signature)?.verify(secret, body, now_secs)?;
        Ok(())
    }
}

/// What PostgreSQL says about a public key, without its secret (the edge checked that).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStatus {
    Active { project_id: Uuid },
    Rejected(KeyRejection),
}

pub async fn key_status(
    client: &impl GenericClient,
    public_key: &str,
) -> Result<KeyStatus, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT k.project_id, k.revoked_at IS NOT NULL, p.archived_at IS NOT NULL
             FROM api_keys k JOIN projects p ON p.id = k.project_id WHERE k.public_key = $1",
            &[&public_key],
        )
        .await?;
    Ok(match row {
        None => KeyStatus::Rejected(KeyRejection::UnknownPublicKey),
        Some(row) if row.get::<_, bool>(1) => KeyStatus::Rejected(KeyRejection::Revoked),
        Some(row) if row.get::<_, bool>(2) => KeyStatus::Rejected(KeyRejection::ProjectArchived),
        Some(row) => KeyStatus::Active {
            project_id: row.get(0),
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
            .map(|(_, status)| *status)
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
    use agenttrace_schemas::signature::sign;

    #[test]
    fn keyring_parses_and_verifies_each_key() {
        let keyring = Keyring::parse("k1:aaaaaaaaaaaaaaaa, k2:bbbbbbbbbbbbbbbb").unwrap();
        let body = b"{}";
        let by_k2 = sign(b"bbbbbbbbbbbbbbbb", 100, body);
        assert_eq!(keyring.verify(Some("k2"), Some(&by_k2), body, 100), Ok(()));
        assert_eq!(
            keyring.verify(Some("k1"), Some(&by_k2), body, 100),
            Err(AuthError::Signature(SignatureError::Mismatch))
        );
        assert_eq!(
            keyring.verify(Some("k3"), Some(&by_k2), body, 100),
            Err(AuthError::UnknownKeyId("k3".into()))
        );
        assert!(matches!(
            keyring.verify(None, Some(&by_k2), body, 100),
            Err(AuthError::MissingHeader(_))
        ));
        assert!(Keyring::parse("k1:short").is_err());
        assert!(Keyring::parse("").is_err());
    }

    #[test]
    fn key_cache_expires_and_can_be_disabled() {
        let status = KeyStatus::Rejected(KeyRejection::Revoked);
        let cache = KeyCache::new(Duration::from_secs(60), 2);
        cache.put("a", status);
        assert_eq!(cache.get("a"), Some(status));
        cache.put("b", status);
        cache.put("c", status);
        assert!(
            cache.get("c").is_some(),
            "inserting past the bound still caches the newest"
        );

        let disabled = KeyCache::new(Duration::ZERO, 10);
        disabled.put("a", status);
        assert_eq!(disabled.get("a"), None);
    }
}
