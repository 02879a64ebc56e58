//! Every route, its method, its body limit and its handler.
//!
//! | route | what |
//! | --- | --- |
//! | `POST /v1/batches` | a signed batch from the edge (gzip accepted) → per-event outcomes |
//! | `POST /v1/keys/verify` | signed by the edge: `{public_key, secret_key}` → project or reason |
//! | `GET /v1/export/{table}` | an API key with `export` scope: the project's rows as Arrow or Parquet |
//! | `POST /v1/query` | an API key with `query` scope: one read-only SELECT over the project's rows |
//! | `GET /v1/traces` | `read` scope or the viewer role: the project's traces, filtered, newest first, by cursor |
//! | `GET /v1/sessions` | `read` scope or the viewer role: the project's sessions, most recently active first, by cursor |
//! | `GET /v1/sessions/{id}` | `read` scope or the viewer role: a session's traces oldest first, by cursor |
//! | `GET /v1/observations` | `read` scope or the viewer role: observations newest first, filtered, by cursor |
//! | `GET /v1/scores` | `read` scope or the viewer role: scores newest first, filtered, by cursor |
//! | `GET /v1/metrics` | `read` scope or the viewer role: cost, tokens, count, latency percentiles, error rate by bucket and dimension |
//! | `GET /v1/traces/{id}` | `read` scope or the viewer role: a trace with its observation tree and records, see [`read`] |
//! | `/api/public/...` | Langfuse's control-plane routes (projects, health, prompts, datasets, dataset items, run items) and reads (`v2/observations`, `v2/metrics`), see [`langfuse`] |
//! | `GET /healthz` | the process is up |
//! | `GET /readyz` | PostgreSQL and ClickHouse answer |
//! | `GET /metrics` | Prometheus metrics |

use std::sync::Arc;

use agenttrace_schemas::batch::MAX_BATCH_BYTES;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, patch, post};
use tower_http::decompression::RequestDecompressionLayer;

use crate::http::error::ApiError;
use crate::http::server::AppState;
use crate::http::{analytics, control, health, ingest, langfuse, read, ui};

