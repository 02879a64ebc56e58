//! Signing of batches between the edge and the ETL.
//!
//! Headers: `x-agenttrace-signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`
//! and `x-agenttrace-key-id: <id>` naming which shared secret signed it, so secrets can rotate.
//! The timestamp is inside the MAC, so a captured batch cannot be replayed later than the
//! allowed skew; within it, the batch id makes a replay a no-op.

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const SIGNATURE_HEADER: &str = "x-agenttrace-signature";
pub const KEY_ID_HEADER: &str = "x-agenttrace-key-id";
/// How far a signature's timestamp may be from the verifier's clock, either way.
pub const MAX_SKEW_SECS: i64 = 300;

type HmacSha256 = Hmac<Sha256>;

fn keyed(secret: &[u8]) -> HmacSha256 {
    HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length")
}

/// HMAC-SHA256 of `message` under `key`.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac = keyed(key);
    mac.update(message);
    mac.finalize().into_bytes().into()
}

fn signed_mac(secret: &[u8], timestamp: i64, body: &[u8]) -> HmacSha256 {
    let mut mac = keyed(secret);
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The signature header value for `body` signed at `timestamp` (unix seconds).
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let tag = signed_mac(secret, timestamp, body).finalize().into_bytes();
    format!("t={timestamp},v1={}", hex::encode(tag))
}

/// Shortest secret a signing key may have.
pub const MIN_SECRET_CHARS: usize = 32;

/// A secret the edge signs batches with and the ETL verifies them with, named by an id so
/// several can be active during a rotation. Written `id:secret`; a list is comma-separated.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey {
    pub id: String,
    secret: Vec<u8>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Parses `id:secret`.
    pub fn parse(text: &str) -> Result<SigningKey, String> {
        match text.trim().split_once(':') {
            Some((id, secret)) if !id.is_empty() && secret.len() >= MIN_SECRET_CHARS => Ok(SigningKey {
                id: id.to_owned(),
                secret: secret.as_bytes().to_vec(),
            }),
            _ => Err(format!(
                "a signing key must be `id:secret` with a secret of at least {MIN_SECRET_CHARS} characters"
            )),
        }
    }

    /// Parses `id:secret[,id:secret...]` (the `AGENTTRACE_SIGNING_KEYS` format); at least one.
    pub fn parse_list(text: &str) -> Result<Vec<SigningKey>, String> {
        let keys = text
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(SigningKey::parse)
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err("no signing keys configured".into());
        }
        Ok(keys)
    }

    pub fn secret(&self) -> &[u8] {
        &self.secret
    }

    /// A key for another purpose, derived from this one (HMAC-SHA256 of `purpose`), so that
    /// neither reveals the other.
    pub fn derived(&self, purpose: &str) -> Vec<u8> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes any key");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    /// The two headers that authenticate `body` signed at `now_secs`.
    pub fn headers(&self, now_secs: i64, body: &[u8]) -> [(&'static str, String); 2] {
        [
            (SIGNATURE_HEADER, sign(&self.secret, now_secs, body)),
            (KEY_ID_HEADER, self.id.clone()),
        ]
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("malformed signature header: {0} (expected \"t=<unix seconds>,v1=<hex>\")")]
    Malformed(&'static str),
    #[error(
        "signature timestamp {timestamp} is {skew} s away from server time; at most {MAX_SKEW_SECS} s is allowed"
    )]
    Stale { timestamp: i64, skew: i64 },
    #[error("signature does not match the body")]
    Mismatch,
}

/// A parsed signature header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeader {
    pub timestamp: i64,
    tag: Vec<u8>,
}

impl SignatureHeader {
    pub fn parse(value: &str) -> Result<Self, SignatureError> {
        let (mut timestamp, mut tag) = (None, None);
        for part in value.split(',') {
            match part.trim().split_once('=') {
                Some(("t", t)) => {
                    timestamp = Some(
                        t.parse()
                            .map_err(|_| SignatureError::Malformed("t is not an integer"))?,
                    )
                }
                Some(("v1", v)) => {
                    tag = Some(hex::decode(v).map_err(|_| SignatureError::Malformed("v1 is not hex"))?)
                }
                _ => return Err(SignatureError::Malformed("unexpected part")),
            }
        }
        Ok(SignatureHeader {
            timestamp: timestamp.ok_or(SignatureError::Malformed("missing t"))?,
            tag: tag.ok_or(SignatureError::Malformed("missing v1"))?,
        })
    }

