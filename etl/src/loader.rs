//! Loading Arrow batches into ClickHouse with group commit.
//!
//! Insert size dominates ClickHouse ingest cost, so rows from concurrent requests are coalesced
//! per table: each table has workers that take everything queued (up to a row cap), send it as
//! one insert (`Native` or `ArrowStream`, gzip on the wire), and only then answer every request
//! whose rows it carried. While one insert is in flight the next one fills up, so inserts grow
//! with load instead of waiting on a timer.

use std::collections::HashMap;
use std::future::Future;
use std::io::Write;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use bytes::Bytes;
use tokio::sync::{Mutex, OnceCell, mpsc, oneshot};

use crate::clickhouse::{ClickHouse, ClickHouseError};
use crate::native;
use crate::tables::Table;

#[derive(Debug, Clone, thiserror::Error)]
pub enum LoadError {
    /// ClickHouse is down or overloaded; the caller should retry later.
    #[error("ClickHouse is unavailable: {0}")]
    Unavailable(String),
    /// ClickHouse refused the data; retrying the same rows will not help.
    #[error("ClickHouse rejected the insert: {0}")]
    Rejected(String),
}

/// Where validated rows go. The ETL answers 2xx only after `load` returned `Ok`.
pub trait Sink: Send + Sync {
    fn load(
        &self,
        table: Table,
        batch: RecordBatch,
    ) -> Pin<Box<dyn Future<Output = Result<(), LoadError>> + Send + '_>>;
}

/// How rows travel to ClickHouse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireFormat {
    /// ClickHouse's columnar format; every server version reads it.
    Native,
    /// Arrow IPC stream; read by ClickHouse 21.x and later.
    ArrowStream,
}

impl WireFormat {
    /// The format to use for a server version string such as `18.16.1` or `25.3.2.39`.
    pub fn for_server_version(version: &str) -> WireFormat {
        let major: u32 = version
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or(0);
        if major >= 21 {
            WireFormat::ArrowStream
        } else {
            WireFormat::Native
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            WireFormat::Native => "Native",
            WireFormat::ArrowStream => "ArrowStream",
        }
    }

    /// Encodes batches (all of one table) as one request body.
    pub fn encode(self, batches: &[RecordBatch]) -> Result<Vec<u8>, LoadError> {
        let failed =
            |e: arrow_schema::ArrowError| LoadError::Rejected(format!("encoding {}: {e}", self.name()));
        match self {
            WireFormat::Native => {
                let mut out =
                    Vec::with_capacity(batches.iter().map(RecordBatch::get_array_memory_size).sum());
                for batch in batches {
                    native::encode_block(batch, &mut out).map_err(failed)?;
                }
                Ok(out)
            }
            WireFormat::ArrowStream => {
                let schema = batches
                    .first()
                    .map(RecordBatch::schema)
                    .ok_or_else(|| LoadError::Rejected("no rows".into()))?;
                let mut writer =
                    arrow_ipc::writer::StreamWriter::try_new(Vec::new(), &schema).map_err(failed)?;
                for batch in batches {
                    writer.write(batch).map_err(failed)?;
                }
                writer.into_inner().map_err(failed)
            }
        }
    }
}

/// The `INSERT` statement for a batch of `table` with the batch's columns.
pub fn insert_statement(table: Table, format: WireFormat) -> String {
    let schema = table.schema();
    let columns: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    format!(
        "INSERT INTO {} ({}) FORMAT {}",
        table.name(),
        columns.join(", "),
        format.name()
    )
}

#[derive(Debug, Clone)]
pub struct LoaderOptions {
    /// Most rows in one insert.
    pub max_rows_per_insert: usize,
    /// Concurrent inserts per table.
    pub inserts_in_flight: usize,
    /// gzip level for request bodies; `None` sends them uncompressed.
    pub gzip_level: Option<u32>,
    /// Attempts per insert on transient errors (with exponential backoff from 100 ms).
    pub attempts: u32,
    /// Force a wire format instead of choosing from the server version.
    pub format: Option<WireFormat>,
}

impl Default for LoaderOptions {
    fn default() -> Self {
        LoaderOptions {
            max_rows_per_insert: 200_000,
            inserts_in_flight: 2,
            gzip_level: Some(1),
            attempts: 5,
            format: None,
        }
    }
}

struct Pending {
    batch: RecordBatch,
    done: oneshot::Sender<Result<(), LoadError>>,
}

/// The ClickHouse sink: per-table queues drained by group-commit workers.
pub struct ClickHouseSink {
    queues: HashMap<Table, mpsc::UnboundedSender<Pending>>,
}

struct Shared {
    clickhouse: ClickHouse,
    options: LoaderOptions,
    format: OnceCell<WireFormat>,
}

impl Shared {
    async fn format(&self) -> Result<WireFormat, ClickHouseError> {
        if let Some(format) = self.options.format {
            return Ok(format);
        }
        self.format
            .get_or_try_init(|| async {
                let version = self.clickhouse.version().await?;
                let format = WireFormat::for_server_version(&version);
                tracing::info!(%version, format = format.name(), "ClickHouse wire format chosen");
                Ok(format)
            })
            .await
            .copied()
    }
}

