//! Langfuse's v2 evaluators and evaluation rules, as its Python SDK calls them
//! (`langfuse.api.evaluators`, `langfuse.api.evaluation_rules`).
//!
//! A **definition** (Langfuse's "evaluator") says how to score: a chat prompt with
//! `{{variables}}`, an output definition, a model; every change to one of those is a new
//! version. A **rule** says what to score: Langfuse's filter list over observations, a sampling
//! rate, and which definitions with which variable mappings. Each (rule, definition) pair runs
//! as one `llm_judge` evaluator whose config [`sync`] derives from both whenever either
//! changes; the judge job knows nothing else.
//!
//! A definition without a `modelConfig` uses the project's first model connection and its
//! model. Enabling a rule checks that every definition it uses has a connection to call.

use std::collections::BTreeSet;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio_postgres::{Client, GenericClient, Row};
use uuid::Uuid;

use crate::control::{ControlError, invalid};
use crate::judge::template::{self, JudgeConfig, MAX_TEMPLATE_CHARS};

/// Where a variable may come from (Langfuse's `PromptVariableMappingSource`).
pub const MAPPING_SOURCES: &[&str] = &[
    "input",
    "output",
    "metadata",
    "tool_calls",
    "expected_output",
    "experiment_item_metadata",
];
/// What one project may hold, and one definition or rule may say: every judge is loaded and
/// checked against what arrives on every run.
const MAX_DEFINITIONS: i64 = 500;
const MAX_RULES: i64 = 200;
const MAX_MESSAGES: usize = 50;
const MAX_MAPPINGS: usize = 100;
const MAX_DESCRIPTION_CHARS: usize = 2_000;
const MAX_FILTER_BYTES: usize = 64 * 1024;
/// Items a page holds by default, and at most.
const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 100;

/// One chat message of a judge's prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    pub content: String,
}

/// One prompt variable's source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VariableMapping {
    pub variable: String,
    /// `input`, `output`, `metadata`, `tool_calls`, `expected_output` or `experiment_item_metadata`.
    #[schema(required = true)]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_path: Option<String>,
}

/// The connection (by its `provider` name) and model a judge calls.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub provider: String,
    pub model: String,
}

/// What a judge says and how (Langfuse's flattened definition fields).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Definition {
    pub prompt: Vec<ChatMessage>,
    pub variable_mapping: Option<Vec<VariableMapping>>,
    pub model_config: Option<ModelConfig>,
    pub output_definition: Value,
}

/// The `{{variables}}` of a prompt, as Langfuse reads them: a letter, then letters, digits or
/// `_`, with no spaces; each once, in order of first use.
pub fn variables_of(prompt: &[ChatMessage]) -> Vec<String> {
    let mut seen = Vec::new();
    for message in prompt {
        let mut rest = message.content.as_str();
        while let Some(start) = rest.find("{{") {
            let after = &rest[start + 2..];
            let Some(end) = after.find("}}") else { break };
            let name = &after[..end];
            let mut chars = name.chars();
            let valid = chars.next().is_some_and(char::is_alphabetic)
                && chars.all(|c| c.is_alphanumeric() || c == '_')
                && !name.contains(['{', '}']);
            if valid && !seen.iter().any(|s| s == name) {
                seen.push(name.to_owned());
            }
            rest = &after[end + 2..];
        }
    }
    seen
}

/// The prompt as given: a string is one user message.
pub fn prompt_of(given: &Value) -> Result<Vec<ChatMessage>, ControlError> {
    let messages = match given {
        Value::String(text) => vec![ChatMessage {
            role: "user".into(),
            content: text.clone(),
        }],
        Value::Array(_) => serde_json::from_value::<Vec<ChatMessage>>(given.clone())
            .map_err(|e| invalid("prompt", format!("a string or [{{role, content}}]: {e}")))?,
        _ => {
            return Err(invalid(
                "prompt",
                "a string or a list of {role, content} messages",
            ));
        }
    };
    if messages.len() > MAX_MESSAGES
        || messages.iter().map(|m| m.content.chars().count()).sum::<usize>() > MAX_TEMPLATE_CHARS
    {
        return Err(invalid(
            "prompt",
            format!("at most {MAX_MESSAGES} messages of {MAX_TEMPLATE_CHARS} characters in all"),
        ));
    }
    if messages.is_empty() || messages.iter().all(|m| m.content.trim().is_empty()) {
        return Err(invalid(
            "prompt",
            "the judge's instructions: give at least one message",
        ));
    }
    if let Some(message) = messages
        .iter()
        .find(|m| !matches!(m.role.as_str(), "system" | "user" | "assistant"))
    {
        return Err(invalid(
            "prompt",
            format!("role {:?}: use system, user or assistant", message.role),
        ));
    }
    if !messages.iter().any(|m| m.role != "system") {
        return Err(invalid(
            "prompt",
            "add a user message: a system message alone asks nothing",
        ));
    }
    Ok(messages)
}

