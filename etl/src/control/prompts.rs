//! Prompts: text or chat templates with `{{variables}}`, immutable numbered versions, and
//! labels (`production`, `staging`, ...) that point at one version each.
//!
//! The guarantees live in PostgreSQL: a version is created under a row lock on its prompt, so
//! concurrent creates get gap-free numbers; `prompt_labels` has one row per (prompt, label), so
//! a label cannot be on two versions; a label moves in one statement. `latest` is not stored:
//! it is the newest version.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

use crate::control::{ControlError, Precision, time};

/// The label reserved for the newest version.
pub const LATEST: &str = "latest";
/// The label a read without version or label resolves.
pub const PRODUCTION: &str = "production";

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PromptType {
    #[default]
    Text,
    Chat,
}

impl PromptType {
    pub fn as_str(self) -> &'static str {
        match self {
            PromptType::Text => "text",
            PromptType::Chat => "chat",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "text" => Some(PromptType::Text),
            "chat" => Some(PromptType::Chat),
            _ => None,
        }
    }
}

/// A new version of a prompt (the prompt is created with its first version).
#[derive(Debug, Clone, PartialEq)]
pub struct NewPromptVersion {
    pub name: String,
    pub kind: PromptType,
    /// A string for a text prompt; an array of messages (`{role, content}` or
    /// `{type: "placeholder", name}`) for a chat prompt.
    pub prompt: Value,
    pub config: Value,
    pub labels: Vec<String>,
    pub tags: Vec<String>,
    pub commit_message: Option<String>,
}

/// One version of a prompt, as read.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PromptVersion {
    pub id: Uuid,
    pub prompt_id: Uuid,
    pub project_id: Uuid,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: PromptType,
    pub version: i32,
    pub prompt: Value,
    pub config: Value,
    /// Its labels, `latest` included when it is the newest version.
    pub labels: Vec<String>,
    pub tags: Vec<String>,
    #[schema(required = true)]
    pub commit_message: Option<String>,
    /// RFC 3339, UTC.
    pub created_at: String,
    pub updated_at: String,
}

/// A prompt in a listing: its versions and labels.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PromptSummary {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: PromptType,
    pub versions: Vec<i32>,
    pub labels: Vec<String>,
    pub tags: Vec<String>,
    pub last_updated_at: String,
    pub last_config: Value,
}

fn check_label(label: &str) -> Result<(), ControlError> {
    if label == LATEST {
        return Err(ControlError::Invalid {
            field: "labels",
            message: "\"latest\" is reserved: it always names the newest version".into(),
        });
    }
    let valid = !label.is_empty()
        && label.len() <= 36
        && label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-'));
    if !valid {
        return Err(ControlError::Invalid {
            field: "labels",
            message: format!("label {label:?} must be 1 to 36 of a-z, 0-9, '_', '.', '-'"),
        });
    }
    Ok(())
}

fn check_prompt(kind: PromptType, prompt: &Value) -> Result<(), ControlError> {
    let invalid = |message: String| ControlError::Invalid {
        field: "prompt",
        message,
    };
    match (kind, prompt) {
        (PromptType::Text, Value::String(_)) => Ok(()),
        (PromptType::Text, other) => Err(invalid(format!("a text prompt is a string, not {other}"))),
        (PromptType::Chat, Value::Array(messages)) => {
            for (index, message) in messages.iter().enumerate() {
                let placeholder = message.get("type").and_then(Value::as_str) == Some("placeholder");
                let ok = if placeholder {
                    message.get("name").is_some_and(Value::is_string)
                } else {
                    message.get("role").is_some_and(Value::is_string) && message.get("content").is_some()
                };
                if !ok {
                    return Err(invalid(format!(
                        "message {index} needs a role and content, or type \"placeholder\" and a name"
                    )));
                }
            }
            Ok(())
        }
        (PromptType::Chat, other) => Err(invalid(format!(
            "a chat prompt is an array of messages, not {other}"
        ))),
    }
}

fn check_name(name: &str) -> Result<(), ControlError> {
    if name.is_empty()
        || name.len() > 200
        || name.starts_with('/')
        || name.ends_with('/')
        || name.contains("//")
    {
        return Err(ControlError::Invalid {
            field: "name",
            message: format!(
                "prompt name {name:?} must be 1 to 200 characters; folders are separated by single '/'"
            ),
        });
    }
    Ok(())
}

