//! Model connections: where a project's LLM judges send their calls. The provider's API key
//! (and any extra headers) are sealed ([`crate::control::sealing`]) before they reach
//! PostgreSQL, never returned, and shown as a hint; the judge opens them only to call.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value};
use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

use crate::control::sealing::{self, SealError, Sealer};
use crate::control::{ControlError, Precision, invalid, time};
use crate::judge::provider::{Adapter, Endpoint};

/// Calls at once per connection when its config does not say.
pub const DEFAULT_CONCURRENCY: u64 = 4;
/// Seconds a call may take when its config does not say.
pub const DEFAULT_TIMEOUT_SECS: u64 = 60;

/// A connection as the API shows it (Langfuse's `LlmConnection`): no secret, only its hint.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Connection {
    pub id: Uuid,
    /// The connection's name in the project, unique (the upsert key).
    pub provider: String,
    /// `openai` (and what speaks its API), `azure` or `anthropic`.
    pub adapter: String,
    /// The last characters of the secret key.
    pub display_secret_key: String,
    #[serde(rename = "baseURL")]
    #[schema(required = true)]
    pub base_url: Option<String>,
    pub custom_models: Vec<String>,
    pub with_default_models: bool,
    pub extra_header_keys: Vec<String>,
    /// `model` (the judges' default), `temperature`, `maxTokens`, `concurrency`,
    /// `timeoutSecs`, and Azure's `apiVersion`.
    pub config: Value,
    pub created_at: String,
    pub updated_at: String,
}

impl Connection {
    const COLUMNS: &'static str = "id, provider, adapter, secret_hint, base_url, custom_models, \
        with_default_models, extra_header_keys, config, created_at, updated_at";

    fn from_row(row: &Row) -> Connection {
        Connection {
            id: row.get("id"),
            provider: row.get("provider"),
            adapter: row.get("adapter"),
            display_secret_key: row.get("secret_hint"),
            base_url: row.get("base_url"),
            custom_models: row.get("custom_models"),
            with_default_models: row.get("with_default_models"),
            extra_header_keys: row.get("extra_header_keys"),
            config: row.get("config"),
            created_at: time(row, "created_at", Precision::Millis),
            updated_at: time(row, "updated_at", Precision::Millis),
        }
    }

    /// The model judges use when they name none.
    pub fn default_model(&self) -> Option<&str> {
        self.config["model"].as_str()
    }

    pub fn concurrency(&self) -> usize {
        self.config["concurrency"].as_u64().unwrap_or(DEFAULT_CONCURRENCY) as usize
    }
}

/// What a caller sends to create or replace a connection.
#[derive(Clone, Default)]
pub struct ConnectionUpsert {
    pub provider: String,
    pub adapter: String,
    pub secret_key: String,
    pub base_url: Option<String>,
    pub custom_models: Option<Vec<String>>,
    pub with_default_models: Option<bool>,
    pub extra_headers: Option<BTreeMap<String, String>>,
    pub config: Option<Value>,
}

impl std::fmt::Debug for ConnectionUpsert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionUpsert")
            .field("provider", &self.provider)
            .field("adapter", &self.adapter)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

/// What a secret of the row is sealed for: it opens only as that field (`secret`, `headers`) of
/// this project's connection of this name, adapter and base URL. Moved to another row, swapped
/// with the other field, or left behind when someone with database access repoints the URL,
/// it no longer opens.
fn context(project_id: Uuid, provider: &str, adapter: &str, base_url: Option<&str>, field: &str) -> Vec<u8> {
    serde_json::to_vec(&(
        "llm_connections",
        project_id,
        provider,
        adapter,
        base_url.unwrap_or_default(),
        field,
    ))
    .expect("plain values serialize")
}

