//! Annotation queues: `/v1/projects/{project}/annotation-queues` (queues, items added by hand or
//! from a filtered list, the next item for a signed-in reviewer, completing and skipping it,
//! progress) and Langfuse's `/api/public/annotation-queues`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::analytics::queue_rules::{self, Found, JudgeFailures, QueueRule};
use crate::analytics::traces::TraceFilter;
use crate::control::annotation::{self, GivenScore, NewItem, NewQueue, Progress, Queue, QueueItem};
use crate::control::projects;
use crate::http::auth::{Caller, KeyProject, ProjectAccess, need};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::request::{Page, Paged, bad, json_body, paged};
use crate::http::server::AppState;

/// The `{queue}` of a queue's route.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct QueuePath {
    /// The queue's id.
    queue: Uuid,
}

/// The `{queue}` and `{item}` of an item's route.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ItemPath {
    /// The queue's id.
    queue: Uuid,
    /// The item's id.
    item: Uuid,
}

/// `?status=&page=&limit=` of an item listing.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ItemQuery {
    /// `PENDING` or `COMPLETED`.
    status: Option<String>,
    page: Option<i64>,
    limit: Option<i64>,
}

/// One object to add.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectRef {
    /// `TRACE`, `OBSERVATION` or `SESSION`.
    object_type: String,
    object_id: String,
}

/// Items to add by hand.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewItems {
    /// At most 1000.
    items: Vec<ObjectRef>,
}

/// Items to add from a filtered list: the traces a filter finds, or the targets a judge failed;
/// a deterministic sample of them when `sample_rate` is below 1.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemsFromFilter {
    /// The read API's trace filters (`GET /v1/traces`): `from`, `to`, `name`, `user_id`,
    /// `session_id`, `tags`, `environment`, `release`, `level`, `min_cost`, `min_latency_ms`,
    /// `score_name`.
    #[schema(value_type = Option<Object>)]
    traces: Option<TraceFilter>,
    /// The targets an LLM judge scored at or below `max_value` (0: a failed boolean judge).
    judge_failures: Option<JudgeFailures>,
    /// 0 to 1 (1, everything): the share of what the filter finds that is added, chosen by a
    /// hash of the queue and the object, so the same objects are chosen again.
    sample_rate: Option<f64>,
    /// How many to look at: 1 to 1000 (100).
    limit: Option<usize>,
}

/// A queue's standing rule, or null to stop it.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleChange {
    /// `{traces | judge_failures, sample_rate?}`, as `POST .../items/from-filter` takes them.
    #[schema(value_type = Option<QueueRule>)]
    rule: Option<serde_json::Value>,
}

/// What adding from a filter did.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AddedQueueItems {
    /// What the filter found.
    pub found: usize,
    /// Of those, chosen by the sample and now in the queue (some may have been already).
    pub items: Vec<QueueItem>,
}

/// A reviewer's scores for an item.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Completion {
    scores: Vec<GivenScore>,
}

/// A queue with its progress.
#[derive(Serialize, utoipa::ToSchema)]
pub struct QueueDetail {
    #[serde(flatten)]
    pub queue: Queue,
    pub progress: Progress,
}

/// The signed-in person a reviewer's route acts for.
fn reviewer(caller: &Caller) -> Result<Uuid, ApiError> {
    match caller {
        Caller::User(user) => Ok(user.id),
        _ => Err(ApiError::forbidden(
            "reviewing is for a signed-in person (their scores carry their name): sign in with POST /v1/sessions",
        )),
    }
}

/// The trace each object is shown and scored on (see [`queue_rules::resolve`]).
async fn resolve(state: &AppState, project: Uuid, objects: &[ObjectRef]) -> Result<Vec<NewItem>, ApiError> {
    if objects.is_empty() || objects.len() > 1000 {
        return Err(bad("items", "give 1 to 1000 items"));
    }
    let found: Vec<Found> = objects
        .iter()
        .map(|o| Found {
            object_type: o.object_type.clone(),
            object_id: o.object_id.clone(),
        })
        .collect();
    Ok(queue_rules::resolve(&state.reader.for_project(project), project, &found).await?)
}

