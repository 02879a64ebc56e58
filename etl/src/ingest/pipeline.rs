//! One signed batch, from bytes to durable rows.
//!
//! verify signature → parse envelope → check the API key and project (cached) → skip a batch
//! already accepted → validate every event (invalid ones become dead letters, the rest still
//! load; a score naming a score config must fit it) → price generations → one Arrow batch per table → load all tables → record the batch.
//! Only then is the batch acknowledged; every step before the record is safe to repeat.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::Arc;

use agenttrace_schemas::batch::{
    BatchResponse, BatchStatus, EventRejection, MAX_BATCH_BYTES, MAX_BATCH_EVENTS,
};
use agenttrace_schemas::event::{Cost, EventError, IntoStatic, Payload, ScoreValue, TimeWindow};
use agenttrace_schemas::score_config::{CONFIG_ID_KEY, GivenValue, ScoreConfig};
use agenttrace_schemas::{Event, SignedBatch, Timestamp};
use bytes::Bytes;
use deadpool_postgres::Pool;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::analytics::scores::AUTHOR_KEY;
use crate::clickhouse::ClickHouse;
use crate::clickhouse::loader::{LoadError, Sink};
use crate::control::annotation::ANNOTATION_SCORE_PREFIX;
use crate::control::api_keys::KeyRejection;
use crate::ingest::key_status::{KeyCache, KeyStatus, key_status};
use crate::ingest::layout::batch_layout;
use crate::ingest::merge::{MergeError, merge};
use crate::ingest::pricing::{PriceCache, PriceMatcher};
use crate::ingest::signing::{AuthError, Keyring};
use crate::ingest::to_arrow::{DeadLetter, TableBatches, UnmergedPatch};

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("invalid batch: {0}")]
    InvalidBatch(String),
    #[error("batch too large: {0}")]
    TooLarge(String),
    #[error("{0}")]
    Key(KeyRejection),
    #[error("public key {public_key} belongs to another project than {project_id}")]
    WrongProject { public_key: String, project_id: Uuid },
    /// A database is down or overloaded: the answer names it; `detail` goes to the log.
    #[error("{database} is unavailable; retry later")]
    Unavailable { database: &'static str, detail: String },
    #[error("internal error: {0}")]
    Internal(String),
}

impl IngestError {
    /// A stable machine-readable code for responses and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            IngestError::Auth(AuthError::MissingHeader(_)) => "missing_signature",
            IngestError::Auth(AuthError::UnknownKeyId(_)) => "unknown_signing_key",
            IngestError::Auth(AuthError::Signature(
                agenttrace_schemas::signature::SignatureError::Stale { .. },
            )) => "stale_signature",
            IngestError::Auth(AuthError::Signature(_)) => "invalid_signature",
            IngestError::InvalidBatch(_) => "invalid_batch",
            IngestError::TooLarge(_) => "batch_too_large",
            IngestError::Key(rejection) => rejection.code(),
            IngestError::WrongProject { .. } => "wrong_project",
            IngestError::Unavailable { .. } => "unavailable",
            IngestError::Internal(_) => "internal",
        }
    }
}

fn merge_failed(error: MergeError) -> IngestError {
    match error {
        MergeError::Postgres(error) => postgres_down(error),
        MergeError::ClickHouse(error) if error.is_transient() => IngestError::Unavailable {
            database: "ClickHouse",
            detail: error.to_string(),
        },
        other => IngestError::Internal(other.to_string()),
    }
}

fn postgres_down(error: impl std::fmt::Display) -> IngestError {
    tracing::warn!(%error, "PostgreSQL unavailable");
    IngestError::Unavailable {
        database: "PostgreSQL",
        detail: error.to_string(),
    }
}

