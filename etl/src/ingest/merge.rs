//! Partial updates (`trace_patch`, `observation_patch`) merged into full rows.
//!
//! ClickHouse replaces whole rows, so a patch that carries only `end_time` and `output` must be
//! merged with what is stored before it is written. The rule, which holds whatever order and
//! batches the pieces of one entity arrive in:
//!
//! - the pieces are the stored row (as of its version), patches waiting in PostgreSQL, and the
//!   batch's patches; they are applied oldest first by event timestamp, and each field a piece
//!   carries replaces the one before (metadata key by key; tags accumulate);
//! - a stored row keeps its start (`start_time` / `timestamp`), which decides its partition,
//!   and an observation its trace and type, which lead its sorting key (and the time indexes'):
//!   moving either would leave the old row behind beside the new one;
//! - an observation is written once its pieces give it a trace, a type, a name and a start;
//!   until then its patches wait in `pending_patches` (durably, in the same transaction that
//!   holds the entities' advisory locks), and are merged when the piece that completes it
//!   arrives.
//!
//! A trace whose patches name an experiment and a dataset item of the project (the Langfuse
//! SDK's `run_experiment`) registers that experiment and the run item in the same transaction.
//!
//! Concurrent batches touching one entity are serialized by a PostgreSQL advisory lock per
//! entity, held until the merged rows are loaded, so two ETLs cannot both merge against the
//! same stale row. Limitation: a stored row counts as one piece at its newest version, so with
//! three or more pieces arriving out of order, a late piece older than the stored row loses
//! fields that a still older piece set.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use agenttrace_schemas::event::{
    IntoStatic, Json, Level, MetaValue, Metadata, Observation, ObservationPatch, ObservationType, Text,
    Trace, TracePatch, Usage,
};
use agenttrace_schemas::{Event, Payload, Timestamp};
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::clickhouse::{ClickHouse, ClickHouseError, quote, quote_list};
use crate::control::experiments::link_trace;

#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error(transparent)]
    ClickHouse(#[from] ClickHouseError),
    #[error("a stored {table} row could not be read back: {message}")]
    Stored { table: &'static str, message: String },
}

/// One patch with the version (event timestamp, µs) and event id it came with.
#[derive(Debug, Clone, PartialEq)]
pub struct Piece<P> {
    pub version: i64,
    pub event_id: String,
    pub patch: P,
}

/// Fields a later piece carries replace those of earlier ones.
pub trait Patch: Clone {
    fn apply(&mut self, later: Self);
}

fn replace<T>(field: &mut Option<T>, later: Option<T>) {
    if later.is_some() {
        *field = later;
    }
}

fn merge_metadata<'a>(metadata: &mut Metadata<'a>, later: Metadata<'a>) {
    metadata.extend(later);
}

impl Patch for ObservationPatch<'_> {
    fn apply(&mut self, later: Self) {
        replace(&mut self.trace_id, later.trace_id);
        replace(&mut self.parent_observation_id, later.parent_observation_id);
        replace(&mut self.kind, later.kind);
        replace(&mut self.name, later.name);
        replace(&mut self.start_time, later.start_time);
        replace(&mut self.end_time, later.end_time);
        replace(&mut self.level, later.level);
        replace(&mut self.status_message, later.status_message);
        replace(&mut self.input, later.input);
        replace(&mut self.output, later.output);
        merge_metadata(&mut self.metadata, later.metadata);
        replace(&mut self.model, later.model);
        replace(&mut self.model_parameters, later.model_parameters);
        replace(&mut self.usage, later.usage);
        replace(&mut self.cost, later.cost);
        replace(&mut self.tool_name, later.tool_name);
        replace(&mut self.tool_call_id, later.tool_call_id);
        replace(&mut self.completion_start_time, later.completion_start_time);
        replace(&mut self.prompt_name, later.prompt_name);
        replace(&mut self.prompt_version, later.prompt_version);
    }
}

impl Patch for TracePatch<'_> {
    fn apply(&mut self, later: Self) {
        replace(&mut self.timestamp, later.timestamp);
        replace(&mut self.name, later.name);
        replace(&mut self.user_id, later.user_id);
        replace(&mut self.session_id, later.session_id);
        replace(&mut self.release, later.release);
        replace(&mut self.version, later.version);
        replace(&mut self.environment, later.environment);
        for tag in later.tags {
            if !self.tags.contains(&tag) {
                self.tags.push(tag);
            }
        }
        replace(&mut self.input, later.input);
        replace(&mut self.output, later.output);
        merge_metadata(&mut self.metadata, later.metadata);
        replace(&mut self.experiment_id, later.experiment_id);
        replace(&mut self.dataset_item_id, later.dataset_item_id);
        replace(&mut self.public, later.public);
    }
}

