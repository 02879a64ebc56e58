//! Loading Arrow batches into ClickHouse with group commit.
//!
//! Insert size dominates ClickHouse ingest cost (every insert writes a new part: a file per
//! column, later merged), so rows from concurrent requests are coalesced per table, as in a
//! database's group commit: an insert waits while other requests are still being prepared and
//! will bring rows, up to `max_insert_wait`, and goes once nothing else is coming — after a short
//! linger, because under load the senders just answered are about to send again (without it, one
//! sender that came back a few milliseconds late took an insert of its own, and from then on
//! the senders stayed split in two groups, each paying ClickHouse's fixed cost per insert). Each
//! request is answered only after the insert that carried its rows was acknowledged. Bodies
//! are `Native` or `ArrowStream`, LZ4 on the wire (see [`super::compression`]); with two
//! workers per table, one gathers while the other inserts.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use bytes::Bytes;
use tokio::sync::{Mutex, Notify, OnceCell, mpsc, oneshot};

use crate::clickhouse::catalog::Table;
use crate::clickhouse::compression::Compression;
use crate::clickhouse::insert::{WireFormat, insert_statement};
use crate::clickhouse::{ClickHouse, ClickHouseError};

#[derive(Debug, Clone, thiserror::Error)]
pub enum LoadError {
    /// ClickHouse is down or overloaded; the caller should retry later.
    #[error("ClickHouse is unavailable: {0}")]
    Unavailable(String),
    /// ClickHouse refused the data; retrying the same rows will not help.
    #[error("ClickHouse rejected the insert: {0}")]
    Rejected(String),
}

/// A submitted load: resolves once ClickHouse acknowledged the insert carrying the rows.
pub type LoadTicket = Pin<Box<dyn Future<Output = Result<(), LoadError>> + Send>>;

/// Where validated rows go. The ETL answers 2xx only after every ticket resolved `Ok`.
pub trait Sink: Send + Sync {
    /// Announces a request that will probably submit rows soon. The sink may hold an insert
    /// open for its rows until the returned guard is dropped (group commit).
    fn prepare(&self) -> Preparing;
    /// Queues `batch` for `table` at once; the ticket resolves when the rows are durable.
    fn submit(&self, table: Table, batch: RecordBatch) -> LoadTicket;
}

/// How many requests are being prepared (parsed, validated, converted) right now.
#[derive(Default)]
pub struct PreparingRequests {
    count: AtomicUsize,
    none_left: Notify,
    began: Notify,
}

impl PreparingRequests {
    pub fn begin(self: &Arc<Self>) -> Preparing {
        self.count.fetch_add(1, Ordering::SeqCst);
        self.began.notify_waiters();
        Preparing(Some(self.clone()))
    }

    fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }
}

/// Held while a request is being prepared; see [`Sink::prepare`].
pub struct Preparing(Option<Arc<PreparingRequests>>);

impl Preparing {
    /// For sinks that do not coalesce.
    pub fn untracked() -> Self {
        Preparing(None)
    }
}

impl Drop for Preparing {
    fn drop(&mut self) {
        if let Some(requests) = &self.0
            && requests.count.fetch_sub(1, Ordering::SeqCst) == 1
        {
            requests.none_left.notify_waiters();
        }
    }
}

#[derive(Debug, Clone)]
pub struct LoaderOptions {
    /// Most rows in one insert.
    pub max_rows_per_insert: usize,
    /// Most bytes (of Arrow columns) in one insert; a request's rows are never split.
    pub max_bytes_per_insert: usize,
    /// Longest time rows wait for other requests' rows to share their insert.
    pub max_insert_wait: Duration,
    /// How long an insert still waits, once nothing is being prepared, for another request to
    /// begin: a sender answered a moment ago is usually about to send again.
    pub insert_linger: Duration,
    /// Concurrent inserts per table.
    pub inserts_in_flight: usize,
    /// How insert bodies are compressed.
    pub compression: Compression,
    /// Attempts per insert on transient errors (with exponential backoff from 100 ms).
    pub attempts: u32,
    /// Force a wire format instead of choosing from the server version.
    pub format: Option<WireFormat>,
}

impl Default for LoaderOptions {
    fn default() -> Self {
        LoaderOptions {
            max_rows_per_insert: 200_000,
            max_bytes_per_insert: 64 << 20,
            max_insert_wait: Duration::from_millis(500),
            insert_linger: Duration::from_millis(25),
            inserts_in_flight: 2,
            compression: Compression::Lz4,
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
    preparing: Arc<PreparingRequests>,
}

struct Shared {
    clickhouse: ClickHouse,
    options: LoaderOptions,
    format: OnceCell<WireFormat>,
    preparing: Arc<PreparingRequests>,
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
        let preparing = Arc::new(PreparingRequests::default());
        let shared = Arc::new(Shared {
            clickhouse,
            options,
            format: OnceCell::new(),
            preparing: preparing.clone(),
        });
        let mut queues = HashMap::new();
        for table in Table::ALL {
            let (sender, receiver) = mpsc::unbounded_channel();
            let queue = Arc::new(Mutex::new(receiver));
            for _ in 0..shared.options.inserts_in_flight.max(1) {
                tokio::spawn(worker(table, shared.clone(), queue.clone()));
            }
            queues.insert(table, sender);
        }
        Arc::new(ClickHouseSink { queues, preparing })
    }
}

impl Sink for ClickHouseSink {
    fn prepare(&self) -> Preparing {
        self.preparing.begin()
    }

