//! Who may send batches: the edge's signing keys, checked on every batch and key check.

use std::collections::HashMap;

use agenttrace_schemas::signature::{SignatureError, SignatureHeader, SigningKey};

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
        for key in SigningKey::parse_list(spec)? {
            // Two secrets under one id: batches signed with one of them would be refused.
            if secrets.insert(key.id.clone(), key.secret().to_vec()).is_some() {
                return Err(format!(
                    "the signing keys name the id {:?} twice: give each key its own id (k1:…,k2:…)",
                    key.id
                ));
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use agenttrace_schemas::signature::sign;

    #[test]
    fn one_id_twice_is_refused() {
        let error = Keyring::parse("k1:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa,k1:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb")
            .err()
            .unwrap();
        assert!(error.contains("\"k1\" twice"), "{error}");
    }

    #[test]
    fn keyring_parses_and_verifies_each_key() {
        let keyring =
            Keyring::parse("k1:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa, k2:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb")
                .unwrap();
        let body = b"{}";
        let by_k2 = sign(b"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", 100, body);
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
}