/// Folds pieces oldest first (ties keep their order); the newest version and its event id.
pub fn fold<P: Patch>(mut pieces: Vec<Piece<P>>) -> Option<Piece<P>> {
    pieces.sort_by_key(|piece| piece.version);
    let mut pieces = pieces.into_iter();
    let mut merged = pieces.next()?;
    for piece in pieces {
        merged.patch.apply(piece.patch);
        merged.version = piece.version;
        merged.event_id = piece.event_id;
    }
    Some(merged)
}

/// The full observation, once the patch names its trace, type, name and start.
pub fn complete_observation(patch: ObservationPatch<'_>) -> Option<Observation<'_>> {
    let (Some(trace_id), Some(kind), Some(name), Some(start_time)) =
        (patch.trace_id, patch.kind, patch.name, patch.start_time)
    else {
        return None;
    };
    Some(Observation {
        id: patch.id,
        trace_id,
        parent_observation_id: patch.parent_observation_id,
        kind,
        name,
        start_time,
        // A stored end before the start (an update that arrived with a skewed clock) is dropped
        // rather than written inconsistent.
        end_time: patch.end_time.filter(|end| *end >= start_time),
        level: patch.level.unwrap_or_default(),
        status_message: patch.status_message,
        input: patch.input,
        output: patch.output,
        metadata: patch.metadata,
        model: patch.model,
        model_parameters: patch.model_parameters,
        usage: patch.usage.unwrap_or_default(),
        cost: patch.cost,
        tool_name: patch.tool_name,
        tool_call_id: patch.tool_call_id,
        completion_start_time: patch.completion_start_time,
        prompt_name: patch.prompt_name,
        prompt_version: patch.prompt_version,
    })
}

/// The full trace (a trace needs nothing but its id; its time defaults to the newest piece's).
pub fn complete_trace(patch: TracePatch<'_>, version: i64) -> Trace<'_> {
    Trace {
        id: patch.id,
        timestamp: Some(patch.timestamp.unwrap_or(Timestamp::from_micros(version))),
        name: patch.name,
        user_id: patch.user_id,
        session_id: patch.session_id,
        release: patch.release,
        version: patch.version,
        environment: patch.environment.unwrap_or_else(|| "default".into()),
        tags: patch.tags,
        input: patch.input,
        output: patch.output,
        metadata: patch.metadata,
        experiment_id: patch.experiment_id,
        dataset_item_id: patch.dataset_item_id,
        public: patch.public.unwrap_or(false),
    }
}

/// The advisory-lock key of one entity: the first 8 bytes of SHA-256 over its identity.
fn lock_key(project: Uuid, table: &str, id: &str) -> i64 {
    let digest = Sha256::new()
        .chain_update(project.as_bytes())
        .chain_update(table.as_bytes())
        .chain_update([0])
        .chain_update(id.as_bytes())
        .finalize();
    i64::from_le_bytes(digest[..8].try_into().expect("8 bytes"))
}

/// ClickHouse's JSON for a 64-bit integer: quoted by default, bare when the setting is off.
fn int(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn text(value: &Value) -> Option<Text<'static>> {
    value
        .as_str()
        .filter(|s| !s.is_empty())
        .map(|s| s.to_owned().into())
}

fn json(value: &Value) -> Option<Json<'static>> {
    value.as_str().and_then(|s| Json::from_text(s.to_owned()).ok())
}

fn metadata(keys: &Value, values: &Value) -> Metadata<'static> {
    let (Some(keys), Some(values)) = (keys.as_array(), values.as_array()) else {
        return Metadata::new();
    };
    keys.iter()
        .zip(values)
        .filter_map(|(k, v)| Some((k.as_str()?.to_owned().into(), v.as_str()?.to_owned().into())))
        .collect()
}