impl ClickHouseSink {
    /// Starts the per-table workers on the current runtime.
    pub fn start(clickhouse: ClickHouse, options: LoaderOptions) -> Arc<ClickHouseSink> {
        let shared = Arc::new(Shared {
            clickhouse,
            options,
            format: OnceCell::new(),
        });
        let mut queues = HashMap::new();
        for table in Table::ALL {
            let (sender, receiver) = mpsc::unbounded_channel();
            let receiver = Arc::new(Mutex::new(receiver));
            for _ in 0..shared.options.inserts_in_flight.max(1) {
                tokio::spawn(worker(table, shared.clone(), receiver.clone()));
            }
            queues.insert(table, sender);
        }
        Arc::new(ClickHouseSink { queues })
    }
}

impl Sink for ClickHouseSink {
    fn load(
        &self,
        table: Table,
        batch: RecordBatch,
    ) -> Pin<Box<dyn Future<Output = Result<(), LoadError>> + Send + '_>> {
        Box::pin(async move {
            let (done, answer) = oneshot::channel();
            self.queues[&table]
                .send(Pending { batch, done })
                .map_err(|_| LoadError::Unavailable("the loader is shutting down".into()))?;
            answer
                .await
                .map_err(|_| LoadError::Unavailable("the loader stopped".into()))?
        })
    }
}

async fn worker(table: Table, shared: Arc<Shared>, receiver: Arc<Mutex<mpsc::UnboundedReceiver<Pending>>>) {
    loop {
        let group = {
            let mut receiver = receiver.lock().await;
            let Some(first) = receiver.recv().await else {
                return;
            };
            let mut rows = first.batch.num_rows();
            let mut group = vec![first];
            while rows < shared.options.max_rows_per_insert {
                match receiver.try_recv() {
                    Ok(next) => {
                        rows += next.batch.num_rows();
                        group.push(next);
                    }
                    Err(_) => break,
                }
            }
            group
        };
        let (batches, waiters): (Vec<RecordBatch>, Vec<_>) =
            group.into_iter().map(|p| (p.batch, p.done)).unzip();
        let result = insert(table, &shared, batches).await;
        for waiter in waiters {
            let _ = waiter.send(result.clone());
        }
    }
}

fn gzip(data: &[u8], level: u32) -> std::io::Result<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 4),
        flate2::Compression::new(level),
    );
    encoder.write_all(data)?;
    encoder.finish()
}

async fn insert(table: Table, shared: &Shared, batches: Vec<RecordBatch>) -> Result<(), LoadError> {
    let started = Instant::now();
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let format = shared
        .format()
        .await
        .map_err(|e| LoadError::Unavailable(e.to_string()))?;
    let gzip_level = shared.options.gzip_level;
    // Encoding and compression are CPU work: keep them off the async workers.
    let (body, raw_bytes) = tokio::task::spawn_blocking(move || -> Result<(Bytes, usize), LoadError> {
        let encoded = format.encode(&batches)?;
        let raw = encoded.len();
        let body = match gzip_level {
            Some(level) => gzip(&encoded, level).map_err(|e| LoadError::Rejected(format!("gzip: {e}")))?,
            None => encoded,
        };
        Ok((Bytes::from(body), raw))
    })
    .await
    .map_err(|e| LoadError::Rejected(format!("encoder task failed: {e}")))??;

    let statement = insert_statement(table, format);
    let mut delay = Duration::from_millis(100);
    let mut attempt = 1;
    loop {
        match shared
            .clickhouse
            .insert(&statement, body.clone(), gzip_level.is_some())
            .await
        {
            Ok(()) => break,
            Err(error) if error.is_transient() && attempt < shared.options.attempts => {
                tracing::warn!(table = table.name(), attempt, %error, "ClickHouse insert failed; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
                attempt += 1;
            }
            Err(error) if error.is_transient() => return Err(LoadError::Unavailable(error.to_string())),
            Err(error) => {
                tracing::error!(table = table.name(), %error, "ClickHouse rejected an insert");
                return Err(LoadError::Rejected(error.to_string()));
            }
        }
    }
    let labels = [("table", table.name())];
    metrics::histogram!("agenttrace_clickhouse_insert_seconds", &labels)
        .record(started.elapsed().as_secs_f64());
    metrics::counter!("agenttrace_clickhouse_insert_rows_total", &labels).increment(rows as u64);
    metrics::counter!("agenttrace_clickhouse_insert_bytes_total", &labels).increment(raw_bytes as u64);
    metrics::counter!("agenttrace_clickhouse_insert_wire_bytes_total", &labels).increment(body.len() as u64);
    metrics::counter!("agenttrace_clickhouse_inserts_total", &labels).increment(1);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_arrow_stream_only_where_supported() {
        assert_eq!(WireFormat::for_server_version("18.16.1"), WireFormat::Native);
        assert_eq!(WireFormat::for_server_version("20.3.21.2"), WireFormat::Native);
        assert_eq!(
            WireFormat::for_server_version("25.3.2.39"),
            WireFormat::ArrowStream
        );
        assert_eq!(WireFormat::for_server_version("garbage"), WireFormat::Native);
    }

    #[test]
    fn insert_names_every_column_in_schema_order() {
        let statement = insert_statement(Table::GitLinks, WireFormat::Native);
        assert!(statement.starts_with(
            "INSERT INTO git_links (project_id, id, trace_id, observation_id, timestamp_us, repository"
        ));
        assert!(statement.ends_with("event_id, version) FORMAT Native"));
    }
}
