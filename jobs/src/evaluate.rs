//! The evaluation job: scores new observations with each project's active evaluators.
//!
//! Observations newer than the job's watermark (their `version`, i.e. event time) are read from
//! ClickHouse in bounded chunks, decoded to Arrow and handed to Polars as Arrow IPC. Every
//! evaluator yields a pass/fail per observation it applies to; scores get deterministic ids
//! (`eval:<evaluator>:<observation>`) and the observation's version, so re-running a window
//! writes identical rows that ClickHouse deduplicates. An evaluator whose config is broken is
//! reported by name; the others still write their scores.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use agenttrace_etl::clickhouse::Table;
use agenttrace_etl::clickhouse::{ClickHouse, quote};

use crate::frames::frame_of;
use agenttrace_etl::judge::targets::dataset_items_of;
use agenttrace_schemas::event::ScoreSource;
use arrow_array::builder::{
    ArrayBuilder, Float64Builder, Int64Builder, ListBuilder, StringBuilder, UInt64Builder,
};
use arrow_array::{ArrayRef, RecordBatch, StringArray};
use arrow_schema::{ArrowError, DataType, Field};
use polars::prelude::*;
use serde_json::Value;
use tokio_postgres::Client;

/// Observations per chunk: bounds memory whatever the backlog.
pub const CHUNK_ROWS: usize = 50_000;

/// An evaluator row from PostgreSQL.
#[derive(Debug, Clone)]
pub struct Evaluator {
    pub id: String,
    pub project_id: String,
    pub name: String,
    pub kind: String,
    pub config: Value,
}

impl Evaluator {
    /// What [`Evaluator::from_row`] reads, selected from `evaluators` (ids as text).
    pub const COLUMNS: &'static str = "id::text AS id, project_id::text AS project_id, name, kind, config";

    pub fn from_row(row: &tokio_postgres::Row) -> Self {
        Evaluator {
            id: row.get("id"),
            project_id: row.get("project_id"),
            name: row.get("name"),
            kind: row.get("kind"),
            config: row.get("config"),
        }
    }

    /// Whether the evaluator compares outputs with dataset items' expected outputs.
    fn needs_expected_outputs(&self) -> bool {
        matches!(self.kind.as_str(), "exact_match" | "fuzzy_match")
    }
}

/// Which evaluators a run applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Every active evaluator without a schedule of its own (the `evaluate` job).
    Unscheduled,
    /// One evaluator by id (the `evaluate:<id>` job its own schedule fires).
    One(String),
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct EvaluationReport {
    pub observations: u64,
    pub scores: u64,
    /// The highest observation version evaluated (the next watermark).
    pub watermark: Option<i64>,
    /// Evaluators that could not run: (their project's id, the evaluator and the reason).
    pub broken: Vec<(String, String)>,
}

pub async fn active_evaluators(
    pg: &Client,
    selection: &Selection,
) -> Result<Vec<Evaluator>, tokio_postgres::Error> {
    // LLM judges run in their own job (`judge`): they call models, rules run on frames.
    let select = format!(
        "SELECT {} FROM evaluators WHERE kind <> 'llm_judge' AND",
        Evaluator::COLUMNS
    );
    let rows = match selection {
        Selection::Unscheduled => {
            pg.query(
                &format!("{select} active AND schedule IS NULL ORDER BY project_id, name"),
                &[],
            )
            .await?
        }
        Selection::One(id) => {
            pg.query(&format!("{select} active AND id::text = $1"), &[id])
                .await?
        }
    };
    Ok(rows.iter().map(Evaluator::from_row).collect())
}

/// A stored output (JSON text) as a value; a JSON string that itself holds JSON is unwrapped,
/// since models often answer with JSON inside a text completion.
fn output_value(stored: &str) -> Option<Value> {
    match serde_json::from_str::<Value>(stored).ok()? {
        Value::String(inner) => Some(serde_json::from_str::<Value>(&inner).unwrap_or(Value::String(inner))),
        value => Some(value),
    }
}

