//! Every route, its method, its body limit and its handler. The API's routes are registered with
//! `routes!`, from the handlers' `#[utoipa::path]`, so the route table and the OpenAPI document
//! ([`openapi`]) are one: a route added any other way is missing from the document (only the
//! web UI's `/` and `/assets/{name}` are).
//!
//! | route | what |
//! | --- | --- |
//! | `POST /v1/batches` | a signed batch from the edge (gzip accepted) → per-event outcomes |
//! | `POST /v1/keys/verify` | signed by the edge: `{public_key, secret_key}` → project or reason |
//! | `POST /v1/score-configs/lookup` | signed by the edge: `{public_key, secret_key, ids}` → the key's project's configs of those ids |
//! | `GET /v1/export/{table}` | an API key with `export` scope: the project's rows as Arrow or Parquet |
//! | `POST /v1/query` | an API key with `query` scope: one read-only SELECT over the project's rows |
//! | `GET /v1/traces` | `read` scope or the viewer role: the project's traces, filtered, newest first, by cursor |
//! | `GET /v1/sessions` | `read` scope or the viewer role: the project's sessions, most recently active first, by cursor |
//! | `GET /v1/sessions/{id}` | `read` scope or the viewer role: a session's traces oldest first, by cursor |
//! | `GET /v1/observations` | `read` scope or the viewer role: observations newest first, filtered, by cursor |
//! | `GET /v1/scores` | `read` scope or the viewer role: scores newest first, filtered, by cursor |
//! | `GET /v1/metrics` | `read` scope or the viewer role: cost, tokens, count, latency percentiles, error rate by bucket and dimension |
//! | `GET /v1/traces/{id}` | `read` scope or the viewer role: a trace with its observation tree and records, see [`read`] |
//! | `POST /mcp` | `read` scope or the viewer role: the MCP server (streamable HTTP) whose tools search and read the project, see [`mcp`] |
//! | `/api/public/...` | Langfuse's control-plane routes (projects, health, prompts, datasets, dataset items, run items, score configs, models, comments, annotation queues) and reads (`v2/observations`, `v2/metrics`, `v3/scores`, `scores/{id}`), see [`langfuse`] and [`langfuse_scores`] |
//! | `GET /v1/shared/{project}/traces/{id}` | no authentication: a trace a member made public, see [`control::shares`] |
//! | `GET /healthz` | the process is up |
//! | `GET /readyz` | PostgreSQL and ClickHouse answer |
//! | `GET /metrics` | Prometheus metrics |

use std::sync::Arc;

use agenttrace_schemas::batch::MAX_BATCH_BYTES;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use tower_http::decompression::RequestDecompressionLayer;
use utoipa::OpenApi as _;
use utoipa::openapi::Required;
use utoipa::openapi::path::ParameterIn;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

use crate::http::error::ApiError;
use crate::http::limits::{self, Gate};
use crate::http::openapi::ApiDoc;
use crate::http::server::AppState;
use crate::http::{
    analytics, audit, control, health, ingest, langfuse, langfuse_scores, mcp, read, request, ui,
};

pub fn router(state: Arc<AppState>) -> Router {
    let (api, _) = api_routes().split_for_parts();
    api.route("/", get(ui::index))
        .route("/assets/{name}", get(ui::asset))
        .fallback(|| async { ApiError::not_found("no such route") })
        .layer(axum::middleware::from_fn(limits::deadline))
        .layer(axum::middleware::from_fn_with_state(state.clone(), audit::record))
        // After routing (a layer on every route): the matched route's path parameters are known.
        .layer(axum::middleware::from_fn(request::reject_nul_in_parameters))
        .with_state(state)
}

/// The OpenAPI document of every API route.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut openapi = api_routes().into_openapi();
    // A path parameter is always required, but utoipa leaves one out of `required` when a
    // function gives its schema (`schema_with`: the export's `{table}`).
    for item in openapi.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ];
        for operation in operations.into_iter().flatten() {
            for parameter in operation.parameters.iter_mut().flatten() {
                if parameter.parameter_in == ParameterIn::Path {
                    parameter.required = Required::True;
                }
            }
        }
    }
    openapi
}

/// Every API route, with its description.
/// The slots of a route group (see [`limits`]), as a layer.
macro_rules! gate {
    ($gate:expr) => {
        axum::middleware::from_fn_with_state($gate.clone(), limits::limit)
    };
}

