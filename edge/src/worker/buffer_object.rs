//! The `Buffer` Durable Object: one per project shard. A request's events are appended to
//! SQLite before the agent is answered; alarms flush them to the ETL as signed batches,
//! retried with backoff until acknowledged, or kept with the reason if refused for good.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use agenttrace_schemas::Timestamp;
use serde::Deserialize;
use worker::js_sys::{self, Math};
use worker::*;

use super::{Config, error, json_response, now_ms, post_signed};
use crate::buffer::{BufferState, Delivery, append_body, parse_append, retry_delay, stored_events};
use crate::coalesce::{Batch, BatchLimits, Coalescer, Joined, runs, text_bytes};
use crate::forward::batch_body;
use crate::ingest::Accepted;

/// Most events and bytes one delivery carries (the ETL accepts more; smaller batches retry
/// cheaply).
const MAX_DELIVERY_EVENTS: i64 = 5_000;
const MAX_DELIVERY_BYTES: i64 = 8 * 1024 * 1024;
/// Deliveries per alarm before yielding (the next alarm continues at once).
const DELIVERIES_PER_ALARM: usize = 20;

/// Longest a request waits in its lane for its events to be appended (an append takes
/// milliseconds; this bounds the wait behind an append whose request was cancelled).
const LANE_WAIT: Duration = Duration::from_secs(25);
/// How often a waiting request looks for its news.
const LANE_POLL: Duration = Duration::from_millis(1);

/// News for a request waiting in its lane.
enum News {
    /// Its events were appended (or could not be).
    Done(std::result::Result<(), String>),
    /// The batch holding its events is its to send.
    Send(Batch<Waiter>),
}

/// Where a waiting request finds its news. The request looks on its own timer rather than
/// being woken by the request that writes the news: in workerd, code resumed by another
/// request runs in that request's context, and I/O it starts there (the append it may have to
/// send, even its own response body) belongs to the wrong request.
struct Waiter(Rc<RefCell<Slot>>);

struct Slot {
    news: Option<News>,
    /// When the request last looked (a cancelled request stops looking).
    looked_ms: u64,
}

/// A waiter that has not looked for this long is taken for gone when a batch is handed over.
const GONE_AFTER_MS: u64 = 200;
/// Batches a request sends for others after its own when none of their requests is looking,
/// before it leaves the rest to be dropped (its own answer waits meanwhile).
const MAX_ADOPTED: usize = 4;

impl Waiter {
    fn tell(self, news: News) {
        self.0.borrow_mut().news = Some(news);
    }

    /// Whether the request still looks for its news, as of `now_ms`.
    fn looking(&self, now_ms: u64) -> bool {
        Rc::strong_count(&self.0) > 1 && now_ms.saturating_sub(self.0.borrow().looked_ms) < GONE_AFTER_MS
    }
}

/// A lane: one project and key.
type LaneKey = (String, String);

thread_local! {
    /// Appends gathered per lane, per isolate (see [`crate::coalesce`]).
    static LANES: RefCell<Coalescer<LaneKey, Waiter>> =
        RefCell::new(Coalescer::new(BatchLimits::default()));
}

/// Hands the events to one of the project's buffer shards, together with those of concurrent
/// requests of the same lane; returns once they are durable.
pub(crate) async fn buffer(
    env: &Env,
    config: &Config,
    project_id: &str,
    public_key: &str,
    events: &[Accepted],
) -> std::result::Result<(), String> {
    let key: LaneKey = (project_id.to_owned(), public_key.to_owned());
    let limits = BatchLimits::default();
    if text_bytes(events) > limits.max_bytes {
        // Too large to share an append: rows of its own, each under Cloudflare's 2 MB row
        // limit (an event is at most 1 MiB). A failure half-way is a 503, and the retry's
        // repeated events are deduplicated by id downstream.
        for run in runs(events, limits.max_bytes) {
            append(env, config, &key, &Batch::of(run)).await?;
        }
        return Ok(());
    }
    let slot = Rc::new(RefCell::new(Slot {
        news: None,
        looked_ms: now_ms(),
    }));
    let joined = LANES.with_borrow_mut(|lanes| lanes.join(&key, events, Waiter(slot.clone()), now_ms()));
    let batch = match joined {
        Joined::Send(batch) => batch,
        Joined::Wait => {
            let give_up = now_ms() + LANE_WAIT.as_millis() as u64;
            loop {
                // The pending timer is also what keeps this request alive meanwhile (workerd
                // ends a request that waits on nothing of its own).
                Delay::from(LANE_POLL).await;
                let now = now_ms();
                let news = {
                    let mut slot = slot.borrow_mut();
                    slot.looked_ms = now;
                    slot.news.take()
                };
                match news {
                    Some(News::Done(result)) => return result,
                    Some(News::Send(batch)) => break batch,
                    None if now >= give_up => {
                        return Err(format!(
                            "no answer from the buffer within {} s",
                            LANE_WAIT.as_secs()
                        ));
                    }
                    None => {}
                }
            }
        }
    };
    send_batch(env, config, &key, batch).await
}

