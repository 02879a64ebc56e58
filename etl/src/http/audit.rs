//! The audit middleware: every change a caller makes through the API (each `POST`, `PUT`,
//! `PATCH` and `DELETE` but the few in [`NOT_CHANGES`]), every export, and every sign-in, right or
//! wrong, is appended to the audit log ([`crate::control::audit`]) with who made it (the
//! extractor that authenticated the caller leaves it in an [`AuditSlot`]), the route and its
//! parameters, what the answer named, the status and where the request came from. A new route is
//! audited the day it lands, with nothing to add.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, RawPathParams, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::Response;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::control::audit::{self, NewAuditEvent};
use crate::http::auth::Caller;
use crate::http::server::AppState;

/// Routes that change nothing a caller owns, each with why: the edge's signed data plane and
/// the previews (nothing stored).
pub const NOT_CHANGES: &[(&str, &str)] = &[
    (
        "POST /v1/batches",
        "events from the edge: the data plane, counted in metrics",
    ),
    ("POST /v1/keys/verify", "the edge checking a key pair"),
    (
        "POST /v1/score-configs/lookup",
        "the edge checking scores against their configs",
    ),
    (
        "POST /v1/projects/{project}/redaction/preview",
        "a text redacted and returned; nothing stored",
    ),
    (
        "POST /v1/projects/{project}/evaluators/{id}/preview",
        "a judge tried on one observation; nothing stored",
    ),
    (
        "POST /v1/projects/{project}/connections/{id}/test",
        "a connection tried; nothing stored",
    ),
    (
        "POST /mcp",
        "MCP: reads of the project (search, traces, sessions, metrics, prompts) over JSON-RPC; nothing stored",
    ),
];

/// Reads that are recorded: data leaving the platform.
pub const RECORDED_READS: &[&str] = &["GET /v1/export/{table}"];

/// The route whose failures are recorded too (a wrong password is worth knowing about).
const SIGN_IN: &str = "POST /v1/auth/sign-in";

/// Fields of an answer worth naming what was made or changed; never a secret, nor an email (an
/// invitation's id names it, and the log must not show one organization's admins who else
/// holds an address).
const NAMING_FIELDS: &[&str] = &[
    "id",
    "name",
    "version",
    "label",
    "labels",
    "role",
    "status",
    "publicKey",
    "public_key",
    "projectId",
    "project_id",
    "organizationId",
    "organization_id",
    "target",
    "targetIds",
];

/// Whether the audit log records `METHOD /route`.
pub fn recorded(action: &str) -> bool {
    if RECORDED_READS.contains(&action) {
        return true;
    }
    let changes = ["POST ", "PUT ", "PATCH ", "DELETE "]
        .iter()
        .any(|method| action.starts_with(method));
    changes && !NOT_CHANGES.iter().any(|(route, _)| *route == action)
}

/// Who acted, left by the extractor that authenticated the caller.
#[derive(Debug, Clone, Default)]
pub struct Actor {
    pub label: String,
    pub user_id: Option<Uuid>,
    pub project_id: Option<Uuid>,
    pub organization_id: Option<Uuid>,
}

/// Where a request's actor is left for the middleware to read after the handler ran.
#[derive(Debug, Clone, Default)]
pub struct AuditSlot(Arc<Mutex<Option<Actor>>>);

impl AuditSlot {
    pub fn set(&self, actor: Actor) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(actor);
        }
    }

    /// Records the authenticated caller.
    pub fn set_caller(&self, caller: &Caller) {
        let (user_id, project_id, organization_id) = match caller {
            Caller::User(user) => (Some(user.id), None, None),
            Caller::Key(key) => (None, Some(key.project_id), None),
            Caller::Organization(organization) => (None, None, Some(*organization)),
        };
        self.set(Actor {
            label: caller.label(),
            user_id,
            project_id,
            organization_id,
        });
    }

    fn take(&self) -> Option<Actor> {
        self.0.lock().ok().and_then(|mut slot| slot.take())
    }
}

/// What the answer's JSON names (its id, name, version...), never more: an API key's secret is
/// in a create's answer and must not be in the log.
fn named_in(body: &[u8]) -> Map<String, Value> {
    let mut named = Map::new();
    if let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(body) {
        for field in NAMING_FIELDS {
            if let Some(value) = fields.get(*field).filter(|v| !v.is_object()) {
                let text = value.to_string();
                if text.len() <= 512 {
                    named.insert((*field).to_owned(), value.clone());
                }
            }
        }
    }
    named
}

/// Answers this large or larger are not read for what they name.
const MAX_NAMED_BODY: usize = 256 * 1024;

