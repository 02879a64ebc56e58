//! A project's own model prices (`/v1/projects/{project}/prices`), over the defaults, from a
//! date on.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use uuid::Uuid;

use crate::control::prices::{self, NewPrice, Price};
use crate::http::auth::{ProjectAccess, need};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::request::{Page, Paged, json_body, page_of};
use crate::http::server::AppState;

/// A price per million tokens for the models `model_pattern` matches.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct PriceBody {
    /// An anchored, case-insensitive regular expression over the model name.
    model_pattern: String,
    provider: Option<String>,
    /// USD per million input tokens.
    #[schema(minimum = 0, maximum = 999_999_999)]
    input: f64,
    #[schema(minimum = 0, maximum = 999_999_999)]
    output: f64,
    #[schema(minimum = 0, maximum = 999_999_999)]
    cache_read: Option<f64>,
    #[schema(minimum = 0, maximum = 999_999_999)]
    cache_write: Option<f64>,
    /// RFC 3339; now when left out.
    valid_from: Option<String>,
}

/// The `{id}` of a price's route.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct PricePath {
    id: Uuid,
}

#[utoipa::path(
    get,
    path = "/v1/projects/{project}/prices",
    summary = "The prices that apply to the project",
    description = "Paged like datasets. Its own first, then the defaults. Viewer role or `read` scope. A session token, a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id"), Page),
    responses(
        (status = 200, description = "OK", body = Paged<Price>),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn list_prices(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Read>,
    Query(page): Query<Page>,
) -> Result<Json<Paged<Price>>, ApiError> {
    let client = state.postgres.get().await?;
    page_of(prices::list(&**client, project.id).await?, &page)
}

#[utoipa::path(
    post,
    path = "/v1/projects/{project}/prices",
    summary = "Set the project's own price for a model",
    description = "`{model_pattern, input, output, cache_read, cache_write, valid_from}` in USD per million tokens; re-price past generations with the recompute_costs job. Member role or `manage` scope. A session token, a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id")),
    request_body = PriceBody,
    responses(
        (status = 201, description = "OK", body = Price),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 409, description = "The project holds the most prices it may", body = ErrorBody),
    ),
)]
pub async fn set_price(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Write>,
    bytes: axum::body::Bytes,
) -> Result<(StatusCode, Json<Price>), ApiError> {
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
    Ok((StatusCode::CREATED, Json(price)))
}

/// Deletes one of the project's own prices.
#[utoipa::path(
    delete,
    path = "/v1/projects/{project}/prices/{id}",
    summary = "Delete a project's price",
    description = "Only the project's own prices (the defaults are changed, not deleted). Member role, or `manage` scope. A session token (`Bearer at-session-…`), a project API key or an organization key.",
    security(("session" = []), ("apiKey" = [])),
    params(("project" = uuid::Uuid, Path, description = "The project's id"), PricePath),
    responses(
        (status = 204, description = "OK"),
        (status = 400, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 401, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 403, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
        (status = 404, description = "`{error, message}` naming the field and what to do", body = ErrorBody),
    ),
)]
pub async fn delete_price(
    State(state): State<Arc<AppState>>,
    project: ProjectAccess<need::Write>,
    Path(PricePath { id }): Path<PricePath>,
) -> Result<StatusCode, ApiError> {
    let client = state.postgres.get().await?;
    prices::delete(&**client, project.id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
