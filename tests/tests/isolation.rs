//! Tenant isolation, generated from the router's own route list.
//!
//! Every operation of the OpenAPI document (`agenttrace_etl::http::router::openapi()`, built
//! from the same `routes!` table as the router, so a new route is in it the day it is added) is
//! called against a real ETL, PostgreSQL and ClickHouse by the callers of other tenants: another
//! organization's project key, organization key and owner, admin, member and viewer sessions, a
//! key of a sibling project in tenant A's own organization, and no credentials at all. Tenant A
//! (organization, project, and data in every table: traces, observations, scores, sessions,
//! dead letters, prompts, datasets and items, evaluators, experiments, prices, keys, members,
//! job runs) is what they aim at:
//!
//! - **A's ids**: every path parameter and `?project_id=` filled with A's ids. A route that
//!   names A's project, organization or anything in them must answer 401, 403 or 404 (400 or
//!   422 when it refuses the kind of caller or the body first).
//! - **own + A's children**: the caller's own project or organization, and A's ids for what
//!   is inside it, in the path or the body (an evaluator, a key, a member, a user's email, a
//!   dataset item...): the confused deputy. Same expectation when the path or query names one of
//!   A's things; when only the body does, any answer but a server error, as long as it holds
//!   nothing of A's and A is unchanged afterwards.
//! - **own**: every read that needs only a project or organization, on the caller's own: it
//!   must answer without any of A's rows (lists and global views are filtered).
//!
//! A project key's own project is implied (`?project_id=` does not choose it, as documented),
//! so it answers for its own project there. No credential, or no edge signature on the edge's
//! routes, must be a 401. Operations run one after another, deletes last; each caller in turn.
//!
//! Whatever the status, no answer may contain any of A's identifying strings (ids, names,
//! emails, prompt text, item inputs, key secrets) that the request did not carry itself. A
//! positive control runs the same requests as A's owner, key and organization key: every read
//! (and every read made by POST, [`READS_BY_POST`]: MCP's JSON-RPC) answers 2xx and every one of
//! A's strings is seen by A, so the ids are real and the requests well-formed. Afterwards A's
//! views, A's rows in PostgreSQL and ClickHouse, and A's owner's session must be as they were.
//!
//! Path and query parameters are mapped to A's ids by name ([`path_slot`], [`query_slot`]) and
//! request bodies derived from their schemas (every required field, and the optional ones
//! [`body_field`] knows): a parameter or required field not mapped fails the test and says where
//! to add it, and an operation without a security requirement fails unless [`PUBLIC`] lists it
//! with why, so no route slips through.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use agenttrace_cli::send::ProjectKey;
use agenttrace_etl::control::identity::{self, Role};
use agenttrace_etl::control::{api_keys, projects};
use agenttrace_jobs::{Job, run_job};
use agenttrace_schemas::{Scope, Timestamp};
use agenttrace_tests::TestEnv;
use agenttrace_tests::etl::Etl;
use reqwest::Method;
use serde_json::value::to_raw_value;
use serde_json::{Value, json};
use uuid::Uuid;

/// Operations without a security requirement in the document, each with why it may be.
/// They are still called by every caller, and still must not answer with A's data.
const PUBLIC: &[(&str, &str)] = &[
    ("healthz", "liveness: answers `ok` and reads nothing"),
    (
        "readyz",
        "readiness: whether PostgreSQL and ClickHouse answer, no tenant data",
    ),
    (
        "prometheus_metrics",
        "Prometheus scrape: counters labelled by outcome, event type and table, never by project",
    ),
    (
        "langfuse_health",
        "the Langfuse SDKs' health check: status and version",
    ),
    (
        "sign_in",
        "takes its credentials in the body; one answer for a wrong email or password",
    ),
    (
        "shared_trace",
        "a trace a member made public, read signed out; any other trace (all of A's here) is a 404",
    ),
    (
        "shared_observation",
        "an observation of a trace a member made public, read signed out; any other is a 404",
    ),
];

/// Routes outside the document (the router's own test keeps them to exactly these two): the web
/// UI's static files, the same for everyone. `/` and every asset it names are fetched by every
/// caller too, and must not hold A's data.
const OUTSIDE_THE_DOCUMENT: &[(&str, &str)] = &[
    ("/", "the web UI's index.html, public: the UI signs in by itself"),
    ("/assets/{name}", "the web UI's built scripts and styles, public"),
];

/// The security scheme of the edge's routes (`/v1/batches`, `/v1/keys/verify`): an HMAC with
/// the edge's signing secret, which no tenant holds. Every tenant caller gets 401; ingest
/// through them with a foreign project is checked on its own below.
const EDGE_SCHEME: &str = "edgeSignature";

/// Reads made by POST (a JSON-RPC body): the positive control calls them as A too.
const READS_BY_POST: &[&str] = &["POST /mcp"];

/// What "refused" may look like: authentication (401), authorization (403), not found (404),
/// or a refusal of this kind of caller or body before authorization (400, 422).
const DENIED: [u16; 5] = [400, 401, 403, 404, 422];

const PASSWORD: &str = "isolation password 1";

const ALL_SCOPES: [Scope; 6] = [
    Scope::Ingest,
    Scope::Export,
    Scope::Query,
    Scope::Read,
    Scope::Manage,
    Scope::Admin,
];

const ROLES: [Role; 4] = [Role::Owner, Role::Admin, Role::Member, Role::Viewer];

/// One organization with one project, its people and its credentials.
struct Tenant {
    organization: Uuid,
    organization_name: String,
    project: Uuid,
    project_name: String,
    /// A project key with every scope: `(public, secret)`.
    key: (String, String),
    organization_key: (String, String),
    /// Per role: the user and a session token.
    people: Vec<(Role, identity::User, String)>,
}

impl Tenant {
    fn key_auth(&self) -> String {
        format!("Bearer {}:{}", self.key.0, self.key.1)
    }

    fn organization_key_auth(&self) -> String {
        format!("Bearer {}:{}", self.organization_key.0, self.organization_key.1)
    }

    fn owner(&self) -> &identity::User {
        &self.people[0].1
    }
}

/// A's things inside its project and organization, as the routes name them.
struct Children {
    trace: String,
    session: String,
    prompt: String,
    dataset: String,
    item: String,
    evaluator: String,
    experiments: [String; 2],
    price: String,
    /// A's project key (public part).
    key: String,
    /// A's owner, as member routes and `{email, role}` bodies name a user.
    member: String,
    member_email: String,
    /// An invitation A's organization sent (to someone outside both tenants).
    invitation: String,
    /// One of A's observations (in `trace`).
    observation: String,
    /// A's model connection.
    connection: String,
    /// A's Langfuse v2 evaluator (a judge definition) and the evaluation rule that uses it.
    judge_definition: String,
    rule: String,
    /// A's score config.
    score_config: String,
    /// A's score (of `trace`).
    score: String,
    /// A's comment (on `trace`).
    comment: String,
    /// A's annotation queue, and its item (`trace`).
    queue: String,
    queue_item: String,
    /// A's deletion job (of a trace A never had, so A's data stays).
    deletion: String,
    /// A's alert channel and the alert rule that notifies it.
    alert_channel: String,
    alert_rule: String,
    /// Shown to A once; never again, to anyone.
    alert_channel_secret: String,
}

/// A string that identifies tenant A: seeing it anywhere but in A's own answers is a leak.
struct Marker {
    text: String,
    what: &'static str,
    /// Held by A's organization rather than its project (a sibling project's caller may see it).
    organization_level: bool,
    /// Never shown by any route, not even to A (secrets): left out of the coverage check.
    secret: bool,
}

/// What a parameter names.
#[derive(Clone, Debug)]
enum Slot {
    /// `{project}`, `?project_id=`: the project acted in.
    Project,
    /// `{organization}`.
    Organization,
    /// Something inside A's project, or its organization.
    Child { value: String, organization_level: bool },
    /// Not an identifier (an enumerated `{table}`, a prompt `{version}` number).
    Neutral(String),
}

impl Slot {
    fn is_parent(&self) -> bool {
        matches!(self, Slot::Project | Slot::Organization)
    }
}

struct Operation {
    id: String,
    method: Method,
    path: String,
    path_params: Vec<(String, Slot)>,
    query_params: Vec<(String, Slot)>,
    /// Parameters that only make the request plausible (see [`plausible_query`]).
    extra_query: Vec<(&'static str, String)>,
    body: Option<Value>,
    /// The body names something of A's (a dataset item, a trace, a user's email).
    body_names_alpha: bool,
    schemes: Vec<String>,
}

impl Operation {
    fn public(&self) -> bool {
        self.schemes.is_empty()
    }