/// Whether a stored payload is JSON other than text, or text that itself parses as JSON.
/// Stored payloads are always JSON; what can be invalid is a text completion that should hold
/// JSON. Parsed without building values: this runs on every observation.
fn holds_json(stored: &str) -> bool {
    use serde::de::IgnoredAny;
    if stored.trim_start().starts_with('"') {
        serde_json::from_str::<String>(stored)
            .is_ok_and(|inner| serde_json::from_str::<IgnoredAny>(&inner).is_ok())
    } else {
        serde_json::from_str::<IgnoredAny>(stored).is_ok()
    }
}

/// The text of an output or expected output: a string as is, a message's `content` string, or
/// else the compact JSON.
fn text_of(value: &Value) -> std::borrow::Cow<'_, str> {
    match value {
        Value::String(text) => text.as_str().into(),
        Value::Object(map) => match map.get("content") {
            Some(Value::String(text)) => text.as_str().into(),
            _ => value.to_string().into(),
        },
        _ => value.to_string().into(),
    }
}

fn exact_match(output: &Value, expected: &Value) -> bool {
    output == expected || text_of(output).trim() == text_of(expected).trim()
}

/// Similarity in [0, 1]: normalized Levenshtein, or Sørensen–Dice on bigrams where Levenshtein's
/// quadratic cost would be too high (long outputs).
fn similarity(output: &Value, expected: &Value) -> f64 {
    let (a, b) = (text_of(output), text_of(expected));
    let (a, b) = (a.trim(), b.trim());
    if a.len().saturating_mul(b.len()) <= 16_000_000 {
        strsim::normalized_levenshtein(a, b)
    } else {
        strsim::sorensen_dice(a, b)
    }
}

/// Which text column a text evaluator looks at (`field`: input or output, default output).
fn text_field(config: &Value) -> Result<&'static str, String> {
    match config.get("field").and_then(Value::as_str).unwrap_or("output") {
        "output" => Ok("output"),
        "input" => Ok("input"),
        other => Err(format!("field must be \"input\" or \"output\", not {other:?}")),
    }
}

fn number(config: &Value, key: &str) -> Result<f64, String> {
    config
        .get(key)
        .and_then(Value::as_f64)
        .ok_or_else(|| format!("config needs a number {key:?}"))
}

fn pattern(config: &Value) -> Result<&str, String> {
    config
        .get("pattern")
        .and_then(Value::as_str)
        .ok_or_else(|| "config needs a string \"pattern\"".to_owned())
}

