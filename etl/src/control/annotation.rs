//! Annotation queues: traces, observations and sessions put in front of reviewers, who give
//! them scores by the queue's score configs. An item is locked to the person working on it for
//! [`LOCK`] (renewed while they work, expiring when they leave), so two people never review the
//! same item at once; it is complete once as many people as the queue asks completed it.
//! The scores themselves go to ClickHouse (the HTTP layer writes the events [`complete`] gives).

use agenttrace_schemas::score_config::{ConfigDataType, GivenValue};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

use crate::control::score_configs::{self, ScoreConfigRecord};
use crate::control::{ControlError, Precision, identity, invalid, optional_time, time};

/// The start of every reviewer's score id (the pipeline refuses it from agents' keys).
pub const ANNOTATION_SCORE_PREFIX: &str = "annotation-";

/// How long an item stays with the person who took it without a word from them.
pub const LOCK_SECONDS: i64 = 300;

/// A queue as the API shows it (Langfuse's `AnnotationQueue`, with AgentTrace's additions).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Queue {
    pub id: Uuid,
    pub project_id: Uuid,
    pub name: String,
    #[schema(required = true)]
    pub description: Option<String>,
    pub score_config_ids: Vec<Uuid>,
    /// How many people complete an item before it is complete.
    pub annotators_per_item: i32,
    /// The standing rule that keeps adding items (`PUT .../rule`), if any.
    #[schema(value_type = Option<Object>, required = true)]
    pub rule: Option<Value>,
    pub created_at: String,
    pub updated_at: String,
}

/// A new queue.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewQueue {
    pub name: String,
    pub description: Option<String>,
    /// The project's score configs a reviewer gives (at least one).
    pub score_config_ids: Vec<Uuid>,
    /// 1 (the default) to 10.
    pub annotators_per_item: Option<i32>,
}

/// An item as the API shows it (Langfuse's `AnnotationQueueItem`, with AgentTrace's additions).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueueItem {
    pub id: Uuid,
    pub queue_id: Uuid,
    pub object_id: String,
    /// `TRACE`, `OBSERVATION` or `SESSION`.
    pub object_type: String,
    /// The trace to show: the item's own, an observation's, a session's first.
    #[schema(required = true)]
    pub trace_id: Option<String>,
    /// `PENDING` or `COMPLETED`.
    pub status: String,
    #[schema(required = true)]
    pub completed_at: Option<String>,
    /// Who works on it now, and until when (absent once the lock has expired).
    #[schema(required = true)]
    pub locked_by: Option<Uuid>,
    #[schema(required = true)]
    pub locked_until: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// What to add to a queue: an object, and the trace it is shown and scored on.
#[derive(Debug, Clone, PartialEq)]
pub struct NewItem {
    pub object_type: &'static str,
    pub object_id: String,
    pub trace_id: Option<String>,
}

/// A queue's progress: its items by status, and what each person did.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Progress {
    pub total: i64,
    pub pending: i64,
    pub completed: i64,
    /// Items someone is working on now.
    pub locked: i64,
    pub people: Vec<PersonProgress>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PersonProgress {
    pub user_id: Uuid,
    /// Their name, or their email when they gave none (to an API key, their user id).
    pub name: String,
    pub completed: i64,
    pub skipped: i64,
    /// Assigned to the queue (Langfuse's assignments).
    pub assigned: bool,
    #[serde(skip)]
    pub name_is_email: bool,
}

impl Progress {
    /// As an API key sees it: members' emails are for people, not scripts.
    pub fn without_emails(mut self) -> Self {
        for person in &mut self.people {
            if person.name_is_email {
                person.name = person.user_id.to_string();
            }
        }
        self
    }
}

/// One score a reviewer gives: a value for one of the queue's configs.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GivenScore {
    pub config_id: Uuid,
    /// A number (NUMERIC), `true`/`false` or 0/1 (BOOLEAN), a category label (CATEGORICAL), text (TEXT).
    pub value: Value,
    pub comment: Option<String>,
}

