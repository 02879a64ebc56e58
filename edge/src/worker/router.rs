//! The Worker's front: routes, key checks against the ETL (cached per isolate), intake of
//! native, OTLP and Langfuse-OTLP requests, and the rejected-batches listing.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use agenttrace_redact::{Redactor, Rules};

use agenttrace_schemas::Timestamp;
use agenttrace_schemas::batch::{ScoreConfigLookup, ScoreConfigLookupResponse};
use agenttrace_schemas::credentials::{Credentials, parse_authorization};
use agenttrace_schemas::routes::{MCP_PATH, origin_matches_host};
use agenttrace_schemas::score_config::ScoreConfig;
use worker::*;

use super::buffer_object::buffer;
use super::{Config, error, json_response, now_ms, post_signed};
use crate::auth::{KeyCache, KeyVerdict, verdict_from_etl, verify_request_body};
use crate::limits::{Limits, RequestError};
use crate::prompt_cache::{self, Cached, PromptCache};
use crate::request::{self, Route};
use crate::routes::{self, Endpoint, ROUTES, Unrouted};
use crate::score_configs::{ConfigCache, ConfigCheck};

thread_local! {
    /// Key verdicts, per isolate.
    static KEYS: RefCell<Option<KeyCache>> = const { RefCell::new(None) };
    /// Prompt reads, per isolate.
    static PROMPTS: RefCell<Option<PromptCache>> = const { RefCell::new(None) };
    /// The score configs scores name, per isolate.
    static SCORE_CONFIGS: RefCell<Option<ConfigCache>> = const { RefCell::new(None) };
    /// Each project's redaction rules, compiled, per isolate.
    static REDACTORS: RefCell<HashMap<String, (Rules, Rc<Redactor>)>> = RefCell::new(HashMap::new());
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    let path = req.path();
    let method = req.method();
    let endpoint = match routes::resolve(&path, method.as_ref()) {
        Ok(endpoint) => endpoint,
        Err(Unrouted::NotFound) => {
            let mut known: Vec<&str> = ROUTES.iter().map(|(route, ..)| *route).collect();
            known.push(MCP_PATH);
            return error(
                404,
                "not_found",
                &format!("no route {method} {path}; routes are {}", known.join(", ")),
            );
        }
        Err(Unrouted::MethodNotAllowed(allowed)) => {
            let body = serde_json::json!({ "error": "method_not_allowed", "message": format!("{path} takes {allowed}") });
            return json_response(405, body.to_string(), &[("allow", allowed)]);
        }
    };
    let config = match endpoint {
        // A deployment's health check sees a misconfiguration, not only a running isolate.
        Endpoint::Health => {
            return match Config::from_env(&env) {
                Ok(_) => json_response(200, r#"{"status":"ok"}"#.to_owned(), &[]),
                Err(problem) => error(
                    503,
                    "misconfigured",
                    &format!("the edge is misconfigured: {problem}"),
                ),
            };
        }
        _ => match Config::from_env(&env) {
            Ok(config) => config,
            Err(problem) => {
                return error(
                    500,
                    "misconfigured",
                    &format!("the edge is misconfigured: {problem}"),
                );
            }
        },
    };
    match endpoint {
        Endpoint::Forward => forward(req, &config, &[]).await,
        Endpoint::Mcp => mcp(req, &config).await,
        Endpoint::RejectedBatches => rejected_batches(&req, &env, &config).await,
        Endpoint::Ingest(route) => ingest(req, &env, &config, route).await,
        Endpoint::Health => unreachable!("answered without configuration above"),
    }
}

/// The MCP transport's headers, passed both ways with the request and its answer.
const MCP_HEADERS: &[&str] = &[
    "accept",
    "mcp-protocol-version",
    "mcp-session-id",
    "last-event-id",
    "allow",
];

/// `/mcp`: the ETL's MCP server. The ETL checks a browser's `Origin` against the host it was
/// called at, which behind the edge is the edge's own request: so the edge checks it against
/// its host, and passes no `Origin` on.
async fn mcp(req: Request, config: &Config) -> Result<Response> {
    if let Some(origin) = req.headers().get("origin")? {
        let url = req.url()?;
        let host = match req.headers().get("host")? {
            Some(host) => host,
            None => match (url.host_str(), url.port()) {
                (Some(host), Some(port)) => format!("{host}:{port}"),
                (Some(host), None) => host.to_owned(),
                (None, _) => String::new(),
            },
        };
        if !origin_matches_host(&origin, &host) {
            let message = format!(
                "Origin {origin:?} is not this server ({host:?}): MCP over HTTP is refused to web pages of other origins (DNS rebinding); call it from an MCP client, which sends no Origin"
            );
            let body = serde_json::json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32600, "message": message}});
            return json_response(403, body.to_string(), &[]);
        }
    }
    forward(req, config, MCP_HEADERS).await
}

