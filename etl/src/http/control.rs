//! AgentTrace's own control-plane routes under `/v1/`: sign-in and sessions, organizations and
//! their members, and each project's keys, prompts and datasets. Every route names what it needs
//! ([`Need`] in a project, a [`Role`] in an organization) and [`Caller`] enforces it, for users,
//! project keys and organization keys alike.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use agenttrace_schemas::Scope;

use crate::analytics::dead_letters::dead_letter_list;
use crate::analytics::experiments::{Run, compare, traced_runs};
use crate::control::datasets::{self, ItemFilter, NewDataset, NewItem};
use crate::control::evaluators::{self, NewEvaluator};
use crate::control::experiments::{self, NewRunItem};
use crate::control::identity::{self, Role};
use crate::control::prices::{self, NewPrice};
use crate::control::prompts::{self, NewPromptVersion, PromptFilter, PromptType};
use crate::control::{api_keys, job_runs, projects};
use crate::http::auth::{Caller, Need};
use crate::http::error::ApiError;
use crate::http::request::{Page, PromptQuery, json_body, page_of, paged};
use crate::http::server::AppState;

/// How long a session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignIn {
    email: String,
    password: String,
}

pub async fn sign_in(
    State(state): State<Arc<AppState>>,
    bytes: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let request: SignIn = json_body(&bytes)?;
    let client = state.postgres.get().await?;
    let session = identity::sign_in(&**client, &request.email, &request.password, SESSION_TTL).await??;
    Ok(Json(json!(session)))
}

