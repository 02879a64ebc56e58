//! Everything AgentTrace knows about each ClickHouse table, in one place: its name, its Arrow
//! schema (which mirrors its ClickHouse columns: names, order, nullability, minus the
//! MATERIALIZED ones ClickHouse computes itself), the column its time range and age are
//! measured by, and how replays of a row are deduplicated. The loader, the exports, the SQL guard
//! and the retention job all read these facts from here; every table here is exportable and
//! queryable by the project that owns its rows.

use std::sync::{Arc, LazyLock};

use arrow_schema::{DataType, Field, Schema, SchemaRef};

/// Costs are ClickHouse `Decimal64(12)` = `Decimal(18, 12)`.
pub const COST_PRECISION: u8 = 18;
pub const COST_SCALE: i8 = 12;

/// How the copies of one row (a replayed batch, a partial update) collapse into one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dedup {
    /// The columns that identify a row within a project, as SQL (`id`, `batch_id, event_index`).
    pub key: &'static str,
    /// The column whose largest value wins, when copies differ (`None`: copies are identical).
    pub version: Option<&'static str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    Traces,
    Observations,
    Scores,
    FileOperations,
    TerminalCommands,
    GitLinks,
    /// OpenTelemetry metric data points.
    Metrics,
    DeadLetters,
    /// Written by the experiment rollup job, not by ingest.
    ExperimentRollups,
}

impl Table {
    pub const ALL: [Table; 9] = [
        Table::Traces,
        Table::Observations,
        Table::Scores,
        Table::FileOperations,
        Table::TerminalCommands,
        Table::GitLinks,
        Table::Metrics,
        Table::DeadLetters,
        Table::ExperimentRollups,
    ];

    /// The tables that hold events agents sent (not dead letters or job results).
    pub fn events() -> impl Iterator<Item = Table> {
        Table::ALL
            .into_iter()
            .filter(|t| !matches!(t, Table::DeadLetters | Table::ExperimentRollups))
    }

    pub fn name(self) -> &'static str {
        match self {
            Table::Traces => "traces",
            Table::Observations => "observations",
            Table::Scores => "scores",
            Table::FileOperations => "file_operations",
            Table::TerminalCommands => "terminal_commands",
            Table::GitLinks => "git_links",
            Table::Metrics => "metrics",
            Table::DeadLetters => "dead_letters",
            Table::ExperimentRollups => "experiment_rollups",
        }
    }

    /// The table named `name`, if AgentTrace has one.
    pub fn from_name(name: &str) -> Option<Table> {
        Table::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The column a time range (exports) and an age (retention) apply to, in microseconds.
    pub fn time_column(self) -> &'static str {
        match self {
            Table::Observations => "start_time_us",
            Table::DeadLetters => "received_at_us",
            Table::ExperimentRollups => "computed_at_us",
            Table::Metrics => "time_us",
            Table::Traces
            | Table::Scores
            | Table::FileOperations
            | Table::TerminalCommands
            | Table::GitLinks => "timestamp_us",
        }
    }

    /// Tables materialized views fill from this one's inserts (the read indexes of
    /// `migrations/clickhouse/0007_read_layout.sql`), with the same time column: whatever
    /// removes rows here (retention) removes them there too.
    pub fn derived_tables(self) -> &'static [&'static str] {
        match self {
            Table::Traces => &["traces_by_time", "session_traces"],
            Table::Observations => &["observations_by_time"],
            _ => &[],
        }
    }

    /// Every column a query may name: the stored ones and the DateTime ClickHouse derives from
    /// the time column (`timestamp` from `timestamp_us`).
    pub fn columns(self) -> std::collections::HashSet<String> {
        let mut columns: std::collections::HashSet<String> =
            self.schema().fields().iter().map(|f| f.name().clone()).collect();
        if self != Table::ExperimentRollups
            && let Some(derived) = self.time_column().strip_suffix("_us")
        {
            columns.insert(derived.to_owned());
        }
        columns
    }

    /// Columns every stored version of a row shares: its sorting key, and the start that the
    /// ETL's merge never moves (see `ingest::merge`).
    pub fn stable_columns(self) -> &'static [&'static str] {
        match self {
            Table::Traces => &["project_id", "id", "timestamp_us", "timestamp"],
            Table::Observations => &[
                "project_id",
                "trace_id",
                "id",
                "type",
                "start_time_us",
                "start_time",
            ],
            Table::Scores | Table::FileOperations | Table::TerminalCommands | Table::GitLinks => {
                &["project_id", "trace_id", "id"]
            }
            Table::Metrics => &["project_id", "name", "id"],
            Table::DeadLetters => &["project_id", "batch_id", "event_index"],
            Table::ExperimentRollups => &["project_id", "id"],
        }
    }

    /// How replays deduplicate (the table's ReplacingMergeTree key and version).
    pub fn dedup(self) -> Dedup {
        match self {
            Table::DeadLetters => Dedup {
                key: "batch_id, event_index",
                version: None,
            },
            _ => Dedup {
                key: "id",
                version: Some("version"),
            },
        }
    }

    pub fn schema(self) -> SchemaRef {
        static SCHEMAS: LazyLock<Vec<SchemaRef>> = LazyLock::new(|| {
            Table::ALL
                .iter()
                .map(|table| Arc::new(build_schema(*table)))
                .collect()
        });
        SCHEMAS[self as usize].clone()
    }
}