/// Passes a control-plane request to the ETL as it came (method, path, query, body, the
/// caller's credentials and the `extra` headers, which come back from the ETL's answer too);
/// prompt reads are answered from the isolate's cache when fresh.
async fn forward(mut req: Request, config: &Config, extra: &[&str]) -> Result<Response> {
    let url = req.url()?;
    let target = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    };
    let method = req.method();
    let authorization = req.headers().get("authorization")?.unwrap_or_default();
    let now = now_ms();
    let with_cache = |use_cache: &mut dyn FnMut(&mut PromptCache)| {
        PROMPTS.with(|cache| {
            use_cache(
                cache
                    .borrow_mut()
                    .get_or_insert_with(|| PromptCache::new(config.prompt_cache_ttl_ms, 10_000)),
            )
        })
    };
    let cacheable = prompt_cache::cacheable(method.as_ref(), url.path());
    let shared_key = prompt_cache::shared_key(&authorization, &target);
    if cacheable {
        let mut hit = None;
        with_cache(&mut |cache| hit = cache.get(&authorization, &target, now));
        if let Some(hit) = hit {
            let body = String::from_utf8_lossy(&hit.body).into_owned();
            return json_response(hit.status, body, &[("x-agenttrace-cache", "isolate")]);
        }
        // The location's cache, shared by its isolates.
        if let Ok(Some(mut shared)) = Cache::default().get(shared_key.as_str(), true).await {
            let cached = Cached {
                status: 200,
                body: shared.bytes().await?,
            };
            with_cache(&mut |cache| cache.put(&authorization, &target, cached.clone(), now));
            let body = String::from_utf8_lossy(&cached.body).into_owned();
            return json_response(200, body, &[("x-agenttrace-cache", "location")]);
        }
    }
    if prompt_cache::invalidates(method.as_ref(), url.path()) {
        with_cache(&mut |cache| cache.forget(&authorization));
    }
    let headers = Headers::new();
    for name in [
        "authorization",
        "content-type",
        "user-agent",
        "x-langfuse-sdk-name",
        "x-langfuse-sdk-version",
        "x-langfuse-public-key",
    ]
    .iter()
    .chain(extra)
    {
        if let Some(value) = req.headers().get(name)? {
            headers.set(name, &value)?;
        }
    }
    // Where the caller is, for the ETL's audit log (which otherwise sees only the edge): the
    // client's address as Cloudflare saw it.
    let client = match req.headers().get("cf-connecting-ip")? {
        Some(address) => Some(address),
        None => req.headers().get("x-forwarded-for")?,
    };
    if let Some(client) = client {
        headers.set("x-forwarded-for", &client)?;
    }
    let body = req.bytes().await?;
    // The next replica that answers; a replica that is down or says 502–504 is passed over
    // (an SDK would retry such an answer itself).
    let mut reached = None;
    let mut problems = Vec::new();
    for base in config.etl_targets() {
        let mut init = RequestInit::new();
        init.with_method(method.clone()).with_headers(headers.clone());
        if !body.is_empty() {
            init.with_body(Some(worker::js_sys::Uint8Array::from(body.as_slice()).into()));
        }
        let request = Request::new_with_init(&format!("{base}{target}"), &init)?;
        match Fetch::Request(request).send().await {
            Ok(answer) if crate::forward::try_another(Some(answer.status_code())) => {
                problems.push(format!("{base} answered {}", answer.status_code()));
                reached = Some(answer);
            }
            Ok(answer) => {
                reached = Some(answer);
                break;
            }
            Err(problem) => problems.push(format!("{base}: {problem}")),
        }
    }
    let Some(mut answer) = reached else {
        return error(
            503,
            "unavailable",
            &format!("the control plane cannot be reached: {}", problems.join("; ")),
        );
    };
    let status = answer.status_code();
    let content_type = answer.headers().get("content-type")?;
    let mut passed = Vec::new();
    for name in extra {
        if let Some(value) = answer.headers().get(name)? {
            passed.push((*name, value));
        }
    }
    let bytes = answer.bytes().await?;
    if cacheable && status == 200 {
        let cached = Cached {
            status,
            body: bytes.clone(),
        };
        with_cache(&mut |cache| cache.put(&authorization, &target, cached.clone(), now));
        let headers = Headers::new();
        headers.set("content-type", "application/json")?;
        headers.set(
            "cache-control",
            &prompt_cache::cache_control(config.prompt_cache_ttl_ms),
        )?;
        let shared = Response::from_bytes(bytes.clone())?.with_headers(headers);
        if let Err(problem) = Cache::default().put(shared_key.as_str(), shared).await {
            console_warn!("keeping a prompt in the location's cache: {problem}");
        }
    }
    let headers = Headers::new();
    if let Some(content_type) = content_type {
        headers.set("content-type", &content_type)?;
    }
    for (name, value) in passed {
        headers.set(name, &value)?;
    }
    Ok(Response::from_bytes(bytes)?
        .with_status(status)
        .with_headers(headers))
}