impl PromptVersion {
    /// What [`PromptVersion::from_row`] reads, selected from
    /// `prompt_versions v JOIN prompts p ON p.id = v.prompt_id`.
    pub const COLUMNS: &'static str = "v.id, p.id AS prompt_id, p.project_id, p.name, p.type, v.version, \
        v.content, v.config, v.tags, v.commit_message, v.created_at, p.updated_at, \
        ARRAY(SELECT l.label FROM prompt_labels l WHERE l.version_id = v.id ORDER BY l.label) AS labels, \
        v.version = (SELECT max(version) FROM prompt_versions WHERE prompt_id = p.id) AS is_latest";

    pub fn from_row(row: &Row) -> Self {
        let mut labels: Vec<String> = row.get("labels");
        if row.get::<_, bool>("is_latest") {
            labels.push(LATEST.to_owned());
        }
        PromptVersion {
            id: row.get("id"),
            prompt_id: row.get("prompt_id"),
            project_id: row.get("project_id"),
            name: row.get("name"),
            kind: PromptType::parse(row.get("type")).unwrap_or(PromptType::Text),
            version: row.get("version"),
            prompt: row.get("content"),
            config: row.get("config"),
            labels,
            tags: row.get("tags"),
            commit_message: row.get("commit_message"),
            created_at: time(row, "created_at", Precision::Millis),
            updated_at: time(row, "updated_at", Precision::Millis),
        }
    }
}

/// Creates the next version of a prompt (the prompt itself on its first version) and moves
/// the given labels onto it, in one transaction. Concurrent creates of one prompt queue on its
/// row, so versions are numbered 1, 2, 3, ... without gaps or repeats.
pub async fn create_version(
    client: &mut tokio_postgres::Client,
    project_id: Uuid,
    new: &NewPromptVersion,
) -> Result<PromptVersion, ControlError> {
    check_name(&new.name)?;
    check_prompt(new.kind, &new.prompt)?;
    if !new.config.is_object() {
        return Err(ControlError::Invalid {
            field: "config",
            message: "must be a JSON object".into(),
        });
    }
    for label in &new.labels {
        check_label(label)?;
    }
    let tx = client.transaction().await?;
    tx.execute(
        "INSERT INTO prompts (project_id, name, type) VALUES ($1, $2, $3) ON CONFLICT (project_id, name) DO NOTHING",
        &[&project_id, &new.name, &new.kind.as_str()],
    )
    .await?;
    let prompt = tx
        .query_one(
            "SELECT id, type FROM prompts WHERE project_id = $1 AND name = $2 FOR UPDATE",
            &[&project_id, &new.name],
        )
        .await?;
    let prompt_id: Uuid = prompt.get("id");
    let existing: &str = prompt.get("type");
    if existing != new.kind.as_str() {
        return Err(ControlError::Invalid {
            field: "type",
            message: format!(
                "prompt {:?} is a {existing} prompt; a new version cannot be {}",
                new.name,
                new.kind.as_str()
            ),
        });
    }
    let version_id: Uuid = tx
        .query_one(
            "INSERT INTO prompt_versions (prompt_id, version, content, config, tags, commit_message)
             SELECT $1, coalesce(max(version), 0) + 1, $2, $3, $4, $5 FROM prompt_versions WHERE prompt_id = $1
             RETURNING id",
            &[&prompt_id, &new.prompt, &new.config, &new.tags, &new.commit_message],
        )
        .await?
        .get("id");
    point_labels(&tx, prompt_id, version_id, &new.labels).await?;
    let row = tx
        .query_one(
            &format!(
                "SELECT {} FROM prompt_versions v JOIN prompts p ON p.id = v.prompt_id WHERE v.id = $1",
                PromptVersion::COLUMNS
            ),
            &[&version_id],
        )
        .await?;
    tx.commit().await?;
    Ok(PromptVersion::from_row(&row))
}

/// Which version to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    Version(i32),
    Label(String),
}