/// An output definition, checked, in the form the API returns it.
pub fn output_definition_of(given: &Value) -> Result<Value, ControlError> {
    let object = given
        .as_object()
        .ok_or_else(|| invalid("outputDefinition", "an object with dataType"))?;
    let known = [
        "dataType",
        "minValue",
        "maxValue",
        "categories",
        "shouldAllowMultipleMatches",
        "scoreReasoningInstructions",
        "scoreValueInstructions",
    ];
    if let Some(key) = object.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(invalid(
            "outputDefinition",
            format!("unknown key {key:?}; keys are {}", known.join(", ")),
        ));
    }
    let mut out = serde_json::Map::new();
    let data_type = object.get("dataType").and_then(Value::as_str).unwrap_or_default();
    out.insert("dataType".into(), json!(data_type));
    match data_type {
        "NUMERIC" => {
            let bound = |key: &str| match object.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(value) => value
                    .as_f64()
                    .map(Some)
                    .ok_or_else(|| invalid("outputDefinition", format!("{key} must be a number"))),
            };
            let (min, max) = (bound("minValue")?, bound("maxValue")?);
            if let (Some(min), Some(max)) = (min, max)
                && min > max
            {
                return Err(invalid("outputDefinition", "minValue must not exceed maxValue"));
            }
            if let Some(min) = min {
                out.insert("minValue".into(), json!(min));
            }
            if let Some(max) = max {
                out.insert("maxValue".into(), json!(max));
            }
        }
        "BOOLEAN" => {}
        "CATEGORICAL" => {
            let categories: Vec<String> = object
                .get("categories")
                .and_then(Value::as_array)
                .map(|c| {
                    c.iter()
                        .filter_map(|v| v.as_str().map(|s| s.trim().to_owned()))
                        .collect()
                })
                .unwrap_or_default();
            let distinct: BTreeSet<&String> = categories.iter().collect();
            if categories.len() < 2
                || distinct.len() != categories.len()
                || categories.iter().any(String::is_empty)
                || categories.len() > 50
            {
                return Err(invalid(
                    "outputDefinition",
                    "categories: 2 to 50 distinct non-empty strings",
                ));
            }
            if object.get("shouldAllowMultipleMatches") == Some(&json!(true)) {
                return Err(invalid(
                    "outputDefinition",
                    "shouldAllowMultipleMatches: an AgentTrace judge picks one category; set it to false",
                ));
            }
            out.insert("categories".into(), json!(categories));
            out.insert("shouldAllowMultipleMatches".into(), json!(false));
        }
        other => {
            return Err(invalid(
                "outputDefinition",
                format!("dataType {other:?}: use NUMERIC, BOOLEAN or CATEGORICAL"),
            ));
        }
    }
    for key in ["scoreReasoningInstructions", "scoreValueInstructions"] {
        match object.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::String(text)) if !text.is_empty() => {
                out.insert(key.into(), json!(text));
            }
            Some(Value::String(_)) => {}
            Some(_) => return Err(invalid("outputDefinition", format!("{key} must be a string"))),
        }
    }
    Ok(Value::Object(out))
}

/// A mapping checked against the prompt's variables: known sources, each variable of the
/// prompt mapped exactly once, valid JSONPaths.
pub fn check_mapping(
    field: &'static str,
    mapping: &[VariableMapping],
    variables: &[String],
) -> Result<(), ControlError> {
    if mapping.len() > MAX_MAPPINGS {
        return Err(invalid(field, format!("at most {MAX_MAPPINGS} variables")));
    }
    let mut mapped = BTreeSet::new();
    for (i, entry) in mapping.iter().enumerate() {
        let source = entry.source.as_deref().unwrap_or_default();
        if !MAPPING_SOURCES.contains(&source) {
            let shown: String = source.chars().take(60).collect();
            return Err(invalid(
                field,
                format!(
                    "[{i}].source {shown:?}: use one of {}",
                    MAPPING_SOURCES.join(", ")
                ),
            ));
        }
        if !variables.contains(&entry.variable) {
            let shown: String = entry.variable.chars().take(60).collect();
            return Err(invalid(
                field,
                format!(
                    "[{i}].variable {shown:?} is not in the prompt (its variables: {})",
                    variables.join(", ")
                ),
            ));
        }
        if !mapped.insert(entry.variable.as_str()) {
            return Err(invalid(
                field,
                format!("[{i}]: {:?} is mapped twice", entry.variable),
            ));
        }
        if let Some(path) = &entry.json_path
            && let Err(problem) = template::check_path(path)
        {
            return Err(invalid(field, format!("[{i}].jsonPath: {problem}")));
        }
    }
    let missing: Vec<&str> = variables
        .iter()
        .map(String::as_str)
        .filter(|v| !mapped.contains(v))
        .collect();
    if !missing.is_empty() {
        return Err(invalid(
            field,
            format!(
                "map every prompt variable exactly once; unmapped: {}",
                missing.join(", ")
            ),
        ));
    }
    Ok(())
}

/// The definition fields of a create or update body, checked.
pub fn definition_of(body: &Value) -> Result<Definition, ControlError> {
    let prompt = prompt_of(body.get("prompt").unwrap_or(&Value::Null))?;
    let variable_mapping = match body.get("variableMapping") {
        None | Some(Value::Null) => None,
        Some(given) => Some(
            serde_json::from_value::<Vec<VariableMapping>>(given.clone()).map_err(|e| {
                invalid(
                    "variableMapping",
                    format!("[{{variable, source, jsonPath}}]: {e}"),
                )
            })?,
        ),
    };
    if let Some(mapping) = &variable_mapping {
        check_mapping("variableMapping", mapping, &variables_of(&prompt))?;
    }
    let model_config = match body.get("modelConfig") {
        None | Some(Value::Null) => None,
        Some(given) => Some(
            serde_json::from_value::<ModelConfig>(given.clone())
                .map_err(|e| invalid("modelConfig", format!("{{provider, model}}: {e}")))?,
        ),
    };
    if model_config
        .as_ref()
        .is_some_and(|m| m.provider.trim().is_empty() || m.model.trim().is_empty())
    {
        return Err(invalid("modelConfig", "provider and model must not be empty"));
    }
    let output_definition = output_definition_of(
        body.get("outputDefinition")
            .ok_or_else(|| invalid("outputDefinition", "required: {dataType, ...}"))?,
    )?;
    Ok(Definition {
        prompt,
        variable_mapping,
        model_config,
        output_definition,
    })
}

fn description_of(body: &Value) -> Result<Option<Option<String>>, ControlError> {
    match body.get("description") {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(text)) if text.chars().count() <= MAX_DESCRIPTION_CHARS => {
            Ok(Some(Some(text.clone())))
        }
        Some(_) => Err(invalid(
            "description",
            format!("a string of at most {MAX_DESCRIPTION_CHARS} characters, or null to clear it"),
        )),
    }
}

/// Refuses a new row past what a project may hold.
async fn within_quota(
    pg: &impl GenericClient,
    project: Uuid,
    table: &str,
    most: i64,
    what: &str,
) -> Result<(), ControlError> {
    let held: i64 = pg
        .query_one(
            &format!("SELECT count(*) FROM {table} WHERE project_id = $1"),
            &[&project],
        )
        .await?
        .get(0);
    if held >= most {
        return Err(ControlError::Conflict(format!(
            "the project holds {held} {what}, the most it may; delete some first"
        )));
    }
    Ok(())
}

