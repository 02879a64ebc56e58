//! A project's datasets and their items (`/v1/projects/{project}/datasets`).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::control::datasets::{self, Dataset, DatasetItem, ItemFilter, NewDataset, NewItem};
use crate::http::auth::{ProjectAccess, need};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::request::{Page, Paged, bad, json_body, paged, reject_nul_in_json};
use crate::http::server::AppState;

/// The `{name}` of a dataset's route.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct DatasetPath {
    name: String,
}

/// The `{name}` and `{id}` of an item's route.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ItemPath {
    name: String,
    id: String,
}

/// One item, as `POST .../items` takes it in JSON.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Item {
    id: Option<String>,
    input: Option<Value>,
    expected_output: Option<Value>,
    metadata: Option<Value>,
    status: Option<String>,
    /// The trace the item was taken from ("add to dataset" on a trace).
    source_trace_id: Option<String>,
    /// The observation the item was taken from, in `source_trace_id`.
    source_observation_id: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/projects/{project}/datasets",
    summary = "List datasets",
    description = "Paged: `page` (from 1), `limit` (default 50, at most 1000); `{data, meta: {page, limit, totalItems, totalPages}}`. Viewer role, or `read` scope. A session token (`Bearer at-session-…`), a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id"), Page),
    responses(
        (status = 200, description = "OK", body = Paged<Dataset>),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn list_datasets(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Read>,
    Query(page): Query<Page>,
) -> Result<Json<Paged<Dataset>>, ApiError> {
    let (page, limit) = page.resolve()?;
    let client = state.postgres.get().await?;
    let (found, total) = datasets::list(&**client, project.id, page, limit).await?;
    Ok(paged(found, page, limit, total))
}

#[utoipa::path(
    get,
    path = "/v1/projects/{project}/datasets/{name}",
    summary = "Get a dataset",
    description = "Viewer role, or `read` scope. A session token (`Bearer at-session-…`), a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id"), DatasetPath),
    responses(
        (status = 200, description = "OK", body = Dataset),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn get_dataset(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Read>,
    Path(DatasetPath { name }): Path<DatasetPath>,
) -> Result<Json<Dataset>, ApiError> {
    let client = state.postgres.get().await?;
    Ok(Json(datasets::get(&**client, project.id, &name).await?))
}

#[utoipa::path(
    post,
    path = "/v1/projects/{project}/datasets",
    summary = "Create or update a dataset",
    description = "Member role, or `manage` scope. A session token (`Bearer at-session-…`), a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id")),
    request_body = NewDataset,
    responses(
        (status = 200, description = "OK", body = Dataset),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn create_dataset(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Write>,
    bytes: axum::body::Bytes,
) -> Result<Json<Dataset>, ApiError> {
    let request: NewDataset = json_body(&bytes)?;
    let client = state.postgres.get().await?;
    let dataset = datasets::upsert(&**client, project.id, &request).await?;
    Ok(Json(dataset))
}

/// Deletes a dataset and its items (409 once an experiment has run over it).
#[utoipa::path(
    delete,
    path = "/v1/projects/{project}/datasets/{name}",
    summary = "Delete a dataset",
    description = "With its items; 409 once an experiment has run over it. Member role, or `manage` scope. A session token (`Bearer at-session-…`), a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id"), DatasetPath),
    responses(
        (status = 204, description = "OK"),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 409, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn delete_dataset(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Write>,
    Path(DatasetPath { name }): Path<DatasetPath>,
) -> Result<StatusCode, ApiError> {
    let client = state.postgres.get().await?;
    datasets::delete(&**client, project.id, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    get,
    path = "/v1/projects/{project}/datasets/{name}/items",
    summary = "List a dataset's items",
    description = "Oldest first, paged like datasets; 404 for a dataset that does not exist. Viewer role, or `read` scope. A session token (`Bearer at-session-…`), a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id"), DatasetPath, Page),
    responses(
        (status = 200, description = "OK", body = Paged<DatasetItem>),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn list_items(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Read>,
    Path(DatasetPath { name }): Path<DatasetPath>,
    Query(page): Query<Page>,
) -> Result<Json<Paged<DatasetItem>>, ApiError> {
    let (page, limit) = page.resolve()?;
    let client = state.postgres.get().await?;
    // A dataset that does not exist is a 404, not an empty page.
    datasets::get(&**client, project.id, &name).await?;
    let filter = ItemFilter {
        dataset_name: Some(name),
        ..ItemFilter::default()
    };
    let (items, total) = datasets::list_items(&**client, project.id, &filter, page, limit).await?;
    Ok(paged(items, page, limit, total))
}

/// What `POST .../items` answers: the item, or how many a JSONL import added.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum AddedItems {
    Item(Box<DatasetItem>),
    Imported { imported: usize },
}

/// `POST .../datasets/{name}/items` takes JSON (one item) or JSONL (`application/x-ndjson`:
/// a bulk import, one item per line).
#[utoipa::path(
    post,
    path = "/v1/projects/{project}/datasets/{name}/items",
    summary = "Add an item, or import JSONL",
    description = "JSON: one item; `application/x-ndjson`: one item per line. Member role, or `manage` scope. A session token (`Bearer at-session-…`), a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id"), DatasetPath),
    request_body = Item,
    responses(
        (status = 200, description = "OK", body = AddedItems),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn add_items(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Write>,
    Path(DatasetPath { name }): Path<DatasetPath>,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Result<Json<AddedItems>, ApiError> {
    let client = state.postgres.get().await?;
    let jsonl = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.contains("ndjson") || t.contains("jsonl"));
    if jsonl {
        let text = std::str::from_utf8(&bytes).map_err(|_| bad("body", "JSONL must be UTF-8"))?;
        for (number, line) in text.lines().enumerate() {
            reject_nul_in_json(line.as_bytes(), &format!("line {}", number + 1))?;
        }
        let imported = datasets::import_jsonl(&**client, project.id, &name, text).await?;
        return Ok(Json(AddedItems::Imported { imported }));
    }
    let item: Item = json_body(&bytes)?;
    let item = datasets::upsert_item(
        &**client,
        project.id,
        &NewItem {
            id: item.id,
            dataset_name: name,
            input: item.input,
            expected_output: item.expected_output,
            metadata: item.metadata,
            status: item.status,
            source_trace_id: item.source_trace_id,
            source_observation_id: item.source_observation_id,
        },
    )
    .await?;
    Ok(Json(AddedItems::Item(Box::new(item))))
}

#[utoipa::path(
    get,
    path = "/v1/projects/{project}/datasets/{name}/items/{id}",
    summary = "Get a dataset item",
    description = "404 when it is not in that dataset. Viewer role, or `read` scope. A session token (`Bearer at-session-…`), a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id"), ItemPath),
    responses(
        (status = 200, description = "OK", body = DatasetItem),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn get_item(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Read>,
    Path(ItemPath { name, id }): Path<ItemPath>,
) -> Result<Json<DatasetItem>, ApiError> {
    let client = state.postgres.get().await?;
    Ok(Json(item_of_dataset(&**client, project.id, &name, &id).await?))
}

/// Deletes an item (refused while an experiment refers to it: archive it then).
#[utoipa::path(
    delete,
    path = "/v1/projects/{project}/datasets/{name}/items/{id}",
    summary = "Delete a dataset item",
    description = "409 while an experiment refers to it (archive it with status ARCHIVED instead). Member role, or `manage` scope. A session token (`Bearer at-session-…`), a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id"), ItemPath),
    responses(
        (status = 204, description = "OK"),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 409, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn delete_item(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Write>,
    Path(ItemPath { name, id }): Path<ItemPath>,
) -> Result<StatusCode, ApiError> {
    let client = state.postgres.get().await?;
    item_of_dataset(&**client, project.id, &name, &id).await?;
    datasets::delete_item(&**client, project.id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The item, when it is in the dataset the path names (a 404 otherwise).
async fn item_of_dataset(
    client: &impl tokio_postgres::GenericClient,
    project: uuid::Uuid,
    name: &str,
    id: &str,
) -> Result<DatasetItem, ApiError> {
    let item = datasets::get_item(client, project, id).await?;
    if item.dataset_name != name {
        return Err(ApiError::not_found(format!("no item {id:?} in dataset {name:?}")));
    }
    Ok(item)
}

/// What to take items from: traces by id, the items of an annotation queue, or the traces a
/// filter finds (one of them).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FromTraces {
    /// At most 1000.
    trace_ids: Option<Vec<String>>,
    /// Its completed items (an observation item gives the observation's input and output).
    queue_id: Option<uuid::Uuid>,
    /// The read API's trace filters (`GET /v1/traces`).
    #[schema(value_type = Option<Object>)]
    traces: Option<crate::analytics::traces::TraceFilter>,
    /// How many traces a filter or a queue gives at most: 1 to 1000 (100).
    limit: Option<usize>,
}

/// What taking items from traces did.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TakenItems {
    /// Items added or refreshed (one per trace or observation, keyed by it, so taking again
    /// replaces rather than adds).
    pub items: Vec<DatasetItem>,
    /// Traces named that the project does not hold.
    pub missing: Vec<String>,
}

#[utoipa::path(
    post,
    path = "/v1/projects/{project}/datasets/{name}/items/from-traces",
    summary = "Add items from traces in bulk",
    description = "From `trace_ids`, an annotation queue's completed items (`queue_id`), or a trace filter (`traces`): each trace's input, and its output as the expected output (an observation item's own), the item keeping `source_trace_id` and `source_observation_id`. Items are keyed by their source, so taking them again replaces them. Member role, or `manage` scope. A session token (`Bearer at-session-…`), a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id"), DatasetPath),
    request_body = FromTraces,
    responses(
        (status = 200, description = "OK", body = TakenItems),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn add_items_from_traces(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Write>,
    Path(DatasetPath { name }): Path<DatasetPath>,
    bytes: axum::body::Bytes,
) -> Result<Json<TakenItems>, ApiError> {
    use crate::analytics::traces;
    let request: FromTraces = json_body(&bytes)?;
    let limit = request.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(bad("limit", "1 to 1000"));
    }
    let reader = state.reader.for_project(project.id);
    let client = state.postgres.get().await?;
    datasets::get(&**client, project.id, &name).await?;
    // (trace, observation) pairs to take.
    let sources: Vec<(String, Option<String>)> = match (request.trace_ids, request.queue_id, request.traces) {
        (Some(ids), None, None) => {
            if ids.is_empty() || ids.len() > 1000 {
                return Err(bad("trace_ids", "1 to 1000 trace ids"));
            }
            ids.into_iter().map(|id| (id, None)).collect()
        }
        (None, Some(queue), None) => {
            let (items, _) = crate::control::annotation::list_items(
                &**client,
                project.id,
                queue,
                Some("COMPLETED"),
                1,
                limit as i64,
            )
            .await?;
            items
                .into_iter()
                .filter_map(|item| {
                    let observation = (item.object_type == "OBSERVATION").then(|| item.object_id.clone());
                    Some((item.trace_id?, observation))
                })
                .collect()
        }
        (None, None, Some(mut filter)) => {
            filter.project_id = None;
            filter.cursor = None;
            filter.limit = Some(limit);
            traces::trace_list(&reader, project.id, &filter)
                .await?
                .data
                .iter()
                .filter_map(|row| Some((row["id"].as_str()?.to_owned(), None)))
                .collect()
        }
        _ => {
            return Err(bad(
                "trace_ids",
                "give one of trace_ids, queue_id (its completed items) and traces (a trace filter)",
            ));
        }
    };
    let ids: Vec<&str> = sources.iter().map(|(trace, _)| trace.as_str()).collect();
    let payloads = traces::trace_payloads(&reader, project.id, &ids).await?;
    let (mut items, mut missing) = (Vec::new(), Vec::new());
    for (trace, observation) in sources {
        let (input, output) = match &observation {
            Some(observation) => {
                match traces::observation_detail(&reader, project.id, &trace, observation).await? {
                    Some(row) => (row["input"].clone(), row["output"].clone()),
                    None => {
                        missing.push(trace);
                        continue;
                    }
                }
            }
            None => match payloads.get(&trace) {
                Some((input, output)) => (input.clone(), output.clone()),
                None => {
                    missing.push(trace);
                    continue;
                }
            },
        };
        let id = match &observation {
            Some(observation) => format!("trace-{trace}-{observation}"),
            None => format!("trace-{trace}"),
        };
        items.push(
            datasets::upsert_item(
                &**client,
                project.id,
                &NewItem {
                    id: Some(id),
                    dataset_name: name.clone(),
                    input: Some(input),
                    expected_output: Some(output),
                    metadata: None,
                    source_trace_id: Some(trace),
                    source_observation_id: observation,
                    status: None,
                },
            )
            .await?,
        );
    }
    Ok(Json(TakenItems { items, missing }))
}