/// Appends a lane's batch, tells its waiters, and hands the batch that formed meanwhile to
/// one of its own waiters.
async fn send_batch(
    env: &Env,
    config: &Config,
    key: &LaneKey,
    mut batch: Batch<Waiter>,
) -> std::result::Result<(), String> {
    let result = append(env, config, key, &batch).await;
    for waiter in batch.waiters.drain(..) {
        waiter.tell(News::Done(result.clone()));
    }
    let mut next = LANES.with_borrow_mut(|lanes| lanes.finish(key, batch.sent_ms, now_ms()));
    let mut adopted = 0;
    while let Some(mut batch) = next.take() {
        let now = now_ms();
        match batch.waiters.iter().rposition(|waiter| waiter.looking(now)) {
            Some(i) => batch.waiters.swap_remove(i).tell(News::Send(batch)),
            // Nobody has looked lately: its requests went away, or this isolate was too busy
            // for their timers to run (a loaded machine stalls it for longer than
            // `GONE_AFTER_MS`). This request sends it, so live requests are not refused; a gone
            // request's client had no answer, and its retry's repeats are deduplicated by id
            // downstream.
            None if adopted < MAX_ADOPTED => {
                adopted += 1;
                let sent = append(env, config, key, &batch).await;
                for waiter in batch.waiters.drain(..) {
                    waiter.tell(News::Done(sent.clone()));
                }
                next = LANES.with_borrow_mut(|lanes| lanes.finish(key, batch.sent_ms, now_ms()));
            }
            // This request has sent enough for others: the batch is dropped unsent (none of its
            // requests was acknowledged; any still there hear so at once), and the lane moves on.
            None => {
                for waiter in batch.waiters {
                    waiter.tell(News::Done(Err(
                        "the request holding these events went away".into()
                    )));
                }
                next = LANES.with_borrow_mut(|lanes| lanes.finish(key, batch.sent_ms, now));
            }
        }
    }
    result
}

/// One append: the batch into one of the lane's buffer shards, durable when this returns.
async fn append(
    env: &Env,
    config: &Config,
    (project_id, public_key): &LaneKey,
    batch: &Batch<Waiter>,
) -> std::result::Result<(), String> {
    let shard = (Math::random() * f64::from(config.shards)) as u32 % config.shards;
    let namespace = env.durable_object("BUFFER").map_err(|e| e.to_string())?;
    let stub = namespace
        .id_from_name(&format!("{project_id}/{shard}"))
        .and_then(|id| id.get_stub())
        .map_err(|e| e.to_string())?;
    let body = append_body(project_id, public_key, batch.count, &batch.events);
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_body(Some(js_sys::Uint8Array::from(body.as_slice()).into()));
    let request = Request::new_with_init("https://buffer/append", &init).map_err(|e| e.to_string())?;
    let mut response = stub
        .fetch_with_request(request)
        .await
        .map_err(|e| e.to_string())?;
    if response.status_code() != 200 {
        return Err(response.text().await.unwrap_or_default());
    }
    Ok(())
}

/// A project shard's buffer. Rows of `pending` are accepted requests (their events' texts joined
/// by commas, as a BLOB; older rows hold a JSON array as TEXT); `delivery` is the batch being delivered (at most one, reused on retry so the ETL sees
/// the same batch id); `rejected` keeps batches the ETL refused for good, with the reason.
#[durable_object]
pub struct Buffer {
    state: State,
    env: Env,
    /// Running totals of `pending`, read from SQLite once and then kept up to date, so an
    /// append does not sum the table.
    totals: RefCell<Option<Totals>>,
    /// The alarm as last read or set (`None`: not known; `Some(None)`: none set), so an append
    /// asks storage nothing and its write commits in the turn it was made.
    alarm: Cell<Option<Option<u64>>>,
}