fn name_of(body: &Value, required: bool) -> Result<Option<String>, ControlError> {
    match body.get("name") {
        None | Some(Value::Null) if !required => Ok(None),
        Some(Value::String(name)) if !name.trim().is_empty() && name.chars().count() <= 200 => {
            Ok(Some(name.clone()))
        }
        _ => Err(invalid("name", "1 to 200 characters")),
    }
}

fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// An opaque position after the row created at `at` with `id`.
fn cursor_after(at: DateTime<Utc>, id: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}:{id}", at.timestamp_micros()))
}

fn cursor_read(cursor: Option<&str>) -> Result<Option<(DateTime<Utc>, Uuid)>, ControlError> {
    let Some(cursor) = cursor.filter(|c| !c.is_empty()) else {
        return Ok(None);
    };
    let refused = || {
        invalid(
            "cursor",
            "not a cursor this list returned; pass meta.cursor unchanged",
        )
    };
    let text =
        String::from_utf8(URL_SAFE_NO_PAD.decode(cursor).map_err(|_| refused())?).map_err(|_| refused())?;
    let (micros, id) = text.split_once(':').ok_or_else(refused)?;
    let at = DateTime::from_timestamp_micros(micros.parse().map_err(|_| refused())?).ok_or_else(refused)?;
    Ok(Some((at, Uuid::parse_str(id).map_err(|_| refused())?)))
}

fn limit_of(limit: Option<i64>) -> Result<i64, ControlError> {
    match limit {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(_) => Err(invalid("limit", format!("1 to {MAX_LIMIT}"))),
    }
}

/// `data` (read with one row more than `limit`) as a page, with the cursor after its last row
/// when there is more.
fn page<T>(mut data: Vec<T>, limit: i64, position: impl Fn(&T) -> String) -> CursorPage<T> {
    let more = data.len() as i64 > limit;
    data.truncate(limit as usize);
    let cursor = more.then(|| data.last()).flatten().map(position);
    CursorPage {
        data,
        meta: CursorMeta { cursor },
    }
}

/// A page of a newest-first list: `{data, meta: {cursor}}`, the cursor absent on the last.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CursorPage<T> {
    pub data: Vec<T>,
    pub meta: CursorMeta,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CursorMeta {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// A rule that uses an evaluator, and the rule's own mapping for it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RuleAssignment {
    pub evaluation_rule_id: Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variable_mapping_override: Option<Vec<VariableMapping>>,
}

/// Langfuse's `Evaluator` (type `llm_as_judge`): the definition with its latest version flattened in.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JudgeDefinition {
    /// When it was created, exactly: where the next page starts.
    #[serde(skip)]
    pub created: DateTime<Utc>,
    pub id: Uuid,
    pub name: String,
    #[schema(required = true)]
    pub description: Option<String>,
    /// Always null: API keys create them.
    #[schema(required = true, value_type = Option<Object>)]
    pub created_by: Option<Value>,
    /// `active`, or `paused` when it has no model connection to call.
    pub status: String,
    #[schema(required = true)]
    pub paused_at: Option<String>,
    #[schema(required = true)]
    pub paused_reason: Option<String>,
    #[schema(required = true)]
    pub paused_message: Option<String>,
    pub evaluation_rule_assignments: Vec<RuleAssignment>,
    pub created_at: String,
    pub updated_at: String,
    pub version_id: Uuid,
    pub version: i32,
    pub version_created_at: String,
    #[schema(required = true, value_type = Option<Object>)]
    pub version_created_by: Option<Value>,
    /// `llm_as_judge`.
    #[serde(rename = "type")]
    pub kind: String,
    pub prompt: Vec<ChatMessage>,
    pub variables: Vec<String>,
    #[schema(required = true)]
    pub variable_mapping: Option<Vec<VariableMapping>>,
    #[schema(required = true)]
    pub model_config: Option<ModelConfig>,
    #[schema(value_type = Object)]
    pub output_definition: Value,
}

/// One version of a definition (Langfuse's `EvaluatorVersion`, type `llm_as_judge`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JudgeDefinitionVersion {
    pub id: Uuid,
    pub version: i32,
    pub created_at: String,
    #[schema(required = true, value_type = Option<Object>)]
    pub created_by: Option<Value>,
    #[serde(rename = "type")]
    pub kind: String,
    pub prompt: Vec<ChatMessage>,
    pub variables: Vec<String>,
    #[schema(required = true)]
    pub variable_mapping: Option<Vec<VariableMapping>>,
    #[schema(required = true)]
    pub model_config: Option<ModelConfig>,
    #[schema(value_type = Object)]
    pub output_definition: Value,
}

const VERSION_COLUMNS: &str = "v.id AS version_id, v.version, v.created_at AS version_created_at, v.prompt, \
    v.variable_mapping, v.model_config, v.output_definition";

fn version_of(row: &Row) -> JudgeDefinitionVersion {
    let prompt: Vec<ChatMessage> = serde_json::from_value(row.get("prompt")).unwrap_or_default();
    JudgeDefinitionVersion {
        id: row.get("version_id"),
        version: row.get("version"),
        created_at: time(row.get("version_created_at")),
        created_by: None,
        kind: "llm_as_judge".into(),
        variables: variables_of(&prompt),
        prompt,
        variable_mapping: row
            .get::<_, Option<Value>>("variable_mapping")
            .and_then(|m| serde_json::from_value(m).ok()),
        model_config: row
            .get::<_, Option<Value>>("model_config")
            .and_then(|m| serde_json::from_value(m).ok()),
        output_definition: row.get("output_definition"),
    }
}

