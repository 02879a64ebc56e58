//! Model prices: the defaults every project uses (seeded by migration), and a project's own
//! overrides, each from the date it takes effect. The ETL prices generations that arrive
//! without a cost from these; `recompute_costs` re-prices past ones after a change.

use serde::Serialize;
use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

use crate::control::{ControlError, Precision, time};

#[derive(Debug, Clone, PartialEq)]
pub struct NewPrice {
    /// `None` changes the default for every project.
    pub project_id: Option<Uuid>,
    /// An anchored, case-insensitive regular expression over the model name.
    pub model_pattern: String,
    pub provider: String,
    /// USD per million tokens.
    pub input: f64,
    pub output: f64,
    pub cache_read: f64,
    pub cache_write: f64,
    /// RFC 3339; `None` means now.
    pub valid_from: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Price {
    pub id: Uuid,
    #[schema(required = true)]
    pub project_id: Option<Uuid>,
    pub model_pattern: String,
    pub provider: String,
    pub input_per_mtok: f64,
    pub output_per_mtok: f64,
    pub cache_read_per_mtok: f64,
    pub cache_write_per_mtok: f64,
    pub valid_from: String,
}

impl Price {
    /// What [`Price::from_row`] reads, selected from `model_prices` (USD as float8).
    pub const COLUMNS: &'static str = "id, project_id, model_pattern, provider, \
        input_per_mtok::float8 AS input_per_mtok, output_per_mtok::float8 AS output_per_mtok, \
        cache_read_per_mtok::float8 AS cache_read_per_mtok, cache_write_per_mtok::float8 AS cache_write_per_mtok, \
        valid_from";

    pub fn from_row(row: &Row) -> Self {
        Price {
            id: row.get("id"),
            project_id: row.get("project_id"),
            model_pattern: row.get("model_pattern"),
            provider: row.get("provider"),
            input_per_mtok: row.get("input_per_mtok"),
            output_per_mtok: row.get("output_per_mtok"),
            cache_read_per_mtok: row.get("cache_read_per_mtok"),
            cache_write_per_mtok: row.get("cache_write_per_mtok"),
            valid_from: time(row, "valid_from", Precision::Micros),
        }
    }
}

/// The highest price, in USD per million tokens: prices are stored as numeric(18, 9), below 10⁹,
/// from a float8 rounded to 15 significant digits (so 999999999.9999999 would become 10⁹).
pub const MAX_PRICE: f64 = 999_999_999.0;

/// The longest model pattern, in characters.
pub const MAX_PATTERN_CHARS: usize = 200;

/// The most prices a project holds: every project's patterns are compiled into each ETL's
/// price matcher, so one project must not fill its memory.
pub const MAX_PROJECT_PRICES: i64 = 1000;

/// Records a price (replacing one for the same project, pattern and date).
pub async fn set(client: &impl GenericClient, new: &NewPrice) -> Result<Price, ControlError> {
    let chars = new.model_pattern.chars().count();
    if chars == 0 || chars > MAX_PATTERN_CHARS {
        return Err(ControlError::Invalid {
            field: "model_pattern",
            message: format!("1 to {MAX_PATTERN_CHARS} characters, not {chars}"),
        });
    }
    // A short pattern can still compile to a huge automaton (`a{1000}{1000}`).
    if let Err(error) = regex::RegexBuilder::new(&format!("^(?:{})$", new.model_pattern))
        .size_limit(256 * 1024)
        .build()
    {
        return Err(ControlError::Invalid {
            field: "model_pattern",
            message: format!("not a valid regular expression, or too large a one: {error}"),
        });
    }
    // Replacing a price of the same pattern is always allowed.
    if let Some(project) = new.project_id {
        let held: i64 = client
            .query_one(
                "SELECT count(*) FROM model_prices WHERE project_id = $1 AND model_pattern <> $2",
                &[&project, &new.model_pattern],
            )
            .await?
            .get(0);
        if held >= MAX_PROJECT_PRICES {
            return Err(ControlError::Conflict(format!(
                "the project holds {held} prices, the most it may; delete some or widen a pattern"
            )));
        }
    }
    for (field, value) in [
        ("input", new.input),
        ("output", new.output),
        ("cache_read", new.cache_read),
        ("cache_write", new.cache_write),
    ] {
        if !(0.0..=MAX_PRICE).contains(&value) {
            return Err(ControlError::Invalid {
                field,
                message: format!("USD per million tokens must be from 0 to {MAX_PRICE}, not {value}"),
            });
        }
    }
    let row = client
        .query_one(
            "INSERT INTO model_prices (project_id, model_pattern, provider, input_per_mtok, output_per_mtok,
                                       cache_read_per_mtok, cache_write_per_mtok, valid_from, priority)
             VALUES ($1, $2, $3, $4::float8::numeric, $5::float8::numeric, $6::float8::numeric, $7::float8::numeric,
                     coalesce($8::text::timestamptz, now()), 0)
             ON CONFLICT (coalesce(project_id, '00000000-0000-0000-0000-000000000000'), model_pattern, valid_from)
             DO UPDATE SET input_per_mtok = EXCLUDED.input_per_mtok, output_per_mtok = EXCLUDED.output_per_mtok,
                cache_read_per_mtok = EXCLUDED.cache_read_per_mtok, cache_write_per_mtok = EXCLUDED.cache_write_per_mtok,
                provider = EXCLUDED.provider
             RETURNING id, valid_from",
            &[
                &new.project_id,
                &new.model_pattern,
                &new.provider,
                &new.input,
                &new.output,
                &new.cache_read,
                &new.cache_write,
                &new.valid_from,
            ],
        )
        .await
        .map_err(|error| match error.code() {
            Some(
                &tokio_postgres::error::SqlState::INVALID_DATETIME_FORMAT
                | &tokio_postgres::error::SqlState::DATETIME_FIELD_OVERFLOW,
            ) => ControlError::Invalid {
                field: "valid_from",
                message: "must be an RFC 3339 time".into(),
            },
            _ => ControlError::from(error),
        })?;
    // The prices as given: numeric keeps 15 significant digits of a float8, so reading them
    // back could differ in the last digit.
    Ok(Price {
        id: row.get("id"),
        project_id: new.project_id,
        model_pattern: new.model_pattern.clone(),
        provider: new.provider.clone(),
        input_per_mtok: new.input,
        output_per_mtok: new.output,
        cache_read_per_mtok: new.cache_read,
        cache_write_per_mtok: new.cache_write,
        valid_from: time(&row, "valid_from", Precision::Micros),
    })
}

/// The prices that apply to a project: its own first, then the defaults.
pub async fn list(client: &impl GenericClient, project_id: Uuid) -> Result<Vec<Price>, ControlError> {
    let rows = client
        .query(
            &format!(
                "SELECT {} FROM model_prices WHERE project_id IS NULL OR project_id = $1
                 ORDER BY project_id IS NULL, priority DESC, valid_from DESC, model_pattern",
                Price::COLUMNS
            ),
            &[&project_id],
        )
        .await?;
    Ok(rows.iter().map(Price::from_row).collect())
}

/// Deletes one of a project's own prices (the defaults are changed with [`set`], not deleted
/// through a project).
pub async fn delete(client: &impl GenericClient, project_id: Uuid, id: Uuid) -> Result<(), ControlError> {
    let deleted = client
        .execute(
            "DELETE FROM model_prices WHERE id = $1 AND project_id = $2",
            &[&id, &project_id],
        )
        .await?;
    if deleted == 0 {
        return Err(ControlError::NotFound(format!("price {id} of this project")));
    }
    Ok(())
}
