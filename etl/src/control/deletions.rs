//! Deletion jobs' records and the tombstone ledger. A job is created here (by the API, the
//! Langfuse routes or the CLI), claimed and advanced step by step by the runner
//! ([`crate::deletion`]), and read back with its counts; tombstones name the traces whose
//! events the ETL refuses from then on (read with each batch, `ingest::pipeline`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

use crate::control::{ControlError, Precision, invalid, optional_time, time};

/// Trace ids one request may name.
pub const MAX_TRACE_IDS: usize = 1000;
/// Deletions of one project that may wait or run at once (each runs mutations every tenant's
/// tables wait behind).
pub const MAX_RUNNING_PER_PROJECT: i64 = 20;
/// Longest id (trace, session or user) a deletion may name, in bytes.
pub const MAX_ID_BYTES: usize = 1000;

/// What a deletion removes, within one project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeletionTarget {
    /// These traces, with everything that belongs to them.
    Traces(Vec<String>),
    /// Every trace of the session, the session's own scores, comments and queue items.
    Session(String),
    /// Every trace of the user id, and metric points carrying it.
    User(String),
    /// Every event row of the project (which must be archived first).
    Project,
    /// Scores by id (Langfuse's score delete).
    Scores(Vec<String>),
}

impl DeletionTarget {
    pub fn kind(&self) -> &'static str {
        match self {
            DeletionTarget::Traces(_) => "traces",
            DeletionTarget::Session(_) => "session",
            DeletionTarget::User(_) => "user",
            DeletionTarget::Project => "project",
            DeletionTarget::Scores(_) => "scores",
        }
    }

    /// What the ledger keeps for this target: the traces' ids, or the scores'.
    pub fn tombstone_kind(&self) -> &'static str {
        match self {
            DeletionTarget::Scores(_) => "score",
            _ => "trace",
        }
    }

    fn ids(&self) -> Vec<String> {
        match self {
            DeletionTarget::Traces(ids) | DeletionTarget::Scores(ids) => ids.clone(),
            DeletionTarget::Session(id) | DeletionTarget::User(id) => vec![id.clone()],
            DeletionTarget::Project => Vec::new(),
        }
    }

    fn from_stored(kind: &str, ids: Vec<String>) -> Result<DeletionTarget, ControlError> {
        let one = |ids: Vec<String>| ids.into_iter().next().unwrap_or_default();
        Ok(match kind {
            "traces" => DeletionTarget::Traces(ids),
            "session" => DeletionTarget::Session(one(ids)),
            "user" => DeletionTarget::User(one(ids)),
            "project" => DeletionTarget::Project,
            "scores" => DeletionTarget::Scores(ids),
            other => {
                return Err(ControlError::Internal(format!(
                    "stored deletion target {other:?}"
                )));
            }
        })
    }

    /// Checks what a caller asked for: ids present, not empty, bounded.
    pub fn check(&self) -> Result<(), ControlError> {
        let check_id = |field: &'static str, id: &str| {
            if id.is_empty() {
                return Err(invalid(field, "must not be empty"));
            }
            if id.len() > MAX_ID_BYTES {
                return Err(invalid(field, format!("at most {MAX_ID_BYTES} bytes")));
            }
            Ok(())
        };
        match self {
            DeletionTarget::Traces(ids) | DeletionTarget::Scores(ids) => {
                let (field, what) = match self {
                    DeletionTarget::Scores(_) => ("scoreIds", "score"),
                    _ => ("traceIds", "trace"),
                };
                if ids.is_empty() {
                    return Err(invalid(field, format!("name at least one {what} id")));
                }
                if ids.len() > MAX_TRACE_IDS {
                    return Err(invalid(
                        field,
                        format!(
                            "{} ids; at most {MAX_TRACE_IDS} per request (send several requests)",
                            ids.len()
                        ),
                    ));
                }
                ids.iter().try_for_each(|id| check_id(field, id))
            }
            DeletionTarget::Session(id) => check_id("sessionId", id),
            DeletionTarget::User(id) => check_id("userId", id),
            DeletionTarget::Project => Ok(()),
        }
    }
}

