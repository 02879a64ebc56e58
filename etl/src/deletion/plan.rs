//! What a deletion removes from each ClickHouse table, as SQL conditions: pure, so that every
//! table's condition is checked here without a server. Each condition includes the project, so
//! a job never touches another tenant's rows whatever ids it names.

use uuid::Uuid;

use crate::clickhouse::quote;
use crate::control::deletions::DeletionTarget;

/// Trace ids per mutation: each mutation rewrites the parts it touches, so fewer is better, and
/// a statement must stay well under ClickHouse's `max_query_size` (256 KiB): at most this many
/// ids, and at most [`BYTES_PER_MUTATION`] of them (quoting, and escaping for a regular
/// expression, can each double an id's length).
pub const IDS_PER_MUTATION: usize = 1000;
pub const BYTES_PER_MUTATION: usize = 40 * 1024;

/// `ids` in runs of at most [`IDS_PER_MUTATION`] ids and [`BYTES_PER_MUTATION`] bytes (one id
/// longer than that is a run of its own); the same ids always make the same runs.
pub fn chunks(ids: &[String]) -> Vec<&[String]> {
    let mut runs = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, id) in ids.iter().enumerate() {
        let size = id.len() + 4;
        if i > start && (i - start == IDS_PER_MUTATION || bytes + size > BYTES_PER_MUTATION) {
            runs.push(&ids[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < ids.len() {
        runs.push(&ids[start..]);
    }
    runs
}

/// The JSON keys under which a dead letter's raw text names a trace, a user or a session
/// (AgentTrace's snake case and Langfuse's camel case).
const TRACE_KEYS: &[&str] = &["id", "trace_id", "traceId"];
const USER_KEYS: &[&str] = &["user_id", "userId"];
const SESSION_KEYS: &[&str] = &["session_id", "sessionId"];

/// Metric attributes that name a user or a session (OpenTelemetry's and Claude Code's).
const USER_ATTRIBUTES: &[&str] = &["user.id", "user.email", "user.account_uuid", "enduser.id"];
const SESSION_ATTRIBUTES: &[&str] = &["session.id", "gen_ai.conversation.id"];

/// What a deletion removes, table by table; each table's conditions (one per mutation) are
/// made when that table's turn comes, so that a deletion of many traces holds one table's at a
/// time (40 KiB per thousand ids), not every table's.
#[derive(Debug)]
pub struct Plan<'a> {
    /// `project_id = '…'`, which every condition starts with.
    project: String,
    chunks: Vec<&'a [String]>,
    tables: Vec<(&'static str, Rows)>,
}

/// How a table's rows are found.
#[derive(Debug)]
enum Rows {
    /// Every row of the project.
    Project,
    /// `column IN (…)`, one condition per chunk of ids.
    InChunk(&'static str),
    /// `condition AND column IN (…)`, one per chunk of ids.
    InChunkWhere(&'static str, &'static str),
    /// Dead letters whose raw text names a trace of a chunk, or (with the first chunk) the
    /// session's or user's own id, by this pattern.
    DeadLetters(Option<String>),
    /// One condition of its own.
    Matching(String),
}

impl Plan<'_> {
    /// The tables with rows to delete, in the order their steps run.
    pub fn tables(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.tables.iter().map(|(table, _)| *table)
    }

    /// `table`'s conditions, one per mutation, each scoped to the project.
    pub fn conditions(&self, table: &str) -> Vec<String> {
        let Some((_, rows)) = self.tables.iter().find(|(t, _)| *t == table) else {
            return Vec::new();
        };
        let project = &self.project;
        match rows {
            Rows::Project => vec![project.clone()],
            Rows::Matching(condition) => vec![format!("{project} AND {condition}")],
            Rows::InChunk(column) => self
                .chunks
                .iter()
                .map(|chunk| format!("{project} AND {column} IN {}", in_list(chunk)))
                .collect(),
            Rows::InChunkWhere(condition, column) => self
                .chunks
                .iter()
                .map(|chunk| format!("{project} AND {condition} AND {column} IN {}", in_list(chunk)))
                .collect(),
            Rows::DeadLetters(own) => {
                let mut patterns: Vec<String> = self
                    .chunks
                    .iter()
                    .map(|chunk| member_pattern(TRACE_KEYS, chunk))
                    .collect();
                if let Some(own) = own {
                    match patterns.first_mut() {
                        Some(first) => *first = format!("{first}|{own}"),
                        None => patterns.push(own.clone()),
                    }
                }
                patterns
                    .iter()
                    .map(|pattern| format!("{project} AND match(raw, {})", quote(pattern)))
                    .collect()
            }
        }
    }
}

/// Tables keyed by a trace's own id, and by the trace id of what belongs to one.
const BY_TRACE_ID: &[(&str, &str)] = &[
    ("traces", "id"),
    ("traces_by_time", "id"),
    ("traces_by_ingest", "id"),
    ("session_traces", "trace_id"),
    ("trace_summaries", "trace_id"),
    ("observations", "trace_id"),
    ("observations_by_time", "trace_id"),
    ("observations_by_ingest", "trace_id"),
    ("scores", "trace_id"),
    ("scores_by_time", "trace_id"),
    ("file_operations", "trace_id"),
    ("terminal_commands", "trace_id"),
    ("git_links", "trace_id"),
    ("search_postings", "trace_id"),
];

/// Every table a project deletion empties of the project's rows.
const PROJECT_TABLES: &[&str] = &[
    "traces",
    "traces_by_time",
    "traces_by_ingest",
    "session_traces",
    "trace_summaries",
    "observations",
    "observations_by_time",
    "observations_by_ingest",
    "scores",
    "scores_by_time",
    "file_operations",
    "terminal_commands",
    "git_links",
    "metrics",
    "dead_letters",
    "experiment_rollups",
    "daily_costs",
    "observation_hour_touches",
    "observation_touch_log",
    "observation_hours",
    "observation_hourly",
    "search_postings",
];

fn in_list(ids: &[String]) -> String {
    let quoted: Vec<String> = ids.iter().map(|id| quote(id)).collect();
    format!("({})", quoted.join(", "))
}

/// A regular expression (re2) matching a JSON member whose key is one of `keys` and whose value
/// is one of `values` as a JSON string: how a dead letter's raw text names the trace, session or
/// user it belonged to (`"trace_id": "t-1"`), never the same text as any other value.
pub fn member_pattern(keys: &[&str], values: &[String]) -> String {
    let values: Vec<String> = values
        .iter()
        .map(|value| regex::escape(&serde_json::Value::String(value.clone()).to_string()))
        .collect();
    format!(r#""(?:{})"\s*:\s*(?:{})"#, keys.join("|"), values.join("|"))
}

fn attribute_match(names: &[&str], value: &str) -> String {
    let names: Vec<String> = names.iter().map(|n| quote(n)).collect();
    let names = names.join(", ");
    let value = quote(value);
    format!(
        "(arrayExists((k, v) -> k IN ({names}) AND v = {value}, attribute_keys, attribute_values) \
         OR arrayExists((k, v) -> k IN ({names}) AND v = {value}, resource_keys, resource_values))"
    )
}

/// The deletions of `target`'s rows in `project`, given the traces it resolved to (for a
/// deletion of scores, the scores' own ids).
pub fn plan<'a>(project: Uuid, target: &DeletionTarget, trace_ids: &'a [String]) -> Plan<'a> {
    let project = format!("project_id = {}", quote(&project.to_string()));
    if let DeletionTarget::Scores(_) = target {
        return Plan {
            project,
            chunks: chunks(trace_ids),
            tables: vec![
                ("scores", Rows::InChunk("id")),
                ("scores_by_time", Rows::InChunk("id")),
                ("search_postings", Rows::InChunkWhere("source = 'scores'", "id")),
            ],
        };
    }
    if *target == DeletionTarget::Project {
        return Plan {
            project,
            chunks: Vec::new(),
            tables: PROJECT_TABLES
                .iter()
                .map(|&table| (table, Rows::Project))
                .collect(),
        };
    }
    let chunks = chunks(trace_ids);
    let mut tables: Vec<(&'static str, Rows)> = if chunks.is_empty() {
        Vec::new()
    } else {
        BY_TRACE_ID
            .iter()
            .map(|&(table, column)| (table, Rows::InChunk(column)))
            .collect()
    };
    // A session's or user's own id also names what carries it outside any trace: metric
    // points, and dead letters that never became one. (Their traces were resolved already.)
    let own: Option<(&str, &[&str], &[&str])> = match target {
        DeletionTarget::Session(id) => Some((id, SESSION_ATTRIBUTES, SESSION_KEYS)),
        DeletionTarget::User(id) => Some((id, USER_ATTRIBUTES, USER_KEYS)),
        _ => None,
    };
    if let Some((id, attributes, _)) = own {
        tables.push(("metrics", Rows::Matching(attribute_match(attributes, id))));
    }
    let own_pattern = own.map(|(id, _, keys)| member_pattern(keys, &[id.to_owned()]));
    if !chunks.is_empty() || own_pattern.is_some() {
        tables.push(("dead_letters", Rows::DeadLetters(own_pattern)));
    }
    Plan {
        project,
        chunks,
        tables,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project() -> Uuid {
        Uuid::from_u128(7)
    }

    #[test]
    fn every_condition_names_the_project() {
        let ids: Vec<String> = (0..2500).map(|i| format!("t{i}")).collect();
        for target in [
            DeletionTarget::Traces(ids.clone()),
            DeletionTarget::Session("s".into()),
            DeletionTarget::User("u".into()),
            DeletionTarget::Project,
        ] {
            let plan = plan(project(), &target, &ids);
            for table in plan.tables() {
                for condition in plan.conditions(table) {
                    assert!(
                        condition.starts_with("project_id = '00000000-0000-0000-0000-000000000007' AND ")
                            || condition == "project_id = '00000000-0000-0000-0000-000000000007'",
                        "{table}: {condition}"
                    );
                }
            }
        }
    }

    #[test]
    fn trace_ids_are_split_into_bounded_mutations() {
        let ids: Vec<String> = (0..2500).map(|i| format!("{i:036}")).collect();
        let plan = plan(project(), &DeletionTarget::Traces(ids.clone()), &ids);
        assert_eq!(plan.conditions("observations").len(), 3);
        for table in plan.tables() {
            for condition in plan.conditions(table) {
                assert!(condition.len() < 128 * 1024, "{table}: {} bytes", condition.len());
            }
        }
        assert!(
            plan.tables().all(|t| t != "metrics"),
            "traces own no metric points"
        );
    }

    #[test]
    fn a_user_deletion_also_finds_rows_by_the_user_id() {
        let plan = plan(project(), &DeletionTarget::User("ann@example.com".into()), &[]);
        let tables: Vec<&str> = plan.tables().collect();
        assert_eq!(tables, ["metrics", "dead_letters"]);
        let metrics = &plan.conditions("metrics")[0];
        assert!(metrics.contains("'user.email'") && metrics.contains("v = 'ann@example.com'"));
        let dead = &plan.conditions("dead_letters")[0];
        assert!(
            dead.contains(r#"match(raw, '"(?:user_id|userId)"\\s*:\\s*(?:"ann@example\\.com")')"#),
            "{dead}"
        );
    }

    #[test]
    fn ids_are_quoted_and_escaped() {
        let ids = vec!["a'b".to_owned(), r#"q"(x)"#.to_owned()];
        let plan = plan(project(), &DeletionTarget::Traces(ids.clone()), &ids);
        let traces = &plan.conditions("traces")[0];
        assert!(traces.ends_with(r#"id IN ('a\'b', 'q"(x)')"#), "{traces}");
        // The JSON form of q"(x) is "q\"(x)"; escaped for re2, then quoted for ClickHouse.
        let pattern = member_pattern(TRACE_KEYS, &ids);
        assert_eq!(
            pattern,
            r#""(?:id|trace_id|traceId)"\s*:\s*(?:"a'b"|"q\\"\(x\)")"#
        );
        let regex = regex::Regex::new(&pattern).unwrap();
        assert!(regex.is_match(r#"{"body": {"trace_id" : "q\"(x)", "type": "span"}}"#));
        assert!(
            !regex.is_match(r#"{"name": "a'b"}"#),
            "another member holding the same text"
        );
        let dead = &plan.conditions("dead_letters")[0];
        assert!(
            dead.ends_with(&format!("match(raw, {})", quote(&pattern))),
            "{dead}"
        );
    }

    #[test]
    fn chunks_are_bounded_by_count_and_bytes_and_stable() {
        let short: Vec<String> = (0..2500).map(|i| format!("t{i}")).collect();
        let runs = chunks(&short);
        assert_eq!(
            runs.iter().map(|r| r.len()).collect::<Vec<_>>(),
            [1000, 1000, 500]
        );
        let long: Vec<String> = (0..100).map(|i| format!("{i:01000}")).collect();
        let runs = chunks(&long);
        assert!(
            runs.iter()
                .all(|r| r.iter().map(|id| id.len() + 4).sum::<usize>() <= BYTES_PER_MUTATION)
        );
        assert_eq!(runs.iter().map(|r| r.len()).sum::<usize>(), 100);
        assert_eq!(chunks(&long), runs);
        let huge = vec!["x".repeat(100_000)];
        assert_eq!(chunks(&huge).len(), 1);
        assert!(chunks(&[]).is_empty());
    }

    #[test]
    fn a_deletion_of_scores_names_them_by_id_in_their_table_only() {
        let ids = vec!["s-1".to_owned()];
        let plan = plan(project(), &DeletionTarget::Scores(ids.clone()), &ids);
        assert_eq!(
            plan.tables().collect::<Vec<_>>(),
            ["scores", "scores_by_time", "search_postings"]
        );
        assert!(plan.conditions("scores")[0].ends_with("AND id IN ('s-1')"));
    }

    #[test]
    fn a_project_deletion_empties_every_table() {
        let plan = plan(project(), &DeletionTarget::Project, &[]);
        let tables: Vec<&str> = plan.tables().collect();
        for table in crate::clickhouse::Table::ALL {
            assert!(tables.contains(&table.name()), "{}", table.name());
            for derived in table.derived_tables() {
                assert!(tables.contains(derived), "{derived}");
            }
        }
        assert!(tables.contains(&"daily_costs"));
        for table in tables {
            assert!(
                crate::clickhouse::cluster::partition_column(table).is_some(),
                "{table}: a stalled mutation there could not be nudged"
            );
        }
    }
}
