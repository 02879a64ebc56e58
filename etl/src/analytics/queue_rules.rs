//! What an annotation queue takes from a filtered list: the traces a trace filter finds, or the
//! targets an LLM judge failed, a deterministic sample of them; and the trace each is shown and
//! scored on. Used once (`POST .../items/from-filter`) and as a queue's standing rule (the
//! `annotation_rules` job, over what arrived since it last ran).

use std::collections::HashMap;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::analytics::AnalyticsError;
use crate::analytics::paging::invalid;
use crate::analytics::scores::{ScoreFilter, score_list};
use crate::analytics::traces::{self, TraceFilter};
use crate::clickhouse::ClickHouse;
use crate::control::annotation::{NewItem, object_type};

/// What to take: one of `traces` and `judge_failures`, and the share of it.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueueRule {
    /// The read API's trace filters (`GET /v1/traces`): `from`, `to`, `name`, `user_id`,
    /// `session_id`, `tags`, `environment`, `release`, `level`, `min_cost`, `min_latency_ms`,
    /// `score_name`.
    #[schema(value_type = Option<Object>)]
    pub traces: Option<TraceFilter>,
    /// The targets an LLM judge scored at or below `max_value` (0: a failed boolean judge).
    pub judge_failures: Option<JudgeFailures>,
    /// 0 to 1 (1, everything): the share taken, chosen by a hash of the queue and the object,
    /// so the same objects are chosen again.
    pub sample_rate: Option<f64>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JudgeFailures {
    pub evaluator_id: Uuid,
    /// 0 by default.
    pub max_value: Option<f64>,
    /// RFC 3339: scores given at or after it.
    pub from: Option<String>,
    /// RFC 3339: scores given before it.
    pub to: Option<String>,
}

/// An object a rule found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// `TRACE`, `OBSERVATION` or `SESSION`.
    pub object_type: String,
    pub object_id: String,
}

impl QueueRule {
    /// Checks the rule's shape: exactly one source, a rate in (0, 1].
    pub fn check(&self) -> Result<(), AnalyticsError> {
        if self.traces.is_some() == self.judge_failures.is_some() {
            return Err(invalid(
                "traces",
                "give one of traces (a trace filter) and judge_failures ({evaluator_id, max_value?})"
                    .to_owned(),
            ));
        }
        let rate = self.sample_rate.unwrap_or(1.0);
        if !(rate > 0.0 && rate <= 1.0) {
            return Err(invalid("sample_rate", "above 0, at most 1".to_owned()));
        }
        Ok(())
    }

    /// The rule limited to what arrived in `[from, to)` (RFC 3339), for a standing rule's run.
    pub fn within(&self, from: Option<String>, to: String) -> QueueRule {
        let mut rule = self.clone();
        if let Some(filter) = rule.traces.as_mut() {
            filter.from = from.clone().or(filter.from.take());
            filter.to = Some(to.clone());
        }
        if let Some(failures) = rule.judge_failures.as_mut() {
            failures.from = from.or(failures.from.take());
            failures.to = Some(to);
        }
        rule
    }

    /// What the rule finds (at most `limit`), and of it what the sample takes for `queue`.
    pub async fn find(
        &self,
        clickhouse: &ClickHouse,
        project: Uuid,
        queue: Uuid,
        limit: usize,
    ) -> Result<(usize, Vec<Found>), AnalyticsError> {
        self.check()?;
        let found: Vec<Found> = match (&self.traces, &self.judge_failures) {
            (Some(filter), _) => {
                let mut filter = filter.clone();
                filter.project_id = None;
                filter.cursor = None;
                filter.limit = Some(limit);
                traces::trace_list(clickhouse, project, &filter)
                    .await?
                    .data
                    .iter()
                    .filter_map(|row| row["id"].as_str())
                    .map(|id| Found {
                        object_type: "TRACE".into(),
                        object_id: id.to_owned(),
                    })
                    .collect()
            }
            (None, Some(failures)) => {
                let filter = ScoreFilter {
                    evaluator_id: Some(failures.evaluator_id.to_string()),
                    max_value: Some(failures.max_value.unwrap_or(0.0)),
                    from: failures.from.clone(),
                    to: failures.to.clone(),
                    limit: Some(limit),
                    ..ScoreFilter::default()
                };
                score_list(clickhouse, project, &filter)
                    .await?
                    .data
                    .iter()
                    .filter_map(|score| {
                        let session = score["metadata"]["session_id"].as_str();
                        let (object_type, object_id) = match (session, score["observation_id"].as_str()) {
                            (Some(session), _) => ("SESSION", session),
                            (None, Some(observation)) => ("OBSERVATION", observation),
                            (None, None) => ("TRACE", score["trace_id"].as_str()?),
                        };
                        Some(Found {
                            object_type: object_type.into(),
                            object_id: object_id.to_owned(),
                        })
                    })
                    .collect()
            }
            (None, None) => Vec::new(),
        };
        let total = found.len();
        let rate = self.sample_rate.unwrap_or(1.0);
        Ok((
            total,
            found
                .into_iter()
                .filter(|f| sampled(queue, &f.object_id, rate))
                .collect(),
        ))
    }
}

/// Whether `object` falls in a sample of `rate` for `queue` (SHA-256 of both, as a fraction).
pub fn sampled(queue: Uuid, object: &str, rate: f64) -> bool {
    if rate >= 1.0 {
        return true;
    }
    let digest = Sha256::digest(format!("{queue}:{object}").as_bytes());
    let top = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes")) >> 11;
    (top as f64 / (1u64 << 53) as f64) < rate
}

/// The trace each object is shown and scored on: a trace's own id, an observation's trace, a
/// session's first trace (none when it is not found).
pub async fn resolve(
    clickhouse: &ClickHouse,
    project: Uuid,
    objects: &[Found],
) -> Result<Vec<NewItem>, AnalyticsError> {
    let mut typed = Vec::with_capacity(objects.len());
    for object in objects {
        let kind = object_type(&object.object_type).map_err(|e| invalid("objectType", e.to_string()))?;
        typed.push((kind, object.object_id.as_str()));
    }
    let ids_of = |kind: &str| -> Vec<&str> {
        typed
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, id)| *id)
            .collect()
    };
    let observations: HashMap<String, String> =
        traces::observation_traces(clickhouse, project, &ids_of("OBSERVATION")).await?;
    let sessions = traces::first_traces(clickhouse, project, &ids_of("SESSION")).await?;
    Ok(typed
        .iter()
        .map(|(kind, id)| NewItem {
            object_type: kind,
            object_id: (*id).to_owned(),
            trace_id: match *kind {
                "OBSERVATION" => observations.get(*id).cloned(),
                "SESSION" => sessions.get(*id).cloned(),
                _ => Some((*id).to_owned()),
            },
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_is_stable_and_about_its_rate() {
        let queue = Uuid::nil();
        let chosen = (0..10_000)
            .filter(|i| sampled(queue, &format!("trace-{i}"), 0.05))
            .count();
        assert!((400..600).contains(&chosen), "{chosen}");
        assert_eq!(sampled(queue, "trace-7", 0.05), sampled(queue, "trace-7", 0.05));
        assert!(sampled(queue, "anything", 1.0));
    }
}