async fn create_queue(state: &AppState, project: Uuid, bytes: &[u8]) -> Result<Queue, ApiError> {
    let request: NewQueue = json_body(bytes)?;
    let client = state.postgres.get().await?;
    Ok(annotation::create_queue(&**client, project, request).await?)
}

async fn list_queues(state: &AppState, project: Uuid, page: &Page) -> Result<Json<Paged<Queue>>, ApiError> {
    let (page, limit) = page.resolve()?;
    let client = state.postgres.get().await?;
    let (found, total) = annotation::list_queues(&**client, project, page, limit).await?;
    Ok(paged(found, page, limit, total))
}

async fn list_items(
    state: &AppState,
    project: Uuid,
    queue: Uuid,
    query: &ItemQuery,
) -> Result<Json<Paged<QueueItem>>, ApiError> {
    let (page, limit) = Page {
        page: query.page,
        limit: query.limit,
    }
    .resolve()?;
    let client = state.postgres.get().await?;
    let (found, total) =
        annotation::list_items(&**client, project, queue, query.status.as_deref(), page, limit).await?;
    Ok(paged(found, page, limit, total))
}

#[utoipa::path(
    get,
    path = "/v1/projects/{project}/annotation-queues",
    summary = "List annotation queues",
    description = "Newest first. Paged: `page` (from 1), `limit` (default 50, at most 1000). Viewer role, or `read` scope. A session token (`Bearer at-session-…`), a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id"), Page),
    responses(
        (status = 200, description = "OK", body = Paged<Queue>),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn list_annotation_queues(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Read>,
    Query(page): Query<Page>,
) -> Result<Json<Paged<Queue>>, ApiError> {
    list_queues(&state, project.id, &page).await
}

#[utoipa::path(
    post,
    path = "/v1/projects/{project}/annotation-queues",
    summary = "Create an annotation queue",
    description = "`{name, description?, scoreConfigIds, annotatorsPerItem?}`: the score configs a reviewer gives, and how many people complete each item (1 to 10). Member role, or `manage` scope. A session token (`Bearer at-session-…`), a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id")),
    request_body = NewQueue,
    responses(
        (status = 201, description = "Created", body = Queue),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 409, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn create_annotation_queue(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Write>,
    bytes: axum::body::Bytes,
) -> Result<(StatusCode, Json<Queue>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(create_queue(&state, project.id, &bytes).await?),
    ))
}