/// One version of a prompt by version number or label (`latest` is the newest).
pub async fn get(
    client: &impl GenericClient,
    project_id: Uuid,
    name: &str,
    selector: &Selector,
) -> Result<PromptVersion, ControlError> {
    let base = format!(
        "SELECT {} FROM prompt_versions v JOIN prompts p ON p.id = v.prompt_id \
         WHERE p.project_id = $1 AND p.name = $2",
        PromptVersion::COLUMNS
    );
    let row = match selector {
        Selector::Version(version) => {
            client
                .query_opt(&format!("{base} AND v.version = $3"), &[&project_id, &name, version])
                .await?
        }
        Selector::Label(label) if label == LATEST => {
            client
                .query_opt(&format!("{base} ORDER BY v.version DESC LIMIT 1"), &[&project_id, &name])
                .await?
        }
        Selector::Label(label) => {
            client
                .query_opt(
                    &format!(
                        "{base} AND v.id = (SELECT version_id FROM prompt_labels WHERE prompt_id = p.id AND label = $3)"
                    ),
                    &[&project_id, &name, label],
                )
                .await?
        }
    };
    row.map(|row| PromptVersion::from_row(&row)).ok_or_else(|| {
        let which = match selector {
            Selector::Version(version) => format!("version {version}"),
            Selector::Label(label) => format!("label {label:?}"),
        };
        ControlError::NotFound(format!("prompt {name:?} with {which}"))
    })
}

/// Moves `labels` onto `version` (each label leaves whichever version had it), in one
/// transaction; the version as it is afterwards.
pub async fn set_labels(
    client: &mut tokio_postgres::Client,
    project_id: Uuid,
    name: &str,
    version: i32,
    labels: &[String],
) -> Result<PromptVersion, ControlError> {
    for label in labels {
        check_label(label)?;
    }
    let tx = client.transaction().await?;
    let target = tx
        .query_opt(
            "SELECT v.id AS version_id, p.id AS prompt_id FROM prompt_versions v JOIN prompts p ON p.id = v.prompt_id
             WHERE p.project_id = $1 AND p.name = $2 AND v.version = $3",
            &[&project_id, &name, &version],
        )
        .await?
        .ok_or_else(|| ControlError::NotFound(format!("prompt {name:?} with version {version}")))?;
    let (version_id, prompt_id): (Uuid, Uuid) = (target.get("version_id"), target.get("prompt_id"));
    point_labels(&tx, prompt_id, version_id, labels).await?;
    tx.commit().await?;
    get(client, project_id, name, &Selector::Version(version)).await
}

/// Deletes a prompt (every version), or only the versions a label or version number names.
pub async fn delete(
    client: &impl GenericClient,
    project_id: Uuid,
    name: &str,
    selector: Option<&Selector>,
) -> Result<u64, ControlError> {
    let deleted = match selector {
        None => {
            client
                .execute(
                    "DELETE FROM prompts WHERE project_id = $1 AND name = $2",
                    &[&project_id, &name],
                )
                .await?
        }
        Some(selector) => {
            let version = get(client, project_id, name, selector).await?;
            client
                .execute("DELETE FROM prompt_versions WHERE id = $1", &[&version.id])
                .await?
        }
    };
    if deleted == 0 {
        return Err(ControlError::NotFound(format!("prompt {name:?}")));
    }
    // A prompt whose last version is gone is gone.
    client
        .execute(
            "DELETE FROM prompts p WHERE project_id = $1 AND name = $2
             AND NOT EXISTS (SELECT 1 FROM prompt_versions v WHERE v.prompt_id = p.id)",
            &[&project_id, &name],
        )
        .await?;
    Ok(deleted)
}

/// Filters and page of a prompt listing.
#[derive(Debug, Clone, Default)]
pub struct PromptFilter {
    pub name: Option<String>,
    pub label: Option<String>,
    pub tag: Option<String>,
}