fn api_routes() -> OpenApiRouter<Arc<AppState>> {
    // Reads of ClickHouse for a caller: the read API, Langfuse's reads, experiment comparisons.
    let reads = Gate::new("read", 64, 8);
    // The limit applies to the decompressed body, so a gzip bomb stops at MAX_BATCH_BYTES.
    let batches = OpenApiRouter::new()
        .routes(routes!(ingest::post_batch))
        .layer(DefaultBodyLimit::max(MAX_BATCH_BYTES))
        .layer(RequestDecompressionLayer::new());
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(batches)
        .routes(routes!(ingest::verify_key).layer(DefaultBodyLimit::max(16 * 1024)))
        .routes(routes!(ingest::lookup_score_configs).layer(DefaultBodyLimit::max(16 * 1024)))
        .routes(routes!(analytics::export_table).layer(gate!(Gate::new("export", 4, 1))))
        .routes(
            routes!(analytics::run_query)
                .layer(DefaultBodyLimit::max(256 * 1024))
                .layer(gate!(Gate::new("query", 8, 2))),
        )
        .merge(langfuse_routes(&reads))
        .merge(control_routes(&reads))
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(health::metrics))
}

/// AgentTrace's own control-plane routes.
fn control_routes(reads: &Gate) -> OpenApiRouter<Arc<AppState>> {
    let shared = Gate::new("shared", 8, 2);
    OpenApiRouter::new()
        .routes(routes!(control::sessions::sign_in))
        .routes(routes!(control::sessions::sign_out))
        .routes(routes!(control::sessions::me))
        .routes(routes!(control::organizations::create_organization))
        .routes(routes!(
            control::projects::list_projects,
            control::projects::create_project
        ))
        .routes(routes!(read::trace_list).layer(gate!(reads)))
        .routes(routes!(read::search).layer(gate!(reads)))
        .routes(routes!(read::trace).layer(gate!(reads)))
        .routes(routes!(read::observation).layer(gate!(reads)))
        .routes(routes!(read::session_list).layer(gate!(reads)))
        .routes(routes!(read::session).layer(gate!(reads)))
        .routes(routes!(read::observation_list).layer(gate!(reads)))
        .routes(routes!(read::score_list).layer(gate!(reads)))
        .routes(routes!(read::metrics).layer(gate!(reads)))
        .routes(
            routes!(mcp::mcp)
                .layer(DefaultBodyLimit::max(mcp::MAX_BODY_BYTES))
                .layer(gate!(reads)),
        )
        .routes(routes!(
            control::projects::get_project,
            control::projects::update_project,
            control::projects::archive_project
        ))
        .routes(routes!(
            control::evaluators::list_evaluators,
            control::evaluators::create_evaluator
        ))
        .routes(routes!(
            control::evaluators::update_evaluator,
            control::evaluators::delete_evaluator
        ))
        .routes(routes!(control::experiments::list_experiments))
        .routes(routes!(control::experiments::compare_experiments).layer(gate!(reads)))
        .routes(routes!(control::experiments::get_experiment))
        .routes(routes!(control::operations::list_job_runs))
        .routes(routes!(control::operations::list_dead_letters))
        .routes(routes!(control::experiments::record_run_item))
        .routes(routes!(control::prices::list_prices, control::prices::set_price))
        .routes(routes!(control::prices::delete_price))
        .routes(routes!(
            control::organizations::list_members,
            control::organizations::set_member
        ))
        .routes(routes!(control::organizations::remove_member))
        .routes(routes!(control::organizations::list_invitations))
        .routes(routes!(control::organizations::cancel_invitation))
        .routes(routes!(control::invitations::my_invitations))
        .routes(routes!(control::invitations::accept_invitation))
        .routes(routes!(control::invitations::decline_invitation))
        .routes(routes!(control::organizations::revoke_sessions))
        .routes(routes!(
            control::score_configs::list_score_configs,
            control::score_configs::create_score_config
        ))
        .routes(routes!(
            control::score_configs::get_score_config,
            control::score_configs::update_score_config
        ))
        .routes(routes!(
            control::comments::list_comments,
            control::comments::create_comment
        ))
        .routes(routes!(
            control::comments::edit_comment,
            control::comments::delete_comment
        ))
        .routes(routes!(
            control::annotation::list_annotation_queues,
            control::annotation::create_annotation_queue
        ))
        .routes(routes!(
            control::annotation::get_annotation_queue,
            control::annotation::delete_annotation_queue
        ))
        .routes(routes!(
            control::annotation::list_annotation_items,
            control::annotation::add_annotation_items
        ))
        .routes(routes!(control::annotation::add_annotation_items_from_filter).layer(gate!(reads)))
        .routes(routes!(control::annotation::set_annotation_rule))
        .routes(routes!(control::annotation::next_annotation_item))
        .routes(routes!(control::annotation::take_annotation_item))
        .routes(routes!(control::annotation::complete_annotation_item))
        .routes(routes!(control::annotation::skip_annotation_item))
        .routes(routes!(control::annotation::release_annotation_item))
        .routes(routes!(
            control::shares::get_sharing,
            control::shares::set_sharing
        ))
        .routes(routes!(
            control::redaction::get_redaction,
            control::redaction::set_redaction
        ))
        // Each deletion queues mutations every tenant's tables wait behind: a few at once, one
        // per caller (the listing shares the gate).
        .routes(
            routes!(
                control::deletions::create_deletion,
                control::deletions::list_deletions
            )
            .layer(gate!(Gate::new("deletions", 4, 1))),
        )
        .routes(routes!(control::deletions::get_deletion))
        .routes(routes!(
            control::alerts::list_alert_rules,
            control::alerts::create_alert_rule
        ))
        .routes(routes!(
            control::alerts::get_alert_rule,
            control::alerts::change_alert_rule,
            control::alerts::delete_alert_rule
        ))
        .routes(routes!(control::alerts::list_alert_events))
        .routes(routes!(control::alerts::list_alert_deliveries))
        .routes(routes!(
            control::alerts::list_alert_channels,
            control::alerts::create_alert_channel
        ))
        .routes(routes!(control::alerts::delete_alert_channel))
        .routes(routes!(control::audit::audit_log))
        .routes(
            routes!(control::redaction::preview_redaction)
                .layer(DefaultBodyLimit::max(256 * 1024))
                .layer(gate!(Gate::new("redaction_preview", 4, 1))),
        )
        // Signed out, so keyed by nothing a caller cannot vary: a gate of their own, which
        // anonymous floods fill without taking the members' read slots.
        .routes(routes!(control::shares::shared_trace).layer(gate!(shared)))
        .routes(routes!(control::shares::shared_observation).layer(gate!(shared)))
        .routes(routes!(control::keys::list_keys, control::keys::create_key))
        .routes(routes!(control::keys::revoke_key))
        .routes(routes!(
            control::connections::list_connections,
            control::connections::upsert_connection
        ))
        .routes(routes!(control::connections::delete_connection))
        .routes(routes!(control::judges::judge_templates))
        .routes(routes!(control::judges::judge_activity))
        .routes(routes!(control::judges::backfill_judge))
        .routes(routes!(control::judges::judge_calibrations))
        // A preview may call a provider: a few at once, one per caller.
        .routes(routes!(control::judges::preview_judge).layer(gate!(Gate::new("judge_preview", 4, 1))))
        // A test is a call to a provider: a few at once, one per caller.
        .routes(
            routes!(control::connections::test_connection).layer(gate!(Gate::new("connection_test", 4, 1))),
        )
        .routes(routes!(
            control::prompts::list_prompts,
            control::prompts::create_prompt
        ))
        .routes(routes!(
            control::prompts::get_prompt,
            control::prompts::delete_prompt
        ))
        .routes(routes!(control::prompts::set_prompt_labels))
        .routes(routes!(
            control::datasets::list_datasets,
            control::datasets::create_dataset
        ))
        .routes(routes!(
            control::datasets::list_items,
            control::datasets::add_items
        ))
        .routes(routes!(control::datasets::add_items_from_traces).layer(gate!(reads)))
        .routes(routes!(
            control::datasets::get_dataset,
            control::datasets::delete_dataset
        ))
        .routes(routes!(
            control::datasets::get_item,
            control::datasets::delete_item
        ))
        .layer(DefaultBodyLimit::max(16 * 1024 * 1024))
}