impl Queue {
    const COLUMNS: &'static str = "id, project_id, name, description, score_config_ids, annotators_per_item, rule, created_at, updated_at";

    fn from_row(row: &Row) -> Self {
        Queue {
            id: row.get("id"),
            project_id: row.get("project_id"),
            name: row.get("name"),
            description: row.get("description"),
            score_config_ids: row.get("score_config_ids"),
            annotators_per_item: row.get("annotators_per_item"),
            rule: row.get("rule"),
            created_at: time(row, "created_at", Precision::Millis),
            updated_at: time(row, "updated_at", Precision::Millis),
        }
    }
}

impl QueueItem {
    const COLUMNS: &'static str = "id, queue_id, object_id, object_type, trace_id, status, completed_at, \
        CASE WHEN locked_until > now() THEN locked_by END AS locked_by, \
        CASE WHEN locked_until > now() THEN locked_until END AS locked_until, created_at, updated_at";

    fn from_row(row: &Row) -> Self {
        QueueItem {
            id: row.get("id"),
            queue_id: row.get("queue_id"),
            object_id: row.get("object_id"),
            object_type: row.get("object_type"),
            trace_id: row.get("trace_id"),
            status: row.get("status"),
            completed_at: optional_time(row, "completed_at", Precision::Millis),
            locked_by: row.get("locked_by"),
            locked_until: optional_time(row, "locked_until", Precision::Millis),
            created_at: time(row, "created_at", Precision::Millis),
            updated_at: time(row, "updated_at", Precision::Millis),
        }
    }
}

/// The object type as stored, from any case.
pub fn object_type(text: &str) -> Result<&'static str, ControlError> {
    ["TRACE", "OBSERVATION", "SESSION"]
        .into_iter()
        .find(|t| t.eq_ignore_ascii_case(text))
        .ok_or_else(|| {
            invalid(
                "objectType",
                format!("{text:?}: use TRACE, OBSERVATION or SESSION"),
            )
        })
}

/// The configs of `ids`, all of the project's (a missing one is named).
async fn configs_of(
    client: &impl GenericClient,
    project_id: Uuid,
    ids: &[Uuid],
) -> Result<Vec<ScoreConfigRecord>, ControlError> {
    let mut found = Vec::with_capacity(ids.len());
    for id in ids {
        match score_configs::get(client, project_id, *id).await {
            Ok(config) => found.push(config),
            Err(ControlError::NotFound(_)) => {
                return Err(invalid(
                    "scoreConfigIds",
                    format!("no score config {id} in this project"),
                ));
            }
            Err(other) => return Err(other),
        }
    }
    Ok(found)
}

pub async fn create_queue(
    client: &impl GenericClient,
    project_id: Uuid,
    new: NewQueue,
) -> Result<Queue, ControlError> {
    if new.name.trim().is_empty() || new.name.chars().count() > 200 {
        return Err(invalid("name", "1 to 200 characters"));
    }
    if new.description.as_ref().is_some_and(|d| d.len() > 2000) {
        return Err(invalid("description", "at most 2000 characters"));
    }
    if new.score_config_ids.is_empty() || new.score_config_ids.len() > 20 {
        return Err(invalid(
            "scoreConfigIds",
            "1 to 20 score configs: what a reviewer gives (create them with POST /api/public/score-configs)",
        ));
    }
    let mut ids = new.score_config_ids.clone();
    let mut seen = std::collections::HashSet::new();
    ids.retain(|id| seen.insert(*id));
    configs_of(client, project_id, &ids).await?;
    let per_item = new.annotators_per_item.unwrap_or(1);
    if !(1..=10).contains(&per_item) {
        return Err(invalid("annotatorsPerItem", "1 to 10"));
    }
    let exists = client
        .query_opt(
            "SELECT 1 FROM annotation_queues WHERE project_id = $1 AND name = $2",
            &[&project_id, &new.name],
        )
        .await?;
    if exists.is_some() {
        return Err(ControlError::Conflict(format!(
            "a queue named {:?} exists in this project; choose another name",
            new.name
        )));
    }
    let row = client
        .query_one(
            &format!(
                "INSERT INTO annotation_queues (project_id, name, description, score_config_ids, annotators_per_item)
                 VALUES ($1, $2, $3, $4, $5) RETURNING {}",
                Queue::COLUMNS
            ),
            &[&project_id, &new.name, &new.description, &ids, &per_item],
        )
        .await?;
    Ok(Queue::from_row(&row))
}