/// The ETL's ingest pipeline. Cheap to share; all state is behind `Arc`s or caches.
pub struct Ingestor {
    pub keyring: Keyring,
    pub pool: Pool,
    /// Read when patches are merged with stored rows.
    pub clickhouse: ClickHouse,
    pub sink: Arc<dyn Sink>,
    pub prices: PriceCache,
    pub key_cache: KeyCache,
}

/// Best-effort `id` and `type` of an event that failed to parse, for the dead-letter row.
#[derive(Deserialize)]
struct EventLabels {
    id: Option<serde_json::Value>,
    #[serde(rename = "type")]
    kind: Option<serde_json::Value>,
}

fn label(value: Option<serde_json::Value>) -> Option<String> {
    match value? {
        serde_json::Value::String(text) => Some(text),
        other => Some(other.to_string()),
    }
}

/// A metrics label for why an event was rejected (bounded, unlike the field path).
pub fn rejection_reason(error: &EventError) -> &'static str {
    let message = error.message.as_str();
    if message.starts_with("unknown field") {
        "unknown_field"
    } else if message.starts_with("missing field") {
        "missing_field"
    } else if message.starts_with("invalid type") || message.starts_with("a number") {
        "invalid_type"
    } else if message.contains("over the limit") {
        "too_large"
    } else if message.contains("earliest accepted") || message.contains("in the future") {
        "time_out_of_range"
    } else if error.field.is_empty() {
        "malformed_json"
    } else {
        "invalid_value"
    }
}

/// Runs CPU-bound work on the CPU pool.
async fn on_cpu<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, IngestError> {
    crate::cpu::run(work)
        .await
        .map_err(|e| IngestError::Internal(format!("batch conversion failed: {e}")))
}

/// The computed cost of a generation that arrived without one.
pub fn price_of(prices: &PriceMatcher, project_id: Uuid, event: &Event) -> Option<Cost> {
    match &event.payload {
        Payload::Observation(o) if o.cost.is_none() => o
            .model
            .as_deref()
            .and_then(|model| prices.cost(project_id, o.start_time.as_micros(), model, &o.usage)),
        _ => None,
    }
}

/// A signed batch whose signature, size and envelope are checked.
#[derive(Debug)]
pub struct OpenedBatch {
    /// The body, checked to be UTF-8 once (so events are sliced out without checking again).
    body: String,
    pub batch_id: Uuid,
    pub edge_id: String,
    pub project_id: Uuid,
    pub public_key: String,
    pub event_count: usize,
    /// Each event's byte range in the body: events are parsed one at a time as they become
    /// rows (see [`convert`]).
    events: Vec<Range<usize>>,
}

impl OpenedBatch {
    /// Verifies the signature (before anything else is read), then the size and the envelope.
    pub fn open(
        keyring: &Keyring,
        body: Bytes,
        key_id: Option<&str>,
        signature: Option<&str>,
        now_secs: i64,
    ) -> Result<OpenedBatch, IngestError> {
        keyring.verify(key_id, signature, &body, now_secs)?;
        Self::parse(body)
    }

    /// The envelope of a body whose signature was checked, and where each event lies in it.
    pub fn parse(body: Bytes) -> Result<OpenedBatch, IngestError> {
        if body.len() > MAX_BATCH_BYTES {
            return Err(IngestError::TooLarge(format!(
                "{} bytes; at most {MAX_BATCH_BYTES}",
                body.len()
            )));
        }
        let body = String::from_utf8(Vec::from(body))
            .map_err(|e| IngestError::InvalidBatch(format!("the batch is not UTF-8: {}", e.utf8_error())))?;
        // The fast layout when the body has the usual shape; serde_json's, which also names
        // what is wrong with a batch, when it does not or its envelope is refused.
        let fast = batch_layout(&body).and_then(|layout| {
            let envelope: SignedBatch<IgnoredAny> = serde_json::from_str(&layout.envelope).ok()?;
            envelope
                .events
                .is_empty()
                .then(|| (Header::of(envelope), layout.events))
        });
        let (header, events) = match fast {
            Some(opened) => opened,
            None => {
                let batch = raw_batch(&body)?;
                let events = event_ranges(&body, &batch.events);
                (Header::of(batch), events)
            }
        };
        let opened = OpenedBatch {
            event_count: events.len(),
            batch_id: header.batch_id,
            edge_id: header.edge_id,
            project_id: header.project_id,
            public_key: header.public_key,
            events,
            body,
        };
        if opened.event_count > MAX_BATCH_EVENTS {
            return Err(IngestError::TooLarge(format!(
                "{} events; at most {MAX_BATCH_EVENTS}",
                opened.event_count
            )));
        }
        Ok(opened)
    }

