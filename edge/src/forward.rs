//! Building the batch the buffer sends to the ETL (DESIGN.md's contract); it is signed with
//! `agenttrace_schemas::signature::SigningKey`. And which ETL to send to: `ETL_URL` may list
//! several replicas; each request starts at one (spreading the load) and moves to the next when
//! one cannot take it. A batch is idempotent (the ETL's ledger answers a replay with
//! `already_accepted`), so sending it to another replica after a failure never stores it twice.

use agenttrace_schemas::Timestamp;
use agenttrace_schemas::batch::SignedBatch;
use serde_json::value::RawValue;

/// A batch's JSON body. Each item of `event_lists` is one buffered request's events, their
/// exact texts joined by commas (`{..},{..}`): they are spliced into the batch's `events` array
/// as they are, without being parsed again.
pub fn batch_body(
    batch_id: uuid::Uuid,
    edge_id: &str,
    project_id: uuid::Uuid,
    public_key: &str,
    created_at: Timestamp,
    event_lists: &[&[u8]],
) -> Result<String, String> {
    let envelope = SignedBatch::<Box<RawValue>> {
        batch_id,
        edge_id: edge_id.to_owned(),
        project_id,
        public_key: public_key.to_owned(),
        created_at,
        events: Vec::new(),
    };
    let envelope = serde_json::to_string(&envelope).map_err(|e| e.to_string())?;
    // `events` is the envelope's last field, so its text ends with `[]}`.
    let head = envelope
        .strip_suffix("[]}")
        .ok_or("the batch envelope does not end with its events")?;
    let size: usize = event_lists.iter().map(|list| list.len() + 1).sum();
    let mut body = Vec::with_capacity(head.len() + size + 2);
    body.extend_from_slice(head.as_bytes());
    body.push(b'[');
    for (i, list) in event_lists.iter().filter(|list| !list.is_empty()).enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(list);
    }
    body.extend_from_slice(b"]}");
    String::from_utf8(body).map_err(|_| "buffered events are not UTF-8".to_owned())
}

/// The ETL replicas `ETL_URL` names (comma-separated), without trailing slashes.
pub fn etl_urls(setting: &str) -> Result<Vec<String>, String> {
    let urls: Vec<String> = setting
        .split(',')
        .map(|url| url.trim().trim_end_matches('/').to_owned())
        .filter(|url| !url.is_empty())
        .collect();
    if urls.is_empty() {
        return Err("ETL_URL names no ETL: give one URL or several, comma-separated".into());
    }
    // Named by position, not echoed: the message reaches `/healthz`, which anyone can read,
    // and a URL may carry credentials.
    if let Some(bad) = urls
        .iter()
        .position(|url| !url.starts_with("http://") && !url.starts_with("https://"))
    {
        return Err(format!(
            "ETL_URL: URL {} of {} is not an http(s) URL",
            bad + 1,
            urls.len()
        ));
    }
    Ok(urls)
}

/// The order in which a request tries `count` replicas, starting at `start` (any number: a
/// counter or a random draw), each once.
pub fn failover_order(count: usize, start: usize) -> impl Iterator<Item = usize> {
    (0..count).map(move |offset| (start + offset) % count.max(1))
}

/// Whether an answer (`None`: no answer at all) means "try another replica": the replica is
/// down, or it says it cannot take the request now. Any other answer is the ETL's word.
pub fn try_another(status: Option<u16>) -> bool {
    matches!(status, None | Some(502..=504))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_carry_the_buffered_events_verbatim() {
        let body = batch_body(
            uuid::Uuid::now_v7(),
            "edge-test",
            uuid::Uuid::nil(),
            "pk-at-1",
            Timestamp::parse("2026-11-25T12:00:00Z").unwrap(),
            &[br#"{"id":"e1"}"#, b"", br#"{"id":"e2"},{"id":"e3"}"#],
        )
        .unwrap();
        assert!(
            body.ends_with(r#""events":[{"id":"e1"},{"id":"e2"},{"id":"e3"}]}"#),
            "{body}"
        );
        let parsed: SignedBatch = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed.edge_id, "edge-test");
        assert_eq!(parsed.events.len(), 3);
        let empty = batch_body(
            uuid::Uuid::nil(),
            "e",
            uuid::Uuid::nil(),
            "pk",
            Timestamp::from_micros(0),
            &[],
        );
        let parsed: SignedBatch = serde_json::from_str(&empty.unwrap()).unwrap();
        assert!(parsed.events.is_empty());
    }

    #[test]
    fn several_etls_are_tried_in_turn_from_a_moving_start() {
        assert_eq!(
            etl_urls(" http://a:1/ , http://b:2").unwrap(),
            ["http://a:1", "http://b:2"]
        );
        assert!(etl_urls(" , ").is_err());
        assert!(etl_urls("a:1").unwrap_err().contains("not an http"));
        let said = etl_urls("https://a, user:secret@b").unwrap_err();
        assert!(said.contains("URL 2 of 2") && !said.contains("secret"), "{said}");
        assert_eq!(failover_order(3, 4).collect::<Vec<_>>(), [1, 2, 0]);
        assert_eq!(failover_order(1, 7).collect::<Vec<_>>(), [0]);
        assert!(try_another(None) && try_another(Some(503)) && try_another(Some(502)));
        assert!(!try_another(Some(200)) && !try_another(Some(400)) && !try_another(Some(500)));
    }
}
