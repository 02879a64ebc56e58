//! Score configs: what a score of a name means in a project (a number within bounds, a boolean,
//! one of named categories, or text). Annotation queues ask for scores by config, and a score
//! sent with a config id must fit it ([`agenttrace_schemas::score_config`]). Archived rather than
//! deleted, as in Langfuse: stored scores keep pointing at their config.

use std::collections::HashMap;

use agenttrace_schemas::score_config::{Category, ConfigDataType, ScoreConfig};
use serde::{Deserialize, Serialize};
use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

use crate::control::{ControlError, Precision, invalid, time};

/// A project's score config as the API shows it (Langfuse's `ScoreConfig`).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScoreConfigRecord {
    pub id: Uuid,
    pub project_id: Uuid,
    pub name: String,
    pub data_type: ConfigDataType,
    #[schema(required = true)]
    pub min_value: Option<f64>,
    #[schema(required = true)]
    pub max_value: Option<f64>,
    /// A categorical config's categories; a boolean one's are `True` = 1 and `False` = 0.
    #[schema(required = true)]
    pub categories: Option<Vec<Category>>,
    #[schema(required = true)]
    pub description: Option<String>,
    pub is_archived: bool,
    pub created_at: String,
    pub updated_at: String,
}

/// A new score config.
#[derive(Debug, Clone, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewScoreConfig {
    pub name: String,
    pub data_type: ConfigDataType,
    pub min_value: Option<f64>,
    pub max_value: Option<f64>,
    pub categories: Option<Vec<Category>>,
    pub description: Option<String>,
}

/// A change to a score config: the fields given replace the stored ones.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScoreConfigChange {
    pub name: Option<String>,
    pub is_archived: Option<bool>,
    pub min_value: Option<f64>,
    pub max_value: Option<f64>,
    pub categories: Option<Vec<Category>>,
    pub description: Option<String>,
}

impl ScoreConfigRecord {
    const COLUMNS: &'static str = "id, project_id, name, data_type, min_value, max_value, categories, \
        description, archived, created_at, updated_at";

    fn from_row(row: &Row) -> Self {
        let data_type: String = row.get("data_type");
        ScoreConfigRecord {
            id: row.get("id"),
            project_id: row.get("project_id"),
            name: row.get("name"),
            // The table's CHECK holds it to the four names.
            data_type: ConfigDataType::parse(&data_type).unwrap_or(ConfigDataType::Text),
            min_value: row.get("min_value"),
            max_value: row.get("max_value"),
            categories: row
                .get::<_, Option<serde_json::Value>>("categories")
                .and_then(|c| serde_json::from_value(c).ok()),
            description: row.get("description"),
            is_archived: row.get("archived"),
            created_at: time(row, "created_at", Precision::Millis),
            updated_at: time(row, "updated_at", Precision::Millis),
        }
    }

    /// What a score is checked against.
    pub fn as_check(&self) -> ScoreConfig {
        ScoreConfig {
            id: self.id.to_string(),
            name: self.name.clone(),
            data_type: self.data_type,
            min_value: self.min_value,
            max_value: self.max_value,
            categories: self.categories.clone(),
            is_archived: self.is_archived,
        }
    }
}

/// Langfuse's characters for names (letters, digits, spaces and `_ . ( ) -`); up to 100 of them
/// (Langfuse takes 35: every name it takes is taken here).
fn check_name(name: &str) -> Result<(), ControlError> {
    let allowed = |c: char| c.is_alphanumeric() || " _.()-".contains(c);
    if name.trim().is_empty() || name.chars().count() > 100 || !name.chars().all(allowed) {
        return Err(invalid(
            "name",
            format!("{name:?}: use 1 to 100 letters, digits, spaces and _ . ( ) -"),
        ));
    }
    Ok(())
}

/// A config's bounds and categories, as stored.
type Settled = (Option<f64>, Option<f64>, Option<Vec<Category>>);

