//! Group commit of appends within one isolate: requests that arrive while an append to their
//! buffer is in flight wait for it, then go together as one Durable Object call, one SQLite row
//! and one commit.
//!
//! A Worker → Durable Object round trip and a durable SQLite commit per request were most of
//! the edge's CPU per request (BENCHMARKS.md). An idle lane sends at once, so a lone request
//! waits for nothing; under load a batch grows with the time an append takes.
//!
//! This is the bookkeeping only: who sends what, and who waits. A waiter (`W`) is whatever the
//! Worker uses to wake a waiting request; the batch's sender tells each waiter the outcome and
//! hands the next batch to one of its waiters, which sends it from its own request.

use std::collections::HashMap;
use std::hash::Hash;

use crate::ingest::Accepted;

/// When a forming batch goes without waiting for the append in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    pub max_events: usize,
    pub max_bytes: usize,
    /// An append in flight longer than this is taken for lost (its request was cancelled and
    /// will never report back): the lane stops waiting for it.
    pub stale_after_ms: u64,
}

impl Default for BatchLimits {
    fn default() -> Self {
        BatchLimits {
            max_events: 1_000,
            // A batch is one SQLite row; Cloudflare caps a row at 2 MB.
            max_bytes: 1024 * 1024,
            stale_after_ms: 10_000,
        }
    }
}

/// Events of one or more requests for one lane, appended as one row.
#[derive(Debug)]
pub struct Batch<W> {
    /// When it was sent (milliseconds since the epoch), to report back with [`Coalescer::finish`].
    pub sent_ms: u64,
    /// Events in the batch.
    pub count: usize,
    /// Their exact texts joined by commas.
    pub events: Vec<u8>,
    /// The requests waiting for this batch, apart from the one sending it.
    pub waiters: Vec<W>,
}

impl<W> Batch<W> {
    /// A batch of these events alone.
    pub fn of(events: &[Accepted]) -> Self {
        let mut batch = Batch::new();
        batch.push(events);
        batch
    }

    fn new() -> Self {
        Batch {
            sent_ms: 0,
            count: 0,
            events: Vec::new(),
            waiters: Vec::new(),
        }
    }

    fn push(&mut self, events: &[Accepted]) {
        self.events.reserve(text_bytes(events));
        for event in events {
            if !self.events.is_empty() {
                self.events.push(b',');
            }
            self.events.extend_from_slice(event.json.as_bytes());
        }
        self.count += events.len();
    }

    fn full(&self, limits: &BatchLimits) -> bool {
        self.count >= limits.max_events || self.events.len() >= limits.max_bytes
    }
}

/// The bytes an event takes in a batch: its text and the comma that joins it.
fn text_size(event: &Accepted) -> usize {
    event.json.len() + 1
}

/// The text bytes `events` take in a batch.
pub fn text_bytes(events: &[Accepted]) -> usize {
    events.iter().map(text_size).sum()
}