    fn submit(&self, table: Table, batch: RecordBatch) -> LoadTicket {
        let (done, answer) = oneshot::channel();
        let queued = self.queues[&table].send(Pending { batch, done });
        Box::pin(async move {
            queued.map_err(|_| LoadError::Unavailable("the loader is shutting down".into()))?;
            answer
                .await
                .map_err(|_| LoadError::Unavailable("the loader stopped".into()))?
        })
    }
}

/// Why a group stopped gathering: its bounds, nothing else coming, or `max_insert_wait`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closed {
    Full,
    NothingComing,
    Waited,
}

impl Closed {
    fn as_str(self) -> &'static str {
        match self {
            Closed::Full => "full",
            Closed::NothingComing => "nothing_coming",
            Closed::Waited => "waited",
        }
    }
}

/// Takes the next group of requests for one insert: the first queued, then whatever else
/// arrives while other requests are still being prepared, or begin to be within
/// `insert_linger` of none being prepared, up to `max_insert_wait` after the first and
/// `max_rows_per_insert` rows or `max_bytes_per_insert` bytes. ClickHouse pays a fixed cost per
/// insert (a new part: a file per column, merged later), so rows that are about to arrive are
/// worth waiting for; once nothing else is coming, the insert goes after the linger. The byte
/// bound keeps an insert of large events (long prompts) from growing without limit.
async fn next_group(
    shared: &Shared,
    receiver: &mut mpsc::UnboundedReceiver<Pending>,
) -> Option<(Vec<Pending>, Closed)> {
    let first = receiver.recv().await?;
    let deadline = tokio::time::Instant::now() + shared.options.max_insert_wait;
    let (mut rows, mut bytes) = (0, 0);
    let mut group = Vec::new();
    let mut add = |next: Pending, group: &mut Vec<Pending>| {
        rows += next.batch.num_rows();
        bytes += next.batch.get_array_memory_size();
        group.push(next);
        rows >= shared.options.max_rows_per_insert || bytes >= shared.options.max_bytes_per_insert
    };
    if add(first, &mut group) {
        return Some((group, Closed::Full));
    }
    loop {
        while let Ok(next) = receiver.try_recv() {
            if add(next, &mut group) {
                return Some((group, Closed::Full));
            }
        }
        // Both registered before the count is read, so a change between the two is not lost.
        let none_left = shared.preparing.none_left.notified();
        let began = shared.preparing.began.notified();
        tokio::pin!(none_left, began);
        none_left.as_mut().enable();
        began.as_mut().enable();
        // While requests are being prepared, wait for them (up to the deadline); once none is,
        // linger for one to begin.
        let idle = shared.preparing.count() == 0;
        let until = if idle {
            (tokio::time::Instant::now() + shared.options.insert_linger).min(deadline)
        } else {
            deadline
        };
        tokio::select! {
            next = receiver.recv() => match next {
                Some(next) => {
                    if add(next, &mut group) {
                        return Some((group, Closed::Full));
                    }
                }
                None => return Some((group, Closed::NothingComing)),
            },
            () = &mut none_left, if !idle => {}
            () = &mut began, if idle => {}
            () = tokio::time::sleep_until(until) => {
                return Some((group, if idle { Closed::NothingComing } else { Closed::Waited }));
            }
        }
    }
}

async fn worker(table: Table, shared: Arc<Shared>, queue: Arc<Mutex<mpsc::UnboundedReceiver<Pending>>>) {
    loop {
        // One worker gathers while the others insert.
        let (group, closed) = {
            let mut receiver = queue.lock().await;
            match next_group(&shared, &mut receiver).await {
                Some(gathered) => gathered,
                None => return,
            }
        };
        // Why inserts are as large as they are: how many requests each carries, and what
        // stopped it gathering more.
        let labels = [("table", table.insert_table()), ("closed", closed.as_str())];
        metrics::counter!("agenttrace_clickhouse_insert_groups_total", &labels).increment(1);
        metrics::histogram!("agenttrace_clickhouse_insert_requests", &labels).record(group.len() as f64);
        let (batches, waiters): (Vec<RecordBatch>, Vec<_>) =
            group.into_iter().map(|p| (p.batch, p.done)).unzip();
        let started = Instant::now();
        let result = insert(table, &shared, batches).await;
        tracing::debug!(
            table = table.insert_table(),
            requests = waiters.len(),
            closed = closed.as_str(),
            insert_ms = started.elapsed().as_millis() as u64,
            "insert done"
        );
        for waiter in waiters {
            let _ = waiter.send(result.clone());
        }
    }
}