/// Pass (true) / fail (false) per row; null where the evaluator does not apply.
fn evaluate(
    evaluator: &Evaluator,
    df: &DataFrame,
    expected: &HashMap<String, Value>,
) -> Result<BooleanChunked, String> {
    let polars = |e: PolarsError| e.to_string();
    let config = &evaluator.config;
    let column = |name: &str| df.column(name).map_err(polars);
    match evaluator.kind.as_str() {
        "regex" => {
            let pattern = pattern(config)?;
            regex::Regex::new(pattern).map_err(|e| format!("invalid regex: {e}"))?;
            column(text_field(config)?)?
                .str()
                .map_err(polars)?
                .contains(pattern, true)
                .map_err(polars)
        }
        "contains" | "not_contains" => {
            let found = column(text_field(config)?)?
                .str()
                .map_err(polars)?
                .contains_literal(pattern(config)?);
            let found = found.map_err(polars)?;
            Ok(if evaluator.kind == "contains" {
                found
            } else {
                !&found
            })
        }
        "valid_json" => {
            let text = column(text_field(config)?)?.str().map_err(polars)?.clone();
            Ok(text.iter().map(|v| v.map(holds_json)).collect())
        }
        "latency_threshold" => {
            let max_us = (number(config, "max_ms")? * 1000.0) as i64;
            let start = column("start_time_us")?.i64().map_err(polars)?.clone();
            let end = column("end_time_us")?.i64().map_err(polars)?.clone();
            Ok(start
                .iter()
                .zip(end.iter())
                .map(|(s, e)| Some(e? - s? <= max_us))
                .collect())
        }
        "cost_threshold" => {
            let max = number(config, "max_usd")?;
            let cost = column("total_cost")?.f64().map_err(polars)?.clone();
            let kind = column("type")?.str().map_err(polars)?.clone();
            Ok(kind
                .iter()
                .zip(cost.iter())
                .map(|(k, c)| matches!(k, Some("generation" | "embedding")).then(|| c.unwrap_or(0.0) <= max))
                .collect())
        }
        "token_threshold" => {
            let max = number(config, "max_tokens")? as u64;
            let input = column("input_tokens")?.u64().map_err(polars)?.clone();
            let output = column("output_tokens")?.u64().map_err(polars)?.clone();
            let kind = column("type")?.str().map_err(polars)?.clone();
            Ok(kind
                .iter()
                .zip(input.iter().zip(output.iter()))
                .map(|(k, (i, o))| {
                    matches!(k, Some("generation" | "embedding"))
                        .then(|| i.unwrap_or(0) + o.unwrap_or(0) <= max)
                })
                .collect())
        }
        "tool_call_failure" => {
            let kind = column("type")?.str().map_err(polars)?.clone();
            let level = column("level")?.str().map_err(polars)?.clone();
            let status = column("status_message")?.str().map_err(polars)?.clone();
            Ok(kind
                .iter()
                .zip(level.iter().zip(status.iter()))
                .map(|(k, (l, s))| {
                    matches!(k, Some("tool_call" | "tool"))
                        .then(|| !matches!(l, Some("warning" | "error")) && s.is_none())
                })
                .collect())
        }
        "json_schema" => {
            let schema = config
                .get("schema")
                .ok_or("config needs a JSON Schema under \"schema\"")?;
            let validator =
                jsonschema::validator_for(schema).map_err(|e| format!("invalid JSON Schema: {e}"))?;
            let text = column(text_field(config)?)?.str().map_err(polars)?.clone();
            Ok(text
                .iter()
                .map(|v| v.map(|v| output_value(v).is_some_and(|value| validator.is_valid(&value))))
                .collect())
        }
        "exact_match" | "fuzzy_match" => {
            let threshold = match config.get("threshold") {
                None if evaluator.kind == "fuzzy_match" => 0.8,
                None => 1.0,
                Some(value) => value
                    .as_f64()
                    .filter(|t| (0.0..=1.0).contains(t))
                    .ok_or("\"threshold\" must be a number from 0 to 1")?,
            };
            let applies_to = config
                .get("observation_type")
                .map(|v| v.as_str().ok_or("\"observation_type\" must be a string"))
                .transpose()?
                .unwrap_or("generation");
            let kind = column("type")?.str().map_err(polars)?.clone();
            let traces = column("trace_id")?.str().map_err(polars)?.clone();
            let outputs = column("output")?.str().map_err(polars)?.clone();
            let fuzzy = evaluator.kind == "fuzzy_match";
            Ok(kind
                .iter()
                .zip(traces.iter().zip(outputs.iter()))
                .map(|(k, (trace, output))| {
                    if k != Some(applies_to) {
                        return None;
                    }
                    let expected = expected.get(trace?)?;
                    let output = output.and_then(output_value);
                    Some(output.is_some_and(|output| {
                        if fuzzy {
                            similarity(&output, expected) >= threshold
                        } else {
                            exact_match(&output, expected)
                        }
                    }))
                })
                .collect())
        }
        other => Err(format!("unknown evaluator kind {other:?}")),
    }
}

/// The scores of one project's chunk, built straight into `scores` table columns: a chunk of
/// 50,000 observations can give hundreds of thousands of scores, too many to build as events.
/// A score's id is `eval:<evaluator>:<observation>` and its version the observation's, so a
/// re-run writes the very same rows. `event_id` is empty: no ingest event carried the score.
pub struct ScoreColumns {
    id: StringBuilder,
    trace_id: StringBuilder,
    observation_id: StringBuilder,
    timestamp_us: Int64Builder,
    name: StringBuilder,
    value: Float64Builder,
    evaluator_id: StringBuilder,
    version: UInt64Builder,
}