pub async fn get_queue(
    client: &impl GenericClient,
    project_id: Uuid,
    id: Uuid,
) -> Result<Queue, ControlError> {
    client
        .query_opt(
            &format!(
                "SELECT {} FROM annotation_queues WHERE project_id = $1 AND id = $2",
                Queue::COLUMNS
            ),
            &[&project_id, &id],
        )
        .await?
        .map(|row| Queue::from_row(&row))
        .ok_or_else(|| ControlError::NotFound(format!("annotation queue {id}")))
}

/// A page of the project's queues, newest first; and how many.
pub async fn list_queues(
    client: &impl GenericClient,
    project_id: Uuid,
    page: i64,
    limit: i64,
) -> Result<(Vec<Queue>, i64), ControlError> {
    let rows = client
        .query(
            &format!(
                "SELECT {}, count(*) OVER () AS total FROM annotation_queues WHERE project_id = $1
                 ORDER BY created_at DESC, id LIMIT $2 OFFSET $3",
                Queue::COLUMNS
            ),
            &[&project_id, &limit, &crate::control::offset(page, limit)],
        )
        .await?;
    let total = rows.first().map_or(0, |row| row.get("total"));
    Ok((rows.iter().map(Queue::from_row).collect(), total))
}

pub async fn delete_queue(
    client: &impl GenericClient,
    project_id: Uuid,
    id: Uuid,
) -> Result<(), ControlError> {
    let deleted = client
        .execute(
            "DELETE FROM annotation_queues WHERE project_id = $1 AND id = $2",
            &[&project_id, &id],
        )
        .await?;
    if deleted == 0 {
        return Err(ControlError::NotFound(format!("annotation queue {id}")));
    }
    Ok(())
}

/// Sets or clears a queue's standing rule (checked by the caller); it applies to what arrives
/// from now on.
pub async fn set_rule(
    client: &impl GenericClient,
    project_id: Uuid,
    queue_id: Uuid,
    rule: Option<&Value>,
    now_us: i64,
) -> Result<Queue, ControlError> {
    let updated = client
        .execute(
            "UPDATE annotation_queues SET rule = $3, rule_watermark_us = $4, updated_at = now()
             WHERE project_id = $1 AND id = $2",
            &[&project_id, &queue_id, &rule, &now_us],
        )
        .await?;
    if updated == 0 {
        return Err(ControlError::NotFound(format!("annotation queue {queue_id}")));
    }
    get_queue(client, project_id, queue_id).await
}

/// A queue with a standing rule, and where its rule last stopped (µs).
pub struct RuledQueue {
    pub id: Uuid,
    pub project_id: Uuid,
    pub rule: Value,
    pub watermark_us: Option<i64>,
}

/// Every queue with a standing rule.
pub async fn ruled_queues(client: &impl GenericClient) -> Result<Vec<RuledQueue>, ControlError> {
    let rows = client
        .query(
            "SELECT id, project_id, rule, rule_watermark_us FROM annotation_queues WHERE rule IS NOT NULL ORDER BY id",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| RuledQueue {
            id: row.get(0),
            project_id: row.get(1),
            rule: row.get(2),
            watermark_us: row.get(3),
        })
        .collect())
}

/// Records how far a queue's rule has been applied.
pub async fn advance_rule(
    client: &impl GenericClient,
    queue_id: Uuid,
    watermark_us: i64,
) -> Result<(), ControlError> {
    client
        .execute(
            "UPDATE annotation_queues SET rule_watermark_us = $2 WHERE id = $1",
            &[&queue_id, &watermark_us],
        )
        .await?;
    Ok(())
}

