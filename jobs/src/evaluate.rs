//! The evaluation job: scores new observations with each project's active evaluators.
//!
//! Observations newer than the job's watermark (their `version`, i.e. event time) are read from
//! ClickHouse in bounded chunks, decoded to Arrow and handed to Polars as Arrow IPC. Every
//! evaluator yields a pass/fail per observation it applies to; scores get deterministic ids
//! (`eval:<evaluator>:<observation>`) and the observation's version, so re-running a window
//! writes identical rows that ClickHouse deduplicates. An evaluator whose config is broken is
//! reported by name; the others still write their scores.

use std::collections::HashMap;
use std::io::Cursor;

use agenttrace_etl::clickhouse::{ClickHouse, quote};
use agenttrace_etl::loader::{WireFormat, insert_statement};
use agenttrace_etl::tables::TableBatches;
use agenttrace_schemas::event::{Metadata, Score, ScoreSource, ScoreValue};
use agenttrace_schemas::{Event, Payload, Timestamp};
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
    /// Evaluators that could not run, with the reason.
    pub broken: Vec<String>,
}

pub async fn active_evaluators(
    pg: &Client,
    selection: &Selection,
) -> Result<Vec<Evaluator>, tokio_postgres::Error> {
    const COLUMNS: &str = "SELECT id::text, project_id::text, name, kind, config FROM evaluators";
    let rows = match selection {
        Selection::Unscheduled => {
            pg.query(
                &format!("{COLUMNS} WHERE active AND schedule IS NULL ORDER BY project_id, name"),
                &[],
            )
            .await?
        }
        Selection::One(id) => {
            pg.query(&format!("{COLUMNS} WHERE active AND id::text = $1"), &[id])
                .await?
        }
    };
    Ok(rows
        .iter()
        .map(|row| Evaluator {
            id: row.get(0),
            project_id: row.get(1),
            name: row.get(2),
            kind: row.get(3),
            config: row.get(4),
        })
        .collect())
}

/// Expected outputs of the dataset items that the given traces ran, by trace id. Both lookups
/// are scoped to the project: a trace naming another project's dataset item gets nothing.
async fn expected_outputs(
    pg: &Client,
    clickhouse: &ClickHouse,
    project_id: &str,
    trace_ids: &[&str],
) -> Result<HashMap<String, Value>, String> {
    if trace_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let ids: Vec<String> = trace_ids.iter().map(|id| quote(id)).collect();
    let sql = format!(
        "SELECT id, assumeNotNull(dataset_item_id) FROM traces FINAL WHERE project_id = {} \
         AND dataset_item_id IS NOT NULL AND id IN ({}) FORMAT TabSeparated",
        quote(project_id),
        ids.join(",")
    );
    let text = clickhouse.query_text(&sql).await.map_err(|e| e.to_string())?;
    let item_of: HashMap<String, String> = text
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .map(|(trace, item)| (unescape_tsv(trace), unescape_tsv(item)))
        .collect();
    if item_of.is_empty() {
        return Ok(HashMap::new());
    }
    let items: Vec<&str> = item_of.values().map(String::as_str).collect();
    let rows = pg
        .query(
            "SELECT i.id::text, i.expected_output FROM dataset_items i JOIN datasets d ON d.id = i.dataset_id
             WHERE d.project_id::text = $1 AND i.id::text = ANY($2) AND i.expected_output IS NOT NULL",
            &[&project_id, &items],
        )
        .await
        .map_err(|e| e.to_string())?;
    let expected: HashMap<String, Value> = rows.iter().map(|row| (row.get(0), row.get(1))).collect();
    Ok(item_of
        .into_iter()
        .filter_map(|(trace, item)| expected.get(&item).map(|value| (trace, value.clone())))
        .collect())
}

