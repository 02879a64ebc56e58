//! A [`Sink`] that keeps loaded batches in memory instead of sending them to ClickHouse: the
//! ingest pipeline tested (and fuzzed) on its own, fast, with what it would have loaded in hand.

use std::sync::Mutex;

use arrow_array::RecordBatch;

use crate::clickhouse::Table;
use crate::clickhouse::loader::{LoadTicket, Preparing, Sink};

#[derive(Default)]
pub struct MemorySink {
    loaded: Mutex<Vec<(Table, RecordBatch)>>,
}

impl MemorySink {
    /// Rows loaded so far into `table`.
    pub fn rows(&self, table: Table) -> usize {
        self.loaded
            .lock()
            .expect("memory sink lock")
            .iter()
            .filter(|(t, _)| *t == table)
            .map(|(_, batch)| batch.num_rows())
            .sum()
    }

    /// Every batch loaded so far, in order.
    pub fn batches(&self) -> Vec<(Table, RecordBatch)> {
        self.loaded.lock().expect("memory sink lock").clone()
    }
}

impl Sink for MemorySink {
    fn prepare(&self) -> Preparing {
        // Nothing to coalesce: every submit is "durable" at once.
        Preparing::untracked()
    }

    fn submit(&self, table: Table, batch: RecordBatch) -> LoadTicket {
        self.loaded.lock().expect("memory sink lock").push((table, batch));
        Box::pin(async { Ok(()) })
    }
}