    fn edge_only(&self) -> bool {
        !self.schemes.is_empty() && self.schemes.iter().all(|s| s == EDGE_SCHEME)
    }

    fn has_parent(&self) -> bool {
        self.path_params
            .iter()
            .chain(&self.query_params)
            .any(|(_, slot)| slot.is_parent())
    }

    fn has_child(&self) -> bool {
        self.path_params
            .iter()
            .chain(&self.query_params)
            .any(|(_, slot)| matches!(slot, Slot::Child { .. }))
    }

    fn label(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Variant {
    Theirs,
    OwnWithTheirChildren,
    Own,
}

impl Variant {
    fn label(self) -> &'static str {
        match self {
            Variant::Theirs => "A's ids",
            Variant::OwnWithTheirChildren => "own + A's children",
            Variant::Own => "own",
        }
    }
}

struct Caller {
    name: String,
    auth: Option<String>,
    own_project: Option<Uuid>,
    own_organization: Option<Uuid>,
    /// A project key: its project is implied, `?project_id=` does not choose it.
    key_implies_project: bool,
    /// In A's organization (a sibling project's key): A's organization-level strings are its own.
    in_alpha_organization: bool,
    /// To sign in again after a route ended the session (sign-out).
    credentials: Option<(String, String)>,
}

/// One request, built for a caller.
struct Call {
    url: String,
    body: Option<Value>,
    /// Names a project or organization that is not the caller's.
    foreign_parent: bool,
    /// Names something inside a project or organization that is not the caller's.
    foreign_child: bool,
}

struct Outcome {
    operation: usize,
    variant: Variant,
    caller: usize,
    status: u16,
    problem: Option<String>,
}

/// A's id for a path parameter, by its name and the path segment before it. `None`: unmapped.
fn path_slot(path: &str, name: &str, schema: &Value, children: &Children) -> Option<Slot> {
    let segments: Vec<&str> = path.split('/').collect();
    let at = segments.iter().position(|s| *s == format!("{{{name}}}"))?;
    let before = segments[at.checked_sub(1)?];
    let child = |value: &String| Slot::Child {
        value: value.clone(),
        organization_level: false,
    };
    if let Some(first) = schema["enum"].as_array().and_then(|values| values.first()) {
        return Some(Slot::Neutral(first.as_str()?.to_owned()));
    }
    Some(match (name, before) {
        ("project", _) => Slot::Project,
        ("organization", _) => Slot::Organization,
        ("id", "traces") => child(&children.trace),
        ("observation_id", "observations") => child(&children.observation),
        ("invitation", "invitations") => Slot::Child {
            value: children.invitation.clone(),
            organization_level: true,
        },
        ("id", "sessions") => child(&children.session),
        ("id", "evaluators") if path.starts_with("/api/public/v2/") => child(&children.judge_definition),
        ("id", "evaluators") => child(&children.evaluator),
        ("id", "evaluation-rules") => child(&children.rule),
        ("id" | "configId", "score-configs") => child(&children.score_config),
        ("scoreId", "scores") => child(&children.score),
        ("id" | "commentId", "comments") => child(&children.comment),
        ("queue" | "queueId", "annotation-queues") => child(&children.queue),
        ("item" | "itemId", "items") => child(&children.queue_item),
        ("id", "models") => child(&children.price),
        ("id", "connections" | "llm-connections") => child(&children.connection),
        ("id", "experiments") => child(&children.experiments[0]),
        ("id", "prices") => child(&children.price),
        ("deletion", "deletions") => child(&children.deletion),
        ("rule", "rules") => child(&children.alert_rule),
        ("channel", "channels") => child(&children.alert_channel),
        ("traceId", "traces") => child(&children.trace),
        ("id", "items" | "dataset-items") => child(&children.item),
        ("name", "prompts") => child(&children.prompt),
        ("name", "datasets") => child(&children.dataset),
        ("version", "versions") => Slot::Neutral("1".into()),
        ("public_key", "keys") => child(&children.key),
        ("user", "members") => Slot::Child {
            value: children.member.clone(),
            organization_level: true,
        },
        _ => return None,
    })
}

/// A's id for a query parameter: `?project_id=` always, the others when required.
/// `Ok(None)`: an optional parameter left out; `Err`: a required one not mapped.
fn query_slot(path: &str, name: &str, required: bool, children: &Children) -> Result<Option<Slot>, ()> {
    let child = |value: &String| {
        Ok(Some(Slot::Child {
            value: value.clone(),
            organization_level: false,
        }))
    };
    match name {
        "project_id" => Ok(Some(Slot::Project)),
        "a" if path.ends_with("/experiments/compare") => child(&children.experiments[0]),
        "b" if path.ends_with("/experiments/compare") => child(&children.experiments[1]),
        // Words every tenant's trace input holds: a search that crossed tenants would list A's.
        "q" if path == "/v1/search" => Ok(Some(Slot::Neutral("trace input".into()))),
        _ if required => Err(()),
        _ => Ok(None),
    }
}

/// Optional query parameters without which a route answers 400 to everyone (so the positive
/// control could not show the route works). Not about authorization.
fn plausible_query(operation: &str) -> Vec<(&'static str, String)> {
    match operation {
        "langfuse_metrics_v2" => vec![(
            "query",
            json!({
                "view": "observations",
                "dimensions": [{"field": "name"}],
                "metrics": [{"measure": "count", "aggregation": "count"}],
                "filters": [],
                "fromTimestamp": "2000-01-01T00:00:00Z",
                "toTimestamp": "2100-01-01T00:00:00Z",
            })
            .to_string(),
        )],
        "metrics" => vec![
            ("from", "2000-01-01T00:00:00Z".into()),
            ("to", "2100-01-01T00:00:00Z".into()),
        ],
        _ => Vec::new(),
    }
}

/// The value of a request body field: A's ids where the field refers to something that exists,
/// fresh names where it names something to create. `None`: unmapped.
fn body_field(field: &str, children: &Children, alpha: &Tenant, probe: &str) -> Option<Value> {
    Some(match field {
        // Names of things to create: fresh, so the caller's own copies are not A's names.
        "name" | "runName" | "run_name" => json!(format!("{probe}-name")),
        "prompt" => json!("a probe's prompt"),
        "kind" => json!("valid_json"),
        "model_pattern" => json!(format!("{probe}-model-.*")),
        "input" | "output" => json!(1.0),
        "scopes" => json!(["read"]),
        "labels" | "newLabels" => json!(["staging"]),
        "role" => json!("viewer"),
        "password" => json!("not the password"),
        "adapter" => json!("openai"),
        "secretKey" => json!(format!("sk-{probe}-provider-key")),
        "outputDefinition" => json!({"dataType": "BOOLEAN"}),
        "dataType" => json!("NUMERIC"),
        "modelName" => json!(format!("{probe}-model")),
        "matchPattern" => json!(format!("{probe}-model-.*")),
        "from" => json!("2026-11-01T00:00:00Z"),
        "to" => json!("2026-11-08T00:00:00Z"),
        "enabled" => json!(false),
        "detectors" => json!(["llm_api_key"]),
        "text" => json!(format!("{probe} text with sk-proj-0123456789abcdefghij")),
        "metric" => json!("cost"),
        "comparison" => json!(">"),
        "threshold" => json!(1.0),
        "windowMinutes" => json!(60),
        "groupBy" => json!("user"),
        "url" => json!(format!("https://{probe}-hooks.example.com/hook")),
        "channels" => json!([children.alert_channel]),
        // References to what A has.
        "datasetName" => json!(children.dataset),
        "evaluatorAssignments" => {
            json!([{"evaluatorId": children.judge_definition, "variableMapping": null}])
        }
        "provider" => json!(format!("{probe}-connection")),
        "datasetItemId" | "dataset_item_id" => json!(children.item),
        "traceId" | "trace_id" => json!(children.trace),
        "objectType" => json!("TRACE"),
        "objectId" => json!(children.trace),
        "projectId" => json!(alpha.project),
        "content" => json!(format!("{probe} comment")),
        "scoreConfigIds" | "ids" => json!([children.score_config]),
        "items" => json!([{"objectType": "TRACE", "objectId": children.trace}]),
        "trace_ids" | "traceIds" => json!([children.trace]),
        "scores" => json!([{"config_id": children.score_config, "value": 1}]),
        "userId" => json!(children.member),
        "public" => json!(false),
        "observation_id" => json!(children.observation),
        "email" => json!(children.member_email),
        "public_key" => json!(alpha.key.0),
        "secret_key" => json!(alpha.key.1),
        "sql" => json!(format!(
            "SELECT * FROM traces WHERE id = '{}' LIMIT 10",
            children.trace
        )),
        // POST /mcp: a JSON-RPC call of the MCP tool that reads a trace, naming A's.
        "jsonrpc" => json!("2.0"),
        "method" => json!("tools/call"),
        "params" => json!({"name": "get_trace", "arguments": {"trace_id": children.trace}}),
        _ => return None,
    })
}

/// `$ref` resolved against the document's components.
fn resolve<'a>(document: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(reference) => {
            let name = reference.trim_start_matches("#/components/schemas/");
            &document["components"]["schemas"][name]
        }
        None => schema,
    }
}