/// The stored shape of a config of `data_type`: bounds only for numbers, categories only for
/// categorical ones (unique labels and values), the fixed two for booleans.
fn settle(
    data_type: ConfigDataType,
    min_value: Option<f64>,
    max_value: Option<f64>,
    categories: Option<Vec<Category>>,
) -> Result<Settled, ControlError> {
    for (field, bound) in [("minValue", min_value), ("maxValue", max_value)] {
        if bound.is_some() && data_type != ConfigDataType::Numeric {
            return Err(invalid(
                field,
                format!("only a NUMERIC config has bounds, not a {}", data_type.as_str()),
            ));
        }
        if bound.is_some_and(|b| !b.is_finite()) {
            return Err(invalid(
                field,
                "must be a finite number (leave it out for no bound)",
            ));
        }
    }
    if let (Some(min), Some(max)) = (min_value, max_value)
        && min > max
    {
        return Err(invalid("minValue", format!("{min} is above maxValue {max}")));
    }
    let categories = match data_type {
        ConfigDataType::Categorical => {
            let categories = categories.unwrap_or_default();
            if categories.is_empty() || categories.len() > 100 {
                return Err(invalid(
                    "categories",
                    "a CATEGORICAL config needs 1 to 100 categories, each {value, label}",
                ));
            }
            for (i, category) in categories.iter().enumerate() {
                if category.label.trim().is_empty() || category.label.len() > 200 {
                    return Err(invalid(
                        "categories",
                        format!("category {i}: a label is 1 to 200 characters"),
                    ));
                }
                if !category.value.is_finite() {
                    return Err(invalid(
                        "categories",
                        format!("category {i}: its value must be a finite number"),
                    ));
                }
                let twin = categories[..i]
                    .iter()
                    .any(|c| c.label == category.label || c.value == category.value);
                if twin {
                    return Err(invalid(
                        "categories",
                        format!("category {i} ({:?}) repeats a label or a value", category.label),
                    ));
                }
            }
            Some(categories)
        }
        ConfigDataType::Boolean => {
            if categories.is_some() {
                return Err(invalid(
                    "categories",
                    "a BOOLEAN config's categories are fixed (True = 1, False = 0)",
                ));
            }
            Some(vec![
                Category {
                    value: 1.0,
                    label: "True".into(),
                },
                Category {
                    value: 0.0,
                    label: "False".into(),
                },
            ])
        }
        ConfigDataType::Numeric | ConfigDataType::Text => {
            if categories.is_some() {
                return Err(invalid(
                    "categories",
                    format!(
                        "only a CATEGORICAL config has categories, not a {}",
                        data_type.as_str()
                    ),
                ));
            }
            None
        }
    };
    Ok((min_value, max_value, categories))
}

fn check_description(description: Option<&str>) -> Result<(), ControlError> {
    if description.is_some_and(|d| d.len() > 2000) {
        return Err(invalid("description", "at most 2000 characters"));
    }
    Ok(())
}

/// A project holds at most this many configs (each is read when a score names one).
const MAX_CONFIGS: i64 = 1000;

pub async fn create(
    client: &impl GenericClient,
    project_id: Uuid,
    new: NewScoreConfig,
) -> Result<ScoreConfigRecord, ControlError> {
    check_name(&new.name)?;
    check_description(new.description.as_deref())?;
    let (min, max, categories) = settle(new.data_type, new.min_value, new.max_value, new.categories)?;
    let count: i64 = client
        .query_one(
            "SELECT count(*) FROM score_configs WHERE project_id = $1",
            &[&project_id],
        )
        .await?
        .get(0);
    if count >= MAX_CONFIGS {
        return Err(ControlError::Conflict(format!(
            "the project has {count} score configs, the most it may hold; archive and reuse one"
        )));
    }
    let categories = categories.map(|c| serde_json::to_value(c).unwrap_or_default());
    let row = client
        .query_one(
            &format!(
                "INSERT INTO score_configs (project_id, name, data_type, min_value, max_value, categories, description)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {}",
                ScoreConfigRecord::COLUMNS
            ),
            &[
                &project_id,
                &new.name,
                &new.data_type.as_str(),
                &min,
                &max,
                &categories,
                &new.description,
            ],
        )
        .await?;
    Ok(ScoreConfigRecord::from_row(&row))
}

pub async fn get(
    client: &impl GenericClient,
    project_id: Uuid,
    id: Uuid,
) -> Result<ScoreConfigRecord, ControlError> {
    client
        .query_opt(
            &format!(
                "SELECT {} FROM score_configs WHERE project_id = $1 AND id = $2",
                ScoreConfigRecord::COLUMNS
            ),
            &[&project_id, &id],
        )
        .await?
        .map(|row| ScoreConfigRecord::from_row(&row))
        .ok_or_else(|| ControlError::NotFound(format!("score config {id}")))
}

