//! A project's own model prices (`/v1/projects/{project}/prices`), over the defaults, from a
//! date on.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::control::prices::{self, NewPrice};
use crate::http::auth::{ProjectAccess, need};
use crate::http::error::ApiError;
use crate::http::request::{Page, json_body, page_of};
use crate::http::server::AppState;

/// A price per million tokens for the models `model_pattern` matches.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceBody {
    model_pattern: String,
    provider: Option<String>,
    input: f64,
    output: f64,
    cache_read: Option<f64>,
    cache_write: Option<f64>,
    valid_from: Option<String>,
}

/// The `{id}` of a price's route.
#[derive(Deserialize)]
pub struct PricePath {
    id: Uuid,
}

pub async fn list_prices(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Read>,
    Query(page): Query<Page>,
) -> Result<Json<Value>, ApiError> {
    let client = state.postgres.get().await?;
    page_of(prices::list(&**client, project.id).await?, &page)
}

pub async fn set_price(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Write>,
    bytes: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let request: PriceBody = json_body(&bytes)?;
    let client = state.postgres.get().await?;
    let price = prices::set(
        &**client,
        &NewPrice {
            project_id: Some(project.id),
            model_pattern: request.model_pattern,
            provider: request.provider.unwrap_or_else(|| "custom".into()),
            input: request.input,
            output: request.output,
            cache_read: request.cache_read.unwrap_or(0.0),
            cache_write: request.cache_write.unwrap_or(0.0),
            valid_from: request.valid_from,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(json!(price))).into_response())
}

/// Deletes one of the project's own prices.
pub async fn delete_price(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Write>,
    Path(PricePath { id }): Path<PricePath>,
) -> Result<StatusCode, ApiError> {
    let client = state.postgres.get().await?;
    prices::delete(&**client, project.id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
