//! `recompute_costs`: re-prices past generations after a price change.
//!
//! Only rows priced from the table (`cost_source = 'price_table'`) are touched, never a cost the
//! agent sent. Each such row is priced again with the table as it is now (the project's own
//! prices first, then the defaults, each from the date it takes effect, at the generation's
//! start time); a row whose total changes is written again whole with the new costs and its
//! version one higher, so it replaces the old row and a replayed event does not bring the old
//! cost back. Rows are read in chunks of [`CHUNK_ROWS`] in id order, so memory stays bounded.

use agenttrace_etl::clickhouse::catalog::{COST_PRECISION, COST_SCALE, cost_to_decimal};
use agenttrace_etl::clickhouse::native::decode;
use agenttrace_etl::clickhouse::{ClickHouse, Table, quote};
use agenttrace_etl::ingest::pricing::{PriceMatcher, PriceTable};
use agenttrace_schemas::event::Usage;
use arrow_array::builder::{Decimal128Builder, UInt64Builder};
use arrow_array::cast::AsArray;
use arrow_array::types::{Decimal128Type, Int64Type, UInt64Type};
use arrow_array::{Array, ArrayRef, RecordBatch, UInt32Array};
use arrow_select::take::take;
use std::sync::Arc;
use tokio_postgres::Client;
use uuid::Uuid;

/// Generations read per query.
pub const CHUNK_ROWS: usize = 20_000;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RecomputeReport {
    /// Table-priced generations looked at.
    pub generations: u64,
    /// Of those, the ones whose cost changed (and were written again).
    pub repriced: u64,
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef, String> {
    batch
        .column_by_name(name)
        .ok_or_else(|| format!("the observations chunk has no column {name}"))
}

/// The re-priced rows of one chunk, or `None` when no cost changed.
fn reprice(batch: &RecordBatch, prices: &PriceMatcher) -> Result<Option<RecordBatch>, String> {
    let project = column(batch, "project_id")?.as_string::<i32>();
    let model = column(batch, "model")?.as_string::<i32>();
    let start = column(batch, "start_time_us")?.as_primitive::<Int64Type>();
    let count =
        |name: &str| -> Result<_, String> { Ok(column(batch, name)?.as_primitive::<UInt64Type>().clone()) };
    let (input, output, cache_read, cache_write) = (
        count("input_tokens")?,
        count("output_tokens")?,
        count("cache_read_tokens")?,
        count("cache_write_tokens")?,
    );
    let total = column(batch, "total_cost")?.as_primitive::<Decimal128Type>();
    let version = column(batch, "version")?.as_primitive::<UInt64Type>();
    let mut changed = Vec::new();
    let decimal = || {
        Decimal128Builder::new()
            .with_precision_and_scale(COST_PRECISION, COST_SCALE)
            .map_err(|e| e.to_string())
    };
    let mut parts = [decimal()?, decimal()?, decimal()?, decimal()?, decimal()?];
    let mut versions = UInt64Builder::new();
    for row in 0..batch.num_rows() {
        let Ok(project_id) = Uuid::parse_str(project.value(row)) else {
            continue;
        };
        if model.is_null(row) {
            continue;
        }
        let usage = Usage {
            input_tokens: input.value(row),
            output_tokens: output.value(row),
            cache_read_input_tokens: cache_read.value(row),
            cache_creation_input_tokens: cache_write.value(row),
        };
        let Some(cost) = prices.cost(project_id, start.value(row), model.value(row), &usage) else {
            continue;
        };
        let new_total = cost.total.map(cost_to_decimal);
        let old_total = (!total.is_null(row)).then(|| total.value(row));
        if new_total == old_total {
            continue;
        }
        changed.push(row as u32);
        for (builder, part) in parts.iter_mut().zip([
            cost.input,
            cost.output,
            cost.cache_read,
            cost.cache_write,
            cost.total,
        ]) {
            builder.append_option(part.map(cost_to_decimal));
        }
        versions.append_value(version.value(row) + 1);
    }
    if changed.is_empty() {
        return Ok(None);
    }
    let indices = UInt32Array::from(changed);
    let schema = batch.schema();
    let mut replaced: Vec<(&str, ArrayRef)> = [
        "input_cost",
        "output_cost",
        "cache_read_cost",
        "cache_write_cost",
        "total_cost",
    ]
    .into_iter()
    .zip(parts.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef))
    .collect();
    replaced.push(("version", Arc::new(versions.finish())));
    let columns = schema
        .fields()
        .iter()
        .zip(batch.columns())
        .map(
            |(field, column)| match replaced.iter().find(|(name, _)| name == field.name()) {
                Some((_, values)) => Ok(values.clone()),
                None => take(column.as_ref(), &indices, None).map_err(|e| e.to_string()),
            },
        )
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(schema, columns)
        .map(Some)
        .map_err(|e| e.to_string())
}

/// Re-prices every table-priced generation whose cost the current prices change.
pub async fn run(pg: &Client, clickhouse: &ClickHouse) -> Result<RecomputeReport, String> {
    let prices = PriceMatcher::new(Arc::new(PriceTable::load(pg).await.map_err(|e| e.to_string())?));
    let schema = Table::Observations.schema();
    let columns: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let mut report = RecomputeReport::default();
    let mut after: Option<(String, String)> = None;
    loop {
        let from = match &after {
            None => String::new(),
            Some((project, id)) => format!(
                " AND (project_id > {p} OR (project_id = {p} AND id > {}))",
                quote(id),
                p = quote(project)
            ),
        };
        let sql = format!(
            "SELECT {} FROM observations FINAL WHERE cost_source = 'price_table' AND model IS NOT NULL{from} \
             ORDER BY project_id, id LIMIT {CHUNK_ROWS} FORMAT Native",
            columns.join(", ")
        );
        let body = clickhouse.query(&sql).await.map_err(|e| e.to_string())?;
        let batches = decode::all_blocks(&body)?;
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        for batch in &batches {
            report.generations += batch.num_rows() as u64;
            if let Some(repriced) = reprice(batch, &prices)? {
                report.repriced += repriced.num_rows() as u64;
                clickhouse
                    .insert_batches(Table::Observations, &[repriced])
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
        let Some(last) = batches.iter().rev().find(|b| b.num_rows() > 0) else {
            break;
        };
        let row = last.num_rows() - 1;
        after = Some((
            column(last, "project_id")?
                .as_string::<i32>()
                .value(row)
                .to_owned(),
            column(last, "id")?.as_string::<i32>().value(row).to_owned(),
        ));
        if rows < CHUNK_ROWS {
            break;
        }
    }
    Ok(report)
}