impl ScoreColumns {
    /// Columns sized for `rows` scores of `evaluator` on `observations`: growing them instead
    /// costs more than filling them.
    pub fn with_capacity(evaluator: &Evaluator, sizes: &ChunkSizes) -> Self {
        let ChunkSizes { rows, ids, traces } = *sizes;
        let strings = |items: usize, data: usize| StringBuilder::with_capacity(items, data);
        ScoreColumns {
            id: strings(rows, ids + rows * (evaluator.id.len() + 6)),
            trace_id: strings(rows, traces),
            observation_id: strings(rows, ids),
            timestamp_us: Int64Builder::with_capacity(rows),
            name: strings(rows, rows * evaluator.name.len()),
            value: Float64Builder::with_capacity(rows),
            evaluator_id: strings(rows, rows * evaluator.id.len()),
            version: UInt64Builder::with_capacity(rows),
        }
    }

    pub fn len(&self) -> usize {
        self.version.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends one evaluator's verdicts (null verdicts: the evaluator does not apply).
    pub fn append(
        &mut self,
        evaluator: &Evaluator,
        df: &DataFrame,
        passed: &BooleanChunked,
    ) -> Result<usize, String> {
        use std::fmt::Write;
        let polars = |e: PolarsError| e.to_string();
        let ids = df.column("id").map_err(polars)?.str().map_err(polars)?;
        let traces = df.column("trace_id").map_err(polars)?.str().map_err(polars)?;
        let starts = df
            .column("start_time_us")
            .map_err(polars)?
            .i64()
            .map_err(polars)?;
        let versions = df.column("version").map_err(polars)?.u64().map_err(polars)?;
        let before = self.len();
        for (((id, trace), (start, version)), pass) in ids
            .iter()
            .zip(traces.iter())
            .zip(starts.iter().zip(versions.iter()))
            .zip(passed.iter())
        {
            let (Some(id), Some(trace), Some(start), Some(version), Some(pass)) =
                (id, trace, start, version, pass)
            else {
                continue;
            };
            // Pieces rather than `write!`: formatting machinery costs more than the copy.
            for piece in ["eval:", evaluator.id.as_str(), ":", id] {
                self.id.write_str(piece).map_err(|e| e.to_string())?;
            }
            self.id.append_value("");
            self.trace_id.append_value(trace);
            self.observation_id.append_value(id);
            self.timestamp_us.append_value(start);
            self.name.append_value(&evaluator.name);
            self.value.append_value(if pass { 1.0 } else { 0.0 });
            self.evaluator_id.append_value(&evaluator.id);
            self.version.append_value(version);
        }
        Ok(self.len() - before)
    }

    /// The rows as a `scores` record batch.
    /// The rows as a `scores` record batch; the same-for-every-row columns are slices of
    /// `constants`.
    pub fn finish(mut self, constants: &ConstantColumns) -> Result<RecordBatch, ArrowError> {
        let rows = self.len();
        let constant = |array: &ArrayRef| array.slice(0, rows);
        let columns: Vec<ArrayRef> = vec![
            constant(&constants.project_id),
            Arc::new(self.id.finish()),
            Arc::new(self.trace_id.finish()),
            Arc::new(self.observation_id.finish()),
            Arc::new(self.timestamp_us.finish()),
            Arc::new(self.name.finish()),
            constant(&constants.boolean),
            Arc::new(self.value.finish()),
            constant(&constants.nulls),
            constant(&constants.source),
            Arc::new(self.evaluator_id.finish()),
            constant(&constants.nulls),
            constant(&constants.empty_lists),
            constant(&constants.empty_lists),
            // No ingest event carried a job's score.
            constant(&constants.empty),
            Arc::new(self.version.finish()),
            constant(&constants.project_name),
        ];
        RecordBatch::try_new(Table::Scores.schema(), columns)
    }
}

/// What sizes a chunk's score columns: rows, and bytes of observation and trace ids.
#[derive(Debug, Clone, Copy)]
pub struct ChunkSizes {
    rows: usize,
    ids: usize,
    traces: usize,
}

impl ChunkSizes {
    pub fn of(observations: &DataFrame) -> Self {
        let rows = observations.height();
        let bytes = |column: &str| {
            observations
                .column(column)
                .ok()
                .and_then(|c| c.str().ok())
                .map_or(rows * 48, |c| c.iter().map(|v| v.map_or(0, str::len)).sum())
        };
        ChunkSizes {
            rows,
            ids: bytes("id"),
            traces: bytes("trace_id"),
        }
    }
}

/// The score columns that hold the same value in every row, built once per chunk (as long as
/// the chunk) and sliced for each evaluator: building them per evaluator cost more than the
/// evaluators' own work.
pub struct ConstantColumns {
    project_id: ArrayRef,
    project_name: ArrayRef,
    boolean: ArrayRef,
    source: ArrayRef,
    empty: ArrayRef,
    nulls: ArrayRef,
    empty_lists: ArrayRef,
}

impl ConstantColumns {
    pub fn new(project_id: &str, project_name: &str, rows: usize) -> Self {
        let repeat = |value: &str| -> ArrayRef {
            Arc::new(StringArray::from_iter_values(std::iter::repeat_n(value, rows)))
        };
        let mut lists = ListBuilder::new(StringBuilder::new()).with_field(Arc::new(Field::new(
            "item",
            DataType::Utf8,
            false,
        )));
        (0..rows).for_each(|_| lists.append(true));
        ConstantColumns {
            project_id: repeat(project_id),
            project_name: repeat(project_name),
            boolean: repeat("boolean"),
            source: repeat(ScoreSource::Eval.as_str()),
            empty: repeat(""),
            nulls: Arc::new(StringArray::new_null(rows)),
            empty_lists: Arc::new(lists.finish()),
        }
    }
}

/// One project's scores for a chunk, ready to insert.
#[derive(Debug, Default)]
pub struct ScoresBody {
    pub rows: usize,
    /// Native blocks for `INSERT INTO scores FORMAT Native`.
    pub native: Vec<u8>,
}

/// Applies one project's evaluators to its observations, in parallel (each evaluator builds its
/// own score columns), then encodes every evaluator's scores into one insert body, written into
/// `buffer` (cleared first: pass the previous chunk's, so its pages are reused rather than
/// faulted in afresh). An evaluator that cannot run is added to `broken`; the others run.
pub fn score_frame(
    project_id: &str,
    evaluators: &[&Evaluator],
    observations: &DataFrame,
    expected: &HashMap<String, Value>,
    broken: &mut BTreeSet<(String, String)>,
    buffer: Vec<u8>,
) -> Result<ScoresBody, String> {
    use rayon::prelude::*;
    // The project's name as its observations were stamped with it (empty on rows loaded before
    // names were denormalized).
    let project_name = observations
        .column("project_name")
        .ok()
        .and_then(|c| c.str().ok())
        .and_then(|names| names.get(0))
        .unwrap_or_default();
    let constants = ConstantColumns::new(project_id, project_name, observations.height());
    let sizes = ChunkSizes::of(observations);
    let outcomes: Vec<Result<Option<RecordBatch>, String>> = evaluators
        .par_iter()
        .map(|evaluator| {
            let mut scores = ScoreColumns::with_capacity(evaluator, &sizes);
            let passed = evaluate(evaluator, observations, expected)?;
            scores.append(evaluator, observations, &passed)?;
            if scores.is_empty() {
                return Ok(None);
            }
            scores.finish(&constants).map(Some).map_err(|e| e.to_string())
        })
        .collect();
    // Encoded one after another into a buffer sized up front: measured as fast as encoding in
    // parallel and concatenating, with one buffer instead of two.
    let size = outcomes
        .iter()
        .flatten()
        .flatten()
        .map(|batch| batch.get_array_memory_size())
        .sum::<usize>();
    let mut body = ScoresBody {
        rows: 0,
        native: buffer,
    };
    body.native.clear();
    body.native.reserve(size + 4096);
    for (evaluator, outcome) in evaluators.iter().zip(outcomes) {
        match outcome {
            Ok(Some(batch)) => {
                body.rows += batch.num_rows();
                agenttrace_etl::clickhouse::native::encode_block(&batch, &mut body.native)
                    .map_err(|e| e.to_string())?;
            }
            Ok(None) => {}
            Err(reason) => {
                broken.insert((
                    evaluator.project_id.clone(),
                    format!("evaluator {:?} ({}): {reason}", evaluator.name, evaluator.id),
                ));
            }
        }
    }
    Ok(body)
}

/// One chunk of what arrived: the observations indexed in seconds `first..=last`, or, for one
/// second that alone holds more than a chunk, the `slice`-th of `slices` parts of it (by a hash
/// of the key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    pub first: u32,
    pub last: u32,
    pub slice: Option<(u64, u64)>,
}