/// Checks a connection's `config`: known keys with values in range.
fn check_config(adapter: Adapter, config: &Value) -> Result<(), ControlError> {
    let Some(object) = config.as_object() else {
        return Err(invalid("config", "must be a JSON object"));
    };
    for (key, value) in object {
        let ok = match key.as_str() {
            "model" => value
                .as_str()
                .is_some_and(|m| !m.trim().is_empty() && m.len() <= 200),
            "temperature" => value.as_f64().is_some_and(|t| (0.0..=2.0).contains(&t)),
            "maxTokens" => value.as_u64().is_some_and(|t| (1..=32_000).contains(&t)),
            "concurrency" => value.as_u64().is_some_and(|c| (1..=32).contains(&c)),
            "timeoutSecs" => value.as_u64().is_some_and(|t| (1..=600).contains(&t)),
            "apiVersion" if adapter == Adapter::Azure => value.as_str().is_some_and(|v| v.len() <= 40),
            // Langfuse's OpenAI switch; judges here use Chat Completions.
            "useResponsesApi" if adapter == Adapter::OpenAi => value == &Value::Bool(false),
            _ => {
                return Err(invalid(
                    "config",
                    format!(
                        "unknown key {key:?} for adapter {}; keys are model, temperature, maxTokens, concurrency, timeoutSecs{}",
                        adapter.name(),
                        if adapter == Adapter::Azure {
                            ", apiVersion"
                        } else {
                            ""
                        }
                    ),
                ));
            }
        };
        if !ok {
            return Err(invalid(
                "config",
                format!(
                    "{key} = {value} is out of range (model: a name; temperature: 0–2; maxTokens: 1–32000; concurrency: 1–32; timeoutSecs: 1–600; useResponsesApi: false)"
                ),
            ));
        }
    }
    Ok(())
}

fn check_header_name(name: &str) -> Result<(), ControlError> {
    // What the adapter sets, and hop-by-hop or proxy headers that change how a request travels.
    let reserved = [
        "authorization",
        "api-key",
        "x-api-key",
        "anthropic-version",
        "host",
        "content-length",
        "content-type",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "expect",
        "proxy-authorization",
        "proxy-connection",
    ];
    if name.is_empty()
        || name.len() > 100
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(invalid(
            "extraHeaders",
            format!("{name:?} is not a header name (letters, digits, - and _)"),
        ));
    }
    if reserved.contains(&name.to_ascii_lowercase().as_str()) {
        return Err(invalid(
            "extraHeaders",
            format!("{name} is set by the adapter; put the key in secretKey"),
        ));
    }
    Ok(())
}

/// Creates the project's connection named `upsert.provider`, or replaces it (Langfuse's upsert).
/// Returns it and whether it is new.
pub async fn upsert(
    client: &impl GenericClient,
    sealer: Option<&Sealer>,
    project_id: Uuid,
    upsert: &ConnectionUpsert,
) -> Result<(Connection, bool), ControlError> {
    let provider = upsert.provider.trim();
    if provider.is_empty() || provider.len() > 100 {
        return Err(invalid(
            "provider",
            "give the connection a name of 1 to 100 characters",
        ));
    }
    let adapter = Adapter::from_name(&upsert.adapter).ok_or_else(|| {
        invalid(
            "adapter",
            format!(
                "{:?} is not supported; use one of {}",
                upsert.adapter,
                Adapter::NAMES.join(", ")
            ),
        )
    })?;
    let secret = upsert.secret_key.trim();
    // Sent as a header value: printable ASCII only, or no call could ever carry it.
    let header_safe = |text: &str| text.bytes().all(|b| (0x20..0x7f).contains(&b));
    if secret.is_empty() || secret.len() > 4096 || !header_safe(secret) {
        return Err(invalid(
            "secretKey",
            "the provider's API key: 1 to 4096 printable ASCII characters, on one line",
        ));
    }
    if upsert.base_url.is_some() || adapter == Adapter::Azure {
        Endpoint::base_url(adapter, upsert.base_url.as_deref()).map_err(|m| invalid("baseURL", m))?;
    }
    let config = upsert.config.clone().unwrap_or_else(|| Value::Object(Map::new()));
    check_config(adapter, &config)?;
    let models = upsert.custom_models.clone().unwrap_or_default();
    if models.len() > 100 || models.iter().any(|m| m.trim().is_empty() || m.len() > 200) {
        return Err(invalid(
            "customModels",
            "up to 100 model names of 1 to 200 characters",
        ));
    }
    let headers = upsert.extra_headers.clone().unwrap_or_default();
    if headers.len() > 20 {
        return Err(invalid("extraHeaders", "up to 20 headers"));
    }
    for (name, value) in &headers {
        check_header_name(name)?;
        if value.len() > 4096 || !header_safe(value) {
            return Err(invalid(
                "extraHeaders",
                format!("the value of {name} must be at most 4096 printable ASCII characters, on one line"),
            ));
        }
    }
    let sealer = sealer.ok_or_else(|| {
        invalid(
            "secretKey",
            format!(
                "this server cannot store provider keys: start it with {} set (64 hex characters)",
                sealing::KEY_VARIABLE
            ),
        )
    })?;
    let base_url = upsert
        .base_url
        .as_deref()
        .map(str::trim)
        .filter(|u| !u.is_empty());
    let sealed_for = |field| context(project_id, provider, adapter.name(), base_url, field);
    let secret_sealed = sealer.seal(secret.as_bytes(), &sealed_for("secret"));
    let headers_sealed = (!headers.is_empty()).then(|| {
        sealer.seal(
            serde_json::to_string(&headers)
                .expect("a map of strings serializes")
                .as_bytes(),
            &sealed_for("headers"),
        )
    });
    let header_keys: Vec<String> = headers.keys().cloned().collect();
    let row = client
        .query_one(
            &format!(
                "INSERT INTO llm_connections (project_id, provider, adapter, base_url, secret_sealed, secret_hint,
                    custom_models, with_default_models, extra_header_keys, extra_headers_sealed, config)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                 ON CONFLICT (project_id, provider) DO UPDATE SET adapter = EXCLUDED.adapter,
                    base_url = EXCLUDED.base_url, secret_sealed = EXCLUDED.secret_sealed,
                    secret_hint = EXCLUDED.secret_hint, custom_models = EXCLUDED.custom_models,
                    with_default_models = EXCLUDED.with_default_models,
                    extra_header_keys = EXCLUDED.extra_header_keys,
                    extra_headers_sealed = EXCLUDED.extra_headers_sealed, config = EXCLUDED.config,
                    updated_at = now()
                 RETURNING {}, (xmax = 0) AS created",
                Connection::COLUMNS
            ),
            &[
                &project_id,
                &provider,
                &adapter.name(),
                &base_url,
                &secret_sealed,
                &sealing::hint(secret),
                &models,
                &upsert.with_default_models.unwrap_or(true),
                &header_keys,
                &headers_sealed,
                &config,
            ],
        )
        .await?;
    // A connection stored again may unblock the judges it had stopped.
    client
        .execute(
            "UPDATE evaluators SET blocked_reason = NULL
             WHERE project_id = $1 AND kind = 'llm_judge' AND config->>'connection' = $2",
            &[&project_id, &provider],
        )
        .await?;
    Ok((Connection::from_row(&row), row.get("created")))
}