    /// The raw JSON of each event, in order.
    pub fn raw_events(&self) -> impl Iterator<Item = &str> {
        // Each range was a `&str` of this body, so it falls on character boundaries.
        self.events
            .iter()
            .map(|range| self.body.get(range.clone()).unwrap_or_default())
    }
}

/// What an opened batch keeps of its envelope, however the envelope was read.
struct Header {
    batch_id: Uuid,
    edge_id: String,
    project_id: Uuid,
    public_key: String,
}

impl Header {
    fn of<E>(batch: SignedBatch<E>) -> Header {
        Header {
            batch_id: batch.batch_id,
            edge_id: batch.edge_id,
            project_id: batch.project_id,
            public_key: batch.public_key,
        }
    }
}

/// The envelope with its events left as raw JSON; errors name the field at fault.
fn raw_batch(body: &str) -> Result<SignedBatch<&RawValue>, IngestError> {
    // `from_str` also refuses anything after the batch (found by fuzzing: trailing bytes were
    // ignored). Only a failure is parsed again, with path tracking, to name the field.
    serde_json::from_str(body).map_err(|error| {
        let mut deserializer = serde_json::Deserializer::from_str(body);
        let reason = match serde_path_to_error::deserialize::<_, SignedBatch<&RawValue>>(&mut deserializer) {
            Err(e) => format!("{}: {}", e.path(), e.inner()),
            Ok(_) => format!("after the batch: {error}"),
        };
        IngestError::InvalidBatch(reason)
    })
}

/// Each raw event's position in `body` (raw events are slices of it).
fn event_ranges(body: &str, events: &[&RawValue]) -> Vec<Range<usize>> {
    let start = body.as_ptr() as usize;
    events
        .iter()
        .map(|raw| {
            let offset = raw.get().as_ptr() as usize - start;
            offset..offset + raw.get().len()
        })
        .collect()
}

/// A batch's events as rows: valid events in `tables`, invalid ones as dead letters (also
/// listed in `rejected`), and the partial updates still to be merged with stored rows.
pub struct Converted {
    pub tables: TableBatches,
    pub rejected: Vec<EventRejection>,
    pub patches: Vec<Event<'static>>,
    /// The traces the batch's events belong to, and its scores (checked against the deleted ones).
    pub trace_ids: HashSet<String>,
    pub score_ids: HashSet<String>,
    /// Events of deleted traces, left out.
    pub deleted: u32,
}

/// What the ledger of deletions holds, of the traces and scores a batch names.
#[derive(Debug, Default)]
pub struct Deleted {
    pub traces: HashSet<String>,
    pub scores: HashSet<String>,
}

impl Deleted {
    fn is_empty(&self) -> bool {
        self.traces.is_empty() && self.scores.is_empty()
    }

    /// Whether `event` belongs to a deleted trace, or is a deleted score.
    fn holds(&self, event: &Event) -> bool {
        trace_of(event).is_some_and(|trace| self.traces.contains(trace))
            || matches!(&event.payload, Payload::Score(score) if self.scores.contains(score.id.as_str()))
    }
}