/// A deletion job as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeletionJob {
    pub id: Uuid,
    pub project_id: Uuid,
    /// `traces`, `session`, `user`, `project` or `scores`.
    pub target: String,
    /// The trace ids, or the session or user id (none for a project); once succeeded, a
    /// session's or user's id is kept only as `sha256:<hex>` of it.
    pub target_ids: Vec<String>,
    /// Whether dataset items made from the deleted traces are deleted too.
    pub dataset_items: bool,
    /// `pending`, `running` (also while it retries after a failure, see `error`), `succeeded` (a
    /// final read of every table found none of the rows) or `failed` (it failed 30 attempts,
    /// about half an hour; `error` says why; ask again to start a new job).
    pub status: String,
    /// Rows found per table (ClickHouse tables by name, PostgreSQL's as `postgres.<table>`)
    /// when its step ran.
    pub counts: BTreeMap<String, u64>,
    /// What the final read found per table: all zero once succeeded.
    pub remaining: Option<BTreeMap<String, u64>>,
    /// The steps finished so far.
    pub steps_done: Vec<String>,
    pub attempts: i32,
    /// Why the last attempt failed, while the job retries.
    pub error: Option<String>,
    /// Who asked: `user:<email>`, `key:<public key>`, `organization-key`, `cli`.
    pub requested_by: String,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

impl DeletionJob {
    pub fn target(&self) -> Result<DeletionTarget, ControlError> {
        DeletionTarget::from_stored(&self.target, self.target_ids.clone())
    }

    pub fn is_done(&self, step: &str) -> bool {
        self.steps_done.iter().any(|s| s == step)
    }
}

const COLUMNS: &str = "id, project_id, target, target_ids, dataset_items, status, counts, remaining, \
     steps_done, attempts, error, requested_by, created_at, started_at, finished_at";

fn counts(value: Option<serde_json::Value>) -> Option<BTreeMap<String, u64>> {
    value.and_then(|v| serde_json::from_value(v).ok())
}

fn from_row(row: &Row) -> DeletionJob {
    DeletionJob {
        id: row.get("id"),
        project_id: row.get("project_id"),
        target: row.get("target"),
        target_ids: row.get("target_ids"),
        dataset_items: row.get("dataset_items"),
        status: row.get("status"),
        counts: counts(row.get("counts")).unwrap_or_default(),
        remaining: counts(row.get("remaining")),
        steps_done: row.get("steps_done"),
        attempts: row.get("attempts"),
        error: row.get("error"),
        requested_by: row.get("requested_by"),
        created_at: time(row, "created_at", Precision::Millis),
        started_at: optional_time(row, "started_at", Precision::Millis),
        finished_at: optional_time(row, "finished_at", Precision::Millis),
    }
}

/// Starts a deletion, or answers with the one already under way for the same target (a
/// client retrying its DELETE starts nothing twice).
pub async fn create(
    client: &impl GenericClient,
    project_id: Uuid,
    target: &DeletionTarget,
    dataset_items: bool,
    requested_by: &str,
) -> Result<DeletionJob, ControlError> {
    target.check()?;
    let archived: Option<bool> = client
        .query_opt(
            "SELECT archived_at IS NOT NULL FROM projects WHERE id = $1",
            &[&project_id],
        )
        .await?
        .map(|row| row.get(0));
    match archived {
        None => return Err(ControlError::NoSuchProject(project_id)),
        Some(false) if *target == DeletionTarget::Project => {
            return Err(invalid(
                "project",
                "archive the project first (it must accept no more events before they are all deleted)",
            ));
        }
        Some(_) => {}
    }
    let ids = target.ids();
    if let Some(row) = client
        .query_opt(
            &format!(
                "SELECT {COLUMNS} FROM deletion_jobs WHERE project_id = $1 AND target = $2 \
                 AND target_ids = $3 AND dataset_items = $4 AND status IN ('pending', 'running') LIMIT 1"
            ),
            &[&project_id, &target.kind(), &ids, &dataset_items],
        )
        .await?
    {
        return Ok(from_row(&row));
    }
    let running: i64 = client
        .query_one(
            "SELECT count(*) FROM deletion_jobs WHERE project_id = $1 AND status IN ('pending', 'running')",
            &[&project_id],
        )
        .await?
        .get(0);
    if running >= MAX_RUNNING_PER_PROJECT {
        return Err(ControlError::Conflict(format!(
            "{running} deletions of this project are still running; wait for them to finish \
             (GET /v1/projects/{project_id}/deletions), or name more traces per deletion"
        )));
    }
    let row = client
        .query_one(
            &format!(
                "INSERT INTO deletion_jobs (project_id, target, target_ids, dataset_items, requested_by)
                 VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
            ),
            &[&project_id, &target.kind(), &ids, &dataset_items, &requested_by],
        )
        .await?;
    Ok(from_row(&row))
}

