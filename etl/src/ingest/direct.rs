//! Events the ETL makes itself (the scores people give in annotation queues), loaded straight
//! into ClickHouse: they come from a signed-in person through the API, not from an agent
//! through the edge, so there is no batch to sign or dead-letter. Each event is parsed and
//! validated as the pipeline would.

use agenttrace_schemas::{Event, Timestamp};
use uuid::Uuid;

use crate::clickhouse::ClickHouse;
use crate::ingest::to_arrow::TableBatches;

/// Loads `events` (the event model's JSON) as rows of `project`; returns once ClickHouse has them.
pub async fn load(
    clickhouse: &ClickHouse,
    project: Uuid,
    project_name: &str,
    events: &[String],
) -> Result<(), String> {
    let mut tables = TableBatches::new(&project.to_string(), project_name);
    for text in events {
        let event = Event::parse(text).map_err(|e| format!("an event of ours did not parse: {e}"))?;
        tables.push(&event, None).map_err(|e| e.to_string())?;
    }
    let batches = tables
        .finish(&format!("direct-{}", Uuid::new_v4()), Timestamp::now())
        .map_err(|e| e.to_string())?;
    for (table, batch) in batches {
        clickhouse
            .insert_batches(table, &[batch])
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}
