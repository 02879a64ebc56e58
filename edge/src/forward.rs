//! Building what the buffer sends to the ETL: the signed batch (DESIGN.md's contract) and the
//! signed key-verification request.

use agenttrace_schemas::Timestamp;
use agenttrace_schemas::batch::SignedBatch;
use agenttrace_schemas::signature::{KEY_ID_HEADER, SIGNATURE_HEADER, sign};
use serde_json::value::RawValue;

/// The edge's signing key: `id:secret` (the ETL knows the same pair).
#[derive(Clone)]
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
    pub fn parse(text: &str) -> Result<SigningKey, String> {
        match text.trim().split_once(':') {
            Some((id, secret)) if !id.is_empty() && secret.len() >= 32 => Ok(SigningKey {
                id: id.to_owned(),
                secret: secret.as_bytes().to_vec(),
            }),
            _ => {
                Err("the signing key must be `id:secret` with a secret of at least 32 characters".to_owned())
            }
        }
    }

    /// The two headers that authenticate `body` at `now_secs`.
    pub fn headers(&self, now_secs: i64, body: &[u8]) -> [(&'static str, String); 2] {
        [
            (SIGNATURE_HEADER, sign(&self.secret, now_secs, body)),
            (KEY_ID_HEADER, self.id.clone()),
        ]
    }
}

/// A batch's JSON body; `events` are the buffered events' exact texts.
pub fn batch_body(
    batch_id: uuid::Uuid,
    edge_id: &str,
    project_id: uuid::Uuid,
    public_key: &str,
    created_at: Timestamp,
    events: Vec<String>,
) -> Result<String, String> {
    let events = events
        .into_iter()
        .map(|json| RawValue::from_string(json).map_err(|e| format!("a buffered event is not JSON: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let batch = SignedBatch {
        batch_id,
        edge_id: edge_id.to_owned(),
        project_id,
        public_key: public_key.to_owned(),
        created_at,
        events,
    };
    serde_json::to_string(&batch).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use agenttrace_schemas::signature::SignatureHeader;

    #[test]
    fn batches_are_signed_so_the_etl_accepts_them() {
        let key = SigningKey::parse("edge-1:0123456789abcdef0123456789abcdef").unwrap();
        assert!(
            !format!("{key:?}").contains("0123456789"),
            "the secret stays out of logs"
        );
        let body = batch_body(
            uuid::Uuid::now_v7(),
            "edge-test",
            uuid::Uuid::nil(),
            "pk-at-1",
            Timestamp::parse("2026-11-25T12:00:00Z").unwrap(),
            vec![r#"{"id":"e1"}"#.to_owned()],
        )
        .unwrap();
        assert!(body.contains(r#""events":[{"id":"e1"}]"#), "{body}");
        let [(signature_name, signature), (key_name, key_id)] = key.headers(1_764_072_000, body.as_bytes());
        assert_eq!((signature_name, key_name), (SIGNATURE_HEADER, KEY_ID_HEADER));
        assert_eq!(key_id, "edge-1");
        SignatureHeader::parse(&signature)
            .unwrap()
            .verify(
                b"0123456789abcdef0123456789abcdef",
                body.as_bytes(),
                1_764_072_010,
            )
            .unwrap();
        assert!(SigningKey::parse("edge-1:short").is_err());
        assert!(
            batch_body(
                uuid::Uuid::nil(),
                "e",
                uuid::Uuid::nil(),
                "pk",
                Timestamp::from_micros(0),
                vec!["{".into()]
            )
            .is_err()
        );
    }
}