/// Every route and its method; `etl/api/openapi.json` must describe each (checked by a test).
pub const ROUTES: &[(&str, &str)] = &[
    ("post", "/v1/batches"),
    ("post", "/v1/keys/verify"),
    ("get", "/v1/export/{table}"),
    ("post", "/v1/query"),
    ("post", "/v1/auth/sign-in"),
    ("post", "/v1/auth/sign-out"),
    ("get", "/v1/me"),
    ("post", "/v1/organizations"),
    ("get", "/v1/organizations/{organization}/projects"),
    ("post", "/v1/organizations/{organization}/projects"),
    ("get", "/v1/traces"),
    ("get", "/v1/projects/{project}/experiments/compare"),
    ("get", "/v1/projects/{project}/job-runs"),
    ("get", "/v1/projects/{project}/dead-letters"),
    ("get", "/v1/traces/{id}"),
    ("get", "/v1/sessions"),
    ("get", "/v1/sessions/{id}"),
    ("get", "/v1/observations"),
    ("get", "/v1/scores"),
    ("get", "/v1/metrics"),
    ("get", "/v1/projects/{project}"),
    ("patch", "/v1/projects/{project}"),
    ("delete", "/v1/projects/{project}"),
    ("get", "/v1/projects/{project}/evaluators"),
    ("post", "/v1/projects/{project}/evaluators"),
    ("patch", "/v1/projects/{project}/evaluators/{id}"),
    ("delete", "/v1/projects/{project}/evaluators/{id}"),
    ("get", "/v1/projects/{project}/experiments"),
    ("get", "/v1/projects/{project}/experiments/{id}"),
    ("post", "/v1/projects/{project}/run-items"),
    ("get", "/v1/projects/{project}/prices"),
    ("post", "/v1/projects/{project}/prices"),
    ("delete", "/v1/projects/{project}/prices/{id}"),
    ("get", "/v1/organizations/{organization}/members"),
    ("post", "/v1/organizations/{organization}/members"),
    ("delete", "/v1/organizations/{organization}/members/{user}"),
    (
        "post",
        "/v1/organizations/{organization}/members/{user}/sessions/revoke",
    ),
    ("get", "/v1/projects/{project}/keys"),
    ("post", "/v1/projects/{project}/keys"),
    ("delete", "/v1/projects/{project}/keys/{public_key}"),
    ("get", "/v1/projects/{project}/prompts"),
    ("post", "/v1/projects/{project}/prompts"),
    ("get", "/v1/projects/{project}/prompts/{name}"),
    ("delete", "/v1/projects/{project}/prompts/{name}"),
    (
        "patch",
        "/v1/projects/{project}/prompts/{name}/versions/{version}",
    ),
    ("get", "/v1/projects/{project}/datasets"),
    ("post", "/v1/projects/{project}/datasets"),
    ("get", "/v1/projects/{project}/datasets/{name}"),
    ("delete", "/v1/projects/{project}/datasets/{name}"),
    ("get", "/v1/projects/{project}/datasets/{name}/items"),
    ("post", "/v1/projects/{project}/datasets/{name}/items"),
    ("get", "/v1/projects/{project}/datasets/{name}/items/{id}"),
    ("delete", "/v1/projects/{project}/datasets/{name}/items/{id}"),
    ("get", "/api/public/health"),
    ("get", "/api/public/projects"),
    ("get", "/api/public/v2/prompts"),
    ("post", "/api/public/v2/prompts"),
    ("get", "/api/public/v2/prompts/{name}"),
    ("delete", "/api/public/v2/prompts/{name}"),
    ("patch", "/api/public/v2/prompts/{name}/versions/{version}"),
    ("get", "/api/public/v2/datasets"),
    ("post", "/api/public/v2/datasets"),
    ("get", "/api/public/v2/datasets/{name}"),
    ("get", "/api/public/dataset-items"),
    ("post", "/api/public/dataset-items"),
    ("get", "/api/public/dataset-items/{id}"),
    ("delete", "/api/public/dataset-items/{id}"),
    ("post", "/api/public/dataset-run-items"),
    ("get", "/api/public/v2/observations"),
    ("get", "/api/public/v2/metrics"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
];

pub fn router(state: Arc<AppState>) -> Router {
    // The limit applies to the decompressed body, so a gzip bomb stops at MAX_BATCH_BYTES.
    let batches = Router::new()
        .route("/v1/batches", post(ingest::post_batch))
        .layer(DefaultBodyLimit::max(MAX_BATCH_BYTES))
        .layer(RequestDecompressionLayer::new());
    Router::new()
        .merge(batches)
        .route(
            "/v1/keys/verify",
            post(ingest::verify_key).layer(DefaultBodyLimit::max(16 * 1024)),
        )
        .route("/v1/export/{table}", get(analytics::export_table))
        .route(
            "/v1/query",
            post(analytics::run_query).layer(DefaultBodyLimit::max(256 * 1024)),
        )
        .merge(langfuse_routes())
        .merge(control_routes())
        .route("/", get(ui::index))
        .route("/assets/{name}", get(ui::asset))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .fallback(|| async { ApiError::not_found("no such route") })
        .with_state(state)
}

/// AgentTrace's own control-plane routes.
fn control_routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/auth/sign-in", post(control::sessions::sign_in))
        .route("/v1/auth/sign-out", post(control::sessions::sign_out))
        .route("/v1/me", get(control::sessions::me))
        .route(
            "/v1/organizations",
            post(control::organizations::create_organization),
        )
        .route(
            "/v1/organizations/{organization}/projects",
            get(control::projects::list_projects).post(control::projects::create_project),
        )
        .route("/v1/traces", get(read::trace_list))
        .route("/v1/traces/{id}", get(read::trace))
        .route("/v1/sessions", get(read::session_list))
        .route("/v1/sessions/{id}", get(read::session))
        .route("/v1/observations", get(read::observation_list))
        .route("/v1/scores", get(read::score_list))
        .route("/v1/metrics", get(read::metrics))
        .route(
            "/v1/projects/{project}",
            get(control::projects::get_project)
                .patch(control::projects::update_project)
                .delete(control::projects::archive_project),
        )
        .route(
            "/v1/projects/{project}/evaluators",
            get(control::evaluators::list_evaluators).post(control::evaluators::create_evaluator),
        )
        .route(
            "/v1/projects/{project}/evaluators/{id}",
            patch(control::evaluators::update_evaluator).delete(control::evaluators::delete_evaluator),
        )
        .route(
            "/v1/projects/{project}/experiments",
            get(control::experiments::list_experiments),
        )
        .route(
            "/v1/projects/{project}/experiments/compare",
            get(control::experiments::compare_experiments),
        )
        .route(
            "/v1/projects/{project}/experiments/{id}",
            get(control::experiments::get_experiment),
        )
        .route(
            "/v1/projects/{project}/job-runs",
            get(control::operations::list_job_runs),
        )
        .route(
            "/v1/projects/{project}/dead-letters",
            get(control::operations::list_dead_letters),
        )
        .route(
            "/v1/projects/{project}/run-items",
            post(control::experiments::record_run_item),
        )
        .route(
            "/v1/projects/{project}/prices",
            get(control::prices::list_prices).post(control::prices::set_price),
        )
        .route(
            "/v1/projects/{project}/prices/{id}",
            delete(control::prices::delete_price),
        )
        .route(
            "/v1/organizations/{organization}/members",
            get(control::organizations::list_members).post(control::organizations::set_member),
        )
        .route(
            "/v1/organizations/{organization}/members/{user}",
            delete(control::organizations::remove_member),
        )
        .route(
            "/v1/organizations/{organization}/members/{user}/sessions/revoke",
            post(control::organizations::revoke_sessions),
        )
        .route(
            "/v1/projects/{project}/keys",
            get(control::keys::list_keys).post(control::keys::create_key),
        )
        .route(
            "/v1/projects/{project}/keys/{public_key}",
            delete(control::keys::revoke_key),
        )
        .route(
            "/v1/projects/{project}/prompts",
            get(control::prompts::list_prompts).post(control::prompts::create_prompt),
        )
        .route(
            "/v1/projects/{project}/prompts/{name}",
            get(control::prompts::get_prompt).delete(control::prompts::delete_prompt),
        )
        .route(
            "/v1/projects/{project}/prompts/{name}/versions/{version}",
            patch(control::prompts::set_prompt_labels),
        )
        .route(
            "/v1/projects/{project}/datasets",
            get(control::datasets::list_datasets).post(control::datasets::create_dataset),
        )
        .route(
            "/v1/projects/{project}/datasets/{name}/items",
            get(control::datasets::list_items).post(control::datasets::add_items),
        )
        .route(
            "/v1/projects/{project}/datasets/{name}",
            get(control::datasets::get_dataset).delete(control::datasets::delete_dataset),
        )
        .route(
            "/v1/projects/{project}/datasets/{name}/items/{id}",
            get(control::datasets::get_item).delete(control::datasets::delete_item),
        )
        .layer(DefaultBodyLimit::max(16 * 1024 * 1024))
}