/// `events` in runs of at most `max_bytes` of text (an event larger than that runs alone), in
/// order: a large request's events as rows under the row limit.
pub fn runs(events: &[Accepted], max_bytes: usize) -> Vec<&[Accepted]> {
    let mut runs = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, event) in events.iter().enumerate() {
        let size = text_size(event);
        if i > start && bytes + size > max_bytes {
            runs.push(&events[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < events.len() {
        runs.push(&events[start..]);
    }
    runs
}

/// What a request does after joining its lane.
#[derive(Debug)]
pub enum Joined<W> {
    /// Send this batch now (it holds the request's own events).
    Send(Batch<W>),
    /// Wait: the waiter is told the outcome, or handed a batch to send.
    Wait,
}

#[derive(Debug)]
struct Lane<W> {
    /// When each append in flight started (milliseconds since the epoch).
    in_flight: Vec<u64>,
    /// Requests gathered while an append is in flight.
    forming: Option<Batch<W>>,
}

/// Every lane of an isolate (a lane is one project and key: one buffer row holds one key's
/// events).
#[derive(Debug)]
pub struct Coalescer<K, W> {
    limits: BatchLimits,
    lanes: HashMap<K, Lane<W>>,
}

impl<K: Hash + Eq + Clone, W> Coalescer<K, W> {
    pub fn new(limits: BatchLimits) -> Self {
        Coalescer {
            limits,
            lanes: HashMap::new(),
        }
    }

    /// Adds a request's events to its lane at `now_ms`: it sends them at once if nothing is in
    /// flight (or the batch it joins is full), else it waits with `waiter`.
    pub fn join(&mut self, key: &K, events: &[Accepted], waiter: W, now_ms: u64) -> Joined<W> {
        let lane = self.lanes.entry(key.clone()).or_insert_with(|| Lane {
            in_flight: Vec::new(),
            forming: None,
        });
        let stale_after = self.limits.stale_after_ms;
        lane.in_flight
            .retain(|&started| now_ms.saturating_sub(started) < stale_after);
        let mut batch = lane.forming.take().unwrap_or_else(Batch::new);
        batch.push(events);
        if lane.in_flight.is_empty() || batch.full(&self.limits) {
            lane.in_flight.push(now_ms);
            batch.sent_ms = now_ms;
            Joined::Send(batch)
        } else {
            batch.waiters.push(waiter);
            lane.forming = Some(batch);
            Joined::Wait
        }
    }

    /// Called when the append of a batch of `key`'s lane sent at `sent_ms` has finished (its
    /// waiters told): the batch that formed meanwhile, sent as of `now_ms`, to hand to one of
    /// its waiters.
    pub fn finish(&mut self, key: &K, sent_ms: u64, now_ms: u64) -> Option<Batch<W>> {
        let lane = self.lanes.get_mut(key)?;
        if let Some(i) = lane.in_flight.iter().position(|&started| started == sent_ms) {
            lane.in_flight.swap_remove(i);
        }
        match lane.forming.take() {
            Some(mut batch) => {
                lane.in_flight.push(now_ms);
                batch.sent_ms = now_ms;
                Some(batch)
            }
            None => {
                if lane.in_flight.is_empty() {
                    self.lanes.remove(key);
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(ids: &[&str]) -> Vec<Accepted> {
        ids.iter()
            .map(|id| Accepted {
                json: format!(r#"{{"id":"{id}"}}"#),
                valid: true,
            })
            .collect()
    }

    fn send(joined: Joined<u32>) -> Batch<u32> {
        match joined {
            Joined::Send(batch) => batch,
            Joined::Wait => panic!("expected to send"),
        }
    }

    #[test]
    fn an_idle_lane_sends_at_once_and_a_busy_one_gathers() {
        let mut lanes = Coalescer::new(BatchLimits::default());
        let first = send(lanes.join(&"p", &events(&["a"]), 1, 100));
        assert_eq!((first.count, first.events.as_slice()), (1, &br#"{"id":"a"}"#[..]));
        assert!(first.waiters.is_empty());
        // Another lane is independent.
        send(lanes.join(&"q", &events(&["x"]), 9, 100));

        assert!(matches!(
            lanes.join(&"p", &events(&["b", "c"]), 2, 101),
            Joined::Wait
        ));
        assert!(matches!(lanes.join(&"p", &events(&["d"]), 3, 102), Joined::Wait));
        let next = lanes.finish(&"p", 100, 110).expect("the batch that formed");
        assert_eq!(next.count, 3);
        assert_eq!(next.events, br#"{"id":"b"},{"id":"c"},{"id":"d"}"#);
        assert_eq!((next.waiters.as_slice(), next.sent_ms), (&[2, 3][..], 110));

        // That batch is in flight now: the next request waits for it.
        assert!(matches!(lanes.join(&"p", &events(&["e"]), 4, 111), Joined::Wait));
        let last = lanes.finish(&"p", 110, 120).unwrap();
        assert_eq!(last.waiters, [4]);
        assert!(lanes.finish(&"p", 120, 130).is_none());
        // The lane is forgotten when idle; the next request sends at once.
        assert!(!lanes.lanes.contains_key(&"p"));
        send(lanes.join(&"p", &events(&["f"]), 5, 140));
    }

    #[test]
    fn large_requests_split_into_runs_under_the_limit() {
        let events = events(&["a", "bb", "c", "dddddddddddddddddddd", "e"]);
        let sizes = |runs: Vec<&[Accepted]>| runs.iter().map(|run| run.len()).collect::<Vec<_>>();
        // 11, 12, 11, 29 and 11 bytes (each text and its comma): 25 bytes hold "a" and "bb".
        assert_eq!(sizes(runs(&events, 25)), [2, 1, 1, 1]);
        assert_eq!(sizes(runs(&events, 1_000)), [5]);
        // An event over the limit runs alone.
        assert_eq!(sizes(runs(&events, 5)), [1, 1, 1, 1, 1]);
        assert!(runs(&[], 5).is_empty());
        let batch: Batch<u32> = Batch::of(&events[..2]);
        assert_eq!(
            (batch.count, batch.events.as_slice()),
            (2, &br#"{"id":"a"},{"id":"bb"}"#[..])
        );
    }

    #[test]
    fn a_full_batch_goes_without_waiting() {
        let limits = BatchLimits {
            max_events: 3,
            ..BatchLimits::default()
        };
        let mut lanes = Coalescer::new(limits);
        send(lanes.join(&"p", &events(&["a"]), 1, 100));
        assert!(matches!(lanes.join(&"p", &events(&["b"]), 2, 101), Joined::Wait));
        let full = send(lanes.join(&"p", &events(&["c", "d"]), 3, 102));
        assert_eq!(
            (full.count, full.waiters.as_slice(), full.sent_ms),
            (3, &[2][..], 102)
        );
        // Two appends in flight; each finishing hands over nothing until more arrive.
        assert!(lanes.finish(&"p", 100, 110).is_none());
        assert!(matches!(lanes.join(&"p", &events(&["e"]), 4, 111), Joined::Wait));
        assert_eq!(lanes.finish(&"p", 102, 112).unwrap().waiters, [4]);
    }

    #[test]
    fn an_append_that_never_reports_back_stops_holding_the_lane() {
        let mut lanes = Coalescer::new(BatchLimits::default());
        send(lanes.join(&"p", &events(&["a"]), 1, 1_000));
        assert!(matches!(
            lanes.join(&"p", &events(&["b"]), 2, 1_001),
            Joined::Wait
        ));
        // Ten seconds on, the first append is taken for lost: the next request sends the
        // gathered events with its own.
        let batch = send(lanes.join(&"p", &events(&["c"]), 3, 11_000));
        assert_eq!((batch.count, batch.waiters.as_slice()), (2, &[2][..]));
        // A late report of the lost append changes nothing.
        assert!(lanes.finish(&"p", 1_000, 11_001).is_none());
        assert!(lanes.finish(&"p", 11_000, 11_002).is_none());
    }
}
