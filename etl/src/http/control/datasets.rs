//! A project's datasets and their items (`/v1/projects/{project}/datasets`).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::control::datasets::{self, DatasetItem, ItemFilter, NewDataset, NewItem};
use crate::http::auth::{ProjectAccess, need};
use crate::http::error::ApiError;
use crate::http::request::{Page, bad, json_body, paged};
use crate::http::server::AppState;

/// The `{name}` of a dataset's route.
#[derive(Deserialize)]
pub struct DatasetPath {
    name: String,
}

/// The `{name}` and `{id}` of an item's route.
#[derive(Deserialize)]
pub struct ItemPath {
    name: String,
    id: String,
}

/// One item, as `POST .../items` takes it in JSON.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Item {
    id: Option<String>,
    input: Option<Value>,
    expected_output: Option<Value>,
    metadata: Option<Value>,
    status: Option<String>,
}

pub async fn list_datasets(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Read>,
    Query(page): Query<Page>,
) -> Result<Json<Value>, ApiError> {
    let (page, limit) = page.resolve()?;
    let client = state.postgres.get().await?;
    let (found, total) = datasets::list(&**client, project.id, page, limit).await?;
    Ok(paged(
        found.iter().map(|d| json!(d)).collect(),
        page,
        limit,
        total,
    ))
}

pub async fn get_dataset(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Read>,
    Path(DatasetPath { name }): Path<DatasetPath>,
) -> Result<Json<Value>, ApiError> {
    let client = state.postgres.get().await?;
    Ok(Json(json!(datasets::get(&**client, project.id, &name).await?)))
}

pub async fn create_dataset(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Write>,
    bytes: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let request: NewDataset = json_body(&bytes)?;
    let client = state.postgres.get().await?;
    let dataset = datasets::upsert(&**client, project.id, &request).await?;
    Ok(Json(json!(dataset)))
}

/// Deletes a dataset and its items (409 once an experiment has run over it).
pub async fn delete_dataset(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Write>,
    Path(DatasetPath { name }): Path<DatasetPath>,
) -> Result<StatusCode, ApiError> {
    let client = state.postgres.get().await?;
    datasets::delete(&**client, project.id, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list_items(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Read>,
    Path(DatasetPath { name }): Path<DatasetPath>,
    Query(page): Query<Page>,
) -> Result<Json<Value>, ApiError> {
    let (page, limit) = page.resolve()?;
    let client = state.postgres.get().await?;
    // A dataset that does not exist is a 404, not an empty page.
    datasets::get(&**client, project.id, &name).await?;
    let filter = ItemFilter {
        dataset_name: Some(name),
        ..ItemFilter::default()
    };
    let (items, total) = datasets::list_items(&**client, project.id, &filter, page, limit).await?;
    Ok(paged(
        items.iter().map(|i| json!(i)).collect(),
        page,
        limit,
        total,
    ))
}

/// `POST .../datasets/{name}/items` takes JSON (one item) or JSONL (`application/x-ndjson`:
/// a bulk import, one item per line).
pub async fn add_items(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Write>,
    Path(DatasetPath { name }): Path<DatasetPath>,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let client = state.postgres.get().await?;
    let jsonl = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.contains("ndjson") || t.contains("jsonl"));
    if jsonl {
        let text = std::str::from_utf8(&bytes).map_err(|_| bad("body", "JSONL must be UTF-8"))?;
        let imported = datasets::import_jsonl(&**client, project.id, &name, text).await?;
        return Ok(Json(json!({ "imported": imported })));
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
            ..NewItem::default()
        },
    )
    .await?;
    Ok(Json(json!(item)))
}

pub async fn get_item(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Read>,
    Path(ItemPath { name, id }): Path<ItemPath>,
) -> Result<Json<Value>, ApiError> {
    let client = state.postgres.get().await?;
    Ok(Json(json!(
        item_of_dataset(&**client, project.id, &name, &id).await?
    )))
}

/// Deletes an item (refused while an experiment refers to it: archive it then).
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
