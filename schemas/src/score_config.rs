//! Score configs: what a score of a name means in a project, and whether a score fits its config.
//! The edge checks scores sent with a `configId` before answering; the ETL checks them again as
//! they load (a config may change in between), so both use [`ScoreConfig::check`].

use serde::{Deserialize, Serialize};

/// The metadata key a score names its config under (the edge writes Langfuse's `configId` there).
pub const CONFIG_ID_KEY: &str = "langfuse.configId";

/// Langfuse's score data types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ConfigDataType {
    Numeric,
    Boolean,
    Categorical,
    Text,
}

impl ConfigDataType {
    pub fn as_str(self) -> &'static str {
        match self {
            ConfigDataType::Numeric => "NUMERIC",
            ConfigDataType::Boolean => "BOOLEAN",
            ConfigDataType::Categorical => "CATEGORICAL",
            ConfigDataType::Text => "TEXT",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_uppercase().as_str() {
            "NUMERIC" => Some(ConfigDataType::Numeric),
            "BOOLEAN" => Some(ConfigDataType::Boolean),
            "CATEGORICAL" => Some(ConfigDataType::Categorical),
            "TEXT" => Some(ConfigDataType::Text),
            _ => None,
        }
    }
}

/// One category of a categorical config (a boolean config's are `True` = 1 and `False` = 0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Category {
    pub value: f64,
    pub label: String,
}

/// What a score checks against: the parts of a config that decide whether a score fits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = ScoreConfigCheck))]
#[serde(rename_all = "camelCase")]
pub struct ScoreConfig {
    pub id: String,
    pub name: String,
    pub data_type: ConfigDataType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub categories: Option<Vec<Category>>,
    #[serde(default)]
    pub is_archived: bool,
}

/// A score's value as sent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GivenValue<'a> {
    Number(f64),
    Bool(bool),
    Text(&'a str),
}

impl std::fmt::Display for GivenValue<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GivenValue::Number(n) => write!(f, "{n}"),
            GivenValue::Bool(b) => write!(f, "{b}"),
            GivenValue::Text(t) => write!(f, "{t:?}"),
        }
    }
}

/// Why a score does not fit its config: the field at fault and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Misfit {
    pub field: &'static str,
    pub message: String,
}