/// Langfuse's v2 evaluators and evaluation rules, whose errors its SDK reads with a `code`.
fn langfuse_judge_routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(
            control::judge_rules::langfuse_create_evaluator,
            control::judge_rules::langfuse_list_evaluators
        ))
        .routes(routes!(
            control::judge_rules::langfuse_get_evaluator,
            control::judge_rules::langfuse_update_evaluator,
            control::judge_rules::langfuse_delete_evaluator
        ))
        .routes(routes!(control::judge_rules::langfuse_list_evaluator_versions))
        .routes(routes!(
            control::judge_rules::langfuse_create_evaluation_rule,
            control::judge_rules::langfuse_list_evaluation_rules
        ))
        .routes(routes!(
            control::judge_rules::langfuse_get_evaluation_rule,
            control::judge_rules::langfuse_update_evaluation_rule,
            control::judge_rules::langfuse_delete_evaluation_rule
        ))
        .layer(axum::middleware::map_response(
            crate::http::error::with_langfuse_error_code,
        ))
}

/// Langfuse's control-plane routes (its SDKs send a few MB at most).
fn langfuse_routes(reads: &Gate) -> OpenApiRouter<Arc<AppState>> {
    // A trace delete starts a deletion job: a few at once, one per caller.
    let trace_deletes = Gate::new("trace_deletes", 4, 1);
    OpenApiRouter::new()
        .routes(routes!(langfuse::health))
        .routes(routes!(langfuse::projects))
        .routes(routes!(
            control::connections::langfuse_list_connections,
            control::connections::langfuse_upsert_connection
        ))
        .routes(routes!(control::connections::langfuse_delete_connection))
        .merge(langfuse_judge_routes())
        .routes(routes!(
            control::models::langfuse_list_models,
            control::models::langfuse_create_model
        ))
        .routes(routes!(
            control::models::langfuse_get_model,
            control::models::langfuse_upsert_model,
            control::models::langfuse_delete_model
        ))
        .routes(routes!(
            control::comments::langfuse_list_comments,
            control::comments::langfuse_create_comment
        ))
        .routes(routes!(control::comments::langfuse_get_comment))
        .routes(routes!(
            control::annotation::langfuse_list_queues,
            control::annotation::langfuse_create_queue
        ))
        .routes(routes!(control::annotation::langfuse_get_queue))
        .routes(routes!(
            control::annotation::langfuse_list_items,
            control::annotation::langfuse_create_item
        ))
        .routes(routes!(
            control::annotation::langfuse_get_item,
            control::annotation::langfuse_update_item,
            control::annotation::langfuse_delete_item
        ))
        .routes(routes!(
            control::annotation::langfuse_assign,
            control::annotation::langfuse_unassign
        ))
        .routes(routes!(
            control::score_configs::langfuse_list_score_configs,
            control::score_configs::langfuse_create_score_config
        ))
        .routes(routes!(
            control::score_configs::langfuse_get_score_config,
            control::score_configs::langfuse_update_score_config
        ))
        .routes(routes!(langfuse::list_prompts, langfuse::create_prompt))
        .routes(routes!(langfuse::get_prompt, langfuse::delete_prompt))
        .routes(routes!(langfuse::set_prompt_labels))
        .routes(routes!(langfuse::list_datasets, langfuse::create_dataset))
        .routes(routes!(langfuse::get_dataset))
        .routes(routes!(langfuse::list_items, langfuse::create_item))
        .routes(routes!(langfuse::get_item, langfuse::delete_item))
        .routes(routes!(langfuse::create_run_item))
        .routes(routes!(langfuse::observations_v2).layer(gate!(reads)))
        .routes(routes!(langfuse_scores::scores_v3).layer(gate!(reads)))
        .routes(routes!(langfuse_scores::get_score).layer(gate!(reads)))
        // A delete starts a deletion job: one at a time per caller, few at once.
        .routes(routes!(langfuse_scores::delete_score).layer(gate!(trace_deletes)))
        .routes(routes!(langfuse::metrics_v2).layer(gate!(reads)))
        .routes(routes!(control::deletions::langfuse_delete_trace).layer(gate!(trace_deletes)))
        .routes(routes!(control::deletions::langfuse_delete_traces).layer(gate!(trace_deletes)))
        .layer(DefaultBodyLimit::max(5 * 1024 * 1024))
}

#[cfg(test)]
mod tests {
    /// The routes exempt from the NUL refusal exist (a renamed one would lose its exemption
    /// silently, and answer 400 to a name with NUL that its rows may hold).
    #[test]
    fn every_clickhouse_read_exempt_from_the_nul_refusal_is_a_route() {
        let openapi = super::openapi();
        for path in crate::http::request::CLICKHOUSE_READS {
            assert!(
                openapi
                    .paths
                    .paths
                    .get(*path)
                    .is_some_and(|item| item.get.is_some()),
                "{path} is no GET route"
            );
        }
    }
}