/// A queue holds at most this many items.
pub const MAX_ITEMS: i64 = 100_000;

/// Adds items (those already in the queue stay as they are); the items, new or not, in order.
pub async fn add_items(
    client: &impl GenericClient,
    project_id: Uuid,
    queue_id: Uuid,
    items: &[NewItem],
    status: Option<&str>,
) -> Result<Vec<QueueItem>, ControlError> {
    get_queue(client, project_id, queue_id).await?;
    let status = match status.map(str::to_ascii_uppercase).as_deref() {
        None | Some("PENDING") => "PENDING",
        Some("COMPLETED") => "COMPLETED",
        Some(other) => return Err(invalid("status", format!("{other:?}: use PENDING or COMPLETED"))),
    };
    let held: i64 = client
        .query_one(
            "SELECT count(*) FROM annotation_queue_items WHERE queue_id = $1",
            &[&queue_id],
        )
        .await?
        .get(0);
    if held + items.len() as i64 > MAX_ITEMS {
        return Err(ControlError::Conflict(format!(
            "the queue holds {held} items; {} more would pass its limit of {MAX_ITEMS}",
            items.len()
        )));
    }
    for item in items {
        if item.object_id.is_empty() || item.object_id.len() > 1000 {
            return Err(invalid("objectId", "1 to 1000 characters"));
        }
    }
    let kinds: Vec<&str> = items.iter().map(|i| i.object_type).collect();
    let ids: Vec<&str> = items.iter().map(|i| i.object_id.as_str()).collect();
    let traces: Vec<Option<&str>> = items.iter().map(|i| i.trace_id.as_deref()).collect();
    client
        .execute(
            // clock_timestamp(), read per row in the order given, keeps that order in the queue.
            "INSERT INTO annotation_queue_items (queue_id, project_id, object_type, object_id, trace_id, status, completed_at, created_at)
             SELECT $1, $2, u.kind, u.id, u.trace, $6, CASE WHEN $6 = 'COMPLETED' THEN now() END, clock_timestamp()
             FROM unnest($3::text[], $4::text[], $5::text[]) WITH ORDINALITY AS u(kind, id, trace, n)
             ORDER BY u.n
             ON CONFLICT (queue_id, object_type, object_id) DO NOTHING",
            &[&queue_id, &project_id, &kinds, &ids, &traces, &status],
        )
        .await?;
    let rows = client
        .query(
            &format!(
                "SELECT {} FROM annotation_queue_items i
                 JOIN unnest($2::text[], $3::text[]) WITH ORDINALITY AS u(kind, id, n)
                   ON i.object_type = u.kind AND i.object_id = u.id
                 WHERE i.queue_id = $1 ORDER BY u.n",
                QueueItem::COLUMNS.replace("id, queue_id", "i.id, i.queue_id")
            ),
            &[&queue_id, &kinds, &ids],
        )
        .await?;
    Ok(rows.iter().map(QueueItem::from_row).collect())
}

pub async fn get_item(
    client: &impl GenericClient,
    project_id: Uuid,
    queue_id: Uuid,
    id: Uuid,
) -> Result<QueueItem, ControlError> {
    client
        .query_opt(
            &format!(
                "SELECT {} FROM annotation_queue_items WHERE project_id = $1 AND queue_id = $2 AND id = $3",
                QueueItem::COLUMNS
            ),
            &[&project_id, &queue_id, &id],
        )
        .await?
        .map(|row| QueueItem::from_row(&row))
        .ok_or_else(|| ControlError::NotFound(format!("item {id} of annotation queue {queue_id}")))
}