/// A page of the project's connections by name, and how many there are.
pub async fn list(
    client: &impl GenericClient,
    project_id: Uuid,
    page: i64,
    limit: i64,
) -> Result<(Vec<Connection>, i64), ControlError> {
    let rows = client
        .query(
            &format!(
                "SELECT {}, count(*) OVER () AS total FROM llm_connections WHERE project_id = $1
                 ORDER BY provider LIMIT $2 OFFSET $3",
                Connection::COLUMNS
            ),
            &[&project_id, &limit, &crate::control::offset(page, limit)],
        )
        .await?;
    let total = match rows.first() {
        Some(row) => row.get("total"),
        None => count(client, project_id).await?,
    };
    Ok((rows.iter().map(Connection::from_row).collect(), total))
}

async fn count(client: &impl GenericClient, project_id: Uuid) -> Result<i64, ControlError> {
    Ok(client
        .query_one(
            "SELECT count(*) FROM llm_connections WHERE project_id = $1",
            &[&project_id],
        )
        .await?
        .get(0))
}

/// The project's connection with this id, or else this name.
pub async fn get(
    client: &impl GenericClient,
    project_id: Uuid,
    id_or_name: &str,
) -> Result<Connection, ControlError> {
    let id = Uuid::parse_str(id_or_name).ok();
    let row = client
        .query_opt(
            &format!(
                "SELECT {} FROM llm_connections WHERE project_id = $1 AND (id = $2 OR provider = $3)
                 ORDER BY (id = $2) DESC LIMIT 1",
                Connection::COLUMNS
            ),
            &[&project_id, &id, &id_or_name],
        )
        .await?
        .ok_or_else(|| ControlError::NotFound(format!("connection {id_or_name:?}")))?;
    Ok(Connection::from_row(&row))
}

