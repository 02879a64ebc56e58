//! Secrets AgentTrace must use again (provider API keys), sealed at rest with AES-256-GCM.
//!
//! The key comes from the environment (`AGENTTRACE_ENCRYPTION_KEY`, 64 hex characters; `dev.sh`
//! makes one per machine). A sealed value is `nonce (12 bytes) ‖ ciphertext ‖ tag`, with a fresh
//! random nonce each time, and is bound to the row it belongs to (its project and name as
//! associated data): copied into another project's row, it no longer opens.

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

/// The environment variable the key is read from.
pub const KEY_VARIABLE: &str = "AGENTTRACE_ENCRYPTION_KEY";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("{KEY_VARIABLE} must be 64 hex characters (32 bytes); make one with `openssl rand -hex 32`")]
    BadKey,
    #[error(
        "a stored secret could not be opened: it was sealed with another {KEY_VARIABLE}, or altered; set the key it was sealed with, or store the secret again"
    )]
    CannotOpen,
}

/// Seals and opens secrets with one key.
#[derive(Clone)]
pub struct Sealer {
    key: std::sync::Arc<LessSafeKey>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

impl Sealer {
    pub fn from_hex(key: &str) -> Result<Sealer, SealError> {
        let bytes = hex::decode(key.trim()).map_err(|_| SealError::BadKey)?;
        let key = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| SealError::BadKey)?;
        Ok(Sealer {
            key: std::sync::Arc::new(LessSafeKey::new(key)),
        })
    }

    /// The sealer of the key in [`KEY_VARIABLE`]; `None` when it is unset.
    pub fn from_env() -> Result<Option<Sealer>, SealError> {
        match std::env::var(KEY_VARIABLE) {
            Ok(key) if !key.trim().is_empty() => Sealer::from_hex(&key).map(Some),
            _ => Ok(None),
        }
    }

    /// `secret` sealed for the row `context` names.
    pub fn seal(&self, secret: &[u8], context: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .expect("the operating system's random source works");
        let mut sealed = secret.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context),
                &mut sealed,
            )
            .expect("AES-GCM seals any input shorter than 64 GB");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        out
    }

    /// The secret `sealed` holds, if it was sealed with this key for `context`.
    pub fn open(&self, sealed: &[u8], context: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < NONCE_LEN {
            return Err(SealError::CannotOpen);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::CannotOpen)?;
        let mut buffer = ciphertext.to_vec();
        let opened = self
            .key
            .open_in_place(nonce, Aad::from(context), &mut buffer)
            .map_err(|_| SealError::CannotOpen)?;
        Ok(opened.to_vec())
    }
}

/// What a person may see of a secret: its last four characters (none of a short one).
pub fn hint(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    if chars.len() < 12 {
        return "…".into();
    }
    let last: String = chars[chars.len() - 4..].iter().collect();
    format!("…{last}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    #[test]
    fn opens_what_it_sealed_for_the_same_row_only() {
        let sealer = Sealer::from_hex(KEY).unwrap();
        let sealed = sealer.seal(b"sk-live-123456789", b"project-a/openai");
        assert!(!sealed.windows(9).any(|w| w == b"sk-live-1"), "stored in clear");
        assert_eq!(
            sealer.open(&sealed, b"project-a/openai").unwrap(),
            b"sk-live-123456789"
        );
        // Another row, another key, a flipped bit: refused.
        assert_eq!(
            sealer.open(&sealed, b"project-b/openai"),
            Err(SealError::CannotOpen)
        );
        let other = Sealer::from_hex(&KEY.replace("00", "ff")).unwrap();
        assert_eq!(
            other.open(&sealed, b"project-a/openai"),
            Err(SealError::CannotOpen)
        );
        let mut altered = sealed.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert_eq!(
            sealer.open(&altered, b"project-a/openai"),
            Err(SealError::CannotOpen)
        );
        assert_eq!(sealer.open(b"short", b"x"), Err(SealError::CannotOpen));
        // A fresh nonce each time.
        assert_ne!(sealed, sealer.seal(b"sk-live-123456789", b"project-a/openai"));
    }

    #[test]
    fn a_bad_key_is_named() {
        assert_eq!(Sealer::from_hex("abc").unwrap_err(), SealError::BadKey);
        assert_eq!(Sealer::from_hex(&"zz".repeat(32)).unwrap_err(), SealError::BadKey);
        assert_eq!(Sealer::from_hex(&"00".repeat(16)).unwrap_err(), SealError::BadKey);
    }

    #[test]
    fn a_hint_shows_the_last_four_characters_of_a_long_secret() {
        assert_eq!(hint("sk-proj-abcdefghijkl"), "…ijkl");
        assert_eq!(hint("short"), "…");
    }
}
