//! `agenttrace bench jobs`: the evaluation job's per-chunk work on N generated observations.
//!
//! One chunk of realistic observations (the demo's coding-agent sessions) is encoded once as
//! ClickHouse would send it (Native). Each iteration then does what the job does with a chunk:
//! decode Native → Arrow → Polars (the next chunk, while this one is scored), apply a realistic
//! mix of nine evaluators, build the scores batch and encode it as Native for the insert. Only
//! the ClickHouse round trips are left out; they are measured by `bench load`.
//!
//! The baseline, run in the same process on the same chunks, only reads them (decode → Polars):
//! the ratio says what evaluating costs on top of reading the data at all. Peak memory is
//! measured for N/4 and N observations: bounded by the chunk, it must not grow with N.

use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use agenttrace_etl::clickhouse::insert::WireFormat;
use agenttrace_jobs::evaluate::{CHUNK_ROWS, Evaluator, score_frame};
use agenttrace_jobs::frames::read_chunk;
use agenttrace_schemas::{Payload, Timestamp};
use anyhow::ensure;
use arrow_array::builder::{Float64Builder, Int64Builder, StringBuilder, UInt64Builder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use clap::Args;
use serde_json::json;

use crate::agent::SessionGenerator;
use crate::bench::{peak_rss_mb, reset_peak_rss};

#[derive(Debug, Clone, Args)]
pub struct JobsBenchArgs {
    /// Observations to evaluate.
    #[arg(default_value_t = 4_000_000)]
    pub observations: usize,
}

const PROJECT: &str = "bench-project";

/// The mix: text checks on outputs, JSON checks, thresholds and tool failures.
fn evaluators() -> Vec<Evaluator> {
    let mix = [
        ("says-done", "contains", json!({"pattern": "done"})),
        ("no-todo", "not_contains", json!({"pattern": "TODO"})),
        (
            "names-a-tool",
            "regex",
            json!({"pattern": "(Bash|Edit|Read|Grep)"}),
        ),
        ("json-output", "valid_json", json!({})),
        (
            "message-shape",
            "json_schema",
            json!({"schema": {"type": "object", "required": ["role", "content"]}}),
        ),
        ("fast", "latency_threshold", json!({"max_ms": 6000})),
        ("cheap", "cost_threshold", json!({"max_usd": 0.05})),
        ("short", "token_threshold", json!({"max_tokens": 4000})),
        ("tools-ok", "tool_call_failure", json!({})),
    ];
    mix.into_iter()
        .enumerate()
        .map(|(i, (name, kind, config))| Evaluator {
            id: format!("00000000-0000-0000-0000-{i:012}"),
            project_id: PROJECT.to_owned(),
            name: name.to_owned(),
            kind: kind.to_owned(),
            config,
        })
        .collect()
}

/// One chunk of demo observations with the columns the job selects, as Native bytes.
fn native_chunk(rows: usize) -> anyhow::Result<Vec<u8>> {
    let mut generator = SessionGenerator::new(7);
    let (mut id, mut trace, mut kind, mut level, mut status) = Default::default();
    let (mut input, mut output): (StringBuilder, StringBuilder) = Default::default();
    let (mut start, mut end) = (Int64Builder::new(), Int64Builder::new());
    let (mut cost, mut input_tokens, mut output_tokens, mut version) = (
        Float64Builder::new(),
        UInt64Builder::new(),
        UInt64Builder::new(),
        UInt64Builder::new(),
    );
    let builders: [&mut StringBuilder; 5] = [&mut id, &mut trace, &mut kind, &mut level, &mut status];
    let [id, trace, kind, level, status] = builders;
    let mut count = 0;
    let end_of_sessions = Timestamp::now();
    while count < rows {
        for event in generator.session(end_of_sessions, 6) {
            let Payload::Observation(o) = &event.payload else {
                continue;
            };
            if count == rows {
                break;
            }
            count += 1;
            id.append_value(&o.id);
            trace.append_value(&o.trace_id);
            kind.append_value(o.kind.as_str());
            level.append_value(o.level.as_str());
            status.append_option(o.status_message.as_deref());
            input.append_option(o.input.as_ref().map(|j| j.as_str()));
            output.append_option(o.output.as_ref().map(|j| j.as_str()));
            start.append_value(o.start_time.as_micros());
            end.append_option(o.end_time.map(|t| t.as_micros()));
            let usage = &o.usage;
            cost.append_value(usage.input_tokens as f64 * 3e-6 + usage.output_tokens as f64 * 15e-6);
            input_tokens.append_value(usage.input_tokens);
            output_tokens.append_value(usage.output_tokens);
            version.append_value(event.timestamp.as_micros() as u64);
        }
    }
    let text = |name: &str, nullable: bool| Field::new(name, DataType::Utf8, nullable);
    let schema = Schema::new(vec![
        text("project_id", false),
        text("id", false),
        text("trace_id", false),
        text("type", false),
        text("input", true),
        text("output", true),
        Field::new("start_time_us", DataType::Int64, false),
        Field::new("end_time_us", DataType::Int64, true),
        text("level", false),
        text("status_message", true),
        Field::new("total_cost", DataType::Float64, false),
        Field::new("input_tokens", DataType::UInt64, false),
        Field::new("output_tokens", DataType::UInt64, false),
        Field::new("version", DataType::UInt64, false),
    ]);
    let project: ArrayRef = Arc::new(arrow_array::StringArray::from(vec![PROJECT; rows]));
    let columns: Vec<ArrayRef> = vec![
        project,
        Arc::new(id.finish()),
        Arc::new(trace.finish()),
        Arc::new(kind.finish()),
        Arc::new(input.finish()),
        Arc::new(output.finish()),
        Arc::new(start.finish()),
        Arc::new(end.finish()),
        Arc::new(level.finish()),
        Arc::new(status.finish()),
        Arc::new(cost.finish()),
        Arc::new(input_tokens.finish()),
        Arc::new(output_tokens.finish()),
        Arc::new(version.finish()),
    ];
    let batch = RecordBatch::try_new(Arc::new(schema), columns)?;
    Ok(WireFormat::Native.encode(std::slice::from_ref(&batch))?.to_vec())
}

/// Reads (and with `evaluate`, evaluates) `observations` rows, chunk by chunk. Like the job,
/// the next chunk is decoded while this one is scored.
fn pass(chunk: &[u8], observations: usize, evaluate: bool) -> anyhow::Result<(f64, u64)> {
    let evaluators = evaluators();
    let evaluators: Vec<&Evaluator> = evaluators.iter().collect();
    let expected = HashMap::new();
    let (mut done, mut scores) = (0, 0);
    let started = Instant::now();
    let mut next = read_chunk(chunk).map_err(anyhow::Error::msg)?;
    let mut buffer = Vec::new();
    while done < observations {
        let df = next;
        done += df.height();
        if !evaluate {
            next = read_chunk(chunk).map_err(anyhow::Error::msg)?;
            continue;
        }
        let mut broken = BTreeSet::new();
        let (read, scored) = rayon::join(
            || read_chunk(chunk),
            || {
                score_frame(
                    PROJECT,
                    &evaluators,
                    &df,
                    &expected,
                    &mut broken,
                    std::mem::take(&mut buffer),
                )
            },
        );
        next = read.map_err(anyhow::Error::msg)?;
        let body = scored.map_err(anyhow::Error::msg)?;
        ensure!(broken.is_empty(), "broken evaluators: {broken:?}");
        scores += body.rows as u64;
        // As the job does once its insert is done.
        buffer = std::hint::black_box(body.native);
    }
    Ok((done as f64 / started.elapsed().as_secs_f64(), scores))
}

pub fn run_jobs(args: JobsBenchArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    ensure!(args.observations >= 4, "evaluate at least 4 observations");
    let chunk = native_chunk(CHUNK_ROWS)?;
    writeln!(
        out,
        "evaluation job, {} observations in chunks of {CHUNK_ROWS} ({:.1} MB Native each), {} evaluators",
        args.observations,
        chunk.len() as f64 / 1e6,
        evaluators().len()
    )?;
    let (read_rate, _) = pass(&chunk, args.observations, false)?;
    writeln!(
        out,
        "  baseline (read only: Native → Arrow → Polars) {read_rate:>12.0} observations/s"
    )?;
    let mut rates = Vec::new();
    for observations in [args.observations / 4, args.observations] {
        reset_peak_rss();
        let (rate, scores) = pass(&chunk, observations, true)?;
        writeln!(
            out,
            "  evaluate {observations:>9} observations        {rate:>12.0} observations/s  {scores} scores  peak RSS {:.0} MB",
            peak_rss_mb()
        )?;
        rates.push(rate);
    }
    // Where the time goes: each evaluator alone on one chunk (evaluate, build and encode its
    // scores), on one core.
    let df = read_chunk(&chunk).map_err(anyhow::Error::msg)?;
    for evaluator in evaluators() {
        let started = Instant::now();
        let rounds = 5;
        for _ in 0..rounds {
            let mut broken = BTreeSet::new();
            let batch = score_frame(
                PROJECT,
                &[&evaluator],
                &df,
                &HashMap::new(),
                &mut broken,
                Vec::new(),
            )
            .map_err(anyhow::Error::msg)?;
            std::hint::black_box(batch);
        }
        let per_million = started.elapsed().as_secs_f64() / (rounds * df.height()) as f64 * 1e6;
        writeln!(
            out,
            "    {:<18} {:<18} {:>7.0} ms per million observations",
            evaluator.name,
            evaluator.kind,
            per_million * 1e3
        )?;
    }
    let rate = rates[rates.len() - 1];
    writeln!(
        out,
        "  evaluate / read-only baseline: {:.2}   target ≥ 1,000,000 observations/s: {}",
        rate / read_rate,
        if rate >= 1e6 { "met" } else { "NOT met" }
    )?;
    Ok(())
}