/// A page of a queue's items, oldest first (the order they are reviewed in); and how many.
pub async fn list_items(
    client: &impl GenericClient,
    project_id: Uuid,
    queue_id: Uuid,
    status: Option<&str>,
    page: i64,
    limit: i64,
) -> Result<(Vec<QueueItem>, i64), ControlError> {
    get_queue(client, project_id, queue_id).await?;
    let status = status
        .map(|s| match s.to_ascii_uppercase().as_str() {
            "PENDING" => Ok("PENDING"),
            "COMPLETED" => Ok("COMPLETED"),
            other => Err(invalid("status", format!("{other:?}: use PENDING or COMPLETED"))),
        })
        .transpose()?;
    let rows = client
        .query(
            &format!(
                "SELECT {}, count(*) OVER () AS total FROM annotation_queue_items
                 WHERE queue_id = $1 AND ($2::text IS NULL OR status = $2)
                 ORDER BY created_at, id LIMIT $3 OFFSET $4",
                QueueItem::COLUMNS
            ),
            &[&queue_id, &status, &limit, &crate::control::offset(page, limit)],
        )
        .await?;
    let total = rows.first().map_or(0, |row| row.get("total"));
    Ok((rows.iter().map(QueueItem::from_row).collect(), total))
}

/// Sets an item's status by hand (Langfuse's PATCH): `COMPLETED` stamps `completedAt`.
pub async fn set_status(
    client: &impl GenericClient,
    project_id: Uuid,
    queue_id: Uuid,
    id: Uuid,
    status: &str,
) -> Result<QueueItem, ControlError> {
    let status = match status.to_ascii_uppercase().as_str() {
        "PENDING" => "PENDING",
        "COMPLETED" => "COMPLETED",
        other => return Err(invalid("status", format!("{other:?}: use PENDING or COMPLETED"))),
    };
    let updated = client
        .execute(
            "UPDATE annotation_queue_items SET status = $4, updated_at = now(),
                completed_at = CASE WHEN $4 = 'COMPLETED' THEN coalesce(completed_at, now()) END
             WHERE project_id = $1 AND queue_id = $2 AND id = $3",
            &[&project_id, &queue_id, &id, &status],
        )
        .await?;
    if updated == 0 {
        return Err(ControlError::NotFound(format!(
            "item {id} of annotation queue {queue_id}"
        )));
    }
    get_item(client, project_id, queue_id, id).await
}

pub async fn delete_item(
    client: &impl GenericClient,
    project_id: Uuid,
    queue_id: Uuid,
    id: Uuid,
) -> Result<(), ControlError> {
    let deleted = client
        .execute(
            "DELETE FROM annotation_queue_items WHERE project_id = $1 AND queue_id = $2 AND id = $3",
            &[&project_id, &queue_id, &id],
        )
        .await?;
    if deleted == 0 {
        return Err(ControlError::NotFound(format!(
            "item {id} of annotation queue {queue_id}"
        )));
    }
    Ok(())
}

/// Assigns `user` (a member of the project's organization) to the queue.
pub async fn assign(
    client: &impl GenericClient,
    project_id: Uuid,
    queue_id: Uuid,
    user: Uuid,
) -> Result<(), ControlError> {
    get_queue(client, project_id, queue_id).await?;
    if identity::role_in_project(client, project_id, user)
        .await?
        .is_none()
    {
        return Err(invalid(
            "userId",
            format!("user {user} is not a member of this project's organization"),
        ));
    }
    client
        .execute(
            "INSERT INTO annotation_assignments (queue_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[&queue_id, &user],
        )
        .await?;
    Ok(())
}

pub async fn unassign(
    client: &impl GenericClient,
    project_id: Uuid,
    queue_id: Uuid,
    user: Uuid,
) -> Result<(), ControlError> {
    get_queue(client, project_id, queue_id).await?;
    client
        .execute(
            "DELETE FROM annotation_assignments WHERE queue_id = $1 AND user_id = $2",
            &[&queue_id, &user],
        )
        .await?;
    Ok(())
}