pub async fn get(
    client: &impl GenericClient,
    project_id: Uuid,
    id: Uuid,
) -> Result<DeletionJob, ControlError> {
    client
        .query_opt(
            &format!("SELECT {COLUMNS} FROM deletion_jobs WHERE project_id = $1 AND id = $2"),
            &[&project_id, &id],
        )
        .await?
        .map(|row| from_row(&row))
        .ok_or_else(|| ControlError::NotFound(format!("deletion {id} in this project")))
}

/// The project's deletions, newest first.
pub async fn list(
    client: &impl GenericClient,
    project_id: Uuid,
    limit: i64,
) -> Result<Vec<DeletionJob>, ControlError> {
    Ok(client
        .query(
            &format!(
                "SELECT {COLUMNS} FROM deletion_jobs WHERE project_id = $1 \
                 ORDER BY created_at DESC, id LIMIT $2"
            ),
            &[&project_id, &limit.clamp(1, 500)],
        )
        .await?
        .iter()
        .map(from_row)
        .collect())
}

/// Takes a job that is due and not held by another runner, holding it for `lease`: of the
/// projects with one due, the project whose last job started longest ago (never first), so that
/// one project's many deletions do not hold another's back; its oldest job.
pub async fn claim(
    client: &impl GenericClient,
    lease: Duration,
) -> Result<Option<DeletionJob>, ControlError> {
    let seconds = lease.as_secs_f64();
    Ok(client
        .query_opt(
            &format!(
                "UPDATE deletion_jobs SET status = 'running', attempts = attempts + 1,
                     lease_until = now() + make_interval(secs => $1),
                     started_at = coalesce(started_at, now())
                 WHERE id = (SELECT j.id FROM deletion_jobs j
                             WHERE j.status IN ('pending', 'running') AND j.next_attempt_at <= now()
                               AND (j.lease_until IS NULL OR j.lease_until < now())
                             ORDER BY (SELECT max(k.started_at) FROM deletion_jobs k
                                       WHERE k.project_id = j.project_id) NULLS FIRST, j.created_at
                             LIMIT 1 FOR UPDATE OF j SKIP LOCKED)
                 RETURNING {COLUMNS}"
            ),
            &[&seconds],
        )
        .await?
        .map(|row| from_row(&row)))
}

/// Records a finished step, with the rows it found (merged into `counts`), and extends the lease.
pub async fn step_done(
    client: &impl GenericClient,
    id: Uuid,
    step: &str,
    found: &BTreeMap<String, u64>,
    lease: Duration,
) -> Result<(), ControlError> {
    let found = serde_json::to_value(found).map_err(|e| ControlError::Internal(e.to_string()))?;
    client
        .execute(
            "UPDATE deletion_jobs SET counts = counts || $2, steps_done = array_append(steps_done, $3),
                 lease_until = now() + make_interval(secs => $4)
             WHERE id = $1 AND NOT ($3 = ANY(steps_done))",
            &[&id, &found, &step, &lease.as_secs_f64()],
        )
        .await?;
    Ok(())
}