#[utoipa::path(
    get,
    path = "/v1/projects/{project}/annotation-queues/{queue}",
    summary = "Get an annotation queue and its progress",
    description = "The queue, and `progress`: items by status, those someone works on now, and what each person (assigned or reviewing) completed and skipped. Viewer role, or `read` scope. A session token (`Bearer at-session-…`), a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id"), QueuePath),
    responses(
        (status = 200, description = "OK", body = QueueDetail),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn get_annotation_queue(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Read>,
    Path(path): Path<QueuePath>,
) -> Result<Json<QueueDetail>, ApiError> {
    let client = state.postgres.get().await?;
    let queue = annotation::get_queue(&**client, project.id, path.queue).await?;
    let mut progress = annotation::progress(&**client, project.id, path.queue).await?;
    if !matches!(project.caller, Caller::User(_)) {
        progress = progress.without_emails();
    }
    Ok(Json(QueueDetail { queue, progress }))
}

#[utoipa::path(
    delete,
    path = "/v1/projects/{project}/annotation-queues/{queue}",
    summary = "Delete an annotation queue",
    description = "With its items and reviews; the scores people gave stay. Member role, or `manage` scope. A session token (`Bearer at-session-…`), a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id"), QueuePath),
    responses(
        (status = 204, description = "Removed"),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn delete_annotation_queue(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Write>,
    Path(path): Path<QueuePath>,
) -> Result<StatusCode, ApiError> {
    let client = state.postgres.get().await?;
    annotation::delete_queue(&**client, project.id, path.queue).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    get,
    path = "/v1/projects/{project}/annotation-queues/{queue}/items",
    summary = "List a queue's items",
    description = "Oldest first (the order they are reviewed in); `status` `PENDING` or `COMPLETED`. Paged: `page` (from 1), `limit` (default 50, at most 1000). Viewer role, or `read` scope. A session token (`Bearer at-session-…`), a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id"), QueuePath, ItemQuery),
    responses(
        (status = 200, description = "OK", body = Paged<QueueItem>),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn list_annotation_items(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Read>,
    Path(path): Path<QueuePath>,
    Query(query): Query<ItemQuery>,
) -> Result<Json<Paged<QueueItem>>, ApiError> {
    list_items(&state, project.id, path.queue, &query).await
}

#[utoipa::path(
    post,
    path = "/v1/projects/{project}/annotation-queues/{queue}/items",
    summary = "Add items to a queue",
    description = "`{items: [{objectType, objectId}]}` (1 to 1000): traces, observations (shown in their trace) or sessions (scored on their first trace). Items already in the queue stay as they are. Member role, or `manage` scope. A session token (`Bearer at-session-…`), a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id"), QueuePath),
    request_body = NewItems,
    responses(
        (status = 200, description = "The items, new or not, in the order given", body = Vec<QueueItem>),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 409, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn add_annotation_items(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Write>,
    Path(path): Path<QueuePath>,
    bytes: axum::body::Bytes,
) -> Result<Json<Vec<QueueItem>>, ApiError> {
    let request: NewItems = json_body(&bytes)?;
    let items = resolve(&state, project.id, &request.items).await?;
    let client = state.postgres.get().await?;
    Ok(Json(
        annotation::add_items(&**client, project.id, path.queue, &items, None).await?,
    ))
}

#[utoipa::path(
    post,
    path = "/v1/projects/{project}/annotation-queues/{queue}/items/from-filter",
    summary = "Add items from a filtered list",
    description = "The traces `traces` finds (the read API's trace filters), or the targets an LLM judge failed (`judge_failures`: its scores at or below `max_value`, 0 by default), at most `limit` (100, at most 1000), a deterministic `sample_rate` of them. Member role, or `manage` scope. A session token (`Bearer at-session-…`), a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id"), QueuePath),
    request_body = ItemsFromFilter,
    responses(
        (status = 200, description = "OK", body = AddedQueueItems),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 409, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn add_annotation_items_from_filter(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Write>,
    Path(path): Path<QueuePath>,
    bytes: axum::body::Bytes,
) -> Result<Json<AddedQueueItems>, ApiError> {
    let request: ItemsFromFilter = json_body(&bytes)?;
    let limit = request.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(bad("limit", "1 to 1000"));
    }
    let rule = QueueRule {
        traces: request.traces,
        judge_failures: request.judge_failures,
        sample_rate: request.sample_rate,
    };
    let reader = state.reader.for_project(project.id);
    let (total, chosen) = rule.find(&reader, project.id, path.queue, limit).await?;
    if chosen.is_empty() {
        return Ok(Json(AddedQueueItems {
            found: total,
            items: Vec::new(),
        }));
    }
    let items = queue_rules::resolve(&reader, project.id, &chosen).await?;
    let client = state.postgres.get().await?;
    let items = annotation::add_items(&**client, project.id, path.queue, &items, None).await?;
    Ok(Json(AddedQueueItems { found: total, items }))
}