/// A valid body for an operation's JSON request body: its required fields, and the optional
/// ones [`body_field`] has a value for.
fn request_body(
    document: &Value,
    operation: &Value,
    children: &Children,
    alpha: &Tenant,
    probe: &str,
) -> Result<Option<Value>, String> {
    let Some(content) = operation["requestBody"]["content"].as_object() else {
        return Ok(None);
    };
    let Some(media) = content.get("application/json") else {
        return Err(format!(
            "a request body in {:?}",
            content.keys().collect::<Vec<_>>()
        ));
    };
    let schema = resolve(document, &media["schema"]);
    let title = media["schema"]["$ref"].as_str().unwrap_or("inline").to_owned();
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|fields| fields.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut body = serde_json::Map::new();
    for field in schema["properties"]
        .as_object()
        .into_iter()
        .flat_map(|p| p.keys())
    {
        if let Some(value) = body_field(field, children, alpha, probe) {
            body.insert(field.clone(), value);
        }
    }
    // A channel's kind is not an evaluator's.
    if title.ends_with("/NewAlertChannel") {
        body.insert("kind".into(), json!("webhook"));
    }
    // A JSON-RPC message without an id is a notification, answered 202 with nothing in it.
    if title.ends_with("/McpRequest") {
        body.insert("id".into(), json!(1));
    }
    if let Some(missing) = required.iter().find(|field| !body.contains_key(**field)) {
        return Err(format!(
            "body field {missing:?} of {title}: give it a value in body_field()"
        ));
    }
    Ok(Some(Value::Object(body)))
}

/// Every operation of the document, with its parameters mapped; panics listing every unmapped
/// parameter or body field.
fn operations(document: &Value, children: &Children, alpha: &Tenant, probe: &str) -> Vec<Operation> {
    let mut found = Vec::new();
    let mut unmapped = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("a path item") {
            let Ok(method) = method.to_uppercase().parse::<Method>() else {
                continue;
            };
            if !operation.is_object() || operation.get("responses").is_none() {
                continue;
            }
            let id = operation["operationId"].as_str().unwrap_or_default().to_owned();
            let mut path_params = Vec::new();
            let mut query_params = Vec::new();
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                let name = parameter["name"].as_str().unwrap_or_default();
                let required = parameter["required"].as_bool().unwrap_or(false);
                match parameter["in"].as_str() {
                    Some("path") => match path_slot(path, name, &parameter["schema"], children) {
                        Some(slot) => path_params.push((name.to_owned(), slot)),
                        None => unmapped.push(format!(
                            "{method} {path}: path parameter {{{name}}}: map it to one of A's ids in path_slot()"
                        )),
                    },
                    Some("query") => match query_slot(path, name, required, children) {
                        Ok(Some(slot)) => query_params.push((name.to_owned(), slot)),
                        Ok(None) => {}
                        Err(()) => unmapped.push(format!(
                            "{method} {path}: required query parameter {name:?}: map it in query_slot()"
                        )),
                    },
                    Some("header") => {}
                    other => unmapped.push(format!("{method} {path}: a parameter in {other:?}")),
                }
            }
            // Fresh names per operation: what one route creates does not collide with another's.
            let probe = format!(
                "{probe}-{}",
                operation["operationId"].as_str().unwrap_or_default()
            );
            let body = match request_body(document, operation, children, alpha, &probe) {
                Ok(body) => body,
                Err(problem) => {
                    unmapped.push(format!("{method} {path}: {problem}"));
                    None
                }
            };
            let schemes = operation["security"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_object)
                .flat_map(|requirement| requirement.keys().cloned())
                .collect();
            found.push(Operation {
                extra_query: plausible_query(&id),
                id,
                method,
                path: path.clone(),
                path_params,
                query_params,
                body_names_alpha: false,
                body,
                schemes,
            });
        }
    }
    assert!(
        unmapped.is_empty(),
        "the isolation test cannot call every route yet:\n  {}",
        unmapped.join("\n  ")
    );
    found
}

/// The request an operation makes for `caller` in `variant`, or `None` when the variant does
/// not apply (or would repeat another).
fn call(operation: &Operation, caller: &Caller, variant: Variant, alpha: &Tenant) -> Option<Call> {
    let (project, organization) = match variant {
        Variant::Theirs => (alpha.project, alpha.organization),
        Variant::OwnWithTheirChildren | Variant::Own => (caller.own_project?, caller.own_organization?),
    };
    match variant {
        Variant::Theirs => {}
        Variant::OwnWithTheirChildren => {
            let theirs = (Some(alpha.project), Some(alpha.organization));
            let same = (caller.own_project, caller.own_organization) == theirs;
            if !operation.has_parent() || same || !(operation.has_child() || operation.body_names_alpha) {
                return None;
            }
        }
        Variant::Own => {
            if operation.method != Method::GET || !operation.has_parent() || operation.has_child() {
                return None;
            }
        }
    }
    let mut foreign_parent = false;
    let mut foreign_child = false;
    let mut value_of = |slot: &Slot, in_query: bool| match slot {
        Slot::Project => {
            let foreign = Some(project) != caller.own_project;
            foreign_parent |= foreign && !(in_query && caller.key_implies_project);
            project.to_string()
        }
        Slot::Organization => {
            foreign_parent |= Some(organization) != caller.own_organization;
            organization.to_string()
        }
        Slot::Child {
            value,
            organization_level,
        } => {
            let own = if *organization_level {
                caller.own_organization == Some(alpha.organization)
            } else {
                caller.own_project == Some(alpha.project)
            };
            foreign_child |= !own;
            value.clone()
        }
        Slot::Neutral(value) => value.clone(),
    };
    let mut url = operation.path.clone();
    for (name, slot) in &operation.path_params {
        url = url.replace(&format!("{{{name}}}"), &value_of(slot, false));
    }
    let mut query: Vec<(String, String)> = operation
        .query_params
        .iter()
        .map(|(name, slot)| (name.clone(), value_of(slot, true)))
        .collect();
    query.extend(
        operation
            .extra_query
            .iter()
            .map(|(n, v)| ((*n).to_owned(), v.clone())),
    );
    if !query.is_empty() {
        let encoded: Vec<String> = query
            .iter()
            .map(|(name, value)| format!("{name}={}", encode(value)))
            .collect();
        url = format!("{url}?{}", encoded.join("&"));
    }
    Some(Call {
        url,
        body: operation.body.clone(),
        foreign_parent,
        foreign_child,
    })
}

/// Percent-encodes a query value.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Sends one request; the status and the body as text (lossy for binary answers).
async fn send(
    http: &reqwest::Client,
    base: &str,
    method: Method,
    url: &str,
    auth: Option<&str>,
    body: Option<&Value>,
) -> (u16, String) {
    let mut request = http.request(method, format!("{base}{url}"));
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
    let status = response.status().as_u16();
    let bytes = response.bytes().await.unwrap_or_default();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

/// A's strings in `answer` that the request did not carry itself.
fn leaks<'a>(markers: &'a [Marker], caller: &Caller, request: &str, answer: &str) -> Vec<&'a Marker> {
    markers
        .iter()
        .filter(|m| !(caller.in_alpha_organization && m.organization_level))
        .filter(|m| answer.contains(&m.text) && !request.contains(&m.text))
        .collect()
}

fn excerpt(text: &str, around: &str) -> String {
    let at = text.find(around).unwrap_or(0);
    let mut start = at.saturating_sub(80);
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let mut end = (at + around.len() + 80).min(text.len());
    while !text.is_char_boundary(end) {
        end += 1;
    }
    text[start..end].replace('\n', " ")
}