    /// Checks the timestamp against `now` (unix seconds) and the MAC in constant time.
    pub fn verify(&self, secret: &[u8], body: &[u8], now: i64) -> Result<(), SignatureError> {
        let skew = (now - self.timestamp).abs();
        if skew > MAX_SKEW_SECS {
            return Err(SignatureError::Stale {
                timestamp: self.timestamp,
                skew,
            });
        }
        signed_mac(secret, self.timestamp, body)
            .verify_slice(&self.tag)
            .map_err(|_| SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4231 test cases 1-4, 6 and 7 (case 5 is a truncated MAC).
    #[test]
    fn rfc4231_vectors() {
        let cases: [(Vec<u8>, Vec<u8>, &str); 6] = [
            (vec![0x0b; 20], b"Hi There".to_vec(), "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
            (b"Jefe".to_vec(), b"what do ya want for nothing?".to_vec(), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
            (vec![0xaa; 20], vec![0xdd; 50], "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
            (
                (1..=25).collect(),
                vec![0xcd; 50],
                "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
            ),
            (
                vec![0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First".to_vec(),
                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
            ),
            (
                vec![0xaa; 131],
                b"This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.".to_vec(),
                "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
            ),
        ];
        for (key, data, expected) in cases {
            assert_eq!(hex::encode(hmac_sha256(&key, &data)), expected);
        }
    }

    #[test]
    fn signs_timestamp_dot_body() {
        let header = sign(b"secret", 1_700_000_000, b"{}");
        let expected = hex::encode(hmac_sha256(b"secret", b"1700000000.{}"));
        assert_eq!(header, format!("t=1700000000,v1={expected}"));
    }

    #[test]
    fn verifies_within_skew_and_rejects_tampering() {
        let header = SignatureHeader::parse(&sign(b"k", 1000, b"body")).unwrap();
        assert_eq!(header.verify(b"k", b"body", 1000 + MAX_SKEW_SECS), Ok(()));
        assert_eq!(header.verify(b"k", b"body!", 1000), Err(SignatureError::Mismatch));
        assert_eq!(
            header.verify(b"other", b"body", 1000),
            Err(SignatureError::Mismatch)
        );
        assert!(matches!(
            header.verify(b"k", b"body", 1000 + MAX_SKEW_SECS + 1),
            Err(SignatureError::Stale { .. })
        ));
        assert!(matches!(
            header.verify(b"k", b"body", 1000 - MAX_SKEW_SECS - 1),
            Err(SignatureError::Stale { .. })
        ));
    }

    #[test]
    fn rejects_malformed_headers() {
        for bad in ["", "t=1", "v1=00", "t=x,v1=00", "t=1,v1=zz", "t=1,v1=00,x=2"] {
            assert!(
                matches!(SignatureHeader::parse(bad), Err(SignatureError::Malformed(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn signing_keys_parse_sign_and_hide_their_secret() {
        let secret = "0123456789abcdef0123456789abcdef";
        let keys = SigningKey::parse_list(&format!("edge-1:{secret}, edge-2:{secret}x")).unwrap();
        assert_eq!(
            keys.iter().map(|k| k.id.as_str()).collect::<Vec<_>>(),
            ["edge-1", "edge-2"]
        );
        assert!(
            !format!("{:?}", keys[0]).contains("0123"),
            "the secret stays out of logs"
        );
        let [(signature_name, signature), (key_name, key_id)] = keys[0].headers(1000, b"{}");
        assert_eq!(
            (signature_name, key_name, key_id.as_str()),
            (SIGNATURE_HEADER, KEY_ID_HEADER, "edge-1")
        );
        SignatureHeader::parse(&signature)
            .unwrap()
            .verify(secret.as_bytes(), b"{}", 1000)
            .unwrap();
        assert!(SigningKey::parse("edge-1:short").is_err());
        assert!(SigningKey::parse(&format!(":{secret}")).is_err());
        assert!(SigningKey::parse_list(" , ").is_err());
    }
}