// `events` comes last: SQLite keeps a large value in a chain of overflow pages, and reading a
// column stored after it means walking that chain. With the small columns first, totals and
// delivery planning read one page per row instead of every byte buffered.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS pending (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    count INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    received_ms INTEGER NOT NULL,
    project_id TEXT NOT NULL,
    public_key TEXT NOT NULL,
    events BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS delivery (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    batch_id TEXT NOT NULL,
    project_id TEXT NOT NULL,
    public_key TEXT NOT NULL,
    first_seq INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_ms INTEGER NOT NULL,
    last_error TEXT
);
CREATE TABLE IF NOT EXISTS rejected (
    batch_id TEXT PRIMARY KEY,
    status INTEGER NOT NULL,
    reason TEXT NOT NULL,
    events TEXT NOT NULL,
    rejected_ms INTEGER NOT NULL
);";

#[derive(Deserialize, Clone, Copy)]
struct Totals {
    events: i64,
    bytes: i64,
    oldest_ms: Option<i64>,
}

#[derive(Deserialize, Clone)]
struct DeliveryRow {
    batch_id: String,
    project_id: String,
    public_key: String,
    first_seq: i64,
    last_seq: i64,
    attempts: i64,
    next_attempt_ms: i64,
}

#[derive(Deserialize)]
struct PendingRow {
    seq: i64,
    project_id: String,
    public_key: String,
    count: i64,
    bytes: i64,
}

impl DeliveryRow {
    /// The parameters of `WHERE seq BETWEEN ? AND ? AND public_key = ? AND project_id = ?`:
    /// the pending rows this delivery carries.
    fn pending_rows(&self) -> Vec<SqlStorageValue> {
        vec![
            self.first_seq.into(),
            self.last_seq.into(),
            self.public_key.clone().into(),
            self.project_id.clone().into(),
        ]
    }
}

impl Buffer {
    fn sql(&self) -> SqlStorage {
        self.state.storage().sql()
    }

    fn totals(&self) -> Result<Totals> {
        if let Some(totals) = *self.totals.borrow() {
            return Ok(totals);
        }
        let totals: Totals = self
            .sql()
            .exec(
                "SELECT COALESCE(SUM(count), 0) AS events, COALESCE(SUM(bytes), 0) AS bytes, MIN(received_ms) AS oldest_ms FROM pending",
                None,
            )?
            .one()?;
        *self.totals.borrow_mut() = Some(totals);
        Ok(totals)
    }

    fn delivery(&self) -> Result<Option<DeliveryRow>> {
        Ok(self
            .sql()
            .exec("SELECT * FROM delivery WHERE id = 1", None)?
            .to_array::<DeliveryRow>()?
            .into_iter()
            .next())
    }

    /// Sets the alarm for when the buffer should next flush: now if a limit is reached, else
    /// when the oldest event gets too old, never earlier than a pending retry.
    async fn schedule(&self, config: &Config) -> Result<()> {
        let totals = self.totals()?;
        let state = BufferState {
            events: totals.events as usize,
            bytes: totals.bytes as usize,
            oldest_ms: totals.oldest_ms.map(|t| t as u64),
        };
        let now = now_ms();
        let mut at = if config.policy.flush_reason(&state, now).is_some() {
            Some(now)
        } else {
            config.policy.alarm_at_ms(&state)
        };
        if let (Some(target), Some(delivery)) = (at, self.delivery()?) {
            at = Some(target.max(delivery.next_attempt_ms as u64));
        }
        let storage = self.state.storage();
        let current = match self.alarm.get() {
            Some(known) => known,
            None => storage.get_alarm().await?.map(|at| at as u64),
        };
        let wanted = match at {
            None => {
                if current.is_some() {
                    storage.delete_alarm().await?;
                }
                None
            }
            Some(at) if current.is_none_or(|current| current > at) => {
                storage
                    .set_alarm(Duration::from_millis(at.saturating_sub(now_ms())))
                    .await?;
                Some(at)
            }
            Some(_) => current,
        };
        self.alarm.set(Some(wanted));
        Ok(())
    }