/// Takes the next item `user` has not reviewed and nobody else holds, oldest first (the one
/// they already hold first), and locks it to them. `None` when nothing is left for them.
pub async fn take_next(
    client: &impl GenericClient,
    project_id: Uuid,
    queue_id: Uuid,
    user: Uuid,
) -> Result<Option<QueueItem>, ControlError> {
    get_queue(client, project_id, queue_id).await?;
    // SKIP LOCKED: two people asking at once get two items, never the same one.
    let row = client
        .query_opt(
            &format!(
                "UPDATE annotation_queue_items SET locked_by = $2, locked_until = now() + make_interval(secs => $3)
                 WHERE id = (
                    SELECT i.id FROM annotation_queue_items i
                    WHERE i.queue_id = $1 AND i.status = 'PENDING'
                      AND (i.locked_until IS NULL OR i.locked_until < now() OR i.locked_by = $2)
                      AND NOT EXISTS (SELECT 1 FROM annotation_reviews r WHERE r.item_id = i.id AND r.user_id = $2)
                    ORDER BY (i.locked_by = $2 AND i.locked_until > now()) DESC NULLS LAST, i.created_at, i.id
                    LIMIT 1 FOR UPDATE SKIP LOCKED)
                 RETURNING {}",
                QueueItem::COLUMNS
            ),
            &[&queue_id, &user, &(LOCK_SECONDS as f64)],
        )
        .await?;
    Ok(row.map(|row| QueueItem::from_row(&row)))
}

/// Opens item `id` for `user` (going back to one they reviewed, or to a free one): locks it to
/// them. Refused while someone else holds it.
pub async fn take(
    client: &impl GenericClient,
    project_id: Uuid,
    queue_id: Uuid,
    id: Uuid,
    user: Uuid,
) -> Result<QueueItem, ControlError> {
    let row = client
        .query_opt(
            &format!(
                "UPDATE annotation_queue_items SET locked_by = $4, locked_until = now() + make_interval(secs => $5)
                 WHERE project_id = $1 AND queue_id = $2 AND id = $3
                   AND (locked_until IS NULL OR locked_until < now() OR locked_by = $4)
                 RETURNING {}",
                QueueItem::COLUMNS
            ),
            &[&project_id, &queue_id, &id, &user, &(LOCK_SECONDS as f64)],
        )
        .await?;
    match row {
        Some(row) => {
            // One item at a time per person: taking one lets go of any other they hold in the queue,
            // so no one can hold a queue's items away from the others.
            client
                .execute(
                    "UPDATE annotation_queue_items SET locked_by = NULL, locked_until = NULL
                     WHERE project_id = $1 AND queue_id = $2 AND locked_by = $4 AND id <> $3",
                    &[&project_id, &queue_id, &id, &user],
                )
                .await?;
            Ok(QueueItem::from_row(&row))
        }
        None => {
            let item = get_item(client, project_id, queue_id, id).await?;
            Err(held_by_another(&item))
        }
    }
}

fn held_by_another(item: &QueueItem) -> ControlError {
    ControlError::Conflict(format!(
        "item {} is being reviewed by someone else until {}; take the next one",
        item.id,
        item.locked_until.as_deref().unwrap_or("soon")
    ))
}

/// Lets go of an item `user` holds (leaving the queue, or going back).
pub async fn release(
    client: &impl GenericClient,
    project_id: Uuid,
    queue_id: Uuid,
    id: Uuid,
    user: Uuid,
) -> Result<(), ControlError> {
    client
        .execute(
            "UPDATE annotation_queue_items SET locked_by = NULL, locked_until = NULL
             WHERE project_id = $1 AND queue_id = $2 AND id = $3 AND locked_by = $4",
            &[&project_id, &queue_id, &id, &user],
        )
        .await?;
    Ok(())
}

/// What completing an item will write: the item (locked to the reviewer) and its score events.
pub struct Completion {
    pub item: QueueItem,
    /// Score events in the event model's JSON (no cost), for ClickHouse.
    pub events: Vec<(String, Option<agenttrace_schemas::event::Cost>)>,
}