async fn sign_in(http: &reqwest::Client, base: &str, email: &str, password: &str) -> String {
    let (status, text) = send(
        http,
        base,
        Method::POST,
        "/v1/auth/sign-in",
        None,
        Some(&json!({"email": email, "password": password})),
    )
    .await;
    assert_eq!(status, 200, "signing in {email}: {text}");
    let answer: Value = serde_json::from_str(&text).unwrap();
    answer["token"].as_str().unwrap().to_owned()
}

/// An organization, a project, a user and session per role, a project key with every scope and
/// an organization key.
async fn tenant(
    env: &TestEnv,
    etl: &Etl,
    http: &reqwest::Client,
    label: &str,
    nonce: &str,
    password_hash: &str,
) -> Tenant {
    let pg = env.postgres().await;
    let organization_name = format!("{label}-org-{nonce}");
    let organization = identity::create_organization(&pg, &organization_name)
        .await
        .unwrap()
        .id;
    let project_name = format!("{label}-project-{nonce}");
    let project = projects::create_project(&pg, organization, &project_name, None)
        .await
        .unwrap()
        .id;
    let key = api_keys::create_key(&pg, project, &ALL_SCOPES, None)
        .await
        .unwrap();
    let organization_key = identity::create_organization_key(&pg, organization, None)
        .await
        .unwrap();
    let mut people = Vec::new();
    for role in ROLES {
        let email = format!("{label}-{}-{nonce}@{label}.test", role.as_str());
        // In SQL, with one password hash for everyone: Argon2 is slow in a debug build, and
        // only sign-in needs to verify it.
        let name = format!("{label} {} {nonce}", role.as_str());
        let row = pg
            .query_one(
                "INSERT INTO users (email, name, password_hash) VALUES ($1, $2, $3) RETURNING id",
                &[&email, &name, &password_hash],
            )
            .await
            .unwrap();
        let user = identity::User {
            id: row.get(0),
            email: email.clone(),
            name: Some(name),
        };
        pg.execute(
            "INSERT INTO organization_members (organization_id, user_id, role) VALUES ($1, $2, $3)",
            &[&organization, &user.id, &role.as_str()],
        )
        .await
        .unwrap();
        let token = sign_in(http, &etl.url, &email, PASSWORD).await;
        people.push((role, user, token));
    }
    Tenant {
        organization,
        organization_name,
        project,
        project_name,
        key: (key.public_key, key.secret_key),
        organization_key: (organization_key.public_key, organization_key.secret_key),
        people,
    }
}

/// Sends events as the edge does (signed, under `key`); the ETL's answer.
async fn ingest(etl: &Etl, key: &ProjectKey, events: &[Value]) -> (u16, String) {
    let raw = events.iter().map(|e| to_raw_value(e).unwrap()).collect();
    let body = etl.client.batch_body(key, Uuid::now_v7(), raw);
    let sent = etl
        .client
        .post_body(body, Timestamp::now().as_micros() / 1_000_000, None)
        .await
        .unwrap();
    (sent.status, sent.body)
}

/// A trace with a session, a generation under it, a score, and an event the ETL refuses (a
/// dead letter), every id and name starting with `prefix`.
fn events(prefix: &str) -> Vec<Value> {
    let now = Timestamp::now().as_micros();
    let at = |offset_ms: i64| Timestamp::from_micros(now - 60_000_000 + offset_ms * 1000).to_string();
    vec![
        json!({"id": format!("{prefix}-event-1"), "type": "trace", "timestamp": at(0), "body": {
            "id": format!("{prefix}-trace"), "name": format!("{prefix}-trace-name"),
            "session_id": format!("{prefix}-session"), "user_id": format!("{prefix}-end-user"),
            "input": {"question": format!("{prefix} trace input")}}}),
        json!({"id": format!("{prefix}-event-2"), "type": "observation", "timestamp": at(1), "body": {
            "id": format!("{prefix}-observation"), "trace_id": format!("{prefix}-trace"),
            "type": "generation", "name": format!("{prefix}-generation-name"),
            "start_time": at(1), "end_time": at(900), "model": format!("{prefix}-model"),
            "usage": {"input_tokens": 10, "output_tokens": 5},
            "output": {"answer": format!("{prefix} generation output")}}}),
        json!({"id": format!("{prefix}-event-3"), "type": "score", "timestamp": at(2), "body": {
            "id": format!("{prefix}-score"), "trace_id": format!("{prefix}-trace"),
            "name": format!("{prefix}-score-name"), "value": 0.5}}),
        json!({"id": format!("{prefix}-dead-letter"), "type": "trace", "timestamp": "yesterday", "body": {}}),
    ]
}