/// The definitions of `project` (all, or the one `id`), newest first from `after`.
async fn read_definitions(
    pg: &impl GenericClient,
    project: Uuid,
    id: Option<Uuid>,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<JudgeDefinition>, ControlError> {
    let rows = pg
        .query(
            &format!(
                "SELECT d.id, d.name, d.description, d.created_at, d.updated_at, {VERSION_COLUMNS},
                    NOT EXISTS (SELECT 1 FROM llm_connections c WHERE c.project_id = d.project_id
                                AND c.provider = coalesce(v.model_config->>'provider', c.provider)) AS no_model
                 FROM judge_definitions d
                 JOIN LATERAL (SELECT * FROM judge_definition_versions WHERE definition_id = d.id
                               ORDER BY version DESC LIMIT 1) v ON true
                 WHERE d.project_id = $1 AND ($2::uuid IS NULL OR d.id = $2)
                   AND ($3::timestamptz IS NULL OR (d.created_at, d.id) < ($3, $4))
                 ORDER BY d.created_at DESC, d.id DESC LIMIT $5"
            ),
            &[
                &project,
                &id,
                &after.map(|(at, _)| at),
                &after.map(|(_, id)| id),
                &limit,
            ],
        )
        .await?;
    let ids: Vec<Uuid> = rows.iter().map(|row| row.get("id")).collect();
    let assignments = pg
        .query(
            "SELECT definition_id, rule_id, variable_mapping_override FROM evaluators
             WHERE project_id = $1 AND definition_id = ANY($2) ORDER BY assigned_at DESC, rule_id",
            &[&project, &ids],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| {
            let id: Uuid = row.get("id");
            let version = version_of(row);
            let no_model: bool = row.get("no_model");
            JudgeDefinition {
                created: row.get("created_at"),
                id,
                name: row.get("name"),
                description: row.get("description"),
                created_by: None,
                status: if no_model { "paused" } else { "active" }.into(),
                paused_at: None,
                paused_reason: no_model.then(|| "no_model_connection".into()),
                paused_message: no_model.then(|| match &version.model_config {
                    Some(config) => format!(
                        "the project has no model connection {:?}: add it (PUT /api/public/llm-connections)",
                        config.provider
                    ),
                    None => "the project has no model connection: add one (PUT /api/public/llm-connections)"
                        .into(),
                }),
                evaluation_rule_assignments: assignments
                    .iter()
                    .filter(|a| a.get::<_, Option<Uuid>>("definition_id") == Some(id))
                    .map(|a| RuleAssignment {
                        evaluation_rule_id: a.get("rule_id"),
                        variable_mapping_override: a
                            .get::<_, Option<Value>>("variable_mapping_override")
                            .and_then(|m| serde_json::from_value(m).ok()),
                    })
                    .collect(),
                created_at: time(row.get("created_at")),
                updated_at: time(row.get("updated_at")),
                version_id: version.id,
                version: version.version,
                version_created_at: version.created_at,
                version_created_by: None,
                kind: "llm_as_judge".into(),
                prompt: version.prompt,
                variables: version.variables,
                variable_mapping: version.variable_mapping,
                model_config: version.model_config,
                output_definition: version.output_definition,
            }
        })
        .collect())
}

fn refuse_code(body: &Value) -> Result<(), ControlError> {
    match body.get("type").and_then(Value::as_str) {
        None | Some("llm_as_judge") => Ok(()),
        Some("code") => Err(invalid(
            "type",
            "code evaluators are not run by AgentTrace: use llm_as_judge, or a rule evaluator (POST /v1/projects/{project}/evaluators)",
        )),
        Some(other) => Err(invalid("type", format!("{other:?}: use llm_as_judge"))),
    }
}

/// Creates a definition at version 1.
async fn create_definition_in(
    pg: &impl GenericClient,
    project: Uuid,
    body: &Value,
) -> Result<JudgeDefinition, ControlError> {
    refuse_code(body)?;
    let name = name_of(body, true)?.expect("required");
    let definition = definition_of(body)?;
    let description = description_of(body)?.flatten();
    within_quota(pg, project, "judge_definitions", MAX_DEFINITIONS, "evaluators").await?;
    let id: Uuid = pg
        .query_one(
            "INSERT INTO judge_definitions (project_id, name, description) VALUES ($1, $2, $3) RETURNING id",
            &[&project, &name, &description],
        )
        .await?
        .get(0);
    insert_version(pg, id, 1, &definition).await?;
    get_definition(pg, project, id).await
}

async fn insert_version(
    pg: &impl GenericClient,
    definition: Uuid,
    version: i32,
    fields: &Definition,
) -> Result<(), ControlError> {
    pg.execute(
        "INSERT INTO judge_definition_versions (definition_id, version, prompt, variable_mapping, model_config, output_definition)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &definition,
            &version,
            &json!(fields.prompt),
            &fields.variable_mapping.as_ref().map(|m| json!(m)),
            &fields.model_config.as_ref().map(|m| json!(m)),
            &fields.output_definition,
        ],
    )
    .await?;
    Ok(())
}

pub async fn get_definition(
    pg: &impl GenericClient,
    project: Uuid,
    id: Uuid,
) -> Result<JudgeDefinition, ControlError> {
    read_definitions(pg, project, Some(id), None, 1)
        .await?
        .pop()
        .ok_or_else(|| ControlError::NotFound(format!("evaluator {id}")))
}

pub async fn list_definitions(
    pg: &impl GenericClient,
    project: Uuid,
    limit: Option<i64>,
    cursor: Option<&str>,
) -> Result<CursorPage<JudgeDefinition>, ControlError> {
    let limit = limit_of(limit)?;
    let data = read_definitions(pg, project, None, cursor_read(cursor)?, limit + 1).await?;
    Ok(page(data, limit, |last| cursor_after(last.created, last.id)))
}

/// Changes a definition: its name and description in place; any definition field (they come
/// together, `prompt` and `outputDefinition` at least) makes a new version, and every rule
/// using it judges with that version from now on.
async fn update_definition_in(
    pg: &impl GenericClient,
    project: Uuid,
    id: Uuid,
    body: &Value,
) -> Result<JudgeDefinition, ControlError> {
    refuse_code(body)?;
    let current = get_definition(pg, project, id).await?;
    let object = body.as_object().ok_or_else(|| invalid("body", "a JSON object"))?;
    if object.is_empty() {
        return Err(invalid("body", "change at least one field"));
    }
    let name = name_of(body, false)?;
    let description = description_of(body)?;
    let replaces = ["prompt", "variableMapping", "modelConfig", "outputDefinition"]
        .iter()
        .any(|key| object.contains_key(*key));
    pg.execute(
        "UPDATE judge_definitions SET name = coalesce($3, name),
            description = CASE WHEN $4 THEN $5 ELSE description END, updated_at = now()
         WHERE project_id = $1 AND id = $2",
        &[
            &project,
            &id,
            &name,
            &description.is_some(),
            &description.clone().flatten(),
        ],
    )
    .await?;
    if replaces {
        let definition = definition_of(body)?;
        // The rules' own mappings must still cover the new prompt.
        let variables = variables_of(&definition.prompt);
        for row in pg
            .query(
                "SELECT rule_id, variable_mapping_override FROM evaluators WHERE definition_id = $1 AND variable_mapping_override IS NOT NULL",
                &[&id],
            )
            .await?
        {
            let mapping: Vec<VariableMapping> =
                serde_json::from_value(row.get("variable_mapping_override")).unwrap_or_default();
            let rule: Uuid = row.get("rule_id");
            check_mapping("prompt", &mapping, &variables).map_err(|e| {
                invalid(
                    "prompt",
                    format!("rule {rule}'s variable mapping no longer fits the new prompt: {e}"),
                )
            })?;
        }
        insert_version(pg, id, current.version + 1, &definition).await?;
    }
    for rule in rules_using(pg, id).await? {
        sync(pg, project, rule).await?;
    }
    get_definition(pg, project, id).await
}