pub(crate) async fn record(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let Some(route) = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
    else {
        return next.run(request).await;
    };
    let action = format!("{} {route}", request.method());
    if !recorded(&action) {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    let slot = AuditSlot::default();
    parts.extensions.insert(slot.clone());
    let mut target = Map::new();
    if let Ok(params) = RawPathParams::from_request_parts(&mut parts, &state).await {
        for (name, value) in params.iter() {
            target.insert(name.to_owned(), Value::String(value.to_owned()));
        }
    }
    let address = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(address)| address.ip().to_string());
    let header_text = |name: header::HeaderName| {
        parts
            .headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    let forwarded_for = header_text(header::HeaderName::from_static("x-forwarded-for"));
    let user_agent = header_text(header::USER_AGENT);
    let path_project = target
        .get("project")
        .and_then(Value::as_str)
        .and_then(|p| p.parse::<Uuid>().ok());
    let path_organization = target
        .get("organization")
        .and_then(Value::as_str)
        .and_then(|p| p.parse::<Uuid>().ok());
    let method = parts.method.clone();

    let response = next.run(Request::from_parts(parts, body)).await;
    let status = response.status();
    // A sign-in refused for its credentials is recorded; one throttled or malformed is not (a
    // flood of those is the throttle's to count, not the log's to keep forever).
    let wrong_password = action == SIGN_IN && status == axum::http::StatusCode::UNAUTHORIZED;
    if !status.is_success() && !wrong_password {
        return response;
    }
    // Only a small JSON answer of known length is read for what it names; any other (an export,
    // a query's rows) passes through untouched.
    let small_json = method != Method::GET
        && response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"))
        && axum::body::HttpBody::size_hint(response.body())
            .exact()
            .is_some_and(|n| n <= MAX_NAMED_BODY as u64);
    let (response, named) = if small_json {
        let (parts, body) = response.into_parts();
        match axum::body::to_bytes(body, MAX_NAMED_BODY).await {
            Ok(bytes) => {
                let named = named_in(&bytes);
                (Response::from_parts(parts, axum::body::Body::from(bytes)), named)
            }
            // A body of the length it declared cannot fail to collect but by an I/O error of its
            // own, which the client would have seen anyway.
            Err(_) => (Response::from_parts(parts, axum::body::Body::empty()), Map::new()),
        }
    } else {
        (response, Map::new())
    };
    for (field, value) in named {
        target.entry(format!("answer.{field}")).or_insert(value);
    }
    let actor = slot.take().unwrap_or(Actor {
        label: "anonymous".into(),
        ..Actor::default()
    });
    // A new organization's own log starts with its creation.
    let created_organization = (action == "POST /v1/organizations")
        .then(|| {
            target
                .get("answer.id")
                .and_then(Value::as_str)
                .and_then(|id| id.parse().ok())
        })
        .flatten();
    let event = NewAuditEvent {
        organization_id: path_organization
            .or(actor.organization_id)
            .or(created_organization),
        project_id: path_project.or(actor.project_id),
        actor: actor.label,
        actor_user_id: actor.user_id,
        action,
        target: Value::Object(target),
        status: status.as_u16(),
        address,
        forwarded_for,
        user_agent,
    };
    // Written by a task of its own, awaited: the entry is written before the answer leaves, and
    // still written if the client hangs up meanwhile (which drops this future).
    let postgres = state.postgres.clone();
    let write = tokio::spawn(async move {
        let written = match postgres.get().await {
            Ok(client) => audit::record(&**client, event).await.map_err(|e| e.to_string()),
            Err(error) => Err(error.to_string()),
        };
        if let Err(error) = written {
            // The change is made and committed: failing the answer now would have the caller
            // retry it. The gap is loud instead.
            metrics::counter!("agenttrace_audit_write_failures_total").increment(1);
            tracing::error!(%error, "an audit entry could not be written");
        }
    });
    let _ = write.await;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_and_exports_are_recorded_reads_and_the_data_plane_are_not() {
        assert!(recorded("POST /v1/projects/{project}/api-keys"));
        assert!(recorded("DELETE /api/public/traces/{traceId}"));
        assert!(recorded("GET /v1/export/{table}"));
        assert!(recorded("POST /v1/auth/sign-in"));
        assert!(!recorded("GET /v1/traces"));
        assert!(!recorded("POST /v1/batches"));
        assert!(!recorded("POST /v1/projects/{project}/redaction/preview"));
    }

    #[test]
    fn an_answer_names_what_it_made_but_never_a_secret() {
        let named = named_in(
            br#"{"id": "k1", "public_key": "pk-at-1", "secret_key": "sk-at-secret", "scopes": ["read"], "note": {"a": 1}}"#,
        );
        assert_eq!(
            Value::Object(named).to_string(),
            r#"{"id":"k1","public_key":"pk-at-1"}"#
        );
        assert!(named_in(b"not json").is_empty());
    }

    #[test]
    fn every_route_exempted_exists() {
        let document = serde_json::to_value(crate::http::router::openapi()).unwrap();
        let mut routes = Vec::new();
        for (path, operations) in document["paths"].as_object().unwrap() {
            for method in operations.as_object().unwrap().keys() {
                routes.push(format!("{} {path}", method.to_uppercase()));
            }
        }
        for (route, _) in NOT_CHANGES {
            assert!(routes.contains(&(*route).to_owned()), "{route} is not a route");
        }
        for route in RECORDED_READS {
            assert!(routes.contains(&(*route).to_owned()), "{route} is not a route");
        }
        assert!(routes.contains(&SIGN_IN.to_owned()));
    }
}
