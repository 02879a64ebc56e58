//! Events AgentTrace makes itself (the scores people give in annotation queues, the LLM judges'
//! scores and traces), loaded straight into ClickHouse: they come from the API or a job, not
//! from an agent through the edge, so there is no batch to sign or dead-letter. Each event is
//! parsed and validated as the pipeline would.

use agenttrace_schemas::event::Cost;
use agenttrace_schemas::{Event, Timestamp};
use uuid::Uuid;

use crate::clickhouse::ClickHouse;
use crate::ingest::to_arrow::TableBatches;

/// Loads `events` (the event model's JSON, each with its cost when it has one) as rows of
/// `project`, as a batch named after `batch` (who made it); returns once ClickHouse has them.
pub async fn load(
    clickhouse: &ClickHouse,
    project: Uuid,
    project_name: &str,
    batch: &str,
    events: &[(String, Option<Cost>)],
) -> Result<(), String> {
    let mut tables = TableBatches::new(&project.to_string(), project_name);
    for (text, cost) in events {
        let event = Event::parse(text).map_err(|e| format!("an event of ours did not parse: {e}"))?;
        tables.push(&event, *cost).map_err(|e| e.to_string())?;
    }
    let batches = tables
        .finish(&format!("{batch}-{}", Uuid::new_v4()), Timestamp::now())
        .map_err(|e| e.to_string())?;
    for (table, batch) in batches {
        clickhouse
            .insert_batches(table, &[batch])
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}