/// Cuts `arrivals` — (second, rows indexed in it), in time order — into chunks of about
/// `chunk_rows` rows: consecutive seconds up to that many, and a second with more split into
/// equal slices.
pub fn plan_chunks(arrivals: &[(u32, u64)], chunk_rows: u64) -> Vec<Chunk> {
    let mut chunks = Vec::new();
    let mut open: Option<(u32, u32, u64)> = None;
    for &(second, rows) in arrivals {
        if rows > chunk_rows {
            chunks.extend(open.take().map(|(first, last, _)| Chunk {
                first,
                last,
                slice: None,
            }));
            let slices = rows.div_ceil(chunk_rows);
            chunks.extend((0..slices).map(|slice| Chunk {
                first: second,
                last: second,
                slice: Some((slice, slices)),
            }));
            continue;
        }
        open = match open {
            Some((first, last, held)) if held + rows > chunk_rows => {
                chunks.push(Chunk {
                    first,
                    last,
                    slice: None,
                });
                Some((second, second, rows))
            }
            Some((first, _, held)) => Some((first, second, held + rows)),
            None => Some((second, second, rows)),
        };
    }
    chunks.extend(open.map(|(first, last, _)| Chunk {
        first,
        last,
        slice: None,
    }));
    chunks
}

/// How many observation versions of `projects` (quoted, comma-separated) arrived in each second
/// after `after_second` and before `until`: a key range of the ingest index, read one narrow
/// column.
pub async fn arrivals(
    clickhouse: &ClickHouse,
    projects: &str,
    after_second: i64,
    until: i64,
) -> Result<Vec<(u32, u64)>, String> {
    let text = clickhouse
        .query_text(&format!(
            "SELECT ingested_second, count() FROM observations_by_ingest \
             WHERE ingested_second > {after_second} AND ingested_second < {until} AND project_id IN ({projects}) \
             GROUP BY ingested_second ORDER BY ingested_second FORMAT TabSeparated"
        ))
        .await
        .map_err(|e| e.to_string())?;
    text.lines()
        .map(|line| {
            let (second, rows) = line.split_once('\t').unwrap_or_default();
            Ok((
                second.parse::<u32>().map_err(|e| format!("ingest index: {e}"))?,
                rows.parse::<u64>().map_err(|e| format!("ingest index: {e}"))?,
            ))
        })
        .collect()
}

