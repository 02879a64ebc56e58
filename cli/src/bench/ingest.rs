//! `agenttrace bench ingest`: the ETL's CPU per event on the ingest path, without I/O.
//!
//! Signed 500-event batches of the demo's coding-agent sessions are made once. Each is then taken
//! through what the ETL does between receiving a body and handing it to ClickHouse: verify the
//! HMAC, open the envelope and read the events, validate and convert them to Arrow, encode Native
//! and compress it (LZ4); once with the search index's postings and once without, for their
//! cost. The baseline, in the same process on the same bodies, only scans the JSON (serde, no
//! values built): the ratio says what the ETL costs on top of reading the bytes at all. Steadier than `bench load`, whose end-to-end figures depend on ClickHouse's disk.
//! Generations are priced with the model price table read once from PostgreSQL, as the ETL
//! prices them; without a reachable database they go unpriced, and the output says so.

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use agenttrace_etl::clickhouse::catalog::Table;
use agenttrace_etl::clickhouse::compression::Compression;
use agenttrace_etl::clickhouse::native;
use agenttrace_etl::ingest::pipeline::{OpenedBatch, batch_tables, convert, price_of};
use agenttrace_etl::ingest::pricing::{PriceMatcher, PriceTable};
use agenttrace_etl::ingest::signing::Keyring;
use agenttrace_schemas::event::TimeWindow;
use agenttrace_schemas::signature::SigningKey;
use agenttrace_schemas::{Event, SignedBatch, Timestamp};
use anyhow::{Context, ensure};
use bytes::Bytes;
use clap::Args;
use uuid::Uuid;

use crate::DatabaseArgs;
use crate::bench::{SIGNING_KEYS, generate};