async fn insert(table: Table, shared: &Shared, batches: Vec<RecordBatch>) -> Result<(), LoadError> {
    let started = Instant::now();
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let format = shared
        .format()
        .await
        .map_err(|e| LoadError::Unavailable(e.to_string()))?;
    let compression = shared.options.compression;
    // Encoding and compression are CPU work: keep them off the async workers.
    let (body, raw_bytes) = crate::cpu::run(move || -> Result<(Bytes, usize), LoadError> {
        let encoded = format
            .encode(&batches)
            .map_err(|e| LoadError::Rejected(format!("encoding {}: {e}", format.name())))?;
        let raw = encoded.len();
        let body = compression
            .compress(encoded)
            .map_err(|e| LoadError::Rejected(format!("compressing: {e}")))?;
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
            .insert(&statement, body.clone(), compression)
            .await
        {
            Ok(()) => break,
            Err(error) if error.is_transient() && attempt < shared.options.attempts => {
                tracing::warn!(table = table.insert_table(), attempt, %error, "ClickHouse insert failed; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
                attempt += 1;
            }
            Err(error) if error.is_transient() => return Err(LoadError::Unavailable(error.to_string())),
            Err(error) => {
                tracing::error!(table = table.insert_table(), %error, "ClickHouse rejected an insert");
                return Err(LoadError::Rejected(error.to_string()));
            }
        }
    }
    let labels = [("table", table.insert_table())];
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

    /// A loader's shared state around a ClickHouse that is never reached.
    fn shared(options: LoaderOptions) -> Shared {
        Shared {
            clickhouse: ClickHouse::new(crate::clickhouse::ClickHouseConfig {
                url: "http://127.0.0.1:9".into(),
                database: "unused".into(),
                user: None,
                password: None,
                cluster: None,
                node_urls: Vec::new(),
            }),
            options,
            format: OnceCell::new(),
            preparing: Arc::new(PreparingRequests::default()),
        }
    }

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

    #[tokio::test]
    async fn a_group_stops_at_the_byte_bound_without_splitting_a_request() {
        let batch = || {
            let names = arrow_array::StringArray::from(vec!["x".repeat(1000); 100]);
            RecordBatch::try_from_iter([("name", Arc::new(names) as arrow_array::ArrayRef)]).unwrap()
        };
        let size = batch().get_array_memory_size();
        let shared = shared(LoaderOptions {
            max_bytes_per_insert: size * 2 - 1,
            ..LoaderOptions::default()
        });
        let (sender, mut receiver) = mpsc::unbounded_channel();
        for _ in 0..3 {
            let (done, _) = oneshot::channel();
            sender.send(Pending { batch: batch(), done }).unwrap();
        }
        let sizes = |group: Vec<Pending>| group.iter().map(|p| p.batch.num_rows()).collect::<Vec<usize>>();
        let (group, closed) = next_group(&shared, &mut receiver).await.unwrap();
        assert_eq!((sizes(group), closed), (vec![100, 100], Closed::Full));
        let (group, closed) = next_group(&shared, &mut receiver).await.unwrap();
        assert_eq!((sizes(group), closed), (vec![100], Closed::NothingComing));
    }

    #[tokio::test]
    async fn a_group_lingers_for_a_request_that_begins_soon_after() {
        let batch = || {
            let ids = arrow_array::UInt32Array::from(vec![1, 2, 3]);
            RecordBatch::try_from_iter([("id", Arc::new(ids) as arrow_array::ArrayRef)]).unwrap()
        };
        let gather = |linger_ms: u64| async move {
            let shared = shared(LoaderOptions {
                insert_linger: Duration::from_millis(linger_ms),
                ..LoaderOptions::default()
            });
            let (sender, mut receiver) = mpsc::unbounded_channel();
            let (done, _) = oneshot::channel();
            sender.send(Pending { batch: batch(), done }).unwrap();
            // A request that begins 30 ms after the first one's rows are queued.
            let preparing = shared.preparing.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(30)).await;
                let _preparing = preparing.begin();
                tokio::time::sleep(Duration::from_millis(10)).await;
                let (done, _) = oneshot::channel();
                sender.send(Pending { batch: batch(), done }).unwrap();
            });
            let (group, closed) = next_group(&shared, &mut receiver).await.unwrap();
            (group.len(), closed)
        };
        assert_eq!(gather(0).await, (1, Closed::NothingComing));
        assert_eq!(gather(200).await, (2, Closed::NothingComing));
    }

    #[test]
    fn insert_names_every_column_in_schema_order() {
        let statement = insert_statement(Table::GitLinks, WireFormat::Native);
        assert!(statement.starts_with(
            "INSERT INTO git_links (project_id, id, trace_id, observation_id, timestamp_us, repository"
        ));
        assert!(statement.ends_with("event_id, version, project_name) FORMAT Native"));
    }
}