#[utoipa::path(
    put,
    path = "/v1/projects/{project}/annotation-queues/{queue}/rule",
    summary = "Set a queue's standing rule",
    description = "`{rule: {traces | judge_failures, sample_rate?}}`: from now on, the `annotation_rules` job (every minute) adds what the rule finds among what arrived since its last run (traces that started, or judges' scores given, in that window), a deterministic sample of it; `{rule: null}` stops it. Member role, or `manage` scope. A session token (`Bearer at-session-…`), a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id"), QueuePath),
    request_body = RuleChange,
    responses(
        (status = 200, description = "The queue with its rule", body = Queue),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn set_annotation_rule(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Write>,
    Path(path): Path<QueuePath>,
    bytes: axum::body::Bytes,
) -> Result<Json<Queue>, ApiError> {
    let change: RuleChange = json_body(&bytes)?;
    if let Some(rule) = &change.rule {
        let parsed: QueueRule =
            serde_json::from_value(rule.clone()).map_err(|e| bad("rule", e.to_string()))?;
        parsed.check()?;
    }
    let client = state.postgres.get().await?;
    let now = agenttrace_schemas::Timestamp::now().as_micros();
    Ok(Json(
        annotation::set_rule(&**client, project.id, path.queue, change.rule.as_ref(), now).await?,
    ))
}

#[utoipa::path(
    post,
    path = "/v1/projects/{project}/annotation-queues/{queue}/next",
    summary = "Take the next item to review",
    description = "The oldest pending item the signed-in reviewer has not reviewed and nobody else holds (the one they hold first), locked to them for 5 minutes; every call renews it. 204 when nothing is left for them. Member role, signed in. A session token (`Bearer at-session-…`).",
    security(("session" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id"), QueuePath),
    responses(
        (status = 200, description = "The item, locked to the caller", body = QueueItem),
        (status = 204, description = "Nothing left to review"),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn next_annotation_item(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Write>,
    Path(path): Path<QueuePath>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let user = reviewer(&project.caller)?;
    let client = state.postgres.get().await?;
    Ok(
        match annotation::take_next(&**client, project.id, path.queue, user).await? {
            Some(item) => Json(item).into_response(),
            None => StatusCode::NO_CONTENT.into_response(),
        },
    )
}

#[utoipa::path(
    post,
    path = "/v1/projects/{project}/annotation-queues/{queue}/items/{item}/take",
    summary = "Open an item to review",
    description = "Locks the item to the signed-in reviewer for 5 minutes (going back to one they reviewed, or renewing their lock); 409 while someone else holds it. Member role, signed in. A session token (`Bearer at-session-…`).",
    security(("session" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id"), ItemPath),
    responses(
        (status = 200, description = "OK", body = QueueItem),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 409, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn take_annotation_item(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Write>,
    Path(path): Path<ItemPath>,
) -> Result<Json<QueueItem>, ApiError> {
    let user = reviewer(&project.caller)?;
    let client = state.postgres.get().await?;
    Ok(Json(
        annotation::take(&**client, project.id, path.queue, path.item, user).await?,
    ))
}

#[utoipa::path(
    post,
    path = "/v1/projects/{project}/annotation-queues/{queue}/items/{item}/complete",
    summary = "Score an item and complete it",
    description = "`{scores: [{config_id, value, comment?}]}` for the queue's configs, each checked against its config; stored in ClickHouse as `annotation` scores carrying the reviewer, the queue and the config (completing again replaces them: a reviewer corrects their own scores this way). The item is complete once as many people as the queue asks completed it. 409 while someone else holds it. Member role, signed in. A session token (`Bearer at-session-…`).",
    security(("session" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id"), ItemPath),
    request_body = Completion,
    responses(
        (status = 200, description = "The item after", body = QueueItem),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 409, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn complete_annotation_item(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Write>,
    Path(path): Path<ItemPath>,
    bytes: axum::body::Bytes,
) -> Result<Json<QueueItem>, ApiError> {
    let request: Completion = json_body(&bytes)?;
    let user = reviewer(&project.caller)?;
    let client = state.postgres.get().await?;
    let now = agenttrace_schemas::Timestamp::now().to_string();
    let completion = annotation::prepare_completion(
        &**client,
        project.id,
        path.queue,
        path.item,
        user,
        &request.scores,
        &now,
    )
    .await?;
    let project_name = projects::get_project(&**client, project.id).await?.name;
    // The scores are stored before the review is: a 2xx means they are in ClickHouse.
    crate::ingest::direct::load(
        &state.clickhouse,
        project.id,
        &project_name,
        "annotation",
        &completion.events,
    )
    .await
    .map_err(|e| ApiError::unavailable("ClickHouse", e))?;
    Ok(Json(
        annotation::record_review(&**client, project.id, path.queue, path.item, user, "completed").await?,
    ))
}

#[utoipa::path(
    post,
    path = "/v1/projects/{project}/annotation-queues/{queue}/items/{item}/skip",
    summary = "Skip an item",
    description = "The signed-in reviewer passes on it: it leaves their turn and goes to others (a skip does not count toward completing it). 409 while someone else holds it. Member role, signed in. A session token (`Bearer at-session-…`).",
    security(("session" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id"), ItemPath),
    responses(
        (status = 200, description = "The item after", body = QueueItem),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 409, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn skip_annotation_item(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Write>,
    Path(path): Path<ItemPath>,
) -> Result<Json<QueueItem>, ApiError> {
    let user = reviewer(&project.caller)?;
    let client = state.postgres.get().await?;
    Ok(Json(
        annotation::record_review(&**client, project.id, path.queue, path.item, user, "skipped").await?,
    ))
}

#[utoipa::path(
    post,
    path = "/v1/projects/{project}/annotation-queues/{queue}/items/{item}/release",
    summary = "Let go of an item",
    description = "The signed-in reviewer's lock ends (leaving the queue); someone else may take the item. Member role, signed in. A session token (`Bearer at-session-…`).",
    security(("session" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id"), ItemPath),
    responses(
        (status = 204, description = "Released"),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn release_annotation_item(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Write>,
    Path(path): Path<ItemPath>,
) -> Result<StatusCode, ApiError> {
    let user = reviewer(&project.caller)?;
    let client = state.postgres.get().await?;
    annotation::get_item(&**client, project.id, path.queue, path.item).await?;
    annotation::release(&**client, project.id, path.queue, path.item, user).await?;
    Ok(StatusCode::NO_CONTENT)
}

// Langfuse's routes.

/// The `{queueId}` of Langfuse's queue routes.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[serde(rename_all = "camelCase")]
pub struct LangfuseQueuePath {
    queue_id: Uuid,
}

/// The `{queueId}` and `{itemId}` of Langfuse's item routes.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[serde(rename_all = "camelCase")]
pub struct LangfuseItemPath {
    queue_id: Uuid,
    item_id: Uuid,
}

/// Langfuse's `CreateAnnotationQueueItemRequest`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LangfuseNewItem {
    object_id: String,
    object_type: String,
    status: Option<String>,
}

/// Langfuse's `UpdateAnnotationQueueItemRequest`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LangfuseItemChange {
    status: Option<String>,
}

/// Langfuse's `AnnotationQueueAssignmentRequest`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Assignment {
    user_id: Uuid,
}

/// Langfuse's `CreateAnnotationQueueAssignmentResponse`.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AssignmentCreated {
    user_id: Uuid,
    queue_id: Uuid,
    project_id: Uuid,
}

/// Langfuse's `{success, message?}` answers to deletes.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Removed {
    success: bool,
    message: String,
}

#[utoipa::path(
    get,
    path = "/api/public/annotation-queues",
    operation_id = "langfuse_list_annotation_queues",
    summary = "List annotation queues",
    description = "Langfuse-compatible (`langfuse.api.annotation_queues.list_queues`). Authenticate with a project API key as Basic public:secret.",
    security(("apiKey" = ["read"])),
    params(Page),
    responses(
        (status = 200, description = "Langfuse's shape", body = Paged<Queue>),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn langfuse_list_queues(
    State(state): State<Arc<AppState>>,
    project: KeyProject<need::Read>,
    Query(page): Query<Page>,
) -> Result<Json<Paged<Queue>>, ApiError> {
    list_queues(&state, project.id, &page).await
}

#[utoipa::path(
    post,
    path = "/api/public/annotation-queues",
    operation_id = "langfuse_create_annotation_queue",
    summary = "Create an annotation queue",
    description = "Langfuse-compatible (`langfuse.api.annotation_queues.create_queue`). Authenticate with a project API key as Basic public:secret.",
    security(("apiKey" = ["manage"])),
    request_body = NewQueue,
    responses(
        (status = 200, description = "Langfuse's shape", body = Queue),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 409, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn langfuse_create_queue(
    State(state): State<Arc<AppState>>,
    project: KeyProject<need::Write>,
    bytes: axum::body::Bytes,
) -> Result<Json<Queue>, ApiError> {
    Ok(Json(create_queue(&state, project.id, &bytes).await?))
}

#[utoipa::path(
    get,
    path = "/api/public/annotation-queues/{queueId}",
    operation_id = "langfuse_get_annotation_queue",
    summary = "Get an annotation queue",
    description = "Langfuse-compatible (`langfuse.api.annotation_queues.get_queue`). Authenticate with a project API key as Basic public:secret.",
    security(("apiKey" = ["read"])),
    params(LangfuseQueuePath),
    responses(
        (status = 200, description = "Langfuse's shape", body = Queue),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn langfuse_get_queue(
    State(state): State<Arc<AppState>>,
    project: KeyProject<need::Read>,
    Path(path): Path<LangfuseQueuePath>,
) -> Result<Json<Queue>, ApiError> {
    let client = state.postgres.get().await?;
    Ok(Json(
        annotation::get_queue(&**client, project.id, path.queue_id).await?,
    ))
}

#[utoipa::path(
    get,
    path = "/api/public/annotation-queues/{queueId}/items",
    operation_id = "langfuse_list_annotation_items",
    summary = "List a queue's items",
    description = "Langfuse-compatible (`langfuse.api.annotation_queues.list_queue_items`). Authenticate with a project API key as Basic public:secret.",
    security(("apiKey" = ["read"])),
    params(LangfuseQueuePath, ItemQuery),
    responses(
        (status = 200, description = "Langfuse's shape", body = Paged<QueueItem>),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn langfuse_list_items(
    State(state): State<Arc<AppState>>,
    project: KeyProject<need::Read>,
    Path(path): Path<LangfuseQueuePath>,
    Query(query): Query<ItemQuery>,
) -> Result<Json<Paged<QueueItem>>, ApiError> {
    list_items(&state, project.id, path.queue_id, &query).await
}

#[utoipa::path(
    post,
    path = "/api/public/annotation-queues/{queueId}/items",
    operation_id = "langfuse_create_annotation_item",
    summary = "Add an item to a queue",
    description = "Langfuse-compatible (`langfuse.api.annotation_queues.create_queue_item`); an object already in the queue answers its item. Authenticate with a project API key as Basic public:secret.",
    security(("apiKey" = ["manage"])),
    params(LangfuseQueuePath),
    request_body = LangfuseNewItem,
    responses(
        (status = 200, description = "Langfuse's shape", body = QueueItem),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 409, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn langfuse_create_item(
    State(state): State<Arc<AppState>>,
    project: KeyProject<need::Write>,
    Path(path): Path<LangfuseQueuePath>,
    bytes: axum::body::Bytes,
) -> Result<Json<QueueItem>, ApiError> {
    let request: LangfuseNewItem = json_body(&bytes)?;
    let object = ObjectRef {
        object_type: request.object_type,
        object_id: request.object_id,
    };
    let items = resolve(&state, project.id, std::slice::from_ref(&object)).await?;
    let client = state.postgres.get().await?;
    let added = annotation::add_items(
        &**client,
        project.id,
        path.queue_id,
        &items,
        request.status.as_deref(),
    )
    .await?;
    added
        .into_iter()
        .next()
        .map(Json)
        .ok_or_else(|| ApiError::internal("the item was added but could not be read back"))
}

#[utoipa::path(
    get,
    path = "/api/public/annotation-queues/{queueId}/items/{itemId}",
    operation_id = "langfuse_get_annotation_item",
    summary = "Get a queue's item",
    description = "Langfuse-compatible (`langfuse.api.annotation_queues.get_queue_item`). Authenticate with a project API key as Basic public:secret.",
    security(("apiKey" = ["read"])),
    params(LangfuseItemPath),
    responses(
        (status = 200, description = "Langfuse's shape", body = QueueItem),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn langfuse_get_item(
    State(state): State<Arc<AppState>>,
    project: KeyProject<need::Read>,
    Path(path): Path<LangfuseItemPath>,
) -> Result<Json<QueueItem>, ApiError> {
    let client = state.postgres.get().await?;
    Ok(Json(
        annotation::get_item(&**client, project.id, path.queue_id, path.item_id).await?,
    ))
}

#[utoipa::path(
    patch,
    path = "/api/public/annotation-queues/{queueId}/items/{itemId}",
    operation_id = "langfuse_update_annotation_item",
    summary = "Set a queue item's status",
    description = "Langfuse-compatible (`langfuse.api.annotation_queues.update_queue_item`): `COMPLETED` stamps `completedAt`. Authenticate with a project API key as Basic public:secret.",
    security(("apiKey" = ["manage"])),
    params(LangfuseItemPath),
    request_body = LangfuseItemChange,
    responses(
        (status = 200, description = "Langfuse's shape", body = QueueItem),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn langfuse_update_item(
    State(state): State<Arc<AppState>>,
    project: KeyProject<need::Write>,
    Path(path): Path<LangfuseItemPath>,
    bytes: axum::body::Bytes,
) -> Result<Json<QueueItem>, ApiError> {
    let change: LangfuseItemChange = json_body(&bytes)?;
    let client = state.postgres.get().await?;
    Ok(Json(match change.status {
        Some(status) => {
            annotation::set_status(&**client, project.id, path.queue_id, path.item_id, &status).await?
        }
        None => annotation::get_item(&**client, project.id, path.queue_id, path.item_id).await?,
    }))
}

#[utoipa::path(
    delete,
    path = "/api/public/annotation-queues/{queueId}/items/{itemId}",
    operation_id = "langfuse_delete_annotation_item",
    summary = "Remove an item from a queue",
    description = "Langfuse-compatible (`langfuse.api.annotation_queues.delete_queue_item`). Authenticate with a project API key as Basic public:secret.",
    security(("apiKey" = ["manage"])),
    params(LangfuseItemPath),
    responses(
        (status = 200, description = "Langfuse's shape", body = Removed),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn langfuse_delete_item(
    State(state): State<Arc<AppState>>,
    project: KeyProject<need::Write>,
    Path(path): Path<LangfuseItemPath>,
) -> Result<Json<Removed>, ApiError> {
    let client = state.postgres.get().await?;
    annotation::delete_item(&**client, project.id, path.queue_id, path.item_id).await?;
    Ok(Json(Removed {
        success: true,
        message: format!("item {} removed from the queue", path.item_id),
    }))
}

#[utoipa::path(
    post,
    path = "/api/public/annotation-queues/{queueId}/assignments",
    operation_id = "langfuse_create_annotation_assignment",
    summary = "Assign a person to a queue",
    description = "Langfuse-compatible (`langfuse.api.annotation_queues.create_queue_assignment`); the user must be a member of the project's organization. Authenticate with a project API key as Basic public:secret.",
    security(("apiKey" = ["manage"])),
    params(LangfuseQueuePath),
    request_body = Assignment,
    responses(
        (status = 200, description = "Langfuse's shape", body = AssignmentCreated),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn langfuse_assign(
    State(state): State<Arc<AppState>>,
    project: KeyProject<need::Write>,
    Path(path): Path<LangfuseQueuePath>,
    bytes: axum::body::Bytes,
) -> Result<Json<AssignmentCreated>, ApiError> {
    let request: Assignment = json_body(&bytes)?;
    let client = state.postgres.get().await?;
    annotation::assign(&**client, project.id, path.queue_id, request.user_id).await?;
    Ok(Json(AssignmentCreated {
        user_id: request.user_id,
        queue_id: path.queue_id,
        project_id: project.id,
    }))
}

#[utoipa::path(
    delete,
    path = "/api/public/annotation-queues/{queueId}/assignments",
    operation_id = "langfuse_delete_annotation_assignment",
    summary = "Unassign a person from a queue",
    description = "Langfuse-compatible (`langfuse.api.annotation_queues.delete_queue_assignment`). Authenticate with a project API key as Basic public:secret.",
    security(("apiKey" = ["manage"])),
    params(LangfuseQueuePath),
    request_body = Assignment,
    responses(
        (status = 200, description = "Langfuse's shape", body = Removed),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn langfuse_unassign(
    State(state): State<Arc<AppState>>,
    project: KeyProject<need::Write>,
    Path(path): Path<LangfuseQueuePath>,
    bytes: axum::body::Bytes,
) -> Result<Json<Removed>, ApiError> {
    let request: Assignment = json_body(&bytes)?;
    let client = state.postgres.get().await?;
    annotation::unassign(&**client, project.id, path.queue_id, request.user_id).await?;
    Ok(Json(Removed {
        success: true,
        message: format!("user {} unassigned", request.user_id),
    }))
}