/// The newest version of each observation of `projects` (quoted) that the chunk's part of the
/// ingest index names, read by its own key (project, trace, id).
pub fn chunk_query(projects: &str, chunk: Chunk) -> String {
    let slice = chunk.slice.map_or(String::new(), |(slice, slices)| {
        format!(" AND cityHash64(project_id, trace_id, id) % {slices} = {slice}")
    });
    format!(
        "SELECT project_id, project_name, id, trace_id, type, input, output, start_time_us, end_time_us, level, \
         status_message, toFloat64(ifNull(total_cost, toDecimal64(0, 12))) AS total_cost, input_tokens, \
         output_tokens, version \
         FROM observations FINAL WHERE (project_id, trace_id, id) IN ( \
             SELECT project_id, trace_id, id FROM observations_by_ingest \
             WHERE ingested_second >= {first} AND ingested_second <= {last} AND project_id IN ({projects}){slice}) \
         FORMAT Native",
        first = chunk.first,
        last = chunk.last,
    )
}

/// Fetches and decodes one chunk (None when it holds no rows). On a cluster each shard reads
/// the index's rows beside its own observations (the view fills each shard's index from that
/// shard's rows), so the subquery reads the local index.
async fn fetch_chunk(clickhouse: ClickHouse, sql: String) -> Result<Option<DataFrame>, String> {
    let settings: &[(&str, &str)] = match clickhouse.cluster() {
        Some(_) => &[("distributed_product_mode", "local")],
        None => &[],
    };
    let body = clickhouse
        .query_with_settings(&sql, settings)
        .await
        .map_err(|e| e.to_string())?;
    tokio::task::spawn_blocking(move || frame_of(&body))
        .await
        .map_err(|e| e.to_string())?
}