/// Checks `scores` against the queue's configs and builds their events, for `user`, who must
/// hold the item or find it free. Each score's id is fixed per item, person and config, so
/// completing again (to correct a score) replaces it.
pub async fn prepare_completion(
    client: &impl GenericClient,
    project_id: Uuid,
    queue_id: Uuid,
    id: Uuid,
    user: Uuid,
    scores: &[GivenScore],
    now: &str,
) -> Result<Completion, ControlError> {
    let queue = get_queue(client, project_id, queue_id).await?;
    let item = take(client, project_id, queue_id, id, user).await?;
    let Some(trace_id) = item.trace_id.clone() else {
        return Err(ControlError::Conflict(format!(
            "item {id} names no trace to score (its {} was not found when it was added)",
            item.object_type.to_lowercase()
        )));
    };
    if scores.is_empty() {
        return Err(invalid("scores", "give at least one score, or skip the item"));
    }
    let configs = configs_of(client, project_id, &queue.score_config_ids).await?;
    let mut events = Vec::with_capacity(scores.len());
    for (index, given) in scores.iter().enumerate() {
        let Some(config) = configs.iter().find(|c| c.id == given.config_id) else {
            return Err(invalid(
                "scores",
                format!(
                    "scores[{index}]: config {} is not one of this queue's",
                    given.config_id
                ),
            ));
        };
        let value = match &given.value {
            Value::Number(n) => GivenValue::Number(n.as_f64().unwrap_or(f64::NAN)),
            Value::Bool(b) => GivenValue::Bool(*b),
            Value::String(s) => GivenValue::Text(s),
            other => {
                return Err(invalid(
                    "scores",
                    format!("scores[{index}].value: {other} is not a score value"),
                ));
            }
        };
        config
            .as_check()
            .check(&config.name, None, value)
            .map_err(|misfit| invalid("scores", format!("scores[{index}].{misfit}")))?;
        if given.comment.as_ref().is_some_and(|c| c.len() > 5000) {
            return Err(invalid(
                "scores",
                format!("scores[{index}].comment: at most 5000 characters"),
            ));
        }
        let (data_type, value) = match (config.data_type, value) {
            (ConfigDataType::Boolean, GivenValue::Bool(b)) => ("boolean", json!(b)),
            (ConfigDataType::Boolean, GivenValue::Number(n)) => ("boolean", json!(n == 1.0)),
            (ConfigDataType::Categorical, GivenValue::Number(n)) => {
                let label = config
                    .categories
                    .iter()
                    .flatten()
                    .find(|c| c.value == n)
                    .map(|c| c.label.clone())
                    .unwrap_or_default();
                ("categorical", json!(label))
            }
            (ConfigDataType::Categorical, _) => ("categorical", given.value.clone()),
            (ConfigDataType::Text, _) => ("text", given.value.clone()),
            _ => ("numeric", given.value.clone()),
        };
        let mut metadata = json!({
            "langfuse.configId": config.id.to_string(),
            "langfuse.queueId": queue.id.to_string(),
            "langfuse.authorUserId": user.to_string(),
            "annotation_item_id": item.id.to_string(),
        });
        if item.object_type == "SESSION" {
            metadata["session_id"] = json!(item.object_id);
        }
        let score_id = format!("{ANNOTATION_SCORE_PREFIX}{}-{user}-{}", item.id, config.id);
        let body = json!({
            "id": score_id,
            "trace_id": trace_id,
            "observation_id": (item.object_type == "OBSERVATION").then_some(&item.object_id),
            "timestamp": now,
            "name": config.name,
            "value": value,
            "data_type": data_type,
            "source": "annotation",
            "comment": given.comment,
            "metadata": metadata,
        });
        events.push((
            json!({"id": format!("{score_id}-{now}"), "type": "score", "timestamp": now, "body": body})
                .to_string(),
            None,
        ));
    }
    Ok(Completion { item, events })
}