const STORED_OBSERVATION_COLUMNS: &str = "id, trace_id, parent_observation_id, type, name, start_time_us, \
    end_time_us, level, status_message, input, output, metadata_keys, metadata_values, model, model_parameters, \
    input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, \
    if(cost_source = 'agent', toFloat64(input_cost), NULL) AS input_cost, \
    if(cost_source = 'agent', toFloat64(output_cost), NULL) AS output_cost, \
    if(cost_source = 'agent', toFloat64(cache_read_cost), NULL) AS cache_read_cost, \
    if(cost_source = 'agent', toFloat64(cache_write_cost), NULL) AS cache_write_cost, \
    if(cost_source = 'agent', toFloat64(total_cost), NULL) AS total_cost, \
    tool_name, tool_call_id, completion_start_time_us, prompt_name, prompt_version, version";

/// A stored observation as the piece it contributes (defaults count as unset).
fn stored_observation(row: &Value) -> Option<Piece<ObservationPatch<'static>>> {
    let micros = |key: &str| int(&row[key]).map(Timestamp::from_micros);
    let count = |key: &str| int(&row[key]).unwrap_or(0) as u64;
    let usage = Usage {
        input_tokens: count("input_tokens"),
        output_tokens: count("output_tokens"),
        cache_read_input_tokens: count("cache_read_tokens"),
        cache_creation_input_tokens: count("cache_write_tokens"),
    };
    let cost_part = |key: &str| row[key].as_f64();
    let cost = agenttrace_schemas::event::Cost {
        input: cost_part("input_cost"),
        output: cost_part("output_cost"),
        cache_read: cost_part("cache_read_cost"),
        cache_write: cost_part("cache_write_cost"),
        total: cost_part("total_cost"),
    };
    let patch = ObservationPatch {
        id: text(&row["id"])?,
        trace_id: text(&row["trace_id"]),
        parent_observation_id: text(&row["parent_observation_id"]),
        kind: serde_json::from_value::<ObservationType>(row["type"].clone()).ok(),
        name: text(&row["name"]),
        start_time: micros("start_time_us"),
        end_time: micros("end_time_us"),
        level: serde_json::from_value::<Level>(row["level"].clone())
            .ok()
            .filter(|level| *level != Level::Default),
        status_message: text(&row["status_message"]),
        input: json(&row["input"]),
        output: json(&row["output"]),
        metadata: metadata(&row["metadata_keys"], &row["metadata_values"]),
        model: text(&row["model"]),
        model_parameters: json(&row["model_parameters"]),
        usage: (!usage.is_empty()).then_some(usage),
        cost: cost.effective_total().map(|_| cost),
        tool_name: text(&row["tool_name"]),
        tool_call_id: text(&row["tool_call_id"]),
        completion_start_time: micros("completion_start_time_us"),
        prompt_name: text(&row["prompt_name"]),
        prompt_version: int(&row["prompt_version"]).and_then(|v| u32::try_from(v).ok()),
    };
    Some(Piece {
        version: int(&row["version"])?,
        event_id: String::new(),
        patch,
    })
}

const STORED_TRACE_COLUMNS: &str = "id, timestamp_us, name, user_id, session_id, release, version_tag, \
    environment, tags, input, output, metadata_keys, metadata_values, experiment_id, dataset_item_id, public, version";

fn stored_trace(row: &Value) -> Option<Piece<TracePatch<'static>>> {
    let patch = TracePatch {
        id: text(&row["id"])?,
        timestamp: int(&row["timestamp_us"]).map(Timestamp::from_micros),
        name: text(&row["name"]),
        user_id: text(&row["user_id"]),
        session_id: text(&row["session_id"]),
        release: text(&row["release"]),
        version: text(&row["version_tag"]),
        environment: text(&row["environment"]).filter(|e| e != "default"),
        tags: row["tags"]
            .as_array()
            .map(|tags| tags.iter().filter_map(text).collect())
            .unwrap_or_default(),
        input: json(&row["input"]),
        output: json(&row["output"]),
        metadata: metadata(&row["metadata_keys"], &row["metadata_values"]),
        experiment_id: text(&row["experiment_id"]),
        dataset_item_id: text(&row["dataset_item_id"]),
        public: int(&row["public"]).filter(|p| *p != 0).map(|_| true),
    };
    Some(Piece {
        version: int(&row["version"])?,
        event_id: String::new(),
        patch,
    })
}