#[derive(Debug, Clone, Args)]
pub struct IngestBenchArgs {
    /// Events to take through the path.
    #[arg(long, default_value_t = 200_000)]
    pub events: usize,
    /// Events per signed batch, as the edge flushes them.
    #[arg(long, default_value_t = 500)]
    pub batch_events: usize,
    /// Which ETL passes to run: both (for their ratio), or one alone, to profile it
    /// (`valgrind --tool=callgrind`).
    #[arg(long, value_enum, default_value_t = IndexPasses::Both)]
    pub search_index: IndexPasses,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum IndexPasses {
    Both,
    With,
    Without,
}

/// A signed body and its headers.
struct Signed {
    body: Bytes,
    key_id: String,
    signature: String,
}

fn signed_batches(args: &IngestBenchArgs, now: Timestamp) -> anyhow::Result<Vec<Signed>> {
    let key = SigningKey::parse_list(SIGNING_KEYS)
        .map_err(anyhow::Error::msg)?
        .remove(0);
    generate(args.events)
        .chunks(args.batch_events.max(1))
        .map(|events| {
            let body = serde_json::to_vec(&SignedBatch {
                batch_id: Uuid::now_v7(),
                edge_id: "bench".into(),
                project_id: Uuid::now_v7(),
                public_key: "pk-at-bench".into(),
                created_at: now,
                events: events.to_vec(),
            })?;
            let [(_, signature), (_, key_id)] = key.headers(now.as_micros() / 1_000_000, &body);
            Ok(Signed {
                body: body.into(),
                key_id,
                signature,
            })
        })
        .collect()
}

/// Opens, converts (with the search index's postings, or without them), encodes and compresses
/// one batch; the rows made.
fn through_the_etl(
    keyring: &Keyring,
    prices: &Arc<PriceTable>,
    signed: &Signed,
    now: Timestamp,
    indexed: bool,
) -> anyhow::Result<usize> {
    let batch = OpenedBatch::open(
        keyring,
        signed.body.clone(),
        Some(&signed.key_id),
        Some(&signed.signature),
        now.as_micros() / 1_000_000,
    )?;
    let prices = PriceMatcher::new(prices.clone());
    let project_id = batch.project_id;
    let price = |event: &Event| price_of(&prices, project_id, event);
    let tables = batch_tables(&batch, "bench");
    let tables = if indexed {
        tables
    } else {
        tables.without_search_index()
    };
    let converted = convert(
        tables,
        &batch,
        &TimeWindow::around(now),
        &Default::default(),
        &Default::default(),
        price,
    )?;
    ensure!(converted.rejected.is_empty(), "generated events were rejected");
    let mut rows = 0;
    for (table, batch) in converted.tables.finish("bench", now)? {
        if table != Table::SearchPostings {
            rows += batch.num_rows();
        }
        let body = Compression::Lz4.compress(native::encode(&batch)?)?;
        std::hint::black_box(body);
    }
    Ok(rows)
}

/// The model price table as the ETL loads it, or why PostgreSQL could not give it.
pub async fn price_table(databases: &DatabaseArgs) -> Result<PriceTable, String> {
    let pg = databases.postgres().await.map_err(|e| format!("{e:#}"))?;
    PriceTable::load(&pg)
        .await
        .map_err(|e| format!("reading model_prices: {:#}", anyhow::Error::from(e)))
}

/// Turns of each pass (the JSON scan, the ETL without and with the search index).
const ROUNDS: usize = 3;

/// Runs the benchmark, pricing generations with `prices` (or, lacking it, not at all).
pub fn run_ingest(
    args: IngestBenchArgs,
    prices: Result<PriceTable, String>,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let (prices, unpriced) = match prices {
        Ok(table) => (Arc::new(table), None),
        Err(why) => (Arc::new(PriceTable::default()), Some(why)),
    };
    let now = Timestamp::now();
    let keyring = Keyring::parse(SIGNING_KEYS).map_err(anyhow::Error::msg)?;
    let batches = signed_batches(&args, now)?;
    let events = args.events as f64;
    let bytes: usize = batches.iter().map(|b| b.body.len()).sum();

    // Each figure is the fastest of its turns, the passes with and without the index taken in
    // turns: on a shared VM a neighbour's burst lands on one pass, and would skew the ratios.
    let (mut baseline, mut unindexed, mut etl) = (f64::INFINITY, f64::INFINITY, f64::INFINITY);
    let mut rows = 0;
    for _ in 0..ROUNDS {
        let started = Instant::now();
        for signed in &batches {
            let scanned: serde::de::IgnoredAny = serde_json::from_slice(&signed.body)?;
            std::hint::black_box(scanned);
        }
        baseline = baseline.min(started.elapsed().as_secs_f64() * 1e6 / events);

        for (indexed, figure) in [(false, &mut unindexed), (true, &mut etl)] {
            let skipped = match args.search_index {
                IndexPasses::Both => false,
                IndexPasses::With => !indexed,
                IndexPasses::Without => indexed,
            };
            if skipped {
                continue;
            }
            let started = Instant::now();
            rows = 0;
            for signed in &batches {
                rows +=
                    through_the_etl(&keyring, &prices, signed, now, indexed).context("a generated batch")?;
            }
            *figure = figure.min(started.elapsed().as_secs_f64() * 1e6 / events);
        }
    }
    // Patches (Langfuse-style updates) become rows only when merged with stored ones.
    ensure!(
        rows > 0 && rows <= args.events,
        "{rows} rows from {} events",
        args.events
    );

    let figure = |micros: f64| {
        if micros.is_finite() {
            format!("{micros:.3}")
        } else {
            "not run".into()
        }
    };
    writeln!(
        out,
        "{} events in {} signed batches, {} bytes per event:",
        args.events,
        batches.len(),
        bytes / args.events.max(1)
    )?;
    match &unpriced {
        None => writeln!(
            out,
            "  generations priced by {} model price patterns",
            prices.len()
        )?,
        Some(why) => writeln!(out, "  generations not priced (no price table: {why})")?,
    }
    writeln!(
        out,
        "  baseline  JSON scan only                 {baseline:>7.3} µs per event"
    )?;
    writeln!(out, "  ETL       verify, read, validate, Arrow,")?;
    writeln!(
        out,
        "            Native, LZ4 ({rows} rows)      {:>7} µs per event   (target ≤ 2.5 with I/O)",
        figure(etl)
    )?;
    writeln!(
        out,
        "            without the search index     {:>7} µs per event",
        figure(unindexed)
    )?;
    if args.search_index == IndexPasses::Both {
        writeln!(out, "  ETL / baseline = {:.1}", etl / baseline)?;
        writeln!(
            out,
            "  search index: ETL with / without = {:.2}   (target ≤ 1.5)",
            etl / unindexed
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_run_takes_every_batch_through_the_etl() {
        let mut out = Vec::new();
        run_ingest(
            IngestBenchArgs {
                events: 1_200,
                batch_events: 500,
                search_index: IndexPasses::Both,
            },
            Err("none in this test".into()),
            &mut out,
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("1200 events in 3 signed batches"), "{text}");
        assert!(text.contains("ETL / baseline = "), "{text}");
        assert!(text.contains("search index: ETL with / without = "), "{text}");
    }
}