/// Asks the ETL about a key (or the isolate's cache).
async fn verify_key(config: &Config, credentials: &Credentials) -> std::result::Result<KeyVerdict, String> {
    let now = now_ms();
    if let Some(verdict) = with_key_cache(config, |keys| keys.get(credentials, now)) {
        return Ok(verdict);
    }
    let body = verify_request_body(credentials);
    let asked = post_signed(config, "/v1/keys/verify", body.as_bytes()).await;
    let verdict = match asked {
        Ok((status, answer)) => verdict_from_etl(status, &answer),
        Err(error) => Err(format!("the ETL cannot be reached: {error}")),
    };
    with_key_cache(config, |keys| match verdict {
        Ok(verdict) => {
            keys.put(credentials, verdict.clone(), now);
            Ok(verdict)
        }
        Err(problem) => keys.get_stale_valid(credentials, now).ok_or(problem),
    })
}

/// Asks the ETL for the score configs of `ids` in the key's project and caches its answer: each
/// id with its config, or `None` when the project has none. `None` overall when the ETL could
/// not be asked (those scores are then checked as they load).
async fn look_up_score_configs(
    config: &Config,
    credentials: &Credentials,
    project_id: &str,
    ids: &[String],
) -> Option<HashMap<String, Option<ScoreConfig>>> {
    let ids: Vec<String> = ids.iter().take(ScoreConfigLookup::MAX_IDS).cloned().collect();
    let request = ScoreConfigLookup {
        public_key: credentials.public_key.clone(),
        secret_key: credentials.secret_key.clone(),
        ids,
    };
    let body = serde_json::to_vec(&request).expect("a lookup serializes");
    let found = match post_signed(config, "/v1/score-configs/lookup", &body).await {
        Ok((200, answer)) => serde_json::from_slice::<ScoreConfigLookupResponse>(&answer)
            .map_err(|e| format!("unreadable ETL answer: {e}")),
        Ok((status, _)) => Err(format!("the ETL answered {status}")),
        Err(problem) => Err(problem),
    };
    let found = match found {
        Ok(found) => found.configs,
        Err(problem) => {
            console_warn!("score configs left to the ETL's check: {problem}");
            return None;
        }
    };
    with_config_cache(config, |cache| {
        cache.put(project_id, &request.ids, found.clone(), now_ms())
    });
    let mut fetched: HashMap<String, Option<ScoreConfig>> =
        request.ids.iter().map(|id| (id.clone(), None)).collect();
    for config in found {
        if let Some(slot) = fetched.get_mut(&config.id) {
            *slot = Some(config);
        }
    }
    Some(fetched)
}