/// Deletes a connection; the judges that call through it stop (blocked, with the reason) until
/// a connection of that name is stored again. Returns how many stopped.
pub async fn delete(client: &impl GenericClient, project_id: Uuid, id: Uuid) -> Result<u64, ControlError> {
    let row = client
        .query_opt(
            "DELETE FROM llm_connections WHERE project_id = $1 AND id = $2 RETURNING provider",
            &[&project_id, &id],
        )
        .await?
        .ok_or_else(|| ControlError::NotFound(format!("connection {id}")))?;
    let provider: String = row.get(0);
    Ok(client
        .execute(
            "UPDATE evaluators SET blocked_reason = $3
             WHERE project_id = $1 AND kind = 'llm_judge' AND config->>'connection' = $2",
            &[
                &project_id,
                &provider,
                &format!("its connection {provider:?} was deleted; store one of that name again"),
            ],
        )
        .await?)
}

/// A connection ready to call: its endpoint with the secret opened.
#[derive(Debug, Clone)]
pub struct Callable {
    pub connection: Connection,
    pub endpoint: Endpoint,
}

/// Opens the project's connection `id_or_name` for a call.
pub async fn callable(
    client: &impl GenericClient,
    sealer: Option<&Sealer>,
    project_id: Uuid,
    id_or_name: &str,
) -> Result<Callable, ControlError> {
    let connection = get(client, project_id, id_or_name).await?;
    let row = client
        .query_one(
            "SELECT secret_sealed, extra_headers_sealed FROM llm_connections WHERE id = $1",
            &[&connection.id],
        )
        .await?;
    let sealer = sealer.ok_or_else(|| {
        ControlError::Internal(format!(
            "{} is not set: stored provider keys cannot be opened",
            sealing::KEY_VARIABLE
        ))
    })?;
    let opened = |sealed: &[u8], field| -> Result<String, ControlError> {
        let sealed_for = context(
            project_id,
            &connection.provider,
            &connection.adapter,
            connection.base_url.as_deref(),
            field,
        );
        let bytes = sealer
            .open(sealed, &sealed_for)
            .map_err(|e| ControlError::Conflict(e.to_string()))?;
        String::from_utf8(bytes).map_err(|_| ControlError::Conflict(SealError::CannotOpen.to_string()))
    };
    let secret = opened(row.get::<_, &[u8]>("secret_sealed"), "secret")?;
    let extra_headers = match row.get::<_, Option<&[u8]>>("extra_headers_sealed") {
        Some(sealed) => serde_json::from_str::<BTreeMap<String, String>>(&opened(sealed, "headers")?)
            .map_err(|e| ControlError::Internal(format!("stored headers: {e}")))?
            .into_iter()
            .collect(),
        None => Vec::new(),
    };
    let adapter = Adapter::from_name(&connection.adapter)
        .ok_or_else(|| ControlError::Internal(format!("stored adapter {:?}", connection.adapter)))?;
    let endpoint = Endpoint {
        adapter,
        base_url: Endpoint::base_url(adapter, connection.base_url.as_deref())
            .map_err(|m| ControlError::Conflict(format!("the connection's baseURL: {m}")))?,
        secret,
        extra_headers,
        api_version: connection.config["apiVersion"].as_str().map(str::to_owned),
        timeout: Duration::from_secs(
            connection.config["timeoutSecs"]
                .as_u64()
                .unwrap_or(DEFAULT_TIMEOUT_SECS),
        ),
    };
    Ok(Callable { connection, endpoint })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn config_keys_and_ranges_are_checked() {
        assert!(
            check_config(
                Adapter::OpenAi,
                &json!({"model": "gpt-4o-mini", "temperature": 0, "concurrency": 8})
            )
            .is_ok()
        );
        assert!(check_config(Adapter::Azure, &json!({"apiVersion": "2024-10-21"})).is_ok());
        assert!(check_config(Adapter::OpenAi, &json!({"useResponsesApi": false})).is_ok());
        for bad in [
            json!({"apiVersion": "x"}),
            json!({"concurrency": 0}),
            json!({"temperature": 3}),
            json!({"useResponsesApi": true}),
            json!({"region": "us-east-1"}),
            json!([1]),
        ] {
            assert!(check_config(Adapter::OpenAi, &bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_adapter_headers_cannot_be_overridden() {
        assert!(check_header_name("X-Gateway-Team").is_ok());
        for bad in [
            "Authorization",
            "x-api-key",
            "Host",
            "Transfer-Encoding",
            "Proxy-Authorization",
            "a b",
            "",
            "x\r\ny",
        ] {
            assert!(check_header_name(bad).is_err(), "{bad}");
        }
    }
}
