//! Langfuse's model definitions (`/api/public/models`) as a view of [`prices`]: a model is a
//! price row with a name. Langfuse prices per unit, AgentTrace per million tokens; its built-in
//! models are AgentTrace's defaults, read-only through a project.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::control::prices::{self, NewPrice, Price};
use crate::control::{ControlError, invalid};

/// A model definition in Langfuse's shape.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Model {
    pub id: Uuid,
    pub model_name: String,
    /// A case-insensitive regular expression over a generation's model, anchored at both ends.
    pub match_pattern: String,
    pub start_date: String,
    /// Always `TOKENS`.
    pub unit: &'static str,
    /// USD per input token.
    pub input_price: f64,
    /// USD per output token.
    pub output_price: f64,
    /// Always null: AgentTrace prices input and output apart.
    #[schema(required = true)]
    pub total_price: Option<f64>,
    /// USD per token, by usage type: `input`, `output`, `input_cache_read`, `input_cache_creation`.
    #[schema(value_type = Object)]
    pub prices: Value,
    /// Always empty: one price per usage type.
    #[schema(value_type = Vec<Object>)]
    pub pricing_tiers: Vec<Value>,
    /// Always null.
    #[schema(required = true)]
    pub tokenizer_id: Option<String>,
    /// Always null.
    #[schema(value_type = Option<Object>, required = true)]
    pub tokenizer_config: Option<Value>,
    /// One of AgentTrace's default prices, which a project cannot change.
    pub is_langfuse_managed: bool,
    pub created_at: String,
}

/// Langfuse's `CreateModelRequest`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewModel {
    pub model_name: String,
    pub match_pattern: String,
    /// RFC 3339; now when left out.
    pub start_date: Option<String>,
    /// `TOKENS` only.
    pub unit: Option<String>,
    /// USD per input token.
    pub input_price: Option<f64>,
    /// USD per output token.
    pub output_price: Option<f64>,
    /// Not supported: give input and output prices.
    pub total_price: Option<f64>,
    /// Not supported: give input and output prices.
    #[schema(value_type = Option<Vec<Object>>)]
    pub pricing_tiers: Option<Vec<Value>>,
    /// Not supported.
    pub tokenizer_id: Option<String>,
    /// Not supported.
    #[schema(value_type = Option<Object>)]
    pub tokenizer_config: Option<Value>,
}

const PER_MILLION: f64 = 1_000_000.0;

fn model(price: &Price, name: Option<String>) -> Model {
    let per_token = |per_mtok: f64| per_mtok / PER_MILLION;
    Model {
        id: price.id,
        model_name: name.unwrap_or_else(|| price.model_pattern.clone()),
        match_pattern: price.model_pattern.clone(),
        start_date: price.valid_from.clone(),
        unit: "TOKENS",
        input_price: per_token(price.input_per_mtok),
        output_price: per_token(price.output_per_mtok),
        total_price: None,
        prices: json!({
            "input": {"price": per_token(price.input_per_mtok)},
            "output": {"price": per_token(price.output_per_mtok)},
            "input_cache_read": {"price": per_token(price.cache_read_per_mtok)},
            "input_cache_creation": {"price": per_token(price.cache_write_per_mtok)},
        }),
        pricing_tiers: Vec::new(),
        tokenizer_id: None,
        tokenizer_config: None,
        is_langfuse_managed: price.project_id.is_none(),
        created_at: price.valid_from.clone(),
    }
}

/// The names of the prices `ids`.
async fn names(
    client: &impl GenericClient,
    ids: &[Uuid],
) -> Result<Vec<(Uuid, Option<String>)>, ControlError> {
    let rows = client
        .query(
            "SELECT id, model_name FROM model_prices WHERE id = ANY($1)",
            &[&ids],
        )
        .await?;
    Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
}

/// The project's models (its own first, then the defaults): a page of them, and how many.
pub async fn list(
    client: &impl GenericClient,
    project_id: Uuid,
    page: i64,
    limit: i64,
) -> Result<(Vec<Model>, i64), ControlError> {
    let all = prices::list(client, project_id).await?;
    let total = all.len() as i64;
    let shown: Vec<Price> = all
        .into_iter()
        .skip(crate::control::offset(page, limit) as usize)
        .take(limit as usize)
        .collect();
    let ids: Vec<Uuid> = shown.iter().map(|p| p.id).collect();
    let named = names(client, &ids).await?;
    let name_of = |id: Uuid| named.iter().find(|(i, _)| *i == id).and_then(|(_, n)| n.clone());
    Ok((shown.iter().map(|p| model(p, name_of(p.id))).collect(), total))
}