async fn rules_using(pg: &impl GenericClient, definition: Uuid) -> Result<Vec<Uuid>, ControlError> {
    Ok(pg
        .query(
            "SELECT DISTINCT rule_id FROM evaluators WHERE definition_id = $1 AND rule_id IS NOT NULL",
            &[&definition],
        )
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect())
}

/// Deletes a definition with its versions and the judges rules run it as; a rule left with no
/// definition is disabled.
async fn delete_definition_in(pg: &impl GenericClient, project: Uuid, id: Uuid) -> Result<(), ControlError> {
    let rules = rules_using(pg, id).await?;
    let deleted = pg
        .execute(
            "DELETE FROM judge_definitions WHERE project_id = $1 AND id = $2",
            &[&project, &id],
        )
        .await?;
    if deleted == 0 {
        return Err(ControlError::NotFound(format!("evaluator {id}")));
    }
    pg.execute(
        "UPDATE evaluation_rules r SET enabled = false, updated_at = now()
         WHERE r.id = ANY($1) AND NOT EXISTS (SELECT 1 FROM evaluators e WHERE e.rule_id = r.id)",
        &[&rules],
    )
    .await?;
    Ok(())
}

pub async fn list_versions(
    pg: &impl GenericClient,
    project: Uuid,
    id: Uuid,
    limit: Option<i64>,
    cursor: Option<&str>,
) -> Result<CursorPage<JudgeDefinitionVersion>, ControlError> {
    get_definition(pg, project, id).await?;
    let limit = limit_of(limit)?;
    let below: Option<i32> = match cursor.filter(|c| !c.is_empty()) {
        None => None,
        Some(cursor) => Some(
            String::from_utf8(URL_SAFE_NO_PAD.decode(cursor).unwrap_or_default())
                .ok()
                .and_then(|t| t.strip_prefix("version:").and_then(|v| v.parse().ok()))
                .ok_or_else(|| {
                    invalid(
                        "cursor",
                        "not a cursor this list returned; pass meta.cursor unchanged",
                    )
                })?,
        ),
    };
    let rows = pg
        .query(
            &format!(
                "SELECT {VERSION_COLUMNS} FROM judge_definition_versions v
                 WHERE v.definition_id = $1 AND ($2::int IS NULL OR v.version < $2)
                 ORDER BY v.version DESC LIMIT $3"
            ),
            &[&id, &below, &(limit + 1)],
        )
        .await?;
    let data: Vec<JudgeDefinitionVersion> = rows.iter().map(version_of).collect();
    Ok(page(data, limit, |last| {
        URL_SAFE_NO_PAD.encode(format!("version:{}", last.version))
    }))
}

/// One definition a rule uses, and its mapping there.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EvaluatorAssignment {
    pub evaluator_id: Uuid,
    /// The rule's own mapping, or null: the evaluator's default.
    #[serde(default)]
    #[schema(required = true)]
    pub variable_mapping: Option<Vec<VariableMapping>>,
}

/// Langfuse's `EvaluationRule`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EvaluationRule {
    #[serde(skip)]
    pub created: DateTime<Utc>,
    pub id: Uuid,
    pub name: String,
    #[schema(required = true, value_type = Option<Object>)]
    pub created_by: Option<Value>,
    pub enabled: bool,
    pub sampling: f64,
    /// The filter list as given.
    #[schema(value_type = Vec<Object>)]
    pub filter: Value,
    pub evaluator_assignments: Vec<EvaluatorAssignment>,
    pub created_at: String,
    pub updated_at: String,
}

async fn read_rules(
    pg: &impl GenericClient,
    project: Uuid,
    id: Option<Uuid>,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<EvaluationRule>, ControlError> {
    let rows = pg
        .query(
            "SELECT id, name, enabled, sampling, filter, created_at, updated_at FROM evaluation_rules
             WHERE project_id = $1 AND ($2::uuid IS NULL OR id = $2)
               AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4))
             ORDER BY created_at DESC, id DESC LIMIT $5",
            &[
                &project,
                &id,
                &after.map(|(at, _)| at),
                &after.map(|(_, id)| id),
                &limit,
            ],
        )
        .await?;
    let ids: Vec<Uuid> = rows.iter().map(|row| row.get("id")).collect();
    let assignments = pg
        .query(
            "SELECT rule_id, definition_id, variable_mapping_override FROM evaluators
             WHERE project_id = $1 AND rule_id = ANY($2) ORDER BY rule_position",
            &[&project, &ids],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| {
            let id: Uuid = row.get("id");
            EvaluationRule {
                created: row.get("created_at"),
                id,
                name: row.get("name"),
                created_by: None,
                enabled: row.get("enabled"),
                sampling: row.get("sampling"),
                filter: row.get("filter"),
                evaluator_assignments: assignments
                    .iter()
                    .filter(|a| a.get::<_, Option<Uuid>>("rule_id") == Some(id))
                    .map(|a| EvaluatorAssignment {
                        evaluator_id: a.get("definition_id"),
                        variable_mapping: a
                            .get::<_, Option<Value>>("variable_mapping_override")
                            .and_then(|m| serde_json::from_value(m).ok()),
                    })
                    .collect(),
                created_at: time(row.get("created_at")),
                updated_at: time(row.get("updated_at")),
            }
        })
        .collect())
}

