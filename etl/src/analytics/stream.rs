//! Streaming ClickHouse results out as Arrow IPC, Parquet or JSON, with bounded memory.
//!
//! ClickHouse answers in `Native` (every version can; 18.16 has no Arrow output). An async task
//! reads the response chunk by chunk and decodes whole blocks into Arrow batches; a blocking
//! writer turns them into the output format and hands the bytes to the HTTP body. Every stage
//! is joined by a small bounded channel, so memory is a few blocks whatever the result size.
//! The row count is written last — in the Arrow IPC file footer's metadata and in the Parquet
//! footer — so a client can tell a complete file from a cut one.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use arrow_array::{Array, ArrayRef, Int64Array, RecordBatch, TimestampMicrosecondArray};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;

use crate::clickhouse::native::decode;
use crate::clickhouse::{ClickHouse, ClickHouseError};

/// Metadata key holding the number of rows written.
pub const ROW_COUNT_KEY: &str = "agenttrace.row_count";
/// Rows per Parquet row group.
const ROW_GROUP_ROWS: usize = 131_072;
/// Rows per ClickHouse block (bounds the size of one decoded batch).
const BLOCK_ROWS: &str = "16384";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// Arrow IPC file format; the footer carries the row count.
    Arrow,
    Parquet,
    /// ClickHouse `JSON` passed through (meta, data, rows).
    Json,
}

impl OutputFormat {
    pub fn parse(name: &str) -> Result<Self, String> {
        match name {
            "arrow" => Ok(OutputFormat::Arrow),
            "parquet" => Ok(OutputFormat::Parquet),
            "json" => Ok(OutputFormat::Json),
            other => Err(format!("unknown format {other:?}; use arrow, parquet or json")),
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            OutputFormat::Arrow => "arrow",
            OutputFormat::Parquet => "parquet",
            OutputFormat::Json => "json",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            OutputFormat::Arrow => "application/vnd.apache.arrow.file",
            OutputFormat::Parquet => "application/vnd.apache.parquet",
            OutputFormat::Json => "application/json",
        }
    }
}

/// Columns stored as microseconds (`start_time_us`) become Arrow `Timestamp(µs, UTC)` named
/// without the suffix (`start_time`), the way the event model names them; second-precision
/// `DateTime` columns (`ingested_at`) become `Timestamp(µs, UTC)` too, so every exported
/// timestamp has one type.
pub fn microsecond_columns_as_timestamps(batch: &RecordBatch) -> RecordBatch {
    let schema = batch.schema();
    let mut fields = Vec::with_capacity(schema.fields().len());
    let mut columns = Vec::with_capacity(schema.fields().len());
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        match (
            field.name().strip_suffix("_us"),
            column.as_any().downcast_ref::<Int64Array>(),
        ) {
            (Some(name), Some(micros)) => {
                let timestamps =
                    TimestampMicrosecondArray::new(micros.values().clone(), micros.nulls().cloned())
                        .with_timezone("UTC");
                fields.push(Field::new(
                    name,
                    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                    field.is_nullable(),
                ));
                columns.push(Arc::new(timestamps) as ArrayRef);
            }
            _ => match column
                .as_any()
                .downcast_ref::<arrow_array::TimestampSecondArray>()
            {
                Some(seconds) => {
                    let micros: Vec<Option<i64>> = seconds.iter().map(|s| s.map(|s| s * 1_000_000)).collect();
                    fields.push(Field::new(
                        field.name(),
                        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                        field.is_nullable(),
                    ));
                    columns.push(
                        Arc::new(TimestampMicrosecondArray::from(micros).with_timezone("UTC")) as ArrayRef,
                    );
                }
                None => {
                    fields.push(field.as_ref().clone());
                    columns.push(column.clone());
                }
            },
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).expect("same columns, retyped in place")
}

/// How long a client may stop reading before its download is abandoned, and the ClickHouse
/// query feeding it with it (a stalled reader would otherwise hold both for good).
pub const CLIENT_STALL: Duration = Duration::from_secs(60);

/// Sends one chunk to the body; `false` when the client went away or stopped reading for
/// [`CLIENT_STALL`].
async fn send_or_abandon(
    body: &mpsc::Sender<Result<Bytes, std::io::Error>>,
    chunk: Result<Bytes, std::io::Error>,
) -> bool {
    send_within(body, chunk, CLIENT_STALL).await
}

async fn send_within(
    body: &mpsc::Sender<Result<Bytes, std::io::Error>>,
    chunk: Result<Bytes, std::io::Error>,
    stall: Duration,
) -> bool {
    matches!(tokio::time::timeout(stall, body.send(chunk)).await, Ok(Ok(())))
}