/// Undoes ClickHouse's TabSeparated escaping of one field.
fn unescape_tsv(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('0') => out.push('\0'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// A stored output (JSON text) as a value; a JSON string that itself holds JSON is unwrapped,
/// since models often answer with JSON inside a text completion.
fn output_value(stored: &str) -> Option<Value> {
    match serde_json::from_str::<Value>(stored).ok()? {
        Value::String(inner) => Some(serde_json::from_str::<Value>(&inner).unwrap_or(Value::String(inner))),
        value => Some(value),
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
            // Stored payloads are always JSON; what can be invalid is a text completion (a
            // JSON string) that should itself hold JSON.
            let text = column(text_field(config)?)?.str().map_err(polars)?.clone();
            Ok(text
                .iter()
                .map(|v| {
                    v.map(|v| match serde_json::from_str::<Value>(v) {
                        Ok(Value::String(inner)) => serde_json::from_str::<Value>(&inner).is_ok(),
                        Ok(_) => true,
                        Err(_) => false,
                    })
                })
                .collect())
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
                .map(|(k, c)| (k == Some("generation")).then(|| c.unwrap_or(0.0) <= max))
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
                .map(|(k, (i, o))| (k == Some("generation")).then(|| i.unwrap_or(0) + o.unwrap_or(0) <= max))
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
                    (k == Some("tool_call")).then(|| !matches!(l, Some("warning" | "error")) && s.is_none())
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

/// Arrow batches (from ClickHouse) → a Polars frame, through Arrow IPC.
pub(crate) fn to_polars(batches: &[arrow_array::RecordBatch]) -> Result<DataFrame, String> {
    let schema = batches.first().map(|b| b.schema()).ok_or("no rows")?;
    let mut writer =
        arrow_ipc::writer::StreamWriter::try_new(Vec::new(), &schema).map_err(|e| e.to_string())?;
    for batch in batches {
        writer.write(batch).map_err(|e| e.to_string())?;
    }
    let bytes = writer.into_inner().map_err(|e| e.to_string())?;
    IpcStreamReader::new(Cursor::new(bytes))
        .finish()
        .map_err(|e| e.to_string())
}

/// Builds the score events for one evaluator's results.
fn scores(evaluator: &Evaluator, df: &DataFrame, passed: &BooleanChunked) -> Result<Vec<Event>, String> {
    let polars = |e: PolarsError| e.to_string();
    let ids = df.column("id").map_err(polars)?.str().map_err(polars)?;
    let traces = df.column("trace_id").map_err(polars)?.str().map_err(polars)?;
    let starts = df
        .column("start_time_us")
        .map_err(polars)?
        .i64()
        .map_err(polars)?;
    let versions = df.column("version").map_err(polars)?.u64().map_err(polars)?;
    let mut events = Vec::new();
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
        events.push(Event {
            id: format!("eval:{}:{id}", evaluator.id),
            // The observation's version: a re-run writes the very same row.
            timestamp: Timestamp::from_micros(version as i64),
            payload: Payload::Score(Score {
                id: format!("eval:{}:{id}", evaluator.id),
                trace_id: trace.to_owned(),
                observation_id: Some(id.to_owned()),
                timestamp: Some(Timestamp::from_micros(start)),
                name: evaluator.name.clone(),
                value: ScoreValue::Boolean(pass),
                source: ScoreSource::Eval,
                evaluator_id: Some(evaluator.id.clone()),
                comment: None,
                metadata: Metadata::new(),
            }),
        });
    }
    Ok(events)
}

/// Evaluates every observation ingested after `watermark` (µs) and before the current second,
/// chunk by chunk.
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
    let mut broken = std::collections::BTreeSet::new();
    // Rows of the current second may still arrive: this run stops before it.
    let until: i64 = clickhouse
        .query_text("SELECT toUInt32(now()) FORMAT TabSeparated")
        .await
        .map_err(|e| e.to_string())?
        .trim()
        .parse()
        .map_err(|e| format!("reading ClickHouse's clock: {e}"))?;
    let (mut after_second, mut after_id) = (watermark.map_or(0, |w| w / 1_000_000), String::new());
    loop {
        // Within a run, continue after the last (second, id) read; a run starts after the
        // watermark's second.
        let after = if after_id.is_empty() {
            format!("toUInt32(ingested_at) > {after_second}")
        } else {
            format!(
                "(toUInt32(ingested_at) > {after_second} OR (toUInt32(ingested_at) = {after_second} AND id > {}))",
                quote(&after_id)
            )
        };
        let sql = format!(
            "SELECT project_id, id, trace_id, type, input, output, start_time_us, end_time_us, level, \
             status_message, toFloat64(ifNull(total_cost, toDecimal64(0, 12))) AS total_cost, input_tokens, \
             output_tokens, version, toInt64(toUInt32(ingested_at)) AS ingested_second \
             FROM observations FINAL WHERE {after} AND toUInt32(ingested_at) < {until} \
             ORDER BY ingested_second, id LIMIT {CHUNK_ROWS} FORMAT Native"
        );
        let body = clickhouse.query(&sql).await.map_err(|e| e.to_string())?;
        let batches = agenttrace_etl::native::decode::all_blocks(&body)?;
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        if rows == 0 {
            break;
        }
        let df = to_polars(&batches)?;
        let seconds = df
            .column("ingested_second")
            .map_err(|e| e.to_string())?
            .i64()
            .map_err(|e| e.to_string())?;
        let ids = df
            .column("id")
            .map_err(|e| e.to_string())?
            .str()
            .map_err(|e| e.to_string())?;
        after_second = seconds.get(rows - 1).unwrap_or_default();
        after_id = ids.get(rows - 1).unwrap_or_default().to_owned();
        report.observations += rows as u64;
        report.watermark = Some(after_second * 1_000_000);

        let projects = df
            .column("project_id")
            .map_err(|e| e.to_string())?
            .str()
            .map_err(|e| e.to_string())?;
        for (project_id, project_evaluators) in &by_project {
            let subset = df
                .filter(&projects.equal(*project_id))
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
                expected_outputs(pg, clickhouse, project_id, &trace_ids).await?
            } else {
                HashMap::new()
            };
            let mut tables = TableBatches::new(project_id);
            for evaluator in project_evaluators {
                let outcome = evaluate(evaluator, &subset, &expected)
                    .and_then(|passed| scores(evaluator, &subset, &passed));
                match outcome {
                    Ok(events) => {
                        for event in &events {
                            tables.push(event, None);
                        }
                        report.scores += events.len() as u64;
                    }
                    Err(reason) => {
                        broken.insert(format!(
                            "evaluator {:?} ({}): {reason}",
                            evaluator.name, evaluator.id
                        ));
                    }
                }
            }
            for (table, batch) in tables
                .finish("evaluation", Timestamp::now())
                .map_err(|e| e.to_string())?
            {
                let body = WireFormat::Native
                    .encode(std::slice::from_ref(&batch))
                    .map_err(|e| e.to_string())?;
                clickhouse
                    .insert(&insert_statement(table, WireFormat::Native), body.into(), false)
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
        if rows < CHUNK_ROWS {
            break;
        }
    }
    report.broken = broken.into_iter().collect();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
    fn unescapes_tab_separated_fields() {
        assert_eq!(unescape_tsv(r"a\tb\\c\nd"), "a\tb\\c\nd");
    }
}