/// Evaluates every observation ingested after `watermark` (µs) and before the current second,
/// chunk by chunk. What arrived is found in `observations_by_ingest` (keyed by arrival), so a
/// run reads what is new, not what is stored.
pub async fn run(
    pg: &Client,
    clickhouse: &ClickHouse,
    selection: &Selection,
    watermark: Option<i64>,
) -> Result<EvaluationReport, String> {
    let evaluators = active_evaluators(pg, selection)
        .await
        .map_err(|e| e.to_string())?;
    if let (Selection::One(id), true) = (selection, evaluators.is_empty()) {
        return Err(format!("no active evaluator has id {id:?}"));
    }
    let mut by_project: Vec<(&str, Vec<&Evaluator>)> = Vec::new();
    for evaluator in &evaluators {
        match by_project.last_mut() {
            Some((project, group)) if *project == evaluator.project_id => group.push(evaluator),
            _ => by_project.push((&evaluator.project_id, vec![evaluator])),
        }
    }
    let mut report = EvaluationReport {
        watermark,
        ..EvaluationReport::default()
    };
    let mut broken = BTreeSet::new();
    // Rows of the current second may still arrive: this run stops before it.
    let until = clickhouse.clock().await?;
    let after_second = watermark.map_or(0, |w| w / 1_000_000);
    // Everything that arrived before `until` is behind the watermark once the run is done;
    // projects without an evaluator are not read at all.
    let done = Some((until - 1).max(after_second) * 1_000_000);
    if by_project.is_empty() {
        report.watermark = done;
        return Ok(report);
    }
    let projects = by_project
        .iter()
        .map(|(project, _)| quote(project))
        .collect::<Vec<_>>()
        .join(", ");
    let arrivals = arrivals(clickhouse, &projects, after_second, until).await?;
    let chunks = plan_chunks(&arrivals, CHUNK_ROWS as u64);
    // The next chunk is fetched and decoded while this one is scored.
    // The insert body's buffer, reused from chunk to chunk.
    let mut buffer = Vec::new();
    let fetch = |chunk: Chunk| tokio::spawn(fetch_chunk(clickhouse.clone(), chunk_query(&projects, chunk)));
    let mut pending = chunks.first().map(|chunk| fetch(*chunk));
    for index in 0..chunks.len() {
        let fetched = pending
            .take()
            .expect("each chunk's fetch is started before it is scored")
            .await
            .map_err(|e| e.to_string())??;
        pending = chunks.get(index + 1).map(|next| fetch(*next));
        let Some(df) = fetched else {
            continue;
        };
        report.observations += df.height() as u64;

        let project_ids = df
            .column("project_id")
            .map_err(|e| e.to_string())?
            .str()
            .map_err(|e| e.to_string())?;
        for (project_id, project_evaluators) in &by_project {
            let subset = df
                .filter(&project_ids.equal(*project_id))
                .map_err(|e| e.to_string())?;
            if subset.height() == 0 {
                continue;
            }
            let expected = if project_evaluators.iter().any(|e| e.needs_expected_outputs()) {
                let traces = subset
                    .column("trace_id")
                    .map_err(|e| e.to_string())?
                    .str()
                    .map_err(|e| e.to_string())?;
                let mut trace_ids: Vec<&str> = traces.iter().flatten().collect();
                trace_ids.sort_unstable();
                trace_ids.dedup();
                dataset_items_of(pg, clickhouse, project_id, &trace_ids)
                    .await?
                    .into_iter()
                    .filter_map(|(trace, (expected, _))| Some((trace, expected?)))
                    .collect()
            } else {
                HashMap::new()
            };
            let body = score_frame(
                project_id,
                project_evaluators,
                &subset,
                &expected,
                &mut broken,
                std::mem::take(&mut buffer),
            )?;
            if body.rows > 0 {
                report.scores += body.rows as u64;
                let sent = bytes::Bytes::from(body.native);
                clickhouse
                    .insert_native(Table::Scores, sent.clone())
                    .await
                    .map_err(|e| e.to_string())?;
                // The request is done with the body: take it back for the next chunk.
                if let Ok(reclaimed) = sent.try_into_mut() {
                    buffer = reclaimed.into();
                }
            }
        }
    }
    report.watermark = done;
    report.broken = broken.into_iter().collect();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn arrivals_are_cut_into_chunks_of_whole_seconds_and_a_crowded_second_into_slices() {
        let chunk = |first, last| Chunk {
            first,
            last,
            slice: None,
        };
        assert_eq!(plan_chunks(&[], 100), vec![]);
        assert_eq!(
            plan_chunks(&[(10, 40), (11, 60), (12, 1), (15, 99), (16, 100)], 100),
            vec![chunk(10, 11), chunk(12, 15), chunk(16, 16)]
        );
        assert_eq!(
            plan_chunks(&[(10, 5), (11, 250), (12, 5)], 100),
            vec![
                chunk(10, 10),
                Chunk {
                    first: 11,
                    last: 11,
                    slice: Some((0, 3))
                },
                Chunk {
                    first: 11,
                    last: 11,
                    slice: Some((1, 3))
                },
                Chunk {
                    first: 11,
                    last: 11,
                    slice: Some((2, 3))
                },
                chunk(12, 12),
            ]
        );
    }

    #[test]
    fn a_chunk_reads_its_slice_of_the_index_by_key() {
        let sql = chunk_query(
            "'p'",
            Chunk {
                first: 7,
                last: 9,
                slice: Some((1, 3)),
            },
        );
        assert!(
            sql.contains("FROM observations FINAL WHERE (project_id, trace_id, id) IN ("),
            "{sql}"
        );
        assert!(
            sql.contains("ingested_second >= 7 AND ingested_second <= 9 AND project_id IN ('p') AND cityHash64(project_id, trace_id, id) % 3 = 1"),
            "{sql}"
        );
    }

    #[test]
    fn outputs_holding_json_text_are_unwrapped() {
        assert_eq!(output_value(r#""{\"a\": 1}""#), Some(json!({"a": 1})));
        assert_eq!(output_value(r#""plain text""#), Some(json!("plain text")));
        assert_eq!(output_value("not json"), None);
    }

    #[test]
    fn matches_compare_values_or_their_text() {
        let message = json!({"role": "assistant", "content": " Paris\n"});
        assert!(exact_match(&message, &json!("Paris")));
        assert!(exact_match(&json!({"answer": 42}), &json!({"answer": 42})));
        assert!(!exact_match(&json!("Paris."), &json!("Paris")));
        assert!((similarity(&json!("hidden file"), &json!("hidden files")) - 11.0 / 12.0).abs() < 1e-12);
        assert_eq!(similarity(&json!("abc"), &json!("xyz")), 0.0);
        // Long texts use the linear-time measure.
        let long = "word ".repeat(5_000);
        assert_eq!(similarity(&json!(long), &json!(long)), 1.0);
    }

    #[test]
    fn json_text_is_valid_json_only_if_it_parses() {
        assert!(holds_json(r#"{"a": [1, 2]}"#));
        assert!(holds_json(r#""{\"a\": 1}""#));
        assert!(!holds_json(r#""TODO: {broken""#));
    }
}