pub async fn get_rule(
    pg: &impl GenericClient,
    project: Uuid,
    id: Uuid,
) -> Result<EvaluationRule, ControlError> {
    read_rules(pg, project, Some(id), None, 1)
        .await?
        .pop()
        .ok_or_else(|| ControlError::NotFound(format!("evaluation rule {id}")))
}

pub async fn list_rules(
    pg: &impl GenericClient,
    project: Uuid,
    limit: Option<i64>,
    cursor: Option<&str>,
) -> Result<CursorPage<EvaluationRule>, ControlError> {
    let limit = limit_of(limit)?;
    let data = read_rules(pg, project, None, cursor_read(cursor)?, limit + 1).await?;
    Ok(page(data, limit, |last| cursor_after(last.created, last.id)))
}

fn assignments_of(given: &Value) -> Result<Vec<EvaluatorAssignment>, ControlError> {
    let assignments: Vec<EvaluatorAssignment> = serde_json::from_value(given.clone()).map_err(|e| {
        invalid(
            "evaluatorAssignments",
            format!("[{{evaluatorId, variableMapping}}]: {e}"),
        )
    })?;
    let distinct: BTreeSet<Uuid> = assignments.iter().map(|a| a.evaluator_id).collect();
    if distinct.len() != assignments.len() {
        return Err(ControlError::Conflict(
            "an evaluator is assigned to the rule twice".into(),
        ));
    }
    if assignments.len() > 100 {
        return Err(invalid("evaluatorAssignments", "at most 100"));
    }
    Ok(assignments)
}

fn sampling_of(given: Option<&Value>) -> Result<Option<f64>, ControlError> {
    match given {
        None => Ok(None),
        Some(value) => value
            .as_f64()
            .filter(|s| *s > 0.0 && *s <= 1.0)
            .map(Some)
            .ok_or_else(|| invalid("sampling", "a share above 0 and at most 1")),
    }
}

/// A rule's filter list, checked as the judge will read it (whether or not the rule is enabled).
fn filter_of(given: Option<&Value>) -> Result<Option<Value>, ControlError> {
    match given {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(json!([]))),
        Some(list @ Value::Array(_)) => {
            if list.to_string().len() > MAX_FILTER_BYTES {
                return Err(invalid(
                    "filter",
                    format!("at most {} KiB", MAX_FILTER_BYTES / 1024),
                ));
            }
            template::parse_conditions(list).map_err(|e| {
                invalid(
                    "filter",
                    format!("{}: {}", e.key.replacen("conditions", "filter", 1), e.message),
                )
            })?;
            Ok(Some(list.clone()))
        }
        Some(_) => Err(invalid(
            "filter",
            "a list of {type, column, operator, value} filters",
        )),
    }
}

async fn create_rule_in(
    pg: &impl GenericClient,
    project: Uuid,
    body: &Value,
) -> Result<EvaluationRule, ControlError> {
    let name = name_of(body, true)?.expect("required");
    let enabled = body
        .get("enabled")
        .and_then(Value::as_bool)
        .ok_or_else(|| invalid("enabled", "required: true or false"))?;
    let sampling = sampling_of(body.get("sampling").filter(|v| !v.is_null()))?.unwrap_or(1.0);
    let filter = filter_of(body.get("filter"))?.unwrap_or_else(|| json!([]));
    let assignments = assignments_of(body.get("evaluatorAssignments").ok_or_else(|| {
        invalid(
            "evaluatorAssignments",
            "required: [{evaluatorId, variableMapping}]",
        )
    })?)?;
    if enabled && assignments.is_empty() {
        return Err(invalid(
            "evaluatorAssignments",
            "an enabled rule needs at least one evaluator; create it disabled as a draft",
        ));
    }
    within_quota(pg, project, "evaluation_rules", MAX_RULES, "evaluation rules").await?;
    let id: Uuid = pg
        .query_one(
            "INSERT INTO evaluation_rules (project_id, name, enabled, sampling, filter) VALUES ($1, $2, $3, $4, $5)
             RETURNING id",
            &[&project, &name, &enabled, &sampling, &filter],
        )
        .await?
        .get(0);
    assign(pg, project, id, &assignments).await?;
    sync(pg, project, id).await?;
    get_rule(pg, project, id).await
}

/// Replaces a rule's assignments: each definition must be the project's.
async fn assign(
    pg: &impl GenericClient,
    project: Uuid,
    rule: Uuid,
    assignments: &[EvaluatorAssignment],
) -> Result<(), ControlError> {
    let kept: Vec<Uuid> = assignments.iter().map(|a| a.evaluator_id).collect();
    pg.execute(
        "DELETE FROM evaluators WHERE rule_id = $1 AND NOT (definition_id = ANY($2))",
        &[&rule, &kept],
    )
    .await?;
    for (position, assignment) in assignments.iter().enumerate() {
        let found = pg
            .query_opt(
                "SELECT 1 FROM judge_definitions WHERE project_id = $1 AND id = $2",
                &[&project, &assignment.evaluator_id],
            )
            .await?;
        if found.is_none() {
            return Err(ControlError::NotFound(format!(
                "evaluator {}",
                assignment.evaluator_id
            )));
        }
        let mapping = assignment.variable_mapping.as_ref().map(|m| json!(m));
        // A placeholder config until `sync` writes the real one in the same transaction.
        pg.execute(
            "INSERT INTO evaluators (project_id, name, kind, config, active, rule_id, definition_id, rule_position,
                 variable_mapping_override, assigned_at)
             VALUES ($1, $2, 'llm_judge', '{}', false, $3, $4, $5, $6, now())
             ON CONFLICT (rule_id, definition_id) WHERE rule_id IS NOT NULL
             DO UPDATE SET rule_position = EXCLUDED.rule_position,
                 variable_mapping_override = EXCLUDED.variable_mapping_override",
            &[
                &project,
                &format!("rule {rule} / {}", assignment.evaluator_id),
                &rule,
                &assignment.evaluator_id,
                &(position as i32),
                &mapping,
            ],
        )
        .await?;
    }
    Ok(())
}