/// The trace an event belongs to, if it names one (metric points do not).
fn trace_of<'e>(event: &'e Event) -> Option<&'e str> {
    let id = match &event.payload {
        Payload::Trace(t) => &t.id,
        Payload::TracePatch(t) => &t.id,
        Payload::Observation(o) => &o.trace_id,
        Payload::ObservationPatch(o) => o.trace_id.as_ref()?,
        Payload::Score(s) => &s.trace_id,
        Payload::FileOperation(f) => &f.trace_id,
        Payload::TerminalCommand(t) => &t.trace_id,
        Payload::GitLink(g) => &g.trace_id,
        Payload::Metric(_) => return None,
    };
    Some(id.as_str()).filter(|id| !id.is_empty())
}

/// The tables a batch's rows go to: its project's, recording the key that sent it.
pub fn batch_tables(batch: &OpenedBatch, project_name: &str) -> TableBatches {
    TableBatches::new(&batch.project_id.to_string(), project_name).sent_by(&batch.public_key)
}

/// Validates every event and converts the valid ones (priced by `price`) into table rows,
/// leaving out those of the traces and the scores in `deleted`.
/// Events are parsed one at a time, each right before it becomes a row, so the text just
/// parsed is still in cache when it is copied into the Arrow columns and the event's strings
/// are freed on the thread that made them (reading the whole batch first and converting it
/// later, on another thread, cost 15% more CPU under load; `BENCHMARKS.md`).
/// `tables` (from [`batch_tables`]) receives the rows.
pub fn convert(
    tables: TableBatches,
    batch: &OpenedBatch,
    window: &TimeWindow,
    configs: &ScoreConfigs,
    deleted: &Deleted,
    price: impl Fn(&Event) -> Option<Cost>,
) -> Result<Converted, IngestError> {
    let mut converted = Converted {
        tables,
        rejected: Vec::new(),
        patches: Vec::new(),
        trace_ids: HashSet::new(),
        score_ids: HashSet::new(),
        deleted: 0,
    };
    // Counted per batch, not per event: a counter lookup costs as much as a small event's checks.
    let mut counts: Vec<(&'static str, u64)> = Vec::new();
    for (index, raw) in batch.raw_events().enumerate() {
        // An event at fault is read again in parts, to name the field; its raw text is kept.
        match Event::parse_valid(raw, window) {
            Ok(event) => match score_misfit(&event, configs) {
                None => {
                    if deleted.holds(&event) {
                        converted.deleted += 1;
                        continue;
                    }
                    if let Some(trace) = trace_of(&event)
                        && !converted.trace_ids.contains(trace)
                    {
                        converted.trace_ids.insert(trace.to_owned());
                    }
                    if let Payload::Score(score) = &event.payload
                        && !converted.score_ids.contains(score.id.as_str())
                    {
                        converted.score_ids.insert(score.id.to_string());
                    }
                    converted.add(event, &price, &mut counts)?
                }
                Some(error) => converted.reject(index as u32, raw, error),
            },
            Err(error) => converted.reject(index as u32, raw, error),
        }
    }
    for (kind, count) in counts {
        metrics::counter!("agenttrace_events_total", "type" => kind).increment(count);
    }
    count_redactions(batch);
    Ok(converted)
}

/// Counts what the edge redacted in a batch, by project and kind
/// (`agenttrace_redactions_total`); a batch without a replacement costs a substring search.
fn count_redactions(batch: &OpenedBatch) {
    let project = batch.project_id.to_string();
    let mut counts = agenttrace_redact::Counts::default();
    for raw in batch.raw_events().filter(|raw| raw.contains("[REDACTED:")) {
        counts.merge(agenttrace_redact::count_markers(raw));
    }
    for (kind, count) in counts.0 {
        metrics::counter!("agenttrace_redactions_total", "project" => project.clone(), "kind" => kind)
            .increment(count);
    }
}

/// The score configs a batch's scores name, by id.
pub type ScoreConfigs = HashMap<String, ScoreConfig>;

/// The config ids a batch's scores name. Only an event whose text holds the key is parsed
/// again, so a batch without one costs a substring search.
pub fn named_score_configs(batch: &OpenedBatch) -> Vec<String> {
    let mut ids: Vec<String> = batch
        .raw_events()
        .filter(|raw| raw.contains(CONFIG_ID_KEY))
        .filter_map(|raw| {
            let event: serde_json::Value = serde_json::from_str(raw).ok()?;
            let id = event.pointer("/body/metadata")?.get(CONFIG_ID_KEY)?.as_str()?;
            Some(id.to_owned())
        })
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Why a score is refused: it claims to be a reviewer's from an annotation queue (those are
/// written by AgentTrace for a signed-in person, never sent by an agent's key), or it does not
/// fit the config it names.
fn score_misfit(event: &Event, configs: &ScoreConfigs) -> Option<EventError> {
    let Payload::Score(score) = &event.payload else {
        return None;
    };
    if score.id.starts_with(ANNOTATION_SCORE_PREFIX) {
        return Some(EventError::new(
            "body.id",
            format!(
                "ids starting {ANNOTATION_SCORE_PREFIX:?} are the scores people give in annotation queues; choose another id"
            ),
        ));
    }
    if score.metadata.contains_key(AUTHOR_KEY) {
        return Some(EventError::new(
            format!("body.metadata.{AUTHOR_KEY}"),
            "names the person behind an annotation-queue score, which AgentTrace sets itself; leave it out",
        ));
    }
    let id = score.metadata.get(CONFIG_ID_KEY)?.as_str();
    let Some(config) = configs.get(id) else {
        return Some(EventError::new(
            "body.configId",
            format!("no score config {id} in this project; create it first (POST /api/public/score-configs)"),
        ));
    };
    let value = match &score.value {
        ScoreValue::Boolean(b) => GivenValue::Bool(*b),
        ScoreValue::Numeric(n) => GivenValue::Number(*n),
        ScoreValue::Categorical(text) => GivenValue::Text(text),
    };
    let declared = score.data_type.map(|t| t.as_str());
    config
        .check(&score.name, declared, value)
        .err()
        .map(|misfit| EventError::new(format!("body.{}", misfit.field), misfit.message))
}

impl Converted {
    fn add(
        &mut self,
        event: Event,
        price: impl Fn(&Event) -> Option<Cost>,
        counts: &mut Vec<(&'static str, u64)>,
    ) -> Result<(), IngestError> {
        let kind = event.payload.event_type().as_str();
        match counts.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, count)) => *count += 1,
            None => counts.push((kind, 1)),
        }
        if matches!(
            event.payload,
            Payload::TracePatch(_) | Payload::ObservationPatch(_)
        ) {
            self.patches.push(event.into_static());
        } else {
            let cost = price(&event);
            self.tables
                .push(&event, cost)
                .map_err(|e| IngestError::Internal(e.to_string()))?;
        }
        Ok(())
    }

    fn reject(&mut self, index: u32, raw: &str, error: EventError) {
        metrics::counter!("agenttrace_rejected_events_total", "reason" => rejection_reason(&error))
            .increment(1);
        let labels: Option<EventLabels> = serde_json::from_str(raw).ok();
        let (event_id, event_type) = labels.map_or((None, None), |l| (label(l.id), label(l.kind)));
        self.tables.push_dead_letter(DeadLetter {
            event_index: index,
            event_id: event_id.clone(),
            event_type,
            reason: error.to_string(),
            raw: raw.to_owned(),
        });
        self.rejected.push(EventRejection {
            index,
            id: event_id,
            field: error.field,
            message: error.message,
        });
    }
}