/// Extends a running job's lease.
pub async fn renew(client: &impl GenericClient, id: Uuid, lease: Duration) -> Result<(), ControlError> {
    client
        .execute(
            "UPDATE deletion_jobs SET lease_until = now() + make_interval(secs => $2)
             WHERE id = $1 AND status = 'running'",
            &[&id, &lease.as_secs_f64()],
        )
        .await?;
    Ok(())
}

/// Forgets finished steps so that they run again (the final read found their rows).
pub async fn redo_steps(client: &impl GenericClient, id: Uuid, steps: &[String]) -> Result<(), ControlError> {
    client
        .execute(
            "UPDATE deletion_jobs SET steps_done = ARRAY(SELECT s FROM unnest(steps_done) s WHERE NOT (s = ANY($2)))
             WHERE id = $1",
            &[&id, &steps],
        )
        .await?;
    Ok(())
}

/// Attempts after which a failing job stops as `failed` (with backoff, about half an hour).
pub const MAX_ATTEMPTS: i32 = 30;

/// An attempt failed: the job stays running and is tried again after `retry_in`, or, after
/// [`MAX_ATTEMPTS`], stops as `failed` with the error (asking again starts a new job).
pub async fn attempt_failed(
    client: &impl GenericClient,
    job: &DeletionJob,
    error: &str,
    retry_in: Duration,
) -> Result<(), ControlError> {
    let give_up = job.attempts >= MAX_ATTEMPTS;
    client
        .execute(
            "UPDATE deletion_jobs SET error = $2, lease_until = NULL,
                 next_attempt_at = now() + make_interval(secs => $3),
                 status = CASE WHEN $4 THEN 'failed' ELSE status END,
                 finished_at = CASE WHEN $4 THEN now() ELSE finished_at END
             WHERE id = $1",
            &[&job.id, &error, &retry_in.as_secs_f64(), &give_up],
        )
        .await?;
    Ok(())
}

/// The final read found nothing: the job is done.
/// Once done, a session's or user's id is kept as its SHA-256 (`sha256:<hex>`): the record
/// still proves what was deleted to whoever holds the id, without keeping a person's identifier
/// that the deletion was asked to erase.
pub async fn succeeded(
    client: &impl GenericClient,
    job: &DeletionJob,
    remaining: &BTreeMap<String, u64>,
) -> Result<(), ControlError> {
    let remaining = serde_json::to_value(remaining).map_err(|e| ControlError::Internal(e.to_string()))?;
    let kept: Vec<String> = match job.target()? {
        DeletionTarget::Session(id) | DeletionTarget::User(id) => vec![fingerprint(&id)],
        _ => job.target_ids.clone(),
    };
    client
        .execute(
            "UPDATE deletion_jobs SET status = 'succeeded', remaining = $2, error = NULL,
                 lease_until = NULL, finished_at = now(), target_ids = $3
             WHERE id = $1",
            &[&job.id, &remaining, &kept],
        )
        .await?;
    Ok(())
}

/// `sha256:<hex>` of an id.
pub fn fingerprint(id: &str) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(id.as_bytes())))
}

/// Adds traces (`kind` "trace") or scores ("score") to the ledger of deleted ones (those
/// already there stay as they were).
pub async fn tombstone(
    client: &impl GenericClient,
    project_id: Uuid,
    job_id: Uuid,
    kind: &str,
    ids: &[String],
) -> Result<(), ControlError> {
    for chunk in ids.chunks(5_000) {
        client
            .execute(
                "INSERT INTO deletion_tombstones (project_id, kind, id, job_id)
                 SELECT $1, $2, t, $3 FROM unnest($4::text[]) t ON CONFLICT DO NOTHING",
                &[&project_id, &kind, &job_id, &chunk],
            )
            .await?;
    }
    Ok(())
}

/// The traces a job put in the ledger (what it found before deleting, kept across a crash).
pub async fn tombstoned_by(client: &impl GenericClient, job_id: Uuid) -> Result<Vec<String>, ControlError> {
    Ok(client
        .query(
            "SELECT id FROM deletion_tombstones WHERE job_id = $1 AND kind = 'trace' ORDER BY id",
            &[&job_id],
        )
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect())
}