/// The project's prompts, by name, with their versions and labels; (page, total).
pub async fn list(
    client: &impl GenericClient,
    project_id: Uuid,
    filter: &PromptFilter,
    page: i64,
    limit: i64,
) -> Result<(Vec<PromptSummary>, i64), ControlError> {
    let rows = client
        .query(
            "SELECT p.name, p.type, v.version, v.config, v.tags, p.updated_at,
                    ARRAY(SELECT l.label FROM prompt_labels l WHERE l.version_id = v.id ORDER BY l.label) AS labels
             FROM prompts p JOIN prompt_versions v ON v.prompt_id = p.id
             WHERE p.project_id = $1 AND ($2::text IS NULL OR p.name = $2)
             ORDER BY p.name, v.version",
            &[&project_id, &filter.name],
        )
        .await?;
    let mut prompts: BTreeMap<String, PromptSummary> = BTreeMap::new();
    for row in &rows {
        let name: String = row.get("name");
        let summary = prompts.entry(name.clone()).or_insert_with(|| PromptSummary {
            name,
            kind: PromptType::parse(row.get("type")).unwrap_or(PromptType::Text),
            versions: Vec::new(),
            labels: Vec::new(),
            tags: Vec::new(),
            last_updated_at: time(row, "updated_at", Precision::Millis),
            last_config: Value::Null,
        });
        summary.versions.push(row.get("version"));
        summary.last_config = row.get("config");
        summary.tags = row.get("tags");
        summary.labels.extend(row.get::<_, Vec<String>>("labels"));
    }
    let mut matching: Vec<PromptSummary> = prompts
        .into_values()
        .filter(|p| {
            filter
                .label
                .as_ref()
                .is_none_or(|l| p.labels.contains(l) || l == LATEST)
        })
        .filter(|p| filter.tag.as_ref().is_none_or(|t| p.tags.contains(t)))
        .collect();
    for prompt in &mut matching {
        prompt.labels.push(LATEST.to_owned());
        prompt.labels.sort();
        prompt.labels.dedup();
    }
    let total = matching.len() as i64;
    let start = usize::try_from(crate::control::offset(page, limit)).unwrap_or(usize::MAX);
    Ok((
        matching.into_iter().skip(start).take(limit as usize).collect(),
        total,
    ))
}

/// Fills `{{variable}}` placeholders of a text (or of each chat message's content).
pub fn compile(prompt: &Value, variables: &BTreeMap<String, String>) -> Value {
    let fill = |text: &str| {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            out.push_str(&rest[..open]);
            let after = &rest[open + 2..];
            match after.find("}}") {
                Some(close) => {
                    let name = after[..close].trim();
                    match variables.get(name) {
                        Some(value) => out.push_str(value),
                        None => out.push_str(&rest[open..open + 2 + close + 2]),
                    }
                    rest = &after[close + 2..];
                }
                None => {
                    out.push_str(&rest[open..]);
                    rest = "";
                }
            }
        }
        out.push_str(rest);
        out
    };
    match prompt {
        Value::String(text) => Value::String(fill(text)),
        Value::Array(messages) => Value::Array(
            messages
                .iter()
                .map(|message| {
                    let mut message = message.clone();
                    if let Some(Value::String(content)) = message.get("content") {
                        message["content"] = Value::String(fill(content));
                    }
                    message
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Points each label at the version (moving it off the one it was on).
async fn point_labels(
    tx: &tokio_postgres::Transaction<'_>,
    prompt_id: Uuid,
    version_id: Uuid,
    labels: &[String],
) -> Result<(), ControlError> {
    for label in labels {
        tx.execute(
            "INSERT INTO prompt_labels (prompt_id, label, version_id) VALUES ($1, $2, $3)
             ON CONFLICT (prompt_id, label) DO UPDATE SET version_id = EXCLUDED.version_id, updated_at = now()",
            &[&prompt_id, label, &version_id],
        )
        .await?;
    }
    tx.execute(
        "UPDATE prompts SET updated_at = now() WHERE id = $1",
        &[&prompt_id],
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn labels_and_prompts_are_checked() {
        assert!(check_label("production").is_ok());
        assert!(check_label("latest").is_err());
        assert!(check_label("Prod").is_err());
        assert!(check_prompt(PromptType::Text, &json!("hi {{name}}")).is_ok());
        assert!(
            check_prompt(
                PromptType::Chat,
                &json!([{"role": "system", "content": "x"}, {"type": "placeholder", "name": "history"}])
            )
            .is_ok()
        );
        assert!(check_prompt(PromptType::Chat, &json!([{"content": "x"}])).is_err());
        assert!(check_prompt(PromptType::Text, &json!(["x"])).is_err());
        assert!(check_name("a/b/c").is_ok());
        assert!(check_name("a//b").is_err());
    }

    #[test]
    fn compiles_variables_and_keeps_unknown_ones() {
        let variables = BTreeMap::from([("movie".to_owned(), "Dune".to_owned())]);
        assert_eq!(
            compile(&json!("Do you like {{ movie }}? {{unknown}} {{"), &variables),
            json!("Do you like Dune? {{unknown}} {{")
        );
        assert_eq!(
            compile(&json!([{"role": "user", "content": "{{movie}}"}]), &variables),
            json!([{"role": "user", "content": "Dune"}])
        );
    }
}