/// A page of the project's configs, newest first; and how many there are.
pub async fn list(
    client: &impl GenericClient,
    project_id: Uuid,
    page: i64,
    limit: i64,
) -> Result<(Vec<ScoreConfigRecord>, i64), ControlError> {
    let rows = client
        .query(
            &format!(
                "SELECT {}, count(*) OVER () AS total FROM score_configs WHERE project_id = $1
                 ORDER BY created_at DESC, id LIMIT $2 OFFSET $3",
                ScoreConfigRecord::COLUMNS
            ),
            &[&project_id, &limit, &crate::control::offset(page, limit)],
        )
        .await?;
    let total = match rows.first() {
        Some(row) => row.get("total"),
        None => client
            .query_one(
                "SELECT count(*) FROM score_configs WHERE project_id = $1",
                &[&project_id],
            )
            .await?
            .get(0),
    };
    Ok((rows.iter().map(ScoreConfigRecord::from_row).collect(), total))
}

/// Changes a config. Its data type stays (scores were given against it); bounds and categories
/// are checked against it as on creation.
pub async fn update(
    client: &impl GenericClient,
    project_id: Uuid,
    id: Uuid,
    change: ScoreConfigChange,
) -> Result<ScoreConfigRecord, ControlError> {
    let current = get(client, project_id, id).await?;
    if let Some(name) = &change.name {
        check_name(name)?;
    }
    check_description(change.description.as_deref())?;
    if change.categories.is_some() && current.data_type == ConfigDataType::Boolean {
        return Err(invalid(
            "categories",
            "a BOOLEAN config's categories are fixed (True = 1, False = 0)",
        ));
    }
    let categories = match current.data_type {
        ConfigDataType::Boolean => None,
        _ => change.categories.or(current.categories),
    };
    let (min, max, categories) = settle(
        current.data_type,
        change.min_value.or(current.min_value),
        change.max_value.or(current.max_value),
        categories,
    )?;
    let categories = categories.map(|c| serde_json::to_value(c).unwrap_or_default());
    let row = client
        .query_one(
            &format!(
                "UPDATE score_configs SET name = coalesce($3, name), archived = coalesce($4, archived),
                    min_value = $5, max_value = $6, categories = $7,
                    description = coalesce($8, description), updated_at = now()
                 WHERE project_id = $1 AND id = $2 RETURNING {}",
                ScoreConfigRecord::COLUMNS
            ),
            &[
                &project_id,
                &id,
                &change.name,
                &change.is_archived,
                &min,
                &max,
                &categories,
                &change.description,
            ],
        )
        .await?;
    Ok(ScoreConfigRecord::from_row(&row))
}

/// The configs of `ids` in the project, by id, for checking scores; ids that are not UUIDs or
/// not the project's are missing from the answer.
pub async fn for_check(
    client: &impl GenericClient,
    project_id: Uuid,
    ids: &[String],
) -> Result<HashMap<String, ScoreConfig>, ControlError> {
    let ids: Vec<Uuid> = ids.iter().filter_map(|id| id.parse().ok()).collect();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = client
        .query(
            &format!(
                "SELECT {} FROM score_configs WHERE project_id = $1 AND id = ANY($2)",
                ScoreConfigRecord::COLUMNS
            ),
            &[&project_id, &ids],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| {
            let record = ScoreConfigRecord::from_row(row);
            (record.id.to_string(), record.as_check())
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_langfuse_rules() {
        assert!(check_name("helpfulness (1-5)").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("a/b").is_err());
        assert!(check_name(&"x".repeat(101)).is_err());
    }

    #[test]
    fn each_type_keeps_only_what_it_means() {
        let boolean = settle(ConfigDataType::Boolean, None, None, None).unwrap();
        assert_eq!(boolean.2.unwrap().len(), 2);
        assert!(settle(ConfigDataType::Text, Some(1.0), None, None).is_err());
        assert!(settle(ConfigDataType::Numeric, Some(5.0), Some(1.0), None).is_err());
        assert!(settle(ConfigDataType::Categorical, None, None, Some(vec![])).is_err());
        let twins = vec![
            Category {
                value: 1.0,
                label: "a".into(),
            },
            Category {
                value: 1.0,
                label: "b".into(),
            },
        ];
        assert!(settle(ConfigDataType::Categorical, None, None, Some(twins)).is_err());
    }
}