/// Langfuse's control-plane routes (its SDKs send a few MB at most).
fn langfuse_routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/public/health", get(langfuse::health))
        .route("/api/public/projects", get(langfuse::projects))
        .route(
            "/api/public/v2/prompts",
            get(langfuse::list_prompts).post(langfuse::create_prompt),
        )
        .route(
            "/api/public/v2/prompts/{name}",
            get(langfuse::get_prompt).delete(langfuse::delete_prompt),
        )
        .route(
            "/api/public/v2/prompts/{name}/versions/{version}",
            patch(langfuse::set_prompt_labels),
        )
        .route(
            "/api/public/v2/datasets",
            get(langfuse::list_datasets).post(langfuse::create_dataset),
        )
        .route("/api/public/v2/datasets/{name}", get(langfuse::get_dataset))
        .route(
            "/api/public/dataset-items",
            get(langfuse::list_items).post(langfuse::create_item),
        )
        .route(
            "/api/public/dataset-items/{id}",
            get(langfuse::get_item).delete(langfuse::delete_item),
        )
        .route("/api/public/dataset-run-items", post(langfuse::create_run_item))
        .route("/api/public/v2/observations", get(langfuse::observations_v2))
        .route("/api/public/v2/metrics", get(langfuse::metrics_v2))
        .layer(DefaultBodyLimit::max(5 * 1024 * 1024))
}

#[cfg(test)]
mod tests {
    use super::ROUTES;

    #[test]
    fn the_openapi_document_describes_every_route() {
        let document: serde_json::Value =
            serde_json::from_str(include_str!("../../api/openapi.json")).unwrap();
        let paths = document["paths"].as_object().unwrap();
        for (method, path) in ROUTES {
            assert!(
                paths.get(*path).and_then(|p| p.get(*method)).is_some(),
                "{method} {path} is not in openapi.json"
            );
        }
        assert_eq!(
            paths
                .values()
                .map(|p| p.as_object().unwrap().len())
                .sum::<usize>(),
            ROUTES.len()
        );
    }
}