/// The project's rules compiled, kept per isolate until they change. Rules the edge cannot
/// compile (the ETL checks them, so only a newer ETL's could be) fall back to the default.
fn redactor_for(config: &Config, project_id: &str, rules: &Rules) -> Rc<Redactor> {
    REDACTORS.with(|redactors| {
        let mut redactors = redactors.borrow_mut();
        if let Some((compiled_from, redactor)) = redactors.get(project_id)
            && compiled_from == rules
        {
            return redactor.clone();
        }
        let key = agenttrace_redact::project_digest_key(
            &config.signing_key.derived("redaction digests"),
            project_id,
        );
        let redactor = Rc::new(Redactor::new(rules, &key).unwrap_or_else(|problem| {
            console_warn!(
                "project {project_id}'s redaction rules do not compile here ({problem}); using the default"
            );
            Redactor::new(&Rules::default(), &key).expect("the default rules compile")
        }));
        if redactors.len() >= 10_000 {
            redactors.clear();
        }
        redactors.insert(project_id.to_owned(), (rules.clone(), redactor.clone()));
        redactor
    })
}

/// Runs `use_cache` on the isolate's score-config cache (same TTL as keys).
fn with_config_cache<T>(config: &Config, use_cache: impl FnOnce(&mut ConfigCache) -> T) -> T {
    SCORE_CONFIGS.with(|configs| {
        use_cache(
            configs
                .borrow_mut()
                .get_or_insert_with(|| ConfigCache::new(config.key_cache_ttl_ms, 10_000)),
        )
    })
}

/// Runs `use_cache` on the isolate's key cache, created on first use with this deployment's TTL.
fn with_key_cache<T>(config: &Config, use_cache: impl FnOnce(&mut KeyCache) -> T) -> T {
    KEYS.with(|keys| {
        use_cache(
            keys.borrow_mut()
                .get_or_insert_with(|| KeyCache::new(config.key_cache_ttl_ms, 10_000)),
        )
    })
}

/// The caller's credentials from its `Authorization` header, or the 401 that says what is wrong.
fn credentials_of(headers: &Headers) -> std::result::Result<Credentials, Result<Response>> {
    let authorization = headers.get("authorization").ok().flatten();
    parse_authorization(authorization.as_deref())
        .map_err(|problem| error(401, "unauthorized", &problem.to_string()))
}

/// The project of a key the ETL accepts, or the answer that refuses it.
async fn project_of(
    config: &Config,
    credentials: &Credentials,
) -> std::result::Result<(String, Rules), Result<Response>> {
    match verify_key(config, credentials).await {
        Ok(KeyVerdict::Valid {
            project_id,
            redaction,
        }) => Ok((project_id, redaction)),
        Ok(KeyVerdict::Refused { status, message }) => Err(error(status, "unauthorized", &message)),
        Err(problem) => Err(error(503, "unavailable", &problem)),
    }
}

fn request_error(problem: RequestError) -> Result<Response> {
    error(problem.status(), problem.code(), &problem.to_string())
}