/// Stored rows of `table` for `ids`, deduplicated, one JSON object each. `traces` narrows the
/// read to those traces' key ranges when the caller knows every id's trace.
async fn stored_rows(
    clickhouse: &ClickHouse,
    table: &'static str,
    columns: &str,
    project: Uuid,
    ids: &BTreeSet<&str>,
    traces: Option<&BTreeSet<&str>>,
) -> Result<Vec<Value>, MergeError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let within_traces = traces
        .map(|traces| format!(" AND trace_id IN ({})", quote_list(traces)))
        .unwrap_or_default();
    let sql = format!(
        "SELECT {columns} FROM {table} FINAL WHERE project_id = {}{within_traces} AND id IN ({}) FORMAT JSONEachRow",
        quote(&project.to_string()),
        quote_list(ids)
    );
    let text = clickhouse.query_text(&sql).await?;
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            serde_json::from_str(line).map_err(|e| MergeError::Stored {
                table,
                message: e.to_string(),
            })
        })
        .collect()
}

/// What merging a batch's patches produced.
#[derive(Debug, Default)]
pub struct Merged {
    /// Full trace and observation events to load, in place of the patches.
    pub events: Vec<Event<'static>>,
    /// Observations still incomplete: their patches wait in `pending_patches`.
    pub pending: usize,
}

struct PendingRow {
    version: i64,
    event_id: String,
    patch: ObservationPatch<'static>,
}