fn list_of(item: DataType) -> DataType {
    DataType::List(Arc::new(Field::new("item", item, false)))
}

fn string_list() -> DataType {
    list_of(DataType::Utf8)
}

fn build_schema(table: Table) -> Schema {
    use DataType::{Float64, Int32, Int64, UInt32, UInt64, Utf8};
    let field = |name: &str, data_type: DataType, nullable: bool| Field::new(name, data_type, nullable);
    let cost = |name: &str| Field::new(name, DataType::Decimal128(COST_PRECISION, COST_SCALE), true);
    let head = |fields: &mut Vec<Field>| {
        fields.push(field("project_id", Utf8, false));
        fields.push(field("id", Utf8, false));
    };
    let tail = |fields: &mut Vec<Field>| {
        fields.push(field("event_id", Utf8, false));
        fields.push(field("version", UInt64, false));
        fields.push(field("project_name", Utf8, false));
    };
    let metadata = |fields: &mut Vec<Field>| {
        fields.push(field("metadata_keys", string_list(), false));
        fields.push(field("metadata_values", string_list(), false));
    };
    let trace_link = |fields: &mut Vec<Field>| {
        fields.push(field("trace_id", Utf8, false));
        fields.push(field("observation_id", Utf8, true));
        fields.push(field("timestamp_us", Int64, false));
    };
    let mut fields = Vec::new();
    match table {
        Table::Traces => {
            head(&mut fields);
            fields.push(field("timestamp_us", Int64, false));
            for name in ["name", "user_id", "session_id", "release", "version_tag"] {
                fields.push(field(name, Utf8, true));
            }
            fields.push(field("environment", Utf8, false));
            fields.push(field("tags", string_list(), false));
            fields.push(field("input", Utf8, true));
            fields.push(field("output", Utf8, true));
            metadata(&mut fields);
            fields.push(field("experiment_id", Utf8, true));
            fields.push(field("dataset_item_id", Utf8, true));
            fields.push(field("public", DataType::UInt8, false));
            tail(&mut fields);
        }
        Table::Observations => {
            head(&mut fields);
            fields.push(field("trace_id", Utf8, false));
            fields.push(field("parent_observation_id", Utf8, true));
            fields.push(field("type", Utf8, false));
            fields.push(field("name", Utf8, false));
            fields.push(field("start_time_us", Int64, false));
            fields.push(field("end_time_us", Int64, true));
            fields.push(field("level", Utf8, false));
            fields.push(field("status_message", Utf8, true));
            fields.push(field("input", Utf8, true));
            fields.push(field("output", Utf8, true));
            metadata(&mut fields);
            fields.push(field("model", Utf8, true));
            fields.push(field("model_parameters", Utf8, true));
            for name in [
                "input_tokens",
                "output_tokens",
                "cache_read_tokens",
                "cache_write_tokens",
            ] {
                fields.push(field(name, UInt64, false));
            }
            for name in [
                "input_cost",
                "output_cost",
                "cache_read_cost",
                "cache_write_cost",
                "total_cost",
            ] {
                fields.push(cost(name));
            }
            fields.push(field("cost_source", Utf8, false));
            fields.push(field("tool_name", Utf8, true));
            fields.push(field("tool_call_id", Utf8, true));
            fields.push(field("completion_start_time_us", Int64, true));
            fields.push(field("prompt_name", Utf8, true));
            fields.push(field("prompt_version", UInt32, true));
            tail(&mut fields);
        }
        Table::Scores => {
            head(&mut fields);
            trace_link(&mut fields);
            fields.push(field("name", Utf8, false));
            fields.push(field("data_type", Utf8, false));
            fields.push(field("value", Float64, false));
            fields.push(field("string_value", Utf8, true));
            fields.push(field("source", Utf8, false));
            fields.push(field("evaluator_id", Utf8, true));
            fields.push(field("comment", Utf8, true));
            metadata(&mut fields);
            tail(&mut fields);
        }
        Table::FileOperations => {
            head(&mut fields);
            trace_link(&mut fields);
            fields.push(field("operation", Utf8, false));
            fields.push(field("path", Utf8, false));
            fields.push(field("new_path", Utf8, true));
            fields.push(field("language", Utf8, true));
            fields.push(field("lines_added", UInt32, false));
            fields.push(field("lines_removed", UInt32, false));
            fields.push(field("bytes", UInt64, true));
            fields.push(field("diff", Utf8, true));
            tail(&mut fields);
        }
        Table::TerminalCommands => {
            head(&mut fields);
            trace_link(&mut fields);
            fields.push(field("command", Utf8, false));
            fields.push(field("cwd", Utf8, true));
            fields.push(field("exit_code", Int32, true));
            fields.push(field("duration_ms", UInt64, true));
            fields.push(field("stdout", Utf8, true));
            fields.push(field("stderr", Utf8, true));
            tail(&mut fields);
        }
        Table::GitLinks => {
            head(&mut fields);
            trace_link(&mut fields);
            fields.push(field("repository", Utf8, false));
            fields.push(field("branch", Utf8, true));
            fields.push(field("commit_sha", Utf8, false));
            fields.push(field("message", Utf8, true));
            fields.push(field("author", Utf8, true));
            for name in ["files_changed", "insertions", "deletions"] {
                fields.push(field(name, UInt32, false));
            }
            fields.push(field("pull_request_url", Utf8, true));
            tail(&mut fields);
        }
        Table::Metrics => {
            head(&mut fields);
            fields.push(field("name", Utf8, false));
            fields.push(field("kind", Utf8, false));
            fields.push(field("unit", Utf8, true));
            fields.push(field("temporality", Utf8, true));
            fields.push(field("time_us", Int64, false));
            fields.push(field("start_time_us", Int64, true));
            fields.push(field("value", Float64, true));
            fields.push(field("count", UInt64, true));
            for name in ["sum", "min", "max"] {
                fields.push(field(name, Float64, true));
            }
            fields.push(field("bucket_counts", list_of(UInt64), false));
            fields.push(field("explicit_bounds", list_of(Float64), false));
            for name in [
                "attribute_keys",
                "attribute_values",
                "resource_keys",
                "resource_values",
            ] {
                fields.push(field(name, string_list(), false));
            }
            tail(&mut fields);
        }
        Table::DeadLetters => {
            fields.push(field("project_id", Utf8, false));
            fields.push(field("batch_id", Utf8, false));
            fields.push(field("event_index", UInt32, false));
            fields.push(field("event_id", Utf8, true));
            fields.push(field("event_type", Utf8, true));
            fields.push(field("received_at_us", Int64, false));
            fields.push(field("reason", Utf8, false));
            fields.push(field("raw", Utf8, false));
        }
        Table::ExperimentRollups => {
            head(&mut fields);
            for name in ["experiment_id", "dataset_id", "score_name"] {
                fields.push(field(name, Utf8, false));
            }
            fields.push(field("computed_at_us", Int64, false));
            fields.push(field("items", UInt64, false));
            fields.push(field("scores", UInt64, false));
            for name in ["mean", "median", "p95", "pass_rate"] {
                fields.push(field(name, Float64, true));
            }
            fields.push(cost("total_cost"));
            for name in ["mean_cost", "latency_p50_ms", "latency_p95_ms"] {
                fields.push(field(name, Float64, true));
            }
            fields.push(field("input_tokens", UInt64, false));
            fields.push(field("output_tokens", UInt64, false));
            fields.push(field("baseline_experiment_id", Utf8, true));
            fields.push(field("paired_items", UInt64, false));
            for name in ["paired_mean_difference", "paired_ci_low", "paired_ci_high"] {
                fields.push(field(name, Float64, true));
            }
            fields.push(field("version", UInt64, false));
        }
    }
    Schema::new(fields)
}

/// USD → `Decimal(18, 12)` units.
pub fn cost_to_decimal(usd: f64) -> i128 {
    (usd * 1e12).round() as i128
}
