//! Sends events to the ETL as the edge does: one signed batch per call.

use agenttrace_schemas::batch::BatchResponse;
use agenttrace_schemas::intake::IntakeResponse;
use agenttrace_schemas::signature::{SigningKey, sign};
use agenttrace_schemas::{Event, SignedBatch, Timestamp};
use anyhow::{Context, bail};
use serde_json::value::RawValue;
use uuid::Uuid;

/// The identity a batch is sent under: the API key's project and public key.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct ProjectKey {
    pub project_id: Uuid,
    pub public_key: String,
}

#[derive(Clone)]
pub struct BatchClient {
    http: reqwest::Client,
    url: String,
    signing_key: SigningKey,
    edge_id: String,
}

/// What the ETL answered, kept whole so callers can assert on failures too.
#[derive(Debug)]
pub struct SendResult {
    pub status: u16,
    pub body: String,
}

impl SendResult {
    pub fn response(&self) -> anyhow::Result<BatchResponse> {
        if self.status != 200 {
            bail!("ETL answered {}: {}", self.status, self.body);
        }
        serde_json::from_str(&self.body).context("parsing the ETL's answer")
    }
}

impl BatchClient {
    /// `signing_key` is `id:secret`, the first entry of `AGENTTRACE_SIGNING_KEYS`.
    pub fn new(etl_url: &str, signing_key: &str, edge_id: &str) -> anyhow::Result<Self> {
        let signing_key = SigningKey::parse_list(signing_key)
            .map_err(anyhow::Error::msg)?
            .swap_remove(0);
        Ok(BatchClient {
            http: reqwest::Client::new(),
            url: format!("{}/v1/batches", etl_url.trim_end_matches('/')),
            signing_key,
            edge_id: edge_id.to_owned(),
        })
    }

    /// Builds the signed body for `events` (already serialized JSON texts).
    pub fn batch_body(&self, key: &ProjectKey, batch_id: Uuid, events: Vec<Box<RawValue>>) -> Vec<u8> {
        let batch = SignedBatch {
            batch_id,
            edge_id: self.edge_id.clone(),
            project_id: key.project_id,
            public_key: key.public_key.clone(),
            created_at: Timestamp::now(),
            events,
        };
        serde_json::to_vec(&batch).expect("a batch serializes")
    }

    /// Signs and posts a body as is (for tests that tamper with it).
    pub async fn post_body(
        &self,
        body: Vec<u8>,
        signed_at: i64,
        secret: Option<&[u8]>,
    ) -> anyhow::Result<SendResult> {
        let [(signature_header, signature), (key_id_header, key_id)] =
            self.signing_key.headers(signed_at, &body);
        // A test may sign with another secret, to see the ETL refuse it.
        let signature = secret.map_or(signature, |secret| sign(secret, signed_at, &body));
        let request = self
            .http
            .post(&self.url)
            .header(key_id_header, key_id)
            .header(signature_header, signature);
        post_json(request, &self.url, body).await
    }

    /// The body of a new batch (fresh UUIDv7) holding `events`.
    pub fn events_body(&self, key: &ProjectKey, events: &[Event<'_>]) -> Vec<u8> {
        let raw = events
            .iter()
            .map(|e| serde_json::value::to_raw_value(e).expect("events serialize"))
            .collect();
        self.batch_body(key, Uuid::now_v7(), raw)
    }

    /// Sends `events` as one new batch, signed now.
    pub async fn send(&self, key: &ProjectKey, events: &[Event<'_>]) -> anyhow::Result<SendResult> {
        let body = self.events_body(key, events);
        self.post_body(body, Timestamp::now().as_micros() / 1_000_000, None)
            .await
    }
}

/// Posts a JSON body; the answer's status and text, whatever the status.
async fn post_json(request: reqwest::RequestBuilder, url: &str, body: Vec<u8>) -> anyhow::Result<SendResult> {
    let response = request
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .with_context(|| format!("posting to {url}"))?;
    let status = response.status().as_u16();
    let body = response.text().await?;
    Ok(SendResult { status, body })
}

/// Sends events as an agent does: to the edge's `/v1/ingest`, with its API key.
#[derive(Clone)]
pub struct EdgeClient {
    http: reqwest::Client,
    url: String,
    authorization: String,
}

impl EdgeClient {
    pub fn new(edge_url: &str, public_key: &str, secret_key: &str) -> Self {
        EdgeClient {
            http: reqwest::Client::new(),
            url: format!("{}/v1/ingest", edge_url.trim_end_matches('/')),
            authorization: format!("Bearer {public_key}:{secret_key}"),
        }
    }

    /// Posts `events` in one request; 200 and 207 are answers, anything else an error.
    pub async fn send(&self, events: &[Event<'_>]) -> anyhow::Result<IntakeResponse> {
        let body = serde_json::to_vec(&serde_json::json!({ "events": events }))?;
        let request = self
            .http
            .post(&self.url)
            .header(reqwest::header::AUTHORIZATION, &self.authorization);
        let SendResult { status, body } = post_json(request, &self.url, body).await?;
        if status != 200 && status != 207 {
            bail!("the edge answered {status}: {body}");
        }
        serde_json::from_str(&body).context("parsing the edge's answer")
    }
}