async fn update_rule_in(
    pg: &impl GenericClient,
    project: Uuid,
    id: Uuid,
    body: &Value,
) -> Result<EvaluationRule, ControlError> {
    get_rule(pg, project, id).await?;
    let object = body.as_object().ok_or_else(|| invalid("body", "a JSON object"))?;
    if object.is_empty() {
        return Err(invalid("body", "change at least one field"));
    }
    let name = name_of(body, false)?;
    let enabled = match body.get("enabled") {
        None | Some(Value::Null) => None,
        Some(value) => Some(
            value
                .as_bool()
                .ok_or_else(|| invalid("enabled", "true or false"))?,
        ),
    };
    let sampling = sampling_of(body.get("sampling").filter(|v| !v.is_null()))?;
    let filter = filter_of(body.get("filter"))?;
    if let Some(given) = body.get("evaluatorAssignments").filter(|v| !v.is_null()) {
        let assignments = assignments_of(given)?;
        assign(pg, project, id, &assignments).await?;
    }
    pg.execute(
        "UPDATE evaluation_rules SET name = coalesce($3, name), enabled = coalesce($4, enabled),
            sampling = coalesce($5, sampling), filter = coalesce($6, filter), updated_at = now()
         WHERE project_id = $1 AND id = $2",
        &[&project, &id, &name, &enabled, &sampling, &filter],
    )
    .await?;
    // A rule left with no evaluator is disabled, as Langfuse does.
    pg.execute(
        "UPDATE evaluation_rules r SET enabled = false
         WHERE r.id = $1 AND NOT EXISTS (SELECT 1 FROM evaluators e WHERE e.rule_id = r.id)",
        &[&id],
    )
    .await?;
    sync(pg, project, id).await?;
    get_rule(pg, project, id).await
}

pub async fn delete_rule(pg: &impl GenericClient, project: Uuid, id: Uuid) -> Result<(), ControlError> {
    let deleted = pg
        .execute(
            "DELETE FROM evaluation_rules WHERE project_id = $1 AND id = $2",
            &[&project, &id],
        )
        .await?;
    if deleted == 0 {
        return Err(ControlError::NotFound(format!("evaluation rule {id}")));
    }
    Ok(())
}

/// Rewrites the judges a rule runs as: each assignment's config from the definition's latest
/// version, the rule's filter, sampling and mapping; active when the rule is enabled. An
/// enabled rule whose definition has no connection to call is refused, naming it.
pub async fn sync(pg: &impl GenericClient, project: Uuid, rule: Uuid) -> Result<(), ControlError> {
    let rows = pg
        .query(
            &format!(
                "SELECT e.id AS evaluator_id, e.variable_mapping_override, r.name AS rule_name, r.enabled, r.sampling,
                    r.filter, d.id AS definition_id, d.name AS definition_name, {VERSION_COLUMNS}
                 FROM evaluators e
                 JOIN evaluation_rules r ON r.id = e.rule_id
                 JOIN judge_definitions d ON d.id = e.definition_id
                 JOIN LATERAL (SELECT * FROM judge_definition_versions WHERE definition_id = d.id
                               ORDER BY version DESC LIMIT 1) v ON true
                 WHERE e.project_id = $1 AND e.rule_id = $2"
            ),
            &[&project, &rule],
        )
        .await?;
    for row in &rows {
        let version = version_of(row);
        let enabled: bool = row.get("enabled");
        let definition_name: String = row.get("definition_name");
        let override_mapping: Option<Vec<VariableMapping>> = row
            .get::<_, Option<Value>>("variable_mapping_override")
            .and_then(|m| serde_json::from_value(m).ok());
        let mapping = override_mapping.or(version.variable_mapping.clone());
        if let Some(mapping) = &mapping {
            check_mapping("evaluatorAssignments", mapping, &version.variables)?;
        } else if let Some(unmapped) = version
            .variables
            .iter()
            .find(|v| !MAPPING_SOURCES.contains(&v.as_str()))
        {
            return Err(invalid(
                "evaluatorAssignments",
                format!(
                    "evaluator {definition_name:?} has no variable mapping and its prompt's {{{{{unmapped}}}}} is no source; give a variableMapping"
                ),
            ));
        }
        let connection = match &version.model_config {
            Some(config) => pg
                .query_opt(
                    "SELECT provider, config FROM llm_connections WHERE project_id = $1 AND provider = $2",
                    &[&project, &config.provider],
                )
                .await?,
            None => pg
                .query_opt(
                    "SELECT provider, config FROM llm_connections WHERE project_id = $1 ORDER BY created_at, provider LIMIT 1",
                    &[&project],
                )
                .await?,
        };
        let (provider, model) = match (&connection, &version.model_config) {
            (Some(found), Some(config)) => (found.get::<_, String>("provider"), Some(config.model.clone())),
            (Some(found), None) => (found.get::<_, String>("provider"), None),
            (None, _) if enabled => {
                return Err(invalid(
                    "enabled",
                    format!(
                        "evaluator {definition_name:?} has no model connection to call{}: add one (PUT /api/public/llm-connections) or set its modelConfig",
                        version
                            .model_config
                            .as_ref()
                            .map(|c| format!(" ({:?})", c.provider))
                            .unwrap_or_default()
                    ),
                ));
            }
            (None, _) => (String::new(), None),
        };
        let config = judge_config(&version, mapping.as_deref(), &provider, model, row)?;
        if enabled {
            JudgeConfig::parse(&config).map_err(|e| match e.key.as_str() {
                key if key.starts_with("conditions") => invalid(
                    "filter",
                    format!("{}: {}", key.replacen("conditions", "filter", 1), e.message),
                ),
                _ => invalid(
                    "evaluatorAssignments",
                    format!("evaluator {definition_name:?}: {e}"),
                ),
            })?;
        }
        let rule_name: String = row.get("rule_name");
        let evaluator: Uuid = row.get("evaluator_id");
        let definition: Uuid = row.get("definition_id");
        pg.execute(
            "UPDATE evaluators SET name = $2, config = $3, active = $4, blocked_reason = NULL, paused_until = NULL
             WHERE id = $1",
            &[
                &evaluator,
                &format!(
                    "{} / {} [{}-{}]",
                    rule_name.chars().take(80).collect::<String>(),
                    definition_name.chars().take(80).collect::<String>(),
                    &rule.simple().to_string()[..8],
                    &definition.simple().to_string()[..8]
                ),
                &config,
                &(enabled && !provider.is_empty()),
            ],
        )
        .await?;
    }
    Ok(())
}