pub async fn sign_out(
    State(state): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    let Caller::User(_) = caller else {
        return Err(ApiError::bad_request(
            "not_a_session",
            "only a session can sign out",
        ));
    };
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .trim();
    let client = state.postgres.get().await?;
    identity::sign_out(&**client, token).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn me(State(state): State<Arc<AppState>>, caller: Caller) -> Result<Json<Value>, ApiError> {
    match caller {
        Caller::User(user) => {
            let client = state.postgres.get().await?;
            let memberships = identity::memberships(&**client, user.id).await?;
            let organizations: Vec<Value> = memberships
                .iter()
                .map(|(organization, role)| json!({ "id": organization.id, "name": organization.name, "role": role }))
                .collect();
            Ok(Json(json!({ "user": user, "organizations": organizations })))
        }
        Caller::Key(key) => Ok(Json(
            json!({ "project_id": key.project_id, "scopes": key.scopes }),
        )),
        Caller::Organization(organization) => Ok(Json(json!({ "organization_id": organization }))),
    }
}

pub async fn list_members(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(organization): Path<Uuid>,
    Query(page): Query<Page>,
) -> Result<Json<Value>, ApiError> {
    caller.require_role(&state, organization, Role::Viewer).await?;
    let client = state.postgres.get().await?;
    page_of(identity::members(&**client, organization).await?, &page)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddMember {
    email: String,
    role: String,
}

/// Adds a user (by email) with a role, or changes their role. Admins manage members; making an
/// owner takes an owner.
pub async fn set_member(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(organization): Path<Uuid>,
    bytes: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let request: AddMember = json_body(&bytes)?;
    let role = Role::parse(&request.role)?;
    let needed = if role == Role::Owner {
        Role::Owner
    } else {
        Role::Admin
    };
    caller.require_role(&state, organization, needed).await?;
    let client = state.postgres.get().await?;
    let user = identity::find_user(&**client, &request.email).await?;
    identity::set_member(&**client, organization, user.id, role).await?;
    Ok(Json(json!({ "user": user, "role": role })))
}

pub async fn remove_member(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((organization, user)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode, ApiError> {
    caller.require_role(&state, organization, Role::Admin).await?;
    let client = state.postgres.get().await?;
    identity::remove_member(&**client, organization, user).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list_keys(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(project): Path<Uuid>,
    Query(page): Query<Page>,
) -> Result<Json<Value>, ApiError> {
    caller.require(&state, project, Need::Administer).await?;
    let client = state.postgres.get().await?;
    let keys: Vec<Value> = api_keys::list_keys(&**client, project)
        .await?
        .into_iter()
        .map(|k| {
            json!({"public_key": k.public_key, "secret_hint": k.secret_hint, "scopes": k.scopes,
                   "note": k.note, "revoked": k.revoked})
        })
        .collect();
    page_of(keys, &page)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateKey {
    scopes: Vec<Scope>,
    note: Option<String>,
}

pub async fn create_key(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(project): Path<Uuid>,
    bytes: axum::body::Bytes,
) -> Result<Response, ApiError> {
    caller.require(&state, project, Need::Administer).await?;
    let request: CreateKey = json_body(&bytes)?;
    let client = state.postgres.get().await?;
    let key = api_keys::create_key(&**client, project, &request.scopes, request.note.as_deref()).await?;
    let body = json!({"project_id": key.project_id, "public_key": key.public_key, "secret_key": key.secret_key,
                      "note": "the secret key is shown only now"});
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

pub async fn revoke_key(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((project, public_key)): Path<(Uuid, String)>,
) -> Result<StatusCode, ApiError> {
    caller.require(&state, project, Need::Administer).await?;
    let client = state.postgres.get().await?;
    let owner: Option<Uuid> = client
        .query_opt(
            "SELECT project_id FROM api_keys WHERE public_key = $1",
            &[&public_key],
        )
        .await
        .map_err(ApiError::unavailable)?
        .map(|row| row.get(0));
    if owner != Some(project) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no API key {public_key} in this project"),
        ));
    }
    api_keys::revoke_key(&**client, &public_key).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreatePrompt {
    name: String,
    #[serde(rename = "type", default)]
    kind: Option<String>,
    prompt: Value,
    config: Option<Value>,
    #[serde(default)]
    labels: Vec<String>,
    #[serde(default)]
    tags: Vec<String>,
    commit_message: Option<String>,
}

pub async fn create_prompt(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(project): Path<Uuid>,
    bytes: axum::body::Bytes,
) -> Result<Response, ApiError> {
    caller.require(&state, project, Need::Write).await?;
    let request: CreatePrompt = json_body(&bytes)?;
    let kind = match request.kind.as_deref() {
        None | Some("text") => PromptType::Text,
        Some("chat") => PromptType::Chat,
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid_request",
                format!("type: must be text or chat, not {other:?}"),
            ));
        }
    };
    let new = NewPromptVersion {
        name: request.name,
        kind,
        prompt: request.prompt,
        config: request.config.unwrap_or_else(|| json!({})),
        labels: request.labels,
        tags: request.tags,
        commit_message: request.commit_message,
    };
    let mut client = state.postgres.get().await?;
    let version = prompts::create_version(&mut client, project, &new).await?;
    Ok((StatusCode::CREATED, Json(json!(version))).into_response())
}

pub async fn get_prompt(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((project, name)): Path<(Uuid, String)>,
    Query(query): Query<PromptQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.require(&state, project, Need::Read).await?;
    let selector = query.selector()?;
    let client = state.postgres.get().await?;
    Ok(Json(json!(
        prompts::get(&**client, project, &name, &selector).await?
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Labels {
    labels: Vec<String>,
}

pub async fn set_prompt_labels(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((project, name, version)): Path<(Uuid, String, i32)>,
    bytes: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    caller.require(&state, project, Need::Write).await?;
    let request: Labels = json_body(&bytes)?;
    let mut client = state.postgres.get().await?;
    Ok(Json(json!(
        prompts::set_labels(&mut client, project, &name, version, &request.labels).await?
    )))
}

#[derive(Deserialize)]
pub struct PromptListQuery {
    name: Option<String>,
    label: Option<String>,
    tag: Option<String>,
}

pub async fn list_prompts(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(project): Path<Uuid>,
    Query(query): Query<PromptListQuery>,
    Query(page): Query<Page>,
) -> Result<Json<Value>, ApiError> {
    caller.require(&state, project, Need::Read).await?;
    let (page, limit) = page.resolve()?;
    let filter = PromptFilter {
        name: query.name,
        label: query.label,
        tag: query.tag,
    };
    let client = state.postgres.get().await?;
    let (found, total) = prompts::list(&**client, project, &filter, page, limit).await?;
    Ok(paged(
        found.iter().map(|p| json!(p)).collect(),
        page,
        limit,
        total,
    ))
}

/// Deletes a prompt, or only the version `?version=` or `?label=` names.
pub async fn delete_prompt(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((project, name)): Path<(Uuid, String)>,
    Query(query): Query<PromptQuery>,
) -> Result<StatusCode, ApiError> {
    caller.require(&state, project, Need::Write).await?;
    let selector = query.given()?;
    let client = state.postgres.get().await?;
    prompts::delete(&**client, project, &name, selector.as_ref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list_datasets(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(project): Path<Uuid>,
    Query(page): Query<Page>,
) -> Result<Json<Value>, ApiError> {
    caller.require(&state, project, Need::Read).await?;
    let (page, limit) = page.resolve()?;
    let client = state.postgres.get().await?;
    let (found, total) = datasets::list(&**client, project, page, limit).await?;
    Ok(paged(
        found.iter().map(|d| json!(d)).collect(),
        page,
        limit,
        total,
    ))
}

pub async fn get_dataset(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((project, name)): Path<(Uuid, String)>,
) -> Result<Json<Value>, ApiError> {
    caller.require(&state, project, Need::Read).await?;
    let client = state.postgres.get().await?;
    Ok(Json(json!(datasets::get(&**client, project, &name).await?)))
}

/// Deletes a dataset and its items (409 once an experiment has run over it).
pub async fn delete_dataset(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((project, name)): Path<(Uuid, String)>,
) -> Result<StatusCode, ApiError> {
    caller.require(&state, project, Need::Write).await?;
    let client = state.postgres.get().await?;
    datasets::delete(&**client, project, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list_items(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((project, name)): Path<(Uuid, String)>,
    Query(page): Query<Page>,
) -> Result<Json<Value>, ApiError> {
    caller.require(&state, project, Need::Read).await?;
    let (page, limit) = page.resolve()?;
    let client = state.postgres.get().await?;
    // A dataset that does not exist is a 404, not an empty page.
    datasets::get(&**client, project, &name).await?;
    let filter = ItemFilter {
        dataset_name: Some(name),
        ..ItemFilter::default()
    };
    let (items, total) = datasets::list_items(&**client, project, &filter, page, limit).await?;
    Ok(paged(
        items.iter().map(|i| json!(i)).collect(),
        page,
        limit,
        total,
    ))
}

/// Deletes an item (refused while an experiment refers to it: archive it then).
pub async fn delete_item(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((project, name, id)): Path<(Uuid, String, String)>,
) -> Result<StatusCode, ApiError> {
    caller.require(&state, project, Need::Write).await?;
    let client = state.postgres.get().await?;
    item_of_dataset(&**client, project, &name, &id).await?;
    datasets::delete_item(&**client, project, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn get_item(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((project, name, id)): Path<(Uuid, String, String)>,
) -> Result<Json<Value>, ApiError> {
    caller.require(&state, project, Need::Read).await?;
    let client = state.postgres.get().await?;
    Ok(Json(json!(
        item_of_dataset(&**client, project, &name, &id).await?
    )))
}

/// The item, when it is in the dataset the path names (a 404 otherwise).
async fn item_of_dataset(
    client: &impl tokio_postgres::GenericClient,
    project: Uuid,
    name: &str,
    id: &str,
) -> Result<datasets::DatasetItem, ApiError> {
    let item = datasets::get_item(client, project, id).await?;
    if item.dataset_name != name {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no item {id:?} in dataset {name:?}"),
        ));
    }
    Ok(item)
}

pub async fn create_dataset(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(project): Path<Uuid>,
    bytes: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    caller.require(&state, project, Need::Write).await?;
    let request: NewDataset = json_body(&bytes)?;
    let client = state.postgres.get().await?;
    let dataset = datasets::upsert(&**client, project, &request).await?;
    Ok(Json(json!(dataset)))
}

/// `POST .../datasets/{name}/items` takes JSON (one item) or JSONL (`application/x-ndjson`:
/// a bulk import, one item per line).
pub async fn add_items(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((project, name)): Path<(Uuid, String)>,
    headers: axum::http::HeaderMap,
    bytes: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    caller.require(&state, project, Need::Write).await?;
    let client = state.postgres.get().await?;
    let jsonl = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.contains("ndjson") || t.contains("jsonl"));
    if jsonl {
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| ApiError::bad_request("invalid_request", "body: JSONL must be UTF-8"))?;
        let imported = datasets::import_jsonl(&**client, project, &name, text).await?;
        return Ok(Json(json!({ "imported": imported })));
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Item {
        id: Option<String>,
        input: Option<Value>,
        expected_output: Option<Value>,
        metadata: Option<Value>,
        status: Option<String>,
    }
    let item: Item = json_body(&bytes)?;
    let item = datasets::upsert_item(
        &**client,
        project,
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

pub async fn create_organization(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    bytes: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let Caller::User(user) = caller else {
        return Err(ApiError::bad_request(
            "user_required",
            "sign in to create an organization",
        ));
    };
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Create {
        name: String,
    }
    let request: Create = json_body(&bytes)?;
    let mut pooled = state.postgres.get().await?;
    let client: &mut tokio_postgres::Client = &mut pooled;
    let tx = client.transaction().await.map_err(ApiError::unavailable)?;
    let organization = identity::create_organization(&tx, &request.name).await?;
    identity::set_member(&tx, organization.id, user.id, Role::Owner).await?;
    tx.commit().await.map_err(ApiError::unavailable)?;
    Ok((StatusCode::CREATED, Json(json!(organization))).into_response())
}

pub async fn list_projects(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(organization): Path<Uuid>,
    Query(page): Query<Page>,
) -> Result<Json<Value>, ApiError> {
    caller.require_role(&state, organization, Role::Viewer).await?;
    let client = state.postgres.get().await?;
    page_of(
        projects::organization_projects(&**client, organization).await?,
        &page,
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProjectSettings {
    name: Option<String>,
    /// Present and null: keep data forever.
    #[serde(default, deserialize_with = "present")]
    retention_days: Option<Option<i32>>,
}

/// Tells a field sent as `null` (`Some(None)`) from one not sent (`None`).
fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Option<i32>>, D::Error> {
    Ok(Some(Option::deserialize(deserializer)?))
}

pub async fn create_project(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(organization): Path<Uuid>,
    bytes: axum::body::Bytes,
) -> Result<Response, ApiError> {
    caller.require_role(&state, organization, Role::Admin).await?;
    let request: ProjectSettings = json_body(&bytes)?;
    let name = request
        .name
        .ok_or_else(|| ApiError::bad_request("invalid_request", "name: required"))?;
    let client = state.postgres.get().await?;
    let project =
        projects::create_project(&**client, organization, &name, request.retention_days.flatten()).await?;
    Ok((StatusCode::CREATED, Json(json!(project))).into_response())
}

pub async fn get_project(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(project): Path<Uuid>,
) -> Result<Json<Value>, ApiError> {
    caller.require(&state, project, Need::Read).await?;
    let client = state.postgres.get().await?;
    Ok(Json(json!(projects::get_project(&**client, project).await?)))
}

pub async fn update_project(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(project): Path<Uuid>,
    bytes: axum::body::Bytes,
) -> Result<StatusCode, ApiError> {
    caller.require(&state, project, Need::Administer).await?;
    let request: ProjectSettings = json_body(&bytes)?;
    let client = state.postgres.get().await?;
    projects::update_project(
        &**client,
        project,
        request.name.as_deref(),
        request.retention_days,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn archive_project(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(project): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    caller.require(&state, project, Need::Administer).await?;
    let client = state.postgres.get().await?;
    projects::archive_project(&**client, project).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list_evaluators(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(project): Path<Uuid>,
    Query(page): Query<Page>,
) -> Result<Json<Value>, ApiError> {
    caller.require(&state, project, Need::Read).await?;
    let client = state.postgres.get().await?;
    page_of(evaluators::list(&**client, project).await?, &page)
}

pub async fn create_evaluator(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(project): Path<Uuid>,
    bytes: axum::body::Bytes,
) -> Result<Response, ApiError> {
    caller.require(&state, project, Need::Write).await?;
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Create {
        name: String,
        kind: String,
        config: Option<Value>,
        schedule: Option<String>,
    }
    let request: Create = json_body(&bytes)?;
    let client = state.postgres.get().await?;
    let added = evaluators::add(
        &**client,
        &NewEvaluator {
            project_id: project,
            name: request.name,
            kind: request.kind,
            config: request.config.unwrap_or_else(|| json!({})),
            schedule: request.schedule,
        },
    )
    .await?;
    let status = match added {
        evaluators::Added::Created => StatusCode::CREATED,
        evaluators::Added::Exists => StatusCode::OK,
    };
    Ok((
        status,
        Json(json!({ "created": added == evaluators::Added::Created })),
    )
        .into_response())
}

pub async fn update_evaluator(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((project, id)): Path<(Uuid, Uuid)>,
    bytes: axum::body::Bytes,
) -> Result<StatusCode, ApiError> {
    caller.require(&state, project, Need::Write).await?;
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Update {
        config: Option<Value>,
        #[serde(default, deserialize_with = "present_text")]
        schedule: Option<Option<String>>,
        active: Option<bool>,
    }
    fn present_text<'de, D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Option<String>>, D::Error> {
        Ok(Some(Option::deserialize(deserializer)?))
    }
    let request: Update = json_body(&bytes)?;
    let client = state.postgres.get().await?;
    evaluators::update(
        &**client,
        project,
        id,
        request.config.as_ref(),
        request.schedule.as_ref().map(|s| s.as_deref()),
        request.active,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn delete_evaluator(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((project, id)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode, ApiError> {
    caller.require(&state, project, Need::Write).await?;
    let client = state.postgres.get().await?;
    evaluators::delete(&**client, project, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list_experiments(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(project): Path<Uuid>,
    Query(page): Query<Page>,
) -> Result<Json<Value>, ApiError> {
    caller.require(&state, project, Need::Read).await?;
    let client = state.postgres.get().await?;
    page_of(experiments::list(&**client, project).await?, &page)
}

/// An experiment and its run items.
pub async fn get_experiment(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((project, id)): Path<(Uuid, Uuid)>,
) -> Result<Json<Value>, ApiError> {
    caller.require(&state, project, Need::Read).await?;
    let client = state.postgres.get().await?;
    let (experiment, items) = experiments::get(&**client, project, id).await?;
    Ok(Json(json!({ "experiment": experiment, "items": items })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompareQuery {
    a: Uuid,
    b: Uuid,
}

/// Two experiments side by side: per score each one's mean and the paired difference (B − A)
/// with its bootstrap 95% interval; per dataset item its input, expected output and scores.
pub async fn compare_experiments(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(project): Path<Uuid>,
    Query(query): Query<CompareQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.require(&state, project, Need::Read).await?;
    let client = state.postgres.get().await?;
    let (a, a_items) = experiments::get(&**client, project, query.a).await?;
    let (b, b_items) = experiments::get(&**client, project, query.b).await?;
    // Run items recorded in PostgreSQL, and traces that name the experiment themselves.
    let runs = async |experiment: &experiments::Experiment, items: &[experiments::RunItem]| {
        let mut runs = traced_runs(&state.clickhouse, project, &experiment.trace_experiment_id).await?;
        runs.retain(|run| !items.iter().any(|item| item.trace_id == run.trace_id));
        runs.extend(items.iter().map(|item| Run {
            dataset_item_id: item.dataset_item_id.clone(),
            trace_id: item.trace_id.clone(),
        }));
        Ok::<_, ApiError>(runs)
    };
    let (a_runs, b_runs) = (runs(&a, &a_items).await?, runs(&b, &b_items).await?);
    let (scores, items) = compare(&state.clickhouse, project, &a_runs, &b_runs).await?;
    let ids: Vec<String> = items.iter().map(|item| item.dataset_item_id.clone()).collect();
    let stored: std::collections::HashMap<String, datasets::DatasetItem> =
        datasets::get_items(&**client, project, &ids)
            .await?
            .into_iter()
            .map(|item| (item.id.clone(), item))
            .collect();
    let items: Vec<Value> = items
        .into_iter()
        .map(|item| {
            let found = stored.get(&item.dataset_item_id);
            let mut row = json!(item);
            row["input"] = found.map_or(Value::Null, |f| f.input.clone());
            row["expected_output"] = found
                .and_then(|f| f.expected_output.clone())
                .unwrap_or(Value::Null);
            row
        })
        .collect();
    Ok(Json(json!({ "a": a, "b": b, "scores": scores, "items": items })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobRunQuery {
    job: Option<String>,
    limit: Option<i64>,
}

/// The scheduled jobs' newest runs. Jobs run for every project at once, so each project's
/// readers see the same runs; a run's error names the job's failure, not another project's rows.
pub async fn list_job_runs(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(project): Path<Uuid>,
    Query(query): Query<JobRunQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.require(&state, project, Need::Read).await?;
    let limit = query.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(crate::http::request::bad("limit", "must be between 1 and 1000"));
    }
    let client = state.postgres.get().await?;
    let runs = job_runs::recent(&**client, query.job.as_deref(), limit).await?;
    Ok(Json(json!({ "data": runs })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterQuery {
    limit: Option<usize>,
    cursor: Option<String>,
}

/// The project's dead letters, newest first, by cursor.
pub async fn list_dead_letters(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(project): Path<Uuid>,
    Query(query): Query<DeadLetterQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.require(&state, project, Need::Read).await?;
    Ok(Json(
        dead_letter_list(&state.clickhouse, project, query.limit, query.cursor.as_deref()).await?,
    ))
}

/// Records that a trace ran a dataset item in the run `run_name` (created on first use, on the
/// item's dataset).
pub async fn record_run_item(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(project): Path<Uuid>,
    bytes: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    caller.require(&state, project, Need::Write).await?;
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct RunItem {
        run_name: String,
        run_description: Option<String>,
        metadata: Option<Value>,
        dataset_item_id: String,
        trace_id: String,
        observation_id: Option<String>,
    }
    let request: RunItem = json_body(&bytes)?;
    let client = state.postgres.get().await?;
    let item = experiments::record_run_item(
        &**client,
        project,
        &NewRunItem {
            run_name: request.run_name,
            run_description: request.run_description,
            metadata: request.metadata,
            dataset_item_id: request.dataset_item_id,
            trace_id: Some(request.trace_id),
            observation_id: request.observation_id,
        },
    )
    .await?;
    Ok(Json(json!(item)))
}

pub async fn list_prices(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(project): Path<Uuid>,
    Query(page): Query<Page>,
) -> Result<Json<Value>, ApiError> {
    caller.require(&state, project, Need::Read).await?;
    let client = state.postgres.get().await?;
    page_of(prices::list(&**client, project).await?, &page)
}

pub async fn set_price(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(project): Path<Uuid>,
    bytes: axum::body::Bytes,
) -> Result<Response, ApiError> {
    caller.require(&state, project, Need::Write).await?;
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Set {
        model_pattern: String,
        provider: Option<String>,
        input: f64,
        output: f64,
        cache_read: Option<f64>,
        cache_write: Option<f64>,
        valid_from: Option<String>,
    }
    let request: Set = json_body(&bytes)?;
    let client = state.postgres.get().await?;
    let price = prices::set(
        &**client,
        &NewPrice {
            project_id: Some(project),
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

/// Ends every session of a member (admins and owners; anyone for themselves).
pub async fn revoke_sessions(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((organization, user)): Path<(Uuid, Uuid)>,
) -> Result<Json<Value>, ApiError> {
    let own = matches!(&caller, Caller::User(me) if me.id == user);
    if !own {
        caller.require_role(&state, organization, Role::Admin).await?;
    }
    let client = state.postgres.get().await?;
    let member: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM organization_members WHERE organization_id = $1 AND user_id = $2)",
            &[&organization, &user],
        )
        .await
        .map_err(ApiError::unavailable)?
        .get(0);
    if !member {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no member {user}"),
        ));
    }
    let ended = identity::revoke_sessions(&**client, user).await?;
    Ok(Json(json!({ "sessions_ended": ended })))
}

/// Deletes one of the project's own prices.
pub async fn delete_price(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((project, id)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode, ApiError> {
    caller.require(&state, project, Need::Write).await?;
    let client = state.postgres.get().await?;
    prices::delete(&**client, project, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