pub async fn get(client: &impl GenericClient, project_id: Uuid, id: Uuid) -> Result<Model, ControlError> {
    let row = client
        .query_opt(
            &format!(
                "SELECT {}, model_name FROM model_prices WHERE id = $1 AND (project_id IS NULL OR project_id = $2)",
                Price::COLUMNS
            ),
            &[&id, &project_id],
        )
        .await?
        .ok_or_else(|| ControlError::NotFound(format!("model {id}")))?;
    Ok(model(&Price::from_row(&row), row.get("model_name")))
}

/// Creates one of the project's models; with `id`, replaces the project's model of that id (or
/// creates it under that id).
pub async fn upsert(
    client: &mut tokio_postgres::Client,
    project_id: Uuid,
    id: Option<Uuid>,
    new: NewModel,
) -> Result<Model, ControlError> {
    if new.model_name.trim().is_empty() || new.model_name.len() > 200 {
        return Err(invalid("modelName", "must be 1 to 200 characters"));
    }
    if let Some(unit) = new.unit.as_deref()
        && !unit.eq_ignore_ascii_case("TOKENS")
    {
        return Err(invalid(
            "unit",
            format!("{unit:?}: AgentTrace prices TOKENS only"),
        ));
    }
    for (field, given) in [
        ("totalPrice", new.total_price.is_some()),
        (
            "pricingTiers",
            new.pricing_tiers.as_ref().is_some_and(|t| !t.is_empty()),
        ),
        ("tokenizerId", new.tokenizer_id.is_some()),
        (
            "tokenizerConfig",
            new.tokenizer_config.as_ref().is_some_and(|c| !c.is_null()),
        ),
    ] {
        if given {
            return Err(invalid(
                field,
                "not supported by AgentTrace: give inputPrice and outputPrice (USD per token)",
            ));
        }
    }
    let per_mtok = |field: &'static str, price: Option<f64>| -> Result<f64, ControlError> {
        let price = price.unwrap_or(0.0);
        if !price.is_finite() || price < 0.0 {
            return Err(invalid(field, "USD per token: a number, 0 or more"));
        }
        Ok(price * PER_MILLION)
    };
    let input = per_mtok("inputPrice", new.input_price)?;
    let output = per_mtok("outputPrice", new.output_price)?;
    let tx = client.transaction().await?;
    if let Some(id) = id {
        let owner = tx
            .query_opt("SELECT project_id FROM model_prices WHERE id = $1", &[&id])
            .await?
            .map(|row| row.get::<_, Option<Uuid>>(0));
        match owner {
            Some(None) => {
                return Err(ControlError::Forbidden(format!(
                    "model {id} is one of AgentTrace's defaults; create the project's own model instead"
                )));
            }
            // Another project's: as if absent, though its id cannot be taken.
            Some(Some(other)) if other != project_id => {
                return Err(ControlError::NotFound(format!(
                    "model {id} of this project; create one with POST /api/public/models or another id"
                )));
            }
            _ => {}
        }
        tx.execute(
            "DELETE FROM model_prices WHERE id = $1 AND project_id = $2",
            &[&id, &project_id],
        )
        .await?;
    }
    let price = prices::set(
        &tx,
        &NewPrice {
            project_id: Some(project_id),
            model_pattern: new.match_pattern,
            provider: "custom".into(),
            input,
            output,
            cache_read: 0.0,
            cache_write: 0.0,
            valid_from: new.start_date,
        },
    )
    .await
    .map_err(|error| match error {
        ControlError::Invalid {
            field: "model_pattern",
            message,
        } => invalid("matchPattern", message),
        ControlError::Invalid {
            field: "valid_from",
            message,
        } => invalid("startDate", message),
        ControlError::Invalid {
            field: "input",
            message,
        } => invalid("inputPrice", message),
        ControlError::Invalid {
            field: "output",
            message,
        } => invalid("outputPrice", message),
        other => other,
    })?;
    let id = id.unwrap_or(price.id);
    let row = tx
        .query_one(
            &format!(
                "UPDATE model_prices SET id = $2, model_name = $3 WHERE id = $1 RETURNING {}, model_name",
                Price::COLUMNS
            ),
            &[&price.id, &id, &new.model_name],
        )
        .await?;
    tx.commit().await?;
    let mut stored = Price::from_row(&row);
    // As given, not as numeric(18, 9) rounded them.
    (stored.input_per_mtok, stored.output_per_mtok) = (input, output);
    Ok(model(&stored, row.get("model_name")))
}

/// Deletes one of the project's own models.
pub async fn delete(client: &impl GenericClient, project_id: Uuid, id: Uuid) -> Result<(), ControlError> {
    let managed = client
        .query_opt(
            "SELECT 1 FROM model_prices WHERE id = $1 AND project_id IS NULL",
            &[&id],
        )
        .await?;
    if managed.is_some() {
        return Err(ControlError::Forbidden(format!(
            "model {id} is one of AgentTrace's defaults, which a project cannot delete"
        )));
    }
    prices::delete(client, project_id, id).await
}
