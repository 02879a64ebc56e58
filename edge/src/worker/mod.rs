//! The Worker glue (wasm32 only): the router in front, and the Durable Object buffer that
//! keeps accepted events in SQLite until the ETL has acknowledged them.
//!
//! - `router`: dispatch on `crate::routes`, key checks against the ETL (cached per isolate),
//!   intake, forwarding.
//! - `buffer_object`: the `Buffer` Durable Object (one per project shard): durable appends
//!   (concurrent requests' events gathered into one, see `crate::coalesce`), alarms, signed
//!   deliveries, retries, and batches the ETL refused for good.
//!
//! Configuration (wrangler.toml `[vars]`, secrets from `.dev.vars` locally):
//! `ETL_URL`, `EDGE_ID`, `EDGE_SIGNING_KEY` (secret, `id:secret`), `KEY_CACHE_TTL_MS`,
//! `PROMPT_CACHE_TTL_MS`,
//! `BUFFER_SHARDS`, `FLUSH_MAX_EVENTS`, `FLUSH_MAX_BYTES`, `FLUSH_MAX_AGE_MS`.

mod buffer_object;
mod router;

use std::time::Duration;

use agenttrace_schemas::signature::SigningKey;
use worker::*;

use crate::buffer::FlushPolicy;

pub(crate) fn now_ms() -> u64 {
    Date::now().as_millis()
}

pub(crate) struct Config {
    /// One or more ETL replicas (`ETL_URL`, comma-separated).
    etl_urls: Vec<String>,
    edge_id: String,
    signing_key: SigningKey,
    key_cache_ttl_ms: u64,
    prompt_cache_ttl_ms: u64,
    shards: u32,
    policy: FlushPolicy,
}

fn var_or(env: &Env, name: &str, default: u64) -> std::result::Result<u64, String> {
    match env.var(name) {
        Ok(value) => value
            .to_string()
            .parse()
            // Not echoed: the message reaches `/healthz`, which anyone can read.
            .map_err(|_| format!("{name} must be a whole number")),
        Err(_) => Ok(default),
    }
}

impl Config {
    fn from_env(env: &Env) -> std::result::Result<Config, String> {
        let etl_urls = crate::forward::etl_urls(
            &env.var("ETL_URL")
                .map_err(|_| "ETL_URL is not set".to_owned())?
                .to_string(),
        )?;
        let signing_key = env
            .secret("EDGE_SIGNING_KEY")
            .map_err(|_| "the EDGE_SIGNING_KEY secret is not set".to_owned())
            .and_then(|secret| SigningKey::parse(&secret.to_string()))?;
        let defaults = FlushPolicy::default();
        Ok(Config {
            etl_urls,
            edge_id: env
                .var("EDGE_ID")
                .map(|v| v.to_string())
                .unwrap_or_else(|_| "edge".to_owned()),
            signing_key,
            key_cache_ttl_ms: var_or(env, "KEY_CACHE_TTL_MS", 30_000)?,
            prompt_cache_ttl_ms: var_or(env, "PROMPT_CACHE_TTL_MS", 10_000)?,
            shards: var_or(env, "BUFFER_SHARDS", 4)?.clamp(1, 1024) as u32,
            policy: FlushPolicy {
                max_events: var_or(env, "FLUSH_MAX_EVENTS", defaults.max_events as u64)? as usize,
                max_bytes: var_or(env, "FLUSH_MAX_BYTES", defaults.max_bytes as u64)? as usize,
                max_age: Duration::from_millis(var_or(
                    env,
                    "FLUSH_MAX_AGE_MS",
                    defaults.max_age.as_millis() as u64,
                )?),
            },
        })
    }
}

pub(crate) fn json_response(status: u16, body: String, extra: &[(&str, &str)]) -> Result<Response> {
    let headers = Headers::new();
    headers.set("content-type", "application/json")?;
    for (name, value) in extra {
        headers.set(name, value)?;
    }
    Ok(Response::from_bytes(body.into_bytes())?
        .with_status(status)
        .with_headers(headers))
}

pub(crate) fn error(status: u16, code: &str, message: &str) -> Result<Response> {
    let body = serde_json::json!({ "error": code, "message": message }).to_string();
    let retry: &[(&str, &str)] = if status == 503 {
        &[("retry-after", "5")]
    } else {
        &[]
    };
    json_response(status, body, retry)
}

/// Where this isolate's next request starts among the ETL replicas (an isolate's concurrent
/// requests share one thread, so a relaxed counter is enough).
static NEXT_ETL: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl Config {
    /// The ETL replicas in the order this request tries them.
    pub(crate) fn etl_targets(&self) -> impl Iterator<Item = &str> {
        let start = NEXT_ETL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        crate::forward::failover_order(self.etl_urls.len(), start).map(|i| self.etl_urls[i].as_str())
    }
}

/// POSTs a signed JSON body to the ETL (the next replica that answers); the status and body of
/// its answer. The body is signed once: the signature does not depend on the replica. It goes
/// as bytes: as a JS string a delivery of megabytes was decoded to UTF-16 and encoded back.
pub(crate) async fn post_signed(
    config: &Config,
    path: &str,
    body: &[u8],
) -> std::result::Result<(u16, Vec<u8>), String> {
    let signature = config.signing_key.headers((now_ms() / 1000) as i64, body);
    let mut last = Err("no ETL is configured".to_owned());
    for base in config.etl_targets() {
        let headers = Headers::new();
        let set = |name: &str, value: &str| headers.set(name, value).map_err(|e| e.to_string());
        set("content-type", "application/json")?;
        for (name, value) in &signature {
            set(name, value)?;
        }
        let mut init = RequestInit::new();
        init.with_method(Method::Post)
            .with_headers(headers)
            .with_body(Some(js_sys::Uint8Array::from(body).into()));
        let request = Request::new_with_init(&format!("{base}{path}"), &init).map_err(|e| e.to_string())?;
        last = match Fetch::Request(request).send().await {
            Ok(mut response) => {
                let status = response.status_code();
                let answer = response.bytes().await.map_err(|e| e.to_string())?;
                Ok((status, answer))
            }
            Err(problem) => Err(format!("{base}: {problem}")),
        };
        let status = last.as_ref().ok().map(|(status, _)| *status);
        if !crate::forward::try_another(status) {
            break;
        }
    }
    last
}