/// Merges `patches` (events whose payload is a patch) with the stored rows, inside `tx`, which
/// takes each entity's advisory lock. Commit `tx` only after the merged rows are loaded.
pub async fn merge(
    tx: &tokio_postgres::Transaction<'_>,
    clickhouse: &ClickHouse,
    project: Uuid,
    patches: Vec<Event<'static>>,
) -> Result<Merged, MergeError> {
    let mut traces: BTreeMap<String, Vec<Piece<TracePatch<'static>>>> = BTreeMap::new();
    let mut observations: BTreeMap<String, Vec<Piece<ObservationPatch<'static>>>> = BTreeMap::new();
    for event in patches {
        let version = event.timestamp.as_micros();
        match event.payload {
            Payload::TracePatch(patch) => traces.entry(patch.id.to_string()).or_default().push(Piece {
                version,
                event_id: event.id.into_string(),
                patch,
            }),
            Payload::ObservationPatch(patch) => {
                observations.entry(patch.id.to_string()).or_default().push(Piece {
                    version,
                    event_id: event.id.into_string(),
                    patch,
                })
            }
            _ => {}
        }
    }
    let mut keys: Vec<i64> = traces
        .keys()
        .map(|id| lock_key(project, "traces", id))
        .chain(
            observations
                .keys()
                .map(|id| lock_key(project, "observations", id)),
        )
        .collect();
    // One order for every batch, so two batches never wait on each other's locks in a cycle.
    keys.sort_unstable();
    keys.dedup();
    tx.execute(
        "SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) AS k ORDER BY k",
        &[&keys],
    )
    .await?;

    let mut merged = Merged::default();
    let trace_ids: BTreeSet<&str> = traces.keys().map(String::as_str).collect();
    let mut stored_traces: HashMap<String, Piece<TracePatch<'static>>> = HashMap::new();
    for row in stored_rows(
        clickhouse,
        "traces",
        STORED_TRACE_COLUMNS,
        project,
        &trace_ids,
        None,
    )
    .await?
    {
        let piece = stored_trace(&row).ok_or_else(|| MergeError::Stored {
            table: "traces",
            message: row.to_string(),
        })?;
        stored_traces.insert(piece.patch.id.to_string(), piece);
    }
    for (id, mut pieces) in traces {
        let stored_start = stored_traces.get(&id).and_then(|s| s.patch.timestamp);
        pieces.extend(stored_traces.remove(&id));
        let Some(mut piece) = fold(pieces) else { continue };
        if stored_start.is_some() {
            piece.patch.timestamp = stored_start;
        }
        let trace = complete_trace(piece.patch, piece.version);
        if let (Some(experiment), Some(item)) = (&trace.experiment_id, &trace.dataset_item_id) {
            let name = trace.metadata.get("experiment.name").and_then(MetaValue::as_text);
            link_trace(tx, project, experiment, name, item, &trace.id)
                .await
                .map_err(|e| MergeError::Stored {
                    table: "experiments",
                    message: e.to_string(),
                })?;
        }
        merged.events.push(Event {
            id: piece.event_id.into(),
            timestamp: Timestamp::from_micros(piece.version),
            payload: Payload::Trace(trace),
        });
    }

    let observation_ids: Vec<&str> = observations.keys().map(String::as_str).collect();
    let mut waiting: HashMap<String, Vec<Piece<ObservationPatch<'static>>>> = HashMap::new();
    for row in tx
        .query(
            "SELECT entity_id, version, event_id, patch FROM pending_patches
             WHERE project_id = $1 AND entity_id = ANY($2)",
            &[&project, &observation_ids],
        )
        .await?
    {
        let entity: String = row.get("entity_id");
        let pending = PendingRow {
            version: row.get("version"),
            event_id: row.get("event_id"),
            // As compact JSON text (jsonb's own text puts spaces in), which the patch borrows.
            patch: serde_json::from_str::<ObservationPatch>(&row.get::<_, Value>("patch").to_string())
                .map(ObservationPatch::into_static)
                .map_err(|e| MergeError::Stored {
                    table: "pending_patches",
                    message: e.to_string(),
                })?,
        };
        waiting.entry(entity).or_default().push(Piece {
            version: pending.version,
            event_id: pending.event_id,
            patch: pending.patch,
        });
    }
    let id_set: BTreeSet<&str> = observation_ids.iter().copied().collect();
    // A stored observation sits under its trace; when the pieces name every id's trace, only
    // those traces are read, otherwise the project's ids.
    let known_traces: Option<BTreeSet<&str>> = observations
        .iter()
        .map(|(id, pieces)| {
            pieces
                .iter()
                .chain(waiting.get(id).into_iter().flatten())
                .find_map(|piece| piece.patch.trace_id.as_deref())
        })
        .collect();
    let mut stored: HashMap<String, Piece<ObservationPatch<'static>>> = HashMap::new();
    for row in stored_rows(
        clickhouse,
        "observations",
        STORED_OBSERVATION_COLUMNS,
        project,
        &id_set,
        known_traces.as_ref(),
    )
    .await?
    {
        let piece = stored_observation(&row).ok_or_else(|| MergeError::Stored {
            table: "observations",
            message: row.to_string(),
        })?;
        stored.insert(piece.patch.id.to_string(), piece);
    }
    let mut completed: Vec<String> = Vec::new();
    for (id, new_pieces) in observations {
        let kept = stored
            .get(&id)
            .map(|s| (s.patch.start_time, s.patch.trace_id.clone(), s.patch.kind));
        let mut pieces = new_pieces.clone();
        pieces.extend(waiting.remove(&id).unwrap_or_default());
        pieces.extend(stored.remove(&id));
        let Some(mut piece) = fold(pieces) else { continue };
        if let Some((start_time, trace_id, kind)) = kept {
            piece.patch.start_time = start_time.or(piece.patch.start_time);
            piece.patch.trace_id = trace_id.or(piece.patch.trace_id);
            piece.patch.kind = kind.or(piece.patch.kind);
        }
        match complete_observation(piece.patch) {
            Some(observation) => {
                merged.events.push(Event {
                    id: piece.event_id.into(),
                    timestamp: Timestamp::from_micros(piece.version),
                    payload: Payload::Observation(observation),
                });
                completed.push(id);
            }
            None => {
                merged.pending += new_pieces.len();
                for piece in new_pieces {
                    let patch = serde_json::to_value(&piece.patch).map_err(|e| MergeError::Stored {
                        table: "pending_patches",
                        message: e.to_string(),
                    })?;
                    tx.execute(
                        "INSERT INTO pending_patches (project_id, entity_id, event_id, version, patch)
                         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                        &[&project, &id, &piece.event_id, &piece.version, &patch],
                    )
                    .await?;
                }
            }
        }
    }
    if !completed.is_empty() {
        tx.execute(
            "DELETE FROM pending_patches WHERE project_id = $1 AND entity_id = ANY($2)",
            &[&project, &completed],
        )
        .await?;
    }
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_micros(1_764_000_000_000_000 + seconds * 1_000_000)
    }

    fn piece(
        version_s: i64,
        event: &str,
        patch: ObservationPatch<'static>,
    ) -> Piece<ObservationPatch<'static>> {
        Piece {
            version: at(version_s).as_micros(),
            event_id: event.to_owned(),
            patch,
        }
    }

    fn create() -> ObservationPatch<'static> {
        ObservationPatch {
            id: "o1".into(),
            trace_id: Some("t1".into()),
            kind: Some(ObservationType::Generation),
            name: Some("llm".into()),
            start_time: Some(at(0)),
            input: Some(Json::from_value(&serde_json::json!({"q": "hi"}))),
            model: Some("gpt-4o".into()),
            usage: Some(Usage {
                input_tokens: 10,
                ..Usage::default()
            }),
            metadata: [("a".into(), MetaValue::from_value(&Value::from(1)))].into(),
            ..ObservationPatch::default()
        }
    }

    fn update() -> ObservationPatch<'static> {
        ObservationPatch {
            id: "o1".into(),
            end_time: Some(at(2)),
            output: Some(Json::from_value(&serde_json::json!("hello"))),
            usage: Some(Usage {
                input_tokens: 10,
                output_tokens: 5,
                ..Usage::default()
            }),
            metadata: [("b".into(), MetaValue::from_value(&Value::from(2)))].into(),
            ..ObservationPatch::default()
        }
    }

    #[test]
    fn an_update_keeps_what_the_create_set_in_either_order() {
        let forward = fold(vec![piece(0, "c", create()), piece(1, "u", update())]).unwrap();
        let reverse = fold(vec![piece(1, "u", update()), piece(0, "c", create())]).unwrap();
        assert_eq!(forward, reverse);
        assert_eq!(forward.event_id, "u");
        let observation = complete_observation(forward.patch).unwrap();
        assert_eq!(observation.model.as_deref(), Some("gpt-4o"));
        assert_eq!(observation.input.unwrap().as_str(), r#"{"q":"hi"}"#);
        assert_eq!(observation.output.unwrap().as_str(), r#""hello""#);
        assert_eq!(observation.end_time, Some(at(2)));
        assert_eq!(observation.usage.output_tokens, 5);
        assert_eq!(observation.metadata.len(), 2, "metadata merges key by key");
    }

    #[test]
    fn an_update_alone_is_incomplete_and_waits() {
        let alone = fold(vec![piece(1, "u", update())]).unwrap();
        assert!(complete_observation(alone.patch).is_none());
    }

    #[test]
    fn trace_patches_accumulate_tags_and_keep_set_fields() {
        let first = Piece {
            version: 1,
            event_id: "e1".into(),
            patch: TracePatch {
                id: "t".into(),
                name: Some("chat".into()),
                tags: vec!["a".into()],
                ..TracePatch::default()
            },
        };
        let second = Piece {
            version: 2,
            event_id: "e2".into(),
            patch: TracePatch {
                id: "t".into(),
                user_id: Some("u".into()),
                tags: vec!["b".into(), "a".into()],
                ..TracePatch::default()
            },
        };
        let merged = fold(vec![second, first]).unwrap();
        let trace = complete_trace(merged.patch, merged.version);
        assert_eq!(trace.name.as_deref(), Some("chat"));
        assert_eq!(trace.user_id.as_deref(), Some("u"));
        assert_eq!(trace.tags, vec!["a", "b"]);
        assert_eq!(trace.timestamp, Some(Timestamp::from_micros(2)));
    }

    #[test]
    fn stored_rows_read_back_as_pieces() {
        let row = serde_json::json!({
            "id": "o1", "trace_id": "t1", "parent_observation_id": null, "type": "generation", "name": "llm",
            "start_time_us": "1764000000000000", "end_time_us": null, "level": "default", "status_message": null,
            "input": "{\"q\":\"hi\"}", "output": null, "metadata_keys": ["a"], "metadata_values": ["1"],
            "model": "gpt-4o", "model_parameters": null, "input_tokens": "10", "output_tokens": "0",
            "cache_read_tokens": "0", "cache_write_tokens": "0", "input_cost": null, "output_cost": null,
            "cache_read_cost": null, "cache_write_cost": null, "total_cost": null, "tool_name": null,
            "tool_call_id": null, "completion_start_time_us": null, "prompt_name": null, "prompt_version": null,
            "version": "1764000000000000"
        });
        let piece = stored_observation(&row).unwrap();
        assert_eq!(piece.version, 1_764_000_000_000_000);
        assert_eq!(piece.patch.level, None, "the default level counts as unset");
        assert_eq!(piece.patch.usage.unwrap().input_tokens, 10);
        assert_eq!(
            piece.patch.cost, None,
            "a price-table cost is computed again, not kept"
        );
        assert!(complete_observation(piece.patch).is_some());
    }

    #[test]
    fn lock_keys_differ_by_table_and_project() {
        let project = Uuid::nil();
        assert_ne!(
            lock_key(project, "traces", "x"),
            lock_key(project, "observations", "x")
        );
        assert_ne!(
            lock_key(project, "traces", "x"),
            lock_key(Uuid::max(), "traces", "x")
        );
    }
}