/// `std::io::Write` into the HTTP body channel, in chunks of about 1 MiB.
struct BodyWriter {
    sender: mpsc::Sender<Result<Bytes, std::io::Error>>,
    buffer: BytesMut,
    /// The runtime the blocking writer waits on for the body (with the stall limit).
    runtime: tokio::runtime::Handle,
}

impl Write for BodyWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(data);
        if self.buffer.len() >= 1 << 20 {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buffer.is_empty() {
            let chunk = self.buffer.split().freeze();
            if !self.runtime.block_on(send_or_abandon(&self.sender, Ok(chunk))) {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::BrokenPipe,
                    "the client went away or stopped reading",
                ));
            }
        }
        Ok(())
    }
}

/// Writes batches in the chosen format; returns the rows written.
fn write_batches(
    format: OutputFormat,
    mut batches: mpsc::Receiver<RecordBatch>,
    out: BodyWriter,
) -> Result<u64, String> {
    let Some(first) = batches.blocking_recv() else {
        return Err("the query returned no schema".into());
    };
    let schema = first.schema();
    let mut rows = 0u64;
    match format {
        OutputFormat::Arrow => {
            let mut writer =
                arrow_ipc::writer::FileWriter::try_new(out, &schema).map_err(|e| e.to_string())?;
            let mut next = Some(first);
            while let Some(batch) = next {
                rows += batch.num_rows() as u64;
                writer.write(&batch).map_err(|e| e.to_string())?;
                next = batches.blocking_recv();
            }
            writer.write_metadata(ROW_COUNT_KEY, rows.to_string());
            writer.finish().map_err(|e| e.to_string())?;
            writer
                .into_inner()
                .map_err(|e| e.to_string())?
                .flush()
                .map_err(|e| e.to_string())?;
        }
        OutputFormat::Parquet => {
            use parquet::arrow::ArrowWriter;
            use parquet::basic::{Compression, ZstdLevel};
            use parquet::file::properties::WriterProperties;
            let properties = WriterProperties::builder()
                .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).expect("valid level")))
                .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
                .build();
            let mut writer =
                ArrowWriter::try_new(out, schema, Some(properties)).map_err(|e| e.to_string())?;
            let mut next = Some(first);
            while let Some(batch) = next {
                rows += batch.num_rows() as u64;
                writer.write(&batch).map_err(|e| e.to_string())?;
                // Keep memory at one row group: flush it as soon as it is full.
                if writer.in_progress_rows() >= ROW_GROUP_ROWS {
                    writer.flush().map_err(|e| e.to_string())?;
                }
                next = batches.blocking_recv();
            }
            writer.append_key_value_metadata(parquet::file::metadata::KeyValue::new(
                ROW_COUNT_KEY.to_owned(),
                rows.to_string(),
            ));
            writer
                .into_inner()
                .map_err(|e| e.to_string())?
                .flush()
                .map_err(|e| e.to_string())?;
        }
        OutputFormat::Json => unreachable!("JSON is passed through"),
    }
    Ok(rows)
}

/// A streaming result: chunks for the HTTP body; an `Err` chunk aborts the transfer.
pub type BodyStream = mpsc::Receiver<Result<Bytes, std::io::Error>>;