impl std::fmt::Display for Misfit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl ScoreConfig {
    /// Checks a score named `name`, of the declared data type `data_type` (if any), with `value`
    /// against this config, as Langfuse does: the config must be live, the names and data types
    /// must agree, a number must lie within the bounds, a category must be one of the config's.
    pub fn check(&self, name: &str, data_type: Option<&str>, value: GivenValue) -> Result<(), Misfit> {
        let misfit = |field, message: String| Err(Misfit { field, message });
        if self.is_archived {
            return misfit(
                "configId",
                format!(
                    "score config {} ({:?}) is archived: unarchive it or score against a live config",
                    self.id, self.name
                ),
            );
        }
        if name != self.name {
            return misfit(
                "name",
                format!(
                    "{name:?} differs from the name of score config {}, {:?}: a score takes its config's name",
                    self.id, self.name
                ),
            );
        }
        let kind = self.data_type.as_str();
        if let Some(declared) = data_type
            && !declared.eq_ignore_ascii_case(kind)
        {
            return misfit(
                "dataType",
                format!(
                    "{declared} differs from score config {:?}'s data type, {kind}",
                    self.name
                ),
            );
        }
        match (self.data_type, value) {
            (ConfigDataType::Numeric, GivenValue::Number(n)) => {
                if let Some(min) = self.min_value.filter(|min| n < *min) {
                    return misfit(
                        "value",
                        format!("{n} is below the minValue {min} of score config {:?}", self.name),
                    );
                }
                if let Some(max) = self.max_value.filter(|max| n > *max) {
                    return misfit(
                        "value",
                        format!("{n} is above the maxValue {max} of score config {:?}", self.name),
                    );
                }
                Ok(())
            }
            (ConfigDataType::Boolean, GivenValue::Bool(_)) => Ok(()),
            (ConfigDataType::Boolean, GivenValue::Number(n)) if n == 0.0 || n == 1.0 => Ok(()),
            (ConfigDataType::Categorical, given) => {
                let categories = self.categories.as_deref().unwrap_or_default();
                let fits = categories.iter().any(|c| match given {
                    // The edge sends a categorical number as its text.
                    GivenValue::Text(label) => c.label == label || label.parse() == Ok(c.value),
                    GivenValue::Number(n) => c.value == n,
                    GivenValue::Bool(_) => false,
                });
                if fits {
                    return Ok(());
                }
                let labels: Vec<&str> = categories.iter().map(|c| c.label.as_str()).collect();
                misfit(
                    "value",
                    format!(
                        "{given} is not a category of score config {:?}; use one of {labels:?}",
                        self.name
                    ),
                )
            }
            (ConfigDataType::Text, GivenValue::Text(_)) => Ok(()),
            (_, given) => misfit(
                "value",
                format!(
                    "{given} does not fit score config {:?}, a {kind} score: send {}",
                    self.name,
                    match self.data_type {
                        ConfigDataType::Numeric => "a number",
                        ConfigDataType::Boolean => "0, 1, true or false",
                        ConfigDataType::Categorical => "one of its category labels",
                        ConfigDataType::Text => "a string",
                    }
                ),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(data_type: ConfigDataType) -> ScoreConfig {
        ScoreConfig {
            id: "c1".into(),
            name: "helpfulness".into(),
            data_type,
            min_value: Some(0.0),
            max_value: Some(5.0),
            categories: Some(vec![
                Category {
                    value: 0.0,
                    label: "bad".into(),
                },
                Category {
                    value: 1.0,
                    label: "good".into(),
                },
            ]),
            is_archived: false,
        }
    }

    #[test]
    fn numbers_fit_within_the_bounds_only() {
        let numeric = config(ConfigDataType::Numeric);
        assert!(
            numeric
                .check("helpfulness", None, GivenValue::Number(5.0))
                .is_ok()
        );
        let above = numeric.check("helpfulness", Some("NUMERIC"), GivenValue::Number(7.0));
        assert_eq!(above.unwrap_err().field, "value");
        let below = numeric
            .check("helpfulness", None, GivenValue::Number(-1.0))
            .unwrap_err();
        assert!(below.message.contains("minValue 0"), "{below}");
        let text = numeric
            .check("helpfulness", None, GivenValue::Text("x"))
            .unwrap_err();
        assert!(text.message.contains("a number"), "{text}");
    }

    #[test]
    fn categories_match_by_label_or_value() {
        let categorical = config(ConfigDataType::Categorical);
        assert!(
            categorical
                .check("helpfulness", None, GivenValue::Text("good"))
                .is_ok()
        );
        assert!(
            categorical
                .check("helpfulness", None, GivenValue::Number(0.0))
                .is_ok()
        );
        let unknown = categorical
            .check("helpfulness", None, GivenValue::Text("meh"))
            .unwrap_err();
        assert!(unknown.message.contains(r#"["bad", "good"]"#), "{unknown}");
    }

    #[test]
    fn name_type_and_archive_are_checked_first() {
        let mut boolean = config(ConfigDataType::Boolean);
        assert!(boolean.check("helpfulness", None, GivenValue::Bool(true)).is_ok());
        assert!(
            boolean
                .check("helpfulness", None, GivenValue::Number(1.0))
                .is_ok()
        );
        assert_eq!(
            boolean
                .check("helpfulness", None, GivenValue::Number(0.5))
                .unwrap_err()
                .field,
            "value"
        );
        assert_eq!(
            boolean
                .check("other", None, GivenValue::Bool(true))
                .unwrap_err()
                .field,
            "name"
        );
        assert_eq!(
            boolean
                .check("helpfulness", Some("NUMERIC"), GivenValue::Number(1.0))
                .unwrap_err()
                .field,
            "dataType"
        );
        boolean.is_archived = true;
        assert_eq!(
            boolean
                .check("helpfulness", None, GivenValue::Bool(true))
                .unwrap_err()
                .field,
            "configId"
        );
    }
}
