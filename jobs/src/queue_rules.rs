//! The `annotation_rules` job: each annotation queue's standing rule applied to what arrived
//! since the rule last ran (traces that started, or judges' scores given, in the window), so a
//! queue keeps filling: every trace a judge failed, or a 5% sample of production traces. A run's
//! cost follows what arrived in its window, not what is stored.

use agenttrace_etl::analytics::queue_rules::{self, QueueRule};
use agenttrace_etl::clickhouse::ClickHouse;
use agenttrace_etl::control::annotation;
use agenttrace_schemas::Timestamp;
use tokio_postgres::Client;

/// What a run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RulesReport {
    /// Queues with a rule.
    pub queues: u64,
    /// Objects the rules found, and items added (or already there) after sampling.
    pub found: u64,
    pub added: u64,
    /// Queues whose rule failed this run (logged; the others go on).
    pub failed: u64,
}

/// Objects one queue's rule takes per run; the window stays where it was past that, so the
/// rest come on the next runs.
const PER_RUN: usize = 1000;

/// Applies every standing rule to `(its watermark, now]`.
pub async fn run(pg: &Client, clickhouse: &ClickHouse, now_us: i64) -> Result<RulesReport, String> {
    let queues = annotation::ruled_queues(pg).await.map_err(|e| e.to_string())?;
    let mut report = RulesReport {
        queues: queues.len() as u64,
        ..RulesReport::default()
    };
    for queue in queues {
        let rule: QueueRule = match serde_json::from_value(queue.rule.clone()) {
            Ok(rule) => rule,
            Err(error) => {
                tracing::warn!(queue = %queue.id, %error, "a queue's stored rule does not parse");
                report.failed += 1;
                continue;
            }
        };
        let from = queue
            .watermark_us
            .map(|us| Timestamp::from_micros(us).to_string());
        let window = rule.within(from, Timestamp::from_micros(now_us).to_string());
        let reader = clickhouse.for_project(queue.project_id);
        let found = match window.find(&reader, queue.project_id, queue.id, PER_RUN).await {
            Ok(found) => found,
            Err(error) => {
                tracing::warn!(queue = %queue.id, %error, "applying a queue's rule failed");
                report.failed += 1;
                continue;
            }
        };
        let (total, chosen) = found;
        report.found += total as u64;
        if !chosen.is_empty() {
            let items = queue_rules::resolve(&reader, queue.project_id, &chosen)
                .await
                .map_err(|e| e.to_string())?;
            let added = annotation::add_items(pg, queue.project_id, queue.id, &items, None)
                .await
                .map_err(|e| e.to_string())?;
            report.added += added.len() as u64;
        }
        // A full page may have left more in the window: take it again next run.
        if total < PER_RUN {
            annotation::advance_rule(pg, queue.id, now_us)
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(report)
}