impl Ingestor {
    /// Checks that the batch's key may still send for its project; the project's name.
    async fn check_key(&self, batch: &OpenedBatch) -> Result<String, IngestError> {
        let status = match self.key_cache.get(&batch.public_key) {
            Some(status) => status,
            None => {
                let client = self.pool.get().await.map_err(postgres_down)?;
                let status = key_status(&**client, &batch.public_key)
                    .await
                    .map_err(postgres_down)?;
                self.key_cache.put(&batch.public_key, status.clone());
                status
            }
        };
        match status {
            KeyStatus::Active {
                project_id,
                project_name,
            } if project_id == batch.project_id => Ok(project_name),
            KeyStatus::Active { .. } => Err(IngestError::WrongProject {
                public_key: batch.public_key.clone(),
                project_id: batch.project_id,
            }),
            KeyStatus::Rejected(rejection) => Err(IngestError::Key(rejection)),
        }
    }

    /// Handles one signed batch body with its signature headers.
    ///
    /// The CPU-bound steps (HMAC, parsing, validation, building Arrow columns) run on the
    /// blocking pool so they never stall the I/O threads that other requests and the loader's
    /// inserts share.
    pub async fn ingest(
        &self,
        body: Bytes,
        key_id: Option<&str>,
        signature: Option<&str>,
    ) -> Result<BatchResponse, IngestError> {
        let received_at = Timestamp::now();
        // From here on this request will probably bring rows: inserts may wait for them. Counted
        // before the batch is opened, which waits its turn on the CPU pool.
        let preparing = self.sink.prepare();
        let signed_with = key_id.map(str::to_owned);
        let (keyring, key_id, signature) = (
            self.keyring.clone(),
            key_id.map(str::to_owned),
            signature.map(str::to_owned),
        );
        let batch = on_cpu(move || {
            OpenedBatch::open(
                &keyring,
                body,
                key_id.as_deref(),
                signature.as_deref(),
                received_at.as_micros() / 1_000_000,
            )
        })
        .await??;
        // By verified signing key (one of the keyring's few ids): a rotation is over when the
        // old id stops counting (docs/deploy.md).
        if let Some(id) = signed_with {
            metrics::counter!("agenttrace_signed_batches_total", "key_id" => id).increment(1);
        }
        let project_name = self.check_key(&batch).await?;

        let named = named_score_configs(&batch);
        let configs = if named.is_empty() {
            ScoreConfigs::new()
        } else {
            let client = self.pool.get().await.map_err(postgres_down)?;
            crate::control::score_configs::for_check(&**client, batch.project_id, &named)
                .await
                .map_err(|e| match e {
                    crate::control::ControlError::Unavailable(detail) => IngestError::Unavailable {
                        database: "PostgreSQL",
                        detail,
                    },
                    other => IngestError::Internal(other.to_string()),
                })?
        };
        let prices = PriceMatcher::new(self.prices.get());
        let project_id = batch.project_id;
        let price = move |event: &Event| price_of(&prices, project_id, event);
        let window = TimeWindow::around(received_at);
        let (batch, converted) = {
            let (price, configs, project_name, window) =
                (price.clone(), configs.clone(), project_name.clone(), window);
            on_cpu(move || {
                let converted = convert(
                    batch_tables(&batch, &project_name),
                    &batch,
                    &window,
                    &configs,
                    &Deleted::default(),
                    price,
                );
                (batch, converted)
            })
            .await?
        };
        let mut converted = converted?;
        // One round trip: whether an earlier delivery of this batch was loaded, and which of its
        // traces and scores were deleted in the project. Those events are left out, so that an
        // agent retrying or an edge replaying its buffer cannot bring them back (rare: converted
        // again without them).
        let (seen, deleted) = {
            let client = self.pool.get().await.map_err(postgres_down)?;
            let traces: Vec<&str> = converted.trace_ids.iter().map(String::as_str).collect();
            let scores: Vec<&str> = converted.score_ids.iter().map(String::as_str).collect();
            let row = client
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM accepted_batches WHERE batch_id = $1),
                            ARRAY(SELECT id FROM deletion_tombstones
                                  WHERE project_id = $2 AND kind = 'trace' AND id = ANY($3)),
                            ARRAY(SELECT id FROM deletion_tombstones
                                  WHERE project_id = $2 AND kind = 'score' AND id = ANY($4))",
                    &[&batch.batch_id, &batch.project_id, &traces, &scores],
                )
                .await
                .map_err(postgres_down)?;
            let (traces, scores): (Vec<String>, Vec<String>) = (row.get(1), row.get(2));
            let deleted = Deleted {
                traces: traces.into_iter().collect(),
                scores: scores.into_iter().collect(),
            };
            (row.get::<_, bool>(0), deleted)
        };
        if seen {
            metrics::counter!("agenttrace_batches_total", "outcome" => "already_accepted").increment(1);
            return Ok(BatchResponse {
                batch_id: batch.batch_id,
                status: BatchStatus::AlreadyAccepted,
                accepted: 0,
                rejected: Vec::new(),
                deleted: 0,
            });
        }
        let batch = if deleted.is_empty() {
            batch
        } else {
            let price = price.clone();
            let (batch, again) = on_cpu(move || {
                let converted = convert(
                    batch_tables(&batch, &project_name),
                    &batch,
                    &window,
                    &configs,
                    &deleted,
                    price,
                );
                (batch, converted)
            })
            .await?;
            converted = again?;
            metrics::counter!("agenttrace_deleted_events_refused_total")
                .increment(u64::from(converted.deleted));
            batch
        };
        let Converted {
            mut tables,
            rejected,
            patches,
            deleted,
            ..
        } = converted;
        let unmerged = |e: UnmergedPatch| IngestError::Internal(e.to_string());
        let batch_id = batch.batch_id.to_string();
        // Patches become full rows under their entities' locks, held (in `merging`) until the
        // rows are loaded.
        let mut merge_client = if patches.is_empty() {
            None
        } else {
            Some(self.pool.get().await.map_err(postgres_down)?)
        };
        let merging = match merge_client.as_mut() {
            None => None,
            Some(client) => {
                let tx = client.transaction().await.map_err(postgres_down)?;
                let merged = merge(&tx, &self.clickhouse, batch.project_id, patches)
                    .await
                    .map_err(merge_failed)?;
                for event in &merged.events {
                    tables.push(event, price(event)).map_err(unmerged)?;
                }
                Some(tx)
            }
        };
        let batches = tables
            .finish(&batch_id, received_at)
            .map_err(|e| IngestError::Internal(e.to_string()))?;
        // Every table's rows are queued before waiting, so they load concurrently and this
        // request stops holding inserts open for others; the batch fails if any load does.
        let tickets: Vec<_> = batches
            .into_iter()
            .map(|(table, rows)| self.sink.submit(table, rows))
            .collect();
        drop(preparing);
        for ticket in tickets {
            ticket.await.map_err(|error| match error {
                LoadError::Unavailable(message) => IngestError::Unavailable {
                    database: "ClickHouse",
                    detail: message,
                },
                LoadError::Rejected(message) => IngestError::Internal(message),
            })?;
        }

        if let Some(tx) = merging {
            tx.commit().await.map_err(postgres_down)?;
        }

        let accepted = batch.event_count as u32 - rejected.len() as u32 - deleted;
        let client = self.pool.get().await.map_err(postgres_down)?;
        client
            .execute(
                "INSERT INTO accepted_batches (batch_id, project_id, edge_id, events, dead_lettered)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (batch_id) DO NOTHING",
                &[
                    &batch.batch_id,
                    &batch.project_id,
                    &batch.edge_id,
                    &(accepted as i32),
                    &(rejected.len() as i32),
                ],
            )
            .await
            .map_err(postgres_down)?;
        metrics::counter!("agenttrace_batches_total", "outcome" => "accepted").increment(1);
        Ok(BatchResponse {
            batch_id: batch.batch_id,
            status: BatchStatus::Accepted,
            accepted,
            rejected,
            deleted,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clickhouse::catalog::Table;

    fn body(events: &str, after: &[u8]) -> Bytes {
        let mut body = format!(
            r#"{{"batch_id":"0193a6e2-0000-7000-8000-000000000001","edge_id":"e","project_id":"00000000-0000-0000-0000-000000000002","public_key":"pk","created_at":"2026-11-25T12:00:00Z","events":[{events}]}}"#
        )
        .into_bytes();
        body.extend_from_slice(after);
        body.into()
    }

    #[test]
    fn a_batch_opens_to_its_events_and_nothing_may_follow_it() {
        let batch = OpenedBatch::parse(body(r#"{"id":"é1"}, {"id":"e2"}"#, b" \n")).unwrap();
        assert_eq!(
            batch.raw_events().collect::<Vec<_>>(),
            [r#"{"id":"é1"}"#, r#"{"id":"e2"}"#]
        );
        // A fuzzer's find: trailing bytes (here not even UTF-8) after the batch were ignored,
        // and reading the events then assumed the whole body was UTF-8.
        let error = OpenedBatch::parse(body(r#"{"id":"e1"}"#, b", \"a\"")).unwrap_err();
        assert!(
            matches!(&error, IngestError::InvalidBatch(reason) if reason.starts_with("after the batch")),
            "{error}"
        );
        let error = OpenedBatch::parse(body(r#"{"id":"e1"}"#, b"\xff")).unwrap_err();
        assert!(
            matches!(&error, IngestError::InvalidBatch(reason) if reason.contains("not UTF-8")),
            "{error}"
        );
    }

    #[test]
    fn an_event_that_is_not_json_is_a_dead_letter_and_the_rest_of_its_batch_loads() {
        let trace = r#"{"id":"e1","type":"trace","timestamp":"2026-11-25T12:00:00Z","body":{"id":"t1"}}"#;
        let broken = r#"{"id":"e2","type":tru}"#;
        let batch = OpenedBatch::parse(body(&format!("{trace}, {broken}"), b"")).unwrap();
        assert_eq!(batch.event_count, 2);
        let converted = convert(
            batch_tables(&batch, "p"),
            &batch,
            &TimeWindow::unbounded(),
            &ScoreConfigs::new(),
            &Deleted::default(),
            |_| None,
        )
        .unwrap();
        assert_eq!(converted.rejected.len(), 1);
        let rejection = &converted.rejected[0];
        assert_eq!((rejection.index, rejection.field.as_str()), (1, "type"));
        assert_eq!(rejection.message, "expected value");
        let tables = converted.tables.finish("b", Timestamp::from_micros(0)).unwrap();
        let rows = |table| {
            tables
                .iter()
                .find(|(t, _)| *t == table)
                .map(|(_, b)| b.num_rows())
        };
        assert_eq!(rows(Table::Traces), Some(1));
        assert_eq!(rows(Table::DeadLetters), Some(1));
    }

    #[test]
    fn rejection_reasons_are_bounded_categories() {
        let reason = |field: &str, message: &str| rejection_reason(&EventError::new(field, message));
        assert_eq!(
            reason("body.modle", "unknown field `modle`, expected one of ..."),
            "unknown_field"
        );
        assert_eq!(reason("body", "missing field `trace_id`"), "missing_field");
        assert_eq!(
            reason(
                "body.usage.input_tokens",
                "invalid type: string \"x\", expected u64"
            ),
            "invalid_type"
        );
        assert_eq!(
            reason("body.output", "2000000 bytes is over the limit of 1048576 bytes"),
            "too_large"
        );
        assert_eq!(
            reason("timestamp", "2030-01-01T00:00:00Z is in the future (latest ...)"),
            "time_out_of_range"
        );
        assert_eq!(reason("", "expected value"), "malformed_json");
        assert_eq!(
            reason("body.commit_sha", "expected 7 to 64 hex digits"),
            "invalid_value"
        );
    }
}