/// Runs `sql` (already checked and scoped) and streams its result in `format`. Errors that
/// ClickHouse reports before sending data come back as `Err`; later ones abort the stream.
pub async fn stream_query(
    clickhouse: &ClickHouse,
    sql: &str,
    format: OutputFormat,
    timestamps: bool,
    settings: &[(&str, &str)],
) -> Result<BodyStream, ClickHouseError> {
    let clickhouse_format = if format == OutputFormat::Json {
        "JSON"
    } else {
        "Native"
    };
    let mut all_settings = vec![("max_block_size", BLOCK_ROWS)];
    all_settings.extend_from_slice(settings);
    let mut response = clickhouse
        .query_streaming(&format!("{sql} FORMAT {clickhouse_format}"), &all_settings)
        .await?;
    let (body, body_rx) = mpsc::channel(4);

    if format == OutputFormat::Json {
        tokio::spawn(async move {
            loop {
                match response.chunk().await {
                    Ok(Some(chunk)) => {
                        if !send_or_abandon(&body, Ok(chunk)).await {
                            return;
                        }
                    }
                    Ok(None) => return,
                    Err(error) => {
                        let _ = body.send(Err(std::io::Error::other(error))).await;
                        return;
                    }
                }
            }
        });
        return Ok(body_rx);
    }

    // For a result without rows, which 18.16 sends as no block at all: its columns.
    let describe = (
        clickhouse.clone(),
        format!("DESCRIBE TABLE ({sql}) FORMAT TabSeparated"),
        settings
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>(),
    );
    let (batches, batches_rx) = mpsc::channel::<RecordBatch>(2);
    let writer_body = body.clone();
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let out = BodyWriter {
            sender: writer_body.clone(),
            buffer: BytesMut::new(),
            runtime,
        };
        if let Err(error) = write_batches(format, batches_rx, out) {
            let _ = writer_body.blocking_send(Err(std::io::Error::other(error)));
        }
    });
    tokio::spawn(async move {
        let mut buffer = BytesMut::new();
        // Re-parse a cut block only after the buffer has grown enough to make it worthwhile.
        let mut want = 0usize;
        let mut empty_schema: Option<RecordBatch> = None;
        let mut sent_any = false;
        loop {
            let chunk = match response.chunk().await {
                Ok(chunk) => chunk,
                Err(error) => {
                    let _ = body.send(Err(std::io::Error::other(error))).await;
                    return;
                }
            };
            let finished = chunk.is_none();
            if let Some(chunk) = chunk {
                buffer.extend_from_slice(&chunk);
            }
            while !buffer.is_empty() && (buffer.len() >= want || finished) {
                match decode::block(&buffer) {
                    Ok((batch, used)) => {
                        let _ = buffer.split_to(used);
                        want = 0;
                        let batch = if timestamps {
                            microsecond_columns_as_timestamps(&batch)
                        } else {
                            batch
                        };
                        // ClickHouse may send an empty block first: keep it only for its schema.
                        if batch.num_rows() == 0 && !sent_any {
                            empty_schema = Some(batch);
                            continue;
                        }
                        sent_any = true;
                        if batches.send(batch).await.is_err() {
                            return;
                        }
                    }
                    Err(decode::DecodeError::NeedMore) if !finished => {
                        want = buffer.len() * 2;
                        break;
                    }
                    Err(error) => {
                        let message = match error {
                            decode::DecodeError::Invalid(message) => message,
                            decode::DecodeError::NeedMore => {
                                format!(
                                    "the result ended inside a block: {}",
                                    String::from_utf8_lossy(&buffer)
                                )
                            }
                        };
                        let _ = body.send(Err(std::io::Error::other(message))).await;
                        return;
                    }
                }
            }
            if finished {
                if !sent_any {
                    let schema_only = match empty_schema.take() {
                        Some(batch) => Ok(batch),
                        None => result_schema(&describe.0, &describe.1, &describe.2).await,
                    };
                    match schema_only {
                        Ok(batch) => {
                            let batch = if timestamps {
                                microsecond_columns_as_timestamps(&batch)
                            } else {
                                batch
                            };
                            let _ = batches.send(batch).await;
                        }
                        Err(message) => {
                            let _ = body.send(Err(std::io::Error::other(message))).await;
                        }
                    }
                }
                return;
            }
        }
    });
    Ok(body_rx)
}

/// The columns of a query's result as an empty batch, from ClickHouse's `DESCRIBE`.
async fn result_schema(
    clickhouse: &ClickHouse,
    describe: &str,
    settings: &[(String, String)],
) -> Result<RecordBatch, String> {
    let settings: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let text = clickhouse
        .query_with_settings(describe, &settings)
        .await
        .map_err(|e| e.to_string())?;
    let columns: Vec<(String, String)> = String::from_utf8_lossy(&text)
        .lines()
        .filter_map(|line| {
            let mut fields = line.split('\t');
            Some((unescape_tsv(fields.next()?), unescape_tsv(fields.next()?)))
        })
        .collect();
    decode::empty_batch(&columns).map_err(|e| format!("{e:?}"))
}

/// A TabSeparated field's text (`\t`, `\n`, `\\` and the like undone).
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
            Some('0') => out.push('\0'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_client_that_stops_reading_is_abandoned() {
        let (body, mut reader) = mpsc::channel(1);
        let stall = Duration::from_millis(50);
        assert!(send_within(&body, Ok(Bytes::from_static(b"a")), stall).await);
        // The channel is full and nobody reads: given up after the stall, not blocked for good.
        assert!(!send_within(&body, Ok(Bytes::from_static(b"b")), stall).await);
        assert_eq!(reader.recv().await.unwrap().unwrap(), "a");
        drop(reader);
        assert!(!send_within(&body, Ok(Bytes::from_static(b"c")), stall).await);
    }
}