/// Creates `(path, body)` through the API as `auth`; the answer, which must be 2xx.
async fn create(http: &reqwest::Client, base: &str, auth: &str, path: &str, body: Value) -> Value {
    let (status, text) = send(http, base, Method::POST, path, Some(auth), Some(&body)).await;
    assert!(
        (200..300).contains(&status),
        "POST {path} {body}: {status} {text}"
    );
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

async fn get_json(http: &reqwest::Client, base: &str, auth: &str, path: &str) -> Value {
    let (status, text) = send(http, base, Method::GET, path, Some(auth), None).await;
    assert_eq!(status, 200, "GET {path}: {text}");
    serde_json::from_str(&text).unwrap()
}

/// The id of the row named `name` in a paged listing.
fn id_named(page: &Value, name: &str) -> String {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["name"] == name || row["model_pattern"] == name)
        .unwrap_or_else(|| panic!("{name} in {page}"))["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Prompts, a dataset and item, evaluators, two experiments over the item, a price: through
/// the API, as the tenant's owner.
async fn control_data(http: &reqwest::Client, base: &str, tenant: &Tenant, prefix: &str) -> Children {
    let auth = format!("Bearer {}", tenant.people[0].2);
    let project = format!("/v1/projects/{}", tenant.project);
    let prompt = format!("{prefix}-prompt");
    create(
        http,
        base,
        &auth,
        &format!("{project}/prompts"),
        json!({"name": prompt, "prompt": format!("{prefix} prompt text {{{{x}}}}"), "labels": ["production"]}),
    )
    .await;
    let dataset = format!("{prefix}-dataset");
    create(
        http,
        base,
        &auth,
        &format!("{project}/datasets"),
        json!({"name": dataset}),
    )
    .await;
    let item = format!("{prefix}-item");
    create(
        http,
        base,
        &auth,
        &format!("{project}/datasets/{dataset}/items"),
        json!({"id": item, "input": {"q": format!("{prefix} item input")}, "expected_output": format!("{prefix} expected output")}),
    )
    .await;
    // One evaluator on its own schedule, one whose config the evaluation job cannot use.
    for (name, body) in [
        (
            format!("{prefix}-scheduled-evaluator"),
            json!({"kind": "latency_threshold", "config": {"max_ms": 60000}, "schedule": "0 0 * * * *"}),
        ),
        (
            format!("{prefix}-broken-evaluator"),
            json!({"kind": "latency_threshold", "config": {}}),
        ),
    ] {
        let mut body = body;
        body["name"] = json!(name);
        create(http, base, &auth, &format!("{project}/evaluators"), body).await;
    }
    for run in ["run-a", "run-b"] {
        create(
            http,
            base,
            &auth,
            &format!("{project}/run-items"),
            json!({"run_name": format!("{prefix}-{run}"), "dataset_item_id": item, "trace_id": format!("{prefix}-trace")}),
        )
        .await;
    }
    let pattern = format!("{prefix}-model.*");
    create(
        http,
        base,
        &auth,
        &format!("{project}/prices"),
        json!({"model_pattern": pattern, "input": 1.0, "output": 2.0}),
    )
    .await;
    // A model connection whose calls go nowhere (a private address the server refuses).
    let (status, text) = send(
        http,
        base,
        Method::PUT,
        &format!("{project}/connections"),
        Some(&auth),
        Some(&json!({
            "provider": format!("{prefix}-connection"),
            "adapter": "openai",
            "secretKey": format!("sk-{prefix}-secret-key"),
            "baseURL": "http://127.0.0.1:9/v1",
            "config": {"model": format!("{prefix}-judge-model")},
        })),
    )
    .await;
    assert_eq!(status, 201, "PUT connections: {text}");
    let connection: Value = serde_json::from_str(&text).unwrap();
    // A Langfuse v2 evaluator and a (disabled) rule that uses it.
    let key_auth = tenant.key_auth();
    let judge_definition = create(
        http,
        base,
        &key_auth,
        "/api/public/v2/evaluators",
        json!({"name": format!("{prefix}-judge-definition"), "prompt": format!("{prefix} judge prompt {{{{input}}}}"),
               "outputDefinition": {"dataType": "BOOLEAN"}}),
    )
    .await["id"]
        .as_str()
        .expect("an evaluator id")
        .to_owned();
    let rule = create(
        http,
        base,
        &key_auth,
        "/api/public/v2/evaluation-rules",
        json!({"name": format!("{prefix}-rule"), "enabled": false,
               "evaluatorAssignments": [{"evaluatorId": judge_definition}]}),
    )
    .await["id"]
        .as_str()
        .expect("a rule id")
        .to_owned();
    let score_config = create(
        http,
        base,
        &key_auth,
        "/api/public/score-configs",
        json!({"name": format!("{prefix}-config"), "dataType": "NUMERIC", "minValue": 0, "maxValue": 5,
               "description": format!("{prefix} config description")}),
    )
    .await["id"]
        .as_str()
        .expect("a score config id")
        .to_owned();
    let comment = create(
        http,
        base,
        &key_auth,
        "/api/public/comments",
        json!({"projectId": tenant.project, "objectType": "TRACE", "objectId": format!("{prefix}-trace"),
               "content": format!("{prefix} comment text")}),
    )
    .await["id"]
        .as_str()
        .expect("a comment id")
        .to_owned();
    let queue = create(
        http,
        base,
        &key_auth,
        "/api/public/annotation-queues",
        json!({"name": format!("{prefix}-queue"), "description": format!("{prefix} queue description"),
               "scoreConfigIds": [score_config]}),
    )
    .await["id"]
        .as_str()
        .expect("a queue id")
        .to_owned();
    let queue_item = create(
        http,
        base,
        &key_auth,
        &format!("/api/public/annotation-queues/{queue}/items"),
        json!({"objectType": "TRACE", "objectId": format!("{prefix}-trace")}),
    )
    .await["id"]
        .as_str()
        .expect("a queue item id")
        .to_owned();
    let deletion = create(
        http,
        base,
        &auth,
        &format!("{project}/deletions"),
        json!({"traceIds": [format!("{prefix}-never-sent")]}),
    )
    .await["id"]
        .as_str()
        .expect("a deletion id")
        .to_owned();
    // Finished before A's views are taken, so that they do not change by themselves.
    let started = Instant::now();
    while get_json(http, base, &auth, &format!("{project}/deletions/{deletion}")).await["status"]
        != "succeeded"
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "A's deletion did not finish"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let alert_channel = create(
        http,
        base,
        &auth,
        &format!("{project}/alerts/channels"),
        json!({"name": format!("{prefix}-channel"), "kind": "webhook",
               "url": format!("https://{prefix}-hooks.example.com/{prefix}-hook-path")}),
    )
    .await;
    let alert_channel_secret = alert_channel["secret"]
        .as_str()
        .expect("a channel secret")
        .to_owned();
    let alert_channel = alert_channel["id"].as_str().expect("a channel id").to_owned();
    let alert_rule = create(
        http,
        base,
        &auth,
        &format!("{project}/alerts/rules"),
        json!({"name": format!("{prefix}-alert-rule"), "metric": "cost", "comparison": ">",
               "threshold": 1000, "windowMinutes": 60, "groupBy": "user", "channels": [alert_channel]}),
    )
    .await["id"]
        .as_str()
        .expect("an alert rule id")
        .to_owned();
    let evaluators = get_json(http, base, &auth, &format!("{project}/evaluators")).await;
    let experiments = get_json(http, base, &auth, &format!("{project}/experiments")).await;
    let prices = get_json(http, base, &auth, &format!("{project}/prices")).await;
    let invitation = create(
        http,
        base,
        &auth,
        &format!("/v1/organizations/{}/members", tenant.organization),
        json!({"email": format!("{prefix}-invitee@example.com"), "role": "viewer"}),
    )
    .await["id"]
        .as_str()
        .expect("an invitation id")
        .to_owned();
    Children {
        trace: format!("{prefix}-trace"),
        session: format!("{prefix}-session"),
        prompt,
        dataset,
        item,
        evaluator: id_named(&evaluators, &format!("{prefix}-scheduled-evaluator")),
        experiments: [
            id_named(&experiments, &format!("{prefix}-run-a")),
            id_named(&experiments, &format!("{prefix}-run-b")),
        ],
        price: id_named(&prices, &pattern),
        key: tenant.key.0.clone(),
        member: tenant.owner().id.to_string(),
        member_email: tenant.owner().email.clone(),
        invitation,
        observation: format!("{prefix}-observation"),
        connection: connection["id"].as_str().expect("a connection id").to_owned(),
        judge_definition,
        rule,
        score_config,
        score: format!("{prefix}-score"),
        comment,
        queue,
        queue_item,
        deletion,
        alert_channel,
        alert_rule,
        alert_channel_secret,
    }
}

/// Every string that identifies A.
fn markers(
    alpha: &Tenant,
    children: &Children,
    prefix: &str,
    extra: Vec<(String, &'static str)>,
) -> Vec<Marker> {
    let mut markers = Vec::new();
    let mut add = |text: String, what: &'static str, organization_level: bool, secret: bool| {
        markers.push(Marker {
            text,
            what,
            organization_level,
            secret,
        });
    };
    add(alpha.organization.to_string(), "A's organization id", true, false);
    add(
        alpha.organization_name.clone(),
        "A's organization name",
        true,
        false,
    );
    add(
        alpha.organization_key.0.clone(),
        "A's organization key",
        true,
        true,
    );
    add(
        alpha.organization_key.1.clone(),
        "A's organization key secret",
        true,
        true,
    );
    for (_, user, token) in &alpha.people {
        add(user.id.to_string(), "an id of A's user", true, false);
        add(user.email.clone(), "an email of A's user", true, false);
        add(
            user.name.clone().unwrap_or_default(),
            "a name of A's user",
            true,
            false,
        );
        add(token.clone(), "a session token of A's user", true, true);
    }
    add(children.invitation.clone(), "A's invitation id", true, false);
    add(
        format!("{prefix}-invitee@example.com"),
        "the email A's organization invited",
        true,
        false,
    );
    add(alpha.project.to_string(), "A's project id", false, false);
    add(alpha.project_name.clone(), "A's project name", false, false);
    add(alpha.key.0.clone(), "A's public key", false, false);
    add(alpha.key.1.clone(), "A's secret key", false, true);
    add(
        format!("sk-{prefix}-secret-key"),
        "A's provider API key",
        false,
        true,
    );
    add(children.connection.clone(), "A's connection id", false, false);
    add(children.deletion.clone(), "A's deletion id", false, false);
    add(
        children.alert_channel.clone(),
        "A's alert channel id",
        false,
        false,
    );
    add(children.alert_rule.clone(), "A's alert rule id", false, false);
    add(
        format!("{prefix}-alert-rule"),
        "A's alert rule name",
        false,
        false,
    );
    add(
        format!("{prefix}-hook-path"),
        "A's alert channel URL",
        false,
        true,
    );
    add(
        children.alert_channel_secret.clone(),
        "A's alert channel secret",
        false,
        true,
    );
    add(
        children.judge_definition.clone(),
        "A's v2 evaluator id",
        false,
        false,
    );
    add(children.rule.clone(), "A's evaluation rule id", false, false);
    add(children.score_config.clone(), "A's score config id", false, false);
    add(children.comment.clone(), "A's comment id", false, false);
    add(format!("{prefix} comment text"), "A's comment", false, false);
    add(children.queue.clone(), "A's annotation queue id", false, false);
    add(
        format!("{prefix}-queue"),
        "A's annotation queue name",
        false,
        false,
    );
    add(
        format!("{prefix} queue description"),
        "A's annotation queue description",
        false,
        false,
    );
    add(
        children.queue_item.clone(),
        "A's annotation queue item id",
        false,
        false,
    );
    add(format!("{prefix}-config"), "A's score config name", false, false);
    add(
        format!("{prefix} config description"),
        "A's score config description",
        false,
        false,
    );
    add(
        format!("{prefix} judge prompt"),
        "A's v2 evaluator prompt",
        false,
        false,
    );
    add(format!("{prefix}-rule"), "A's evaluation rule name", false, false);
    add(
        format!("{prefix}-connection"),
        "A's connection name",
        false,
        false,
    );
    for (text, what) in [
        (children.trace.clone(), "A's trace id"),
        (format!("{prefix}-trace-name"), "A's trace name"),
        (format!("{prefix} trace input"), "A's trace input"),
        (children.session.clone(), "A's session id"),
        (format!("{prefix}-end-user"), "A's end user"),
        (format!("{prefix}-observation"), "A's observation id"),
        (format!("{prefix}-generation-name"), "A's generation name"),
        (format!("{prefix} generation output"), "A's generation output"),
        (format!("{prefix}-model"), "A's model"),
        (format!("{prefix}-score"), "A's score id"),
        (format!("{prefix}-score-name"), "A's score name"),
        (format!("{prefix}-dead-letter"), "A's dead letter"),
        (children.prompt.clone(), "A's prompt name"),
        (format!("{prefix} prompt text"), "A's prompt text"),
        (children.dataset.clone(), "A's dataset name"),
        (children.item.clone(), "A's dataset item id"),
        (format!("{prefix} item input"), "A's dataset item input"),
        (format!("{prefix} expected output"), "A's expected output"),
        (children.evaluator.clone(), "A's evaluator id"),
        (format!("{prefix}-scheduled-evaluator"), "A's evaluator name"),
        (format!("{prefix}-broken-evaluator"), "A's evaluator name"),
        (children.experiments[0].clone(), "A's experiment id"),
        (children.experiments[1].clone(), "A's experiment id"),
        (format!("{prefix}-run-a"), "A's experiment name"),
        (children.price.clone(), "A's price id"),
    ] {
        add(text, what, false, false);
    }
    for (text, what) in extra {
        add(text, what, false, false);
    }
    markers
}

/// A's rows in PostgreSQL (each table with a `project_id` or `organization_id`, and A's
/// users' sessions) and in ClickHouse (each table with a `project_id`): a digest per table.
async fn snapshot(env: &TestEnv, alpha: &Tenant) -> BTreeMap<String, String> {
    let pg = env.postgres().await;
    let mut digest = BTreeMap::new();
    let columns = pg
        .query(
            "SELECT c.table_name::text, c.column_name::text FROM information_schema.columns c
             JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
             WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'
               AND c.column_name IN ('project_id', 'organization_id')
             ORDER BY 1, 2",
            &[],
        )
        .await
        .unwrap();
    for row in columns {
        let (table, column): (String, String) = (row.get(0), row.get(1));
        // The audit log grows with the calls of A's own organization (its sibling project's
        // key, A's exports); what other tenants may add to it is checked on its own.
        if table == "audit_events" {
            continue;
        }
        let owner = if column == "project_id" {
            alpha.project
        } else {
            alpha.organization
        };
        let sql = format!(
            "SELECT count(*)::text || ' ' || coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '')
             FROM {table} t WHERE {column} = $1"
        );
        let value: String = pg.query_one(&sql, &[&owner]).await.unwrap().get(0);
        digest.insert(format!("postgres {table}.{column}"), value);
    }
    let users: Vec<Uuid> = alpha.people.iter().map(|(_, user, _)| user.id).collect();
    for (table, column) in [("users", "id"), ("user_sessions", "user_id")] {
        let sql = format!(
            "SELECT count(*)::text || ' ' || coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '')
             FROM {table} t WHERE {column} = ANY($1)"
        );
        let value: String = pg.query_one(&sql, &[&users]).await.unwrap().get(0);
        digest.insert(format!("postgres {table} of A's users"), value);
    }
    let tables = env
        .ch(
            "SELECT table FROM system.columns WHERE database = currentDatabase() AND name = 'project_id'
             AND table IN (SELECT name FROM system.tables WHERE database = currentDatabase() AND engine NOT LIKE '%View')
             ORDER BY table",
        )
        .await;
    for table in tables.lines().filter(|t| !t.is_empty()) {
        let count = env
            .ch(&format!(
                "SELECT count() FROM {table} WHERE toString(project_id) = '{}'",
                alpha.project
            ))
            .await;
        digest.insert(format!("clickhouse {table}"), count);
    }
    digest
}

/// A's reads, as A: every read operation as A's owner, A's key and A's organization key.
/// (operation, caller) → (status, body).
async fn alpha_views(
    http: &reqwest::Client,
    base: &str,
    operations: &[Operation],
    callers: &[Caller],
    alpha: &Tenant,
) -> BTreeMap<(usize, usize), (u16, String)> {
    let mut views = BTreeMap::new();
    for (o, operation) in operations.iter().enumerate() {
        if operation.method != Method::GET || operation.public() || operation.edge_only() {
            continue;
        }
        for (c, caller) in callers.iter().enumerate() {
            let call = call(operation, caller, Variant::Theirs, alpha).unwrap();
            let answer = send(http, base, Method::GET, &call.url, caller.auth.as_deref(), None).await;
            views.insert((o, c), answer);
        }
    }
    views
}

/// What is wrong with an answer, if anything: any of A's strings the request did not carry,
/// anything but a refusal where the request named another tenant's project, organization or
/// what is in them (or carried no credential, or no edge signature), a server error anywhere.
fn verdict(
    operation: &Operation,
    caller: &Caller,
    call: &Call,
    status: u16,
    answer: &str,
    markers: &[Marker],
) -> Option<String> {
    let request = format!(
        "{} {}",
        call.url,
        call.body.as_ref().map(Value::to_string).unwrap_or_default()
    );
    let mut problems = Vec::new();
    for marker in leaks(markers, caller, &request, answer) {
        // By design: an organization's list of its invitations shows the emails it invited,
        // A's users' among them when B invited them (B typed those emails; no account is told).
        if operation.path == "/v1/organizations/{organization}/invitations"
            && marker.what == "an email of A's user"
        {
            continue;
        }
        problems.push(format!(
            "LEAK of {} {:?}: …{}…",
            marker.what,
            marker.text,
            excerpt(answer, &marker.text)
        ));
    }
    let unauthenticated = !operation.public() && (caller.auth.is_none() || operation.edge_only());
    let must_deny = unauthenticated || (!operation.public() && (call.foreign_parent || call.foreign_child));
    let allowed: &[u16] = if unauthenticated { &[401] } else { &DENIED };
    let head: String = answer.chars().take(300).collect();
    if must_deny && !allowed.contains(&status) {
        problems.push(format!("answered {status}, expected one of {allowed:?}: {head}"));
    } else if status >= 500 {
        problems.push(format!("answered {status}: {head}"));
    }
    (!problems.is_empty()).then(|| problems.join("; "))
}

/// One line per operation and variant, a column per caller: the status, `!` when wrong.
fn render_table(operations: &[Operation], callers: &[Caller], outcomes: &[Outcome]) -> String {
    let mut table = String::new();
    let width = callers.iter().map(|c| c.name.len()).max().unwrap_or(8).max(4);
    let _ = write!(table, "{:<70} {:<18}", "route", "variant");
    for caller in callers {
        let _ = write!(table, " {:>width$}", caller.name);
    }
    table.push('\n');
    let mut rows: BTreeMap<(usize, Variant), BTreeMap<usize, String>> = BTreeMap::new();
    for outcome in outcomes {
        let mark = if outcome.problem.is_some() { "!" } else { "" };
        rows.entry((outcome.operation, outcome.variant))
            .or_default()
            .insert(outcome.caller, format!("{}{mark}", outcome.status));
    }
    for ((o, variant), statuses) in &rows {
        let _ = write!(table, "{:<70} {:<18}", operations[*o].label(), variant.label());
        for c in 0..callers.len() {
            let cell = statuses.get(&c).map_or("-", String::as_str);
            let _ = write!(table, " {cell:>width$}");
        }
        table.push('\n');
    }
    table
}

#[tokio::test]
async fn no_route_answers_another_tenant_with_its_data() {
    let started = Instant::now();
    let env = TestEnv::migrated().await;
    let etl = env.start_etl(|_| {}).await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let base = etl.url.clone();
    let nonce = Uuid::new_v4().simple().to_string()[..10].to_owned();
    let password_hash = identity::hash_password(PASSWORD).unwrap();

    // Tenant A, the target; tenant B, the other organization; A2, a sibling project in A's
    // organization.
    let alpha = tenant(&env, &etl, &http, "alpha", &nonce, &password_hash).await;
    let bravo = tenant(&env, &etl, &http, "bravo", &nonce, &password_hash).await;
    let pg = env.postgres().await;
    let sibling_project =
        projects::create_project(&pg, alpha.organization, &format!("sibling-{nonce}"), None)
            .await
            .unwrap()
            .id;
    let sibling_key = api_keys::create_key(&pg, sibling_project, &ALL_SCOPES, None)
        .await
        .unwrap();

    // Data in every table, through the real ingest path and the real API.
    let a_prefix = format!("alpha-{nonce}");
    let b_prefix = format!("bravo-{nonce}");
    for (tenant, prefix) in [(&alpha, &a_prefix), (&bravo, &b_prefix)] {
        let key = ProjectKey {
            project_id: tenant.project,
            public_key: tenant.key.0.clone(),
        };
        let (status, text) = ingest(&etl, &key, &events(prefix)).await;
        assert_eq!(status, 200, "{text}");
        let answer: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(answer["accepted"], 3, "{answer}");
        assert_eq!(answer["rejected"].as_array().map(Vec::len), Some(1), "{answer}");
    }
    let ingested = Instant::now();
    let children = control_data(&http, &base, &alpha, &a_prefix).await;
    control_data(&http, &base, &bravo, &b_prefix).await;
    // The evaluation job leaves rows of the current second for its next run.
    tokio::time::sleep(Duration::from_millis(1100).saturating_sub(ingested.elapsed())).await;
    let broken = run_job(Job::Evaluate, &pg, &env.clickhouse, None).await;
    assert!(
        broken
            .as_ref()
            .is_err_and(|e| e.to_string().contains("broken evaluator")),
        "A's broken evaluator makes the evaluation job fail: {broken:?}"
    );
    let scheduled: Uuid = children.evaluator.parse().unwrap();
    run_job(Job::Evaluator(scheduled), &pg, &env.clickhouse, None)
        .await
        .unwrap();
    run_job(Job::ExperimentRollups, &pg, &env.clickhouse, None)
        .await
        .unwrap();
    let broken_id = {
        let auth = format!("Bearer {}", alpha.people[0].2);
        let page = get_json(
            &http,
            &base,
            &auth,
            &format!("/v1/projects/{}/evaluators", alpha.project),
        )
        .await;
        id_named(&page, &format!("{a_prefix}-broken-evaluator"))
    };
    let markers = markers(
        &alpha,
        &children,
        &a_prefix,
        vec![(broken_id, "A's evaluator id")],
    );

    let document = serde_json::to_value(agenttrace_etl::http::router::openapi()).unwrap();
    let mut operations = operations(&document, &children, &alpha, &format!("probe-{nonce}"));
    for operation in &mut operations {
        let body = operation.body.as_ref().map(Value::to_string).unwrap_or_default();
        operation.body_names_alpha = markers.iter().any(|m| body.contains(&m.text));
    }
    for (id, _) in PUBLIC {
        assert!(
            operations.iter().any(|o| o.id == *id),
            "{id} is allowlisted as public but is no operation of the document: drop it from PUBLIC"
        );
    }
    let undeclared: Vec<String> = operations
        .iter()
        .filter(|o| o.public() && !PUBLIC.iter().any(|(id, _)| *id == o.id))
        .map(|o| format!("{} ({})", o.label(), o.id))
        .collect();
    assert!(
        undeclared.is_empty(),
        "operations without a security requirement: require a credential, or add them to PUBLIC with why: {undeclared:?}"
    );

    // The positive control: A's own callers read everything A has.
    let alpha_callers = vec![
        Caller {
            name: "A-owner".into(),
            auth: Some(format!("Bearer {}", alpha.people[0].2)),
            own_project: Some(alpha.project),
            own_organization: Some(alpha.organization),
            key_implies_project: false,
            in_alpha_organization: true,
            credentials: None,
        },
        Caller {
            name: "A-key".into(),
            auth: Some(alpha.key_auth()),
            own_project: Some(alpha.project),
            own_organization: Some(alpha.organization),
            key_implies_project: true,
            in_alpha_organization: true,
            credentials: None,
        },
        Caller {
            name: "A-orgkey".into(),
            auth: Some(alpha.organization_key_auth()),
            own_project: Some(alpha.project),
            own_organization: Some(alpha.organization),
            key_implies_project: false,
            in_alpha_organization: true,
            credentials: None,
        },
    ];
    let before = alpha_views(&http, &base, &operations, &alpha_callers, &alpha).await;
    let again = alpha_views(&http, &base, &operations, &alpha_callers, &alpha).await;
    let mut control_failures = Vec::new();
    let reads: BTreeSet<usize> = before.keys().map(|(o, _)| *o).collect();
    for o in &reads {
        let answers: Vec<String> = alpha_callers
            .iter()
            .enumerate()
            .map(|(c, caller)| format!("{}={}", caller.name, before[&(*o, c)].0))
            .collect();
        let ok = (0..alpha_callers.len()).any(|c| (200..300).contains(&before[&(*o, c)].0));
        let crashed = (0..alpha_callers.len()).any(|c| before[&(*o, c)].0 >= 500);
        if !ok || crashed {
            control_failures.push(format!(
                "{}: {} ({})",
                operations[*o].label(),
                answers.join(" "),
                before[&(*o, 0)].1.chars().take(200).collect::<String>()
            ));
        }
    }
    // Reads by POST (MCP's JSON-RPC): A's callers see A's trace through the very body the
    // other tenants send, so their answers' lack of it means something.
    for route in READS_BY_POST {
        assert!(
            operations.iter().any(|o| o.label() == *route),
            "{route} is in READS_BY_POST but is no operation of the document: drop it"
        );
    }
    for operation in operations
        .iter()
        .filter(|o| READS_BY_POST.contains(&o.label().as_str()))
    {
        for caller in &alpha_callers {
            let call = call(operation, caller, Variant::Theirs, &alpha).unwrap();
            let (status, answer) = send(
                &http,
                &base,
                operation.method.clone(),
                &call.url,
                caller.auth.as_deref(),
                call.body.as_ref(),
            )
            .await;
            let request = format!(
                "{} {}",
                call.url,
                call.body.as_ref().map(Value::to_string).unwrap_or_default()
            );
            let sees = markers
                .iter()
                .any(|m| !m.secret && answer.contains(&m.text) && !request.contains(&m.text));
            if status != 200 || !sees || answer.contains("\"isError\":true") {
                control_failures.push(format!(
                    "{} as {}: {status}, none of A's strings: {}",
                    operation.label(),
                    caller.name,
                    answer.chars().take(300).collect::<String>()
                ));
            }
        }
    }
    assert!(
        control_failures.is_empty(),
        "positive control: A's own callers must read each of A's routes (make the data present, \
         or the request plausible in plausible_query()):\n  {}",
        control_failures.join("\n  ")
    );
    let unseen: Vec<String> = markers
        .iter()
        .filter(|m| !m.secret && !before.values().any(|(_, body)| body.contains(&m.text)))
        .map(|m| format!("{} {:?}", m.what, m.text))
        .collect();
    assert!(
        unseen.is_empty(),
        "positive control: A's own reads never show these, so their absence elsewhere proves nothing: {unseen:?}"
    );
    let alpha_rows = snapshot(&env, &alpha).await;

    // The other tenants' callers.
    let own_b = |name: &str, auth: String, key: bool| Caller {
        name: name.into(),
        auth: Some(auth),
        own_project: Some(bravo.project),
        own_organization: Some(bravo.organization),
        key_implies_project: key,
        in_alpha_organization: false,
        credentials: None,
    };
    let mut callers = vec![
        Caller {
            name: "anonymous".into(),
            auth: None,
            own_project: None,
            own_organization: None,
            key_implies_project: false,
            in_alpha_organization: false,
            credentials: None,
        },
        own_b("B-key", bravo.key_auth(), true),
        own_b("B-orgkey", bravo.organization_key_auth(), false),
    ];
    for (role, user, token) in &bravo.people {
        let mut caller = own_b(&format!("B-{}", role.as_str()), format!("Bearer {token}"), false);
        caller.credentials = Some((user.email.clone(), PASSWORD.to_owned()));
        callers.push(caller);
    }
    callers.push(Caller {
        name: "A2-key".into(),
        auth: Some(format!(
            "Bearer {}:{}",
            sibling_key.public_key, sibling_key.secret_key
        )),
        own_project: Some(sibling_project),
        own_organization: Some(alpha.organization),
        key_implies_project: true,
        in_alpha_organization: true,
        credentials: None,
    });

    // Operation by operation (deletes last, so that what the others name still exists), each
    // caller in turn.
    let mut order: Vec<usize> = (0..operations.len()).collect();
    order.sort_by_key(|o| operations[*o].method == Method::DELETE);
    let mut outcomes = Vec::new();
    let mut renewed = BTreeSet::new();
    for &o in &order {
        let operation = &operations[o];
        for variant in [Variant::Theirs, Variant::OwnWithTheirChildren, Variant::Own] {
            for (c, caller) in callers.iter_mut().enumerate() {
                let Some(call) = call(operation, caller, variant, &alpha) else {
                    continue;
                };
                let (status, answer) = send(
                    &http,
                    &base,
                    operation.method.clone(),
                    &call.url,
                    caller.auth.as_deref(),
                    call.body.as_ref(),
                )
                .await;
                outcomes.push(Outcome {
                    operation: o,
                    variant,
                    caller: c,
                    status,
                    problem: verdict(operation, caller, &call, status, &answer, &markers),
                });
                // A route that ended the caller's own session (sign-out): sign in again.
                if let Some((email, password)) = caller.credentials.clone()
                    && (200..300).contains(&status)
                    && operation.method != Method::GET
                {
                    let (me, _) =
                        send(&http, &base, Method::GET, "/v1/me", caller.auth.as_deref(), None).await;
                    if me == 401 {
                        let token = sign_in(&http, &base, &email, &password).await;
                        caller.auth = Some(format!("Bearer {token}"));
                        renewed.insert(format!("{} after {}", caller.name, operation.label()));
                    }
                }
            }
        }
    }

    // Outside the document: the web UI's files.
    let mut outside = Vec::new();
    let (_, index) = send(&http, &base, Method::GET, "/", None, None).await;
    let mut files = Vec::new();
    for (pattern, _) in OUTSIDE_THE_DOCUMENT {
        match pattern.split_once("{name}") {
            // Every file index.html names under the prefix.
            Some((prefix, _)) => files.extend(
                index
                    .split(prefix)
                    .skip(1)
                    .filter_map(|rest| rest.split(['"', '\'', '?']).next())
                    .map(|name| format!("{prefix}{name}")),
            ),
            None => files.push((*pattern).to_owned()),
        }
    }
    assert!(
        files.len() > OUTSIDE_THE_DOCUMENT.len() - 1,
        "index.html names its assets: {index}"
    );
    for path in &files {
        for caller in &callers {
            let (status, answer) = send(&http, &base, Method::GET, path, caller.auth.as_deref(), None).await;
            for marker in leaks(&markers, caller, path, &answer) {
                outside.push(format!(
                    "GET {path} as {}: {status}, LEAK of {} {:?}",
                    caller.name, marker.what, marker.text
                ));
            }
        }
    }

    // Ingest: the edge signs batches for the project its key verified, so a tenant never names
    // the project; still, a batch under B's key that names A's project must be refused, and an
    // event that carries A's project id in its body must not land in A.
    let mut ingest_problems = Vec::new();
    let smuggled = format!("smuggled-{nonce}");
    let into_alpha = ProjectKey {
        project_id: alpha.project,
        public_key: bravo.key.0.clone(),
    };
    let trace = |id: &str| {
        json!({"id": format!("{id}-event"), "type": "trace", "timestamp": Timestamp::now().to_string(),
               "body": {"id": id, "name": id}})
    };
    let (status, text) = ingest(&etl, &into_alpha, &[trace(&format!("{smuggled}-1"))]).await;
    if status != 401 {
        ingest_problems.push(format!(
            "a batch under B's key naming A's project answered {status}, not 401: {text}"
        ));
    }
    let mut in_body = trace(&format!("{smuggled}-2"));
    in_body["body"]["project_id"] = json!(alpha.project.to_string());
    let bravo_key = ProjectKey {
        project_id: bravo.project,
        public_key: bravo.key.0.clone(),
    };
    let (status, text) = ingest(&etl, &bravo_key, &[in_body]).await;
    if status != 200 {
        ingest_problems.push(format!(
            "B's batch with a project_id in an event answered {status}: {text}"
        ));
    }
    let landed = env
        .ch(&format!(
            "SELECT count() FROM traces WHERE toString(project_id) = '{}' AND id LIKE '{smuggled}%'",
            alpha.project
        ))
        .await;
    if landed != "0" {
        ingest_problems.push(format!("{landed} of B's events landed in A's project"));
    }

    // A is as it was: its rows, its views, its owner's session.
    let mut integrity = Vec::new();
    let rows_after = snapshot(&env, &alpha).await;
    for (table, digest) in &alpha_rows {
        if rows_after.get(table) != Some(digest) {
            integrity.push(format!(
                "A's rows in {table} changed: {digest} → {:?}",
                rows_after.get(table)
            ));
        }
    }
    // Nothing another tenant did is written in A's audit log (it failed, or happened in B).
    let bravo_actors: Vec<String> = [
        format!("key:{}", bravo.key.0),
        format!("organization-key:{}", bravo.organization),
    ]
    .into_iter()
    .chain(
        bravo
            .people
            .iter()
            .map(|(_, user, _)| format!("user:{}", user.email)),
    )
    .collect();
    let in_alpha: i64 = pg
        .query_one(
            "SELECT count(*) FROM audit_events WHERE (organization_id = $1 OR project_id = $2) AND actor = ANY($3)",
            &[&alpha.organization, &alpha.project, &bravo_actors],
        )
        .await
        .unwrap()
        .get(0);
    if in_alpha > 0 {
        integrity.push(format!("{in_alpha} of B's calls are in A's audit log"));
    }
    let (me, _) = send(
        &http,
        &base,
        Method::GET,
        "/v1/me",
        alpha_callers[0].auth.as_deref(),
        None,
    )
    .await;
    if me != 200 {
        integrity.push(format!(
            "A's owner's session no longer works (GET /v1/me answers {me}): another tenant ended it"
        ));
    }
    let mut fresh = alpha_callers;
    let owner_email = alpha.owner().email.clone();
    fresh[0].auth = Some(format!(
        "Bearer {}",
        sign_in(&http, &base, &owner_email, PASSWORD).await
    ));
    let after = alpha_views(&http, &base, &operations, &fresh, &alpha).await;
    for (key, (status, body)) in &before {
        let (status_after, body_after) = &after[key];
        let stable = again[key] == before[key];
        let seen = |text: &str| -> BTreeSet<&str> {
            markers
                .iter()
                .filter(|m| text.contains(&m.text))
                .map(|m| m.text.as_str())
                .collect()
        };
        let changed = status != status_after
            || (stable && body != body_after)
            || (!stable && seen(body) != seen(body_after));
        // By design: a person's invitation inbox receives invitations from any organization
        // to their email (B inviting A's owner); accepting is theirs to do.
        let inbox = operations[key.0].path == "/v1/invitations";
        if changed && !inbox {
            integrity.push(format!(
                "A's view GET {} as {} changed: {status} {} → {status_after} {}",
                operations[key.0].path,
                fresh[key.1].name,
                body.chars().take(300).collect::<String>(),
                body_after.chars().take(300).collect::<String>()
            ));
        }
    }

    let table = render_table(&operations, &callers, &outcomes);
    let calls = outcomes.len();
    let summary = format!(
        "{} operations × {} callers: {calls} calls ({} with A's ids, {} own + A's children, {} own) \
         in {:.1?}; positive control {} reads × {} of A's callers; sessions renewed: {renewed:?}",
        operations.len(),
        callers.len(),
        outcomes.iter().filter(|o| o.variant == Variant::Theirs).count(),
        outcomes
            .iter()
            .filter(|o| o.variant == Variant::OwnWithTheirChildren)
            .count(),
        outcomes.iter().filter(|o| o.variant == Variant::Own).count(),
        started.elapsed(),
        reads.len(),
        fresh.len(),
    );
    println!("{summary}");
    let failures: Vec<String> = outcomes
        .iter()
        .filter_map(|outcome| {
            Some(format!(
                "{} [{}] as {}: {}",
                operations[outcome.operation].label(),
                outcome.variant.label(),
                callers[outcome.caller].name,
                outcome.problem.as_deref()?
            ))
        })
        .collect();
    let mut report = String::new();
    for (heading, problems) in [
        (
            "calls answered wrongly or with A's data (`!` in the table)",
            &failures,
        ),
        ("the web UI's files", &outside),
        ("ingest", &ingest_problems),
        ("A changed by another tenant's calls", &integrity),
    ] {
        if !problems.is_empty() {
            let _ = writeln!(report, "{heading}:");
            for problem in problems {
                let _ = writeln!(report, "  {problem}");
            }
        }
    }
    assert!(
        report.is_empty(),
        "tenant isolation broken:\n{table}\n{summary}\n\n{report}"
    );
    etl.server.shutdown().await.unwrap();
}