async fn ingest(mut req: Request, env: &Env, config: &Config, route: Route) -> Result<Response> {
    let headers = req.headers().clone();
    let header = |name: &str| headers.get(name).ok().flatten();
    let credentials = match credentials_of(&headers) {
        Ok(credentials) => credentials,
        Err(refusal) => return refusal,
    };
    let limits = Limits::default();
    if let Some(length) = header("content-length").and_then(|l| l.parse::<usize>().ok())
        && length > limits.max_body_bytes
    {
        return request_error(RequestError::BodyTooLarge {
            size: length,
            limit: limits.max_body_bytes,
        });
    }
    let (project_id, rules) = match project_of(config, &credentials).await {
        Ok(project) => project,
        Err(refusal) => return refusal,
    };
    let encoded = req.bytes().await?;
    let now = Timestamp::from_micros(now_ms() as i64 * 1000);
    let read = |configs: &mut ConfigCheck| {
        request::intake(
            route,
            header("content-type").as_deref(),
            header("content-encoding").as_deref(),
            &encoded,
            now,
            &limits,
            configs,
        )
    };
    let cached = |id: &str| with_config_cache(config, |cache| cache.get(&project_id, id, now_ms()));
    let mut configs = ConfigCheck::new(&cached);
    let mut intake = read(&mut configs);
    // Scores named configs this isolate does not know: ask the ETL once, then read again.
    let unresolved = configs.unresolved().to_vec();
    if !unresolved.is_empty()
        && let Some(fetched) = look_up_score_configs(config, &credentials, &project_id, &unresolved).await
    {
        let known = |id: &str| fetched.get(id).cloned().or_else(|| cached(id));
        intake = read(&mut ConfigCheck::new(&known));
    }
    let (intake, answer) = match intake {
        Ok(intake) => intake,
        Err(problem) if route == Route::LangfuseIngestion => {
            // Langfuse's answer to a malformed envelope.
            let body =
                serde_json::json!({ "message": "Invalid request data", "errors": [problem.to_string()] });
            return json_response(problem.status(), body.to_string(), &[]);
        }
        Err(problem) => return request_error(problem),
    };
    // Nothing original is buffered: secrets are replaced here, before anything is durable.
    let mut intake = intake;
    let redactor = redactor_for(config, &project_id, &rules);
    let redacted = crate::ingest::redact(&mut intake.events, &redactor, limits.max_event_bytes);
    if !intake.events.is_empty()
        && let Err(problem) = buffer(env, config, &project_id, &credentials.public_key, &intake.events).await
    {
        return error(
            503,
            "unavailable",
            &format!("the events could not be buffered: {problem}"),
        );
    }
    let (status, body, content_type) = request::answer_bytes(&intake, answer);
    let headers = Headers::new();
    headers.set("content-type", content_type)?;
    if redacted.total() > 0 {
        headers.set("x-agenttrace-redacted", &redacted.total().to_string())?;
    }
    Ok(Response::from_bytes(body)?
        .with_status(status)
        .with_headers(headers))
}

/// `GET /v1/buffer/rejected`: the batches of the caller's project that the ETL refused for
/// good, from every shard, with the ETL's reason (the events stay in the buffer's storage).
async fn rejected_batches(req: &Request, env: &Env, config: &Config) -> Result<Response> {
    let project_id = match credentials_of(req.headers()) {
        Ok(credentials) => match project_of(config, &credentials).await {
            Ok((project_id, _)) => project_id,
            Err(refusal) => return refusal,
        },
        Err(refusal) => return refusal,
    };
    let namespace = env.durable_object("BUFFER")?;
    let mut rejected = Vec::new();
    for shard in 0..config.shards {
        let stub = namespace
            .id_from_name(&format!("{project_id}/{shard}"))?
            .get_stub()?;
        let mut response = stub.fetch_with_str("https://buffer/rejected").await?;
        let listed: Vec<serde_json::Value> = response.json().await?;
        rejected.extend(listed);
    }
    json_response(200, serde_json::json!({ "rejected": rejected }).to_string(), &[])
}