/// Records what `user` did with an item once its scores are stored (or it was skipped), lets go
/// of it, and completes it once enough people completed it.
pub async fn record_review(
    client: &impl GenericClient,
    project_id: Uuid,
    queue_id: Uuid,
    id: Uuid,
    user: Uuid,
    outcome: &str,
) -> Result<QueueItem, ControlError> {
    let queue = get_queue(client, project_id, queue_id).await?;
    if outcome == "skipped" {
        // Skipping is for one's own turn: an item held by someone else is theirs.
        take(client, project_id, queue_id, id, user).await?;
    }
    client
        .execute(
            "INSERT INTO annotation_reviews (item_id, user_id, outcome) VALUES ($1, $2, $3)
             ON CONFLICT (item_id, user_id) DO UPDATE SET at = now(),
                 -- Skipping an item one completed keeps it completed: the scores stay.
                 outcome = CASE WHEN annotation_reviews.outcome = 'completed' THEN 'completed' ELSE EXCLUDED.outcome END",
            &[&id, &user, &outcome],
        )
        .await?;
    client
        .execute(
            "UPDATE annotation_queue_items i SET locked_by = NULL, locked_until = NULL, updated_at = now(),
                status = CASE WHEN (SELECT count(*) FROM annotation_reviews r
                                    WHERE r.item_id = i.id AND r.outcome = 'completed') >= $4
                              THEN 'COMPLETED' ELSE status END,
                completed_at = CASE WHEN (SELECT count(*) FROM annotation_reviews r
                                          WHERE r.item_id = i.id AND r.outcome = 'completed') >= $4
                                    THEN coalesce(completed_at, now()) ELSE completed_at END
             WHERE project_id = $1 AND queue_id = $2 AND id = $3",
            &[&project_id, &queue_id, &id, &(queue.annotators_per_item as i64)],
        )
        .await?;
    get_item(client, project_id, queue_id, id).await
}

/// A queue's progress: items by status, and each person's completed and skipped items.
pub async fn progress(
    client: &impl GenericClient,
    project_id: Uuid,
    queue_id: Uuid,
) -> Result<Progress, ControlError> {
    get_queue(client, project_id, queue_id).await?;
    let counts = client
        .query_one(
            "SELECT count(*) AS total, count(*) FILTER (WHERE status = 'PENDING') AS pending,
                    count(*) FILTER (WHERE status = 'COMPLETED') AS completed,
                    count(*) FILTER (WHERE locked_until > now()) AS locked
             FROM annotation_queue_items WHERE queue_id = $1",
            &[&queue_id],
        )
        .await?;
    let people = client
        .query(
            "SELECT u.id, coalesce(u.name, u.email) AS name, u.name IS NULL AS name_is_email,
                    count(r.item_id) FILTER (WHERE r.outcome = 'completed') AS completed,
                    count(r.item_id) FILTER (WHERE r.outcome = 'skipped') AS skipped,
                    bool_or(a.user_id IS NOT NULL) AS assigned
             FROM users u
             LEFT JOIN annotation_reviews r ON r.user_id = u.id
                  AND r.item_id IN (SELECT id FROM annotation_queue_items WHERE queue_id = $1)
             LEFT JOIN annotation_assignments a ON a.user_id = u.id AND a.queue_id = $1
             WHERE u.id IN (SELECT user_id FROM annotation_assignments WHERE queue_id = $1)
                OR u.id IN (SELECT r2.user_id FROM annotation_reviews r2
                            JOIN annotation_queue_items i2 ON i2.id = r2.item_id WHERE i2.queue_id = $1)
             GROUP BY u.id, u.name, u.email ORDER BY name",
            &[&queue_id],
        )
        .await?;
    Ok(Progress {
        total: counts.get("total"),
        pending: counts.get("pending"),
        completed: counts.get("completed"),
        locked: counts.get("locked"),
        people: people
            .iter()
            .map(|row| PersonProgress {
                user_id: row.get("id"),
                name: row.get("name"),
                completed: row.get("completed"),
                skipped: row.get("skipped"),
                assigned: row.get::<_, Option<bool>>("assigned").unwrap_or(false),
                name_is_email: row.get("name_is_email"),
            })
            .collect(),
    })
}