/// The `llm_judge` config a (rule, definition version) pair runs as.
fn judge_config(
    version: &JudgeDefinitionVersion,
    mapping: Option<&[VariableMapping]>,
    provider: &str,
    model: Option<String>,
    row: &Row,
) -> Result<Value, ControlError> {
    let join = |system: bool| {
        version
            .prompt
            .iter()
            .filter(|m| (m.role == "system") == system)
            .map(|m| match m.role.as_str() {
                "assistant" => format!("Assistant: {}", m.content),
                _ => m.content.clone(),
            })
            .collect::<Vec<_>>()
            .join("\n\n")
    };
    let output = &version.output_definition;
    let mut kind = match output["dataType"].as_str() {
        Some("BOOLEAN") => json!({"type": "boolean"}),
        Some("CATEGORICAL") => json!({"type": "categorical", "categories": output["categories"]}),
        _ => json!({"type": "numeric", "min": output.get("minValue"), "max": output.get("maxValue")}),
    };
    if let Some(text) = output["scoreReasoningInstructions"].as_str() {
        kind["reasoning_instructions"] = json!(text);
    }
    if let Some(text) = output["scoreValueInstructions"].as_str() {
        kind["score_instructions"] = json!(text);
    }
    let variables: serde_json::Map<String, Value> = mapping
        .unwrap_or_default()
        .iter()
        .map(|m| {
            (
                m.variable.clone(),
                json!({"source": m.source, "path": m.json_path}),
            )
        })
        .collect();
    let system = join(true);
    let definition_name: String = row.get("definition_name");
    let sampling: f64 = row.get("sampling");
    Ok(json!({
        "connection": provider,
        "model": model,
        "prompt": join(false),
        "system": (!system.is_empty()).then_some(system),
        "variables": variables,
        "output": kind,
        "score_name": definition_name,
        "target": "observation",
        "conditions": row.get::<_, Value>("filter"),
        "sampling": sampling,
    }))
}

/// Runs one change in a transaction: a rule that cannot run, or a definition its rules' mappings
/// no longer fit, changes nothing.
macro_rules! in_transaction {
    ($client:expr, $call:expr) => {{
        let tx = $client.transaction().await?;
        let out = $call(&tx).await?;
        tx.commit().await?;
        Ok(out)
    }};
}

pub async fn create_definition(
    client: &mut Client,
    project: Uuid,
    body: &Value,
) -> Result<JudgeDefinition, ControlError> {
    in_transaction!(client, |tx| create_definition_in(tx, project, body))
}

pub async fn update_definition(
    client: &mut Client,
    project: Uuid,
    id: Uuid,
    body: &Value,
) -> Result<JudgeDefinition, ControlError> {
    in_transaction!(client, |tx| update_definition_in(tx, project, id, body))
}

pub async fn delete_definition(client: &mut Client, project: Uuid, id: Uuid) -> Result<(), ControlError> {
    in_transaction!(client, |tx| delete_definition_in(tx, project, id))
}

pub async fn create_rule(
    client: &mut Client,
    project: Uuid,
    body: &Value,
) -> Result<EvaluationRule, ControlError> {
    in_transaction!(client, |tx| create_rule_in(tx, project, body))
}

pub async fn update_rule(
    client: &mut Client,
    project: Uuid,
    id: Uuid,
    body: &Value,
) -> Result<EvaluationRule, ControlError> {
    in_transaction!(client, |tx| update_rule_in(tx, project, id, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_are_read_as_langfuse_reads_them() {
        let prompt = prompt_of(&json!(
            "Judge {{input}} against {{expected_output}}; {{ spaced }} {{input}} {{9x}} {{ключ}}"
        ))
        .unwrap();
        assert_eq!(prompt[0].role, "user");
        assert_eq!(variables_of(&prompt), ["input", "expected_output", "ключ"]);
    }

    #[test]
    fn mappings_cover_each_variable_once_from_a_known_source() {
        let variables = vec!["q".to_owned(), "a".to_owned()];
        let map = |v: &str, s: &str| VariableMapping {
            variable: v.into(),
            source: Some(s.into()),
            json_path: None,
        };
        assert!(check_mapping("m", &[map("q", "input"), map("a", "output")], &variables).is_ok());
        for (mapping, words) in [
            (vec![map("q", "input")], "unmapped: a"),
            (vec![map("q", "input"), map("a", "trace")], "source"),
            (
                vec![map("q", "input"), map("a", "output"), map("q", "output")],
                "twice",
            ),
            (vec![map("x", "input")], "not in the prompt"),
        ] {
            let error = check_mapping("m", &mapping, &variables).unwrap_err().to_string();
            assert!(error.contains(words), "{error}");
        }
        let mut bad_path = map("q", "metadata");
        bad_path.json_path = Some("$[?".into());
        let error = check_mapping("m", &[bad_path, map("a", "output")], &variables)
            .unwrap_err()
            .to_string();
        assert!(error.contains("jsonPath"), "{error}");
    }

    #[test]
    fn output_definitions_are_checked() {
        assert_eq!(
            output_definition_of(&json!({"dataType": "NUMERIC", "minValue": 0, "maxValue": 1})).unwrap(),
            json!({"dataType": "NUMERIC", "minValue": 0.0, "maxValue": 1.0})
        );
        for bad in [
            json!({"dataType": "NUMERIC", "minValue": 2, "maxValue": 1}),
            json!({"dataType": "CATEGORICAL", "categories": ["a", "a"]}),
            json!({"dataType": "CATEGORICAL", "categories": ["a", "b"], "shouldAllowMultipleMatches": true}),
            json!({"dataType": "STARS"}),
            json!({"dataType": "BOOLEAN", "version": 2}),
        ] {
            assert!(output_definition_of(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cursors_round_trip_and_strangers_are_refused() {
        let at = DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap();
        let id = Uuid::new_v4();
        assert_eq!(cursor_read(Some(&cursor_after(at, id))).unwrap(), Some((at, id)));
        assert!(cursor_read(Some("bm90IGEgY3Vyc29y")).is_err());
        assert_eq!(cursor_read(None).unwrap(), None);
    }
}