    /// The delivery in progress, or a new one from the oldest pending rows of one key.
    fn next_delivery(&self) -> Result<Option<DeliveryRow>> {
        if let Some(delivery) = self.delivery()? {
            return Ok(Some(delivery));
        }
        let rows: Vec<PendingRow> = self
            .sql()
            .exec(
                "SELECT seq, project_id, public_key, count, bytes FROM pending ORDER BY seq LIMIT 1000",
                None,
            )?
            .to_array()?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let (mut events, mut bytes, mut last_seq) = (0, 0, first.seq);
        for row in rows
            .iter()
            .filter(|r| r.public_key == first.public_key && r.project_id == first.project_id)
        {
            if events > 0
                && (events + row.count > MAX_DELIVERY_EVENTS || bytes + row.bytes > MAX_DELIVERY_BYTES)
            {
                break;
            }
            events += row.count;
            bytes += row.bytes;
            last_seq = row.seq;
        }
        let now = now_ms();
        let batch_id = uuid::Uuid::new_v7(uuid::Timestamp::from_unix(
            uuid::NoContext,
            now / 1000,
            ((now % 1000) * 1_000_000) as u32,
        ));
        let delivery = DeliveryRow {
            batch_id: batch_id.to_string(),
            project_id: first.project_id.clone(),
            public_key: first.public_key.clone(),
            first_seq: first.seq,
            last_seq,
            attempts: 0,
            next_attempt_ms: 0,
        };
        self.sql().exec(
            "INSERT INTO delivery (id, batch_id, project_id, public_key, first_seq, last_seq, attempts, next_attempt_ms) \
             VALUES (1, ?, ?, ?, ?, ?, 0, 0)",
            vec![
                delivery.batch_id.clone().into(),
                delivery.project_id.clone().into(),
                delivery.public_key.clone().into(),
                delivery.first_seq.into(),
                delivery.last_seq.into(),
            ],
        )?;
        Ok(Some(delivery))
    }

    /// The delivery's events, in order: one comma-joined list per buffered request.
    fn delivery_events(&self, delivery: &DeliveryRow) -> Result<Vec<Vec<u8>>> {
        let cursor = self.sql().exec(
            "SELECT events FROM pending \
             WHERE seq BETWEEN ? AND ? AND public_key = ? AND project_id = ? ORDER BY seq",
            delivery.pending_rows(),
        )?;
        let mut lists = Vec::new();
        for row in cursor.raw() {
            let list = match row?.into_iter().next() {
                Some(SqlStorageValue::Blob(bytes)) => bytes,
                Some(SqlStorageValue::String(text)) => text.into_bytes(),
                other => return Err(Error::RustError(format!("a pending row holds {other:?}"))),
            };
            lists.push(stored_events(&list).to_vec());
        }
        Ok(lists)
    }

    fn finish_delivery(&self, delivery: &DeliveryRow) -> Result<()> {
        self.sql().exec(
            "DELETE FROM pending WHERE seq BETWEEN ? AND ? AND public_key = ? AND project_id = ?",
            delivery.pending_rows(),
        )?;
        self.sql().exec("DELETE FROM delivery WHERE id = 1", None)?;
        // Recounted from SQLite when next needed (deliveries are rare next to appends).
        self.totals.borrow_mut().take();
        Ok(())
    }

