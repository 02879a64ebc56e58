//! The evaluation job: scores new observations with each project's active evaluators.
//!
//! Observations newer than the job's watermark (their `version`, i.e. event time) are read from
//! ClickHouse in bounded chunks, decoded to Arrow and handed to Polars as Arrow IPC. Every
//! evaluator yields a pass/fail per observation it applies to; scores get deterministic ids
//! (`eval:<evaluator>:<observation>`) and the observation's version, so re-running a window
//! writes identical rows that ClickHouse deduplicates. An evaluator whose config is broken is
//! reported by name; the others still write their scores.

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

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct EvaluationReport {
    pub observations: u64,
    pub scores: u64,
    /// The highest observation version evaluated (the next watermark).
    pub watermark: Option<i64>,
    /// Evaluators that could not run, with the reason.
    pub broken: Vec<String>,
}

pub async fn active_evaluators(pg: &Client) -> Result<Vec<Evaluator>, tokio_postgres::Error> {
    let rows = pg
        .query(
            "SELECT id::text, project_id::text, name, kind, config FROM evaluators WHERE active ORDER BY project_id, name",
            &[],
        )
        .await?;
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
fn evaluate(evaluator: &Evaluator, df: &DataFrame) -> Result<BooleanChunked, String> {
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
        other => Err(format!(
            "evaluator kind {other:?} is not supported by the evaluation job yet"
        )),
    }
}

/// Arrow batches (from ClickHouse) → a Polars frame, through Arrow IPC.
fn to_polars(batches: &[arrow_array::RecordBatch]) -> Result<DataFrame, String> {
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
    watermark: Option<i64>,
) -> Result<EvaluationReport, String> {
    let evaluators = active_evaluators(pg).await.map_err(|e| e.to_string())?;
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
        let mut by_project: std::collections::BTreeMap<&str, TableBatches> = Default::default();
        for evaluator in &evaluators {
            let mask = projects.equal(evaluator.project_id.as_str());
            let subset = df.filter(&mask).map_err(|e| e.to_string())?;
            if subset.height() == 0 {
                continue;
            }
            let outcome = evaluate(evaluator, &subset).and_then(|passed| scores(evaluator, &subset, &passed));
            match outcome {
                Ok(events) => {
                    let tables = by_project
                        .entry(evaluator.project_id.as_str())
                        .or_insert_with(|| TableBatches::new(&evaluator.project_id));
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
        for (_, tables) in by_project {
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