    /// Delivers batches until the buffer is empty, a delivery must wait, or this alarm has
    /// done enough.
    async fn flush(&self, config: &Config) -> Result<()> {
        for _ in 0..DELIVERIES_PER_ALARM {
            let Some(delivery) = self.next_delivery()? else {
                return Ok(());
            };
            if delivery.next_attempt_ms as u64 > now_ms() {
                return Ok(());
            }
            let events = self.delivery_events(&delivery)?;
            let lists: Vec<&[u8]> = events.iter().map(Vec::as_slice).collect();
            if events.is_empty() {
                self.finish_delivery(&delivery)?;
                continue;
            }
            let (Ok(batch_id), Ok(project_id)) = (
                uuid::Uuid::parse_str(&delivery.batch_id),
                uuid::Uuid::parse_str(&delivery.project_id),
            ) else {
                return Err(Error::RustError(format!(
                    "corrupt delivery row {}",
                    delivery.batch_id
                )));
            };
            let body = batch_body(
                batch_id,
                &config.edge_id,
                project_id,
                &delivery.public_key,
                Timestamp::from_micros(now_ms() as i64 * 1000),
                &lists,
            )
            .map_err(Error::RustError)?;
            let outcome = post_signed(config, "/v1/batches", body.as_bytes()).await;
            let (delivered, detail) = match &outcome {
                Ok((status, answer)) => (
                    Delivery::from_status(*status),
                    format!("{status} {}", String::from_utf8_lossy(answer)),
                ),
                Err(problem) => (Delivery::RetryLater, problem.clone()),
            };
            match delivered {
                Delivery::Acknowledged => self.finish_delivery(&delivery)?,
                Delivery::Rejected => {
                    let status = outcome.as_ref().map_or(0, |(status, _)| *status);
                    console_error!("batch {} refused for good: {detail}", delivery.batch_id);
                    self.sql().exec(
                        "INSERT OR REPLACE INTO rejected (batch_id, status, reason, events, rejected_ms) VALUES (?, ?, ?, ?, ?)",
                        vec![
                            delivery.batch_id.clone().into(),
                            i64::from(status).into(),
                            detail.into(),
                            body.into(),
                            (now_ms() as i64).into(),
                        ],
                    )?;
                    self.finish_delivery(&delivery)?;
                }
                Delivery::RetryLater => {
                    let attempts = delivery.attempts + 1;
                    let wait = retry_delay(attempts as u32, Math::random());
                    console_warn!(
                        "batch {} not delivered (attempt {attempts}): {detail}",
                        delivery.batch_id
                    );
                    self.sql().exec(
                        "UPDATE delivery SET attempts = ?, next_attempt_ms = ?, last_error = ? WHERE id = 1",
                        vec![
                            attempts.into(),
                            ((now_ms() + wait.as_millis() as u64) as i64).into(),
                            detail.into(),
                        ],
                    )?;
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

impl DurableObject for Buffer {
    fn new(state: State, env: Env) -> Self {
        if let Err(problem) = state.storage().sql().exec(SCHEMA, None) {
            console_error!("creating the buffer's tables: {problem}");
        }
        Buffer {
            state,
            env,
            totals: RefCell::new(None),
            alarm: Cell::new(None),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let config = match Config::from_env(&self.env) {
            Ok(config) => config,
            Err(problem) => return error(500, "misconfigured", &problem),
        };
        match req.path().as_str() {
            "/append" => {
                let body = req.bytes().await?;
                let (header, events) = parse_append(&body).map_err(Error::RustError)?;
                let received_ms = now_ms() as i64;
                self.sql().exec(
                    "INSERT INTO pending (project_id, public_key, events, count, bytes, received_ms) VALUES (?, ?, ?, ?, ?, ?)",
                    vec![
                        header.project_id.into(),
                        header.public_key.into(),
                        events.to_vec().into(),
                        header.count.into(),
                        (events.len() as i64).into(),
                        received_ms.into(),
                    ],
                )?;
                if let Some(totals) = self.totals.borrow_mut().as_mut() {
                    totals.events += header.count;
                    totals.bytes += events.len() as i64;
                    totals.oldest_ms.get_or_insert(received_ms);
                }
                self.schedule(&config).await?;
                Response::ok("buffered")
            }
            "/rejected" => {
                let rows: Vec<serde_json::Value> = self
                    .sql()
                    .exec(
                        "SELECT batch_id, status, reason, rejected_ms, length(events) AS bytes FROM rejected \
                         ORDER BY rejected_ms",
                        None,
                    )?
                    .to_array()?;
                json_response(200, serde_json::Value::from(rows).to_string(), &[])
            }
            other => error(404, "not_found", &format!("no buffer route {other}")),
        }
    }

    async fn alarm(&self) -> Result<Response> {
        // The alarm that fired is spent; what is set next is read from storage again.
        self.alarm.set(None);
        let config = match Config::from_env(&self.env) {
            Ok(config) => config,
            Err(problem) => return error(500, "misconfigured", &problem),
        };
        if let Err(problem) = self.flush(&config).await {
            console_error!("flushing the buffer: {problem}");
        }
        self.schedule(&config).await?;
        Response::ok("flushed")
    }
}
