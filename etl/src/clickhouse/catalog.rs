//! Everything AgentTrace knows about each ClickHouse table, in one place: its name, its Arrow
//! schema (which mirrors its ClickHouse columns: names, order, nullability, minus the
//! MATERIALIZED ones ClickHouse computes itself), the column its time range and age are
//! measured by, and how replays of a row are deduplicated. The loader, the exports, the SQL guard
//! and the retention job all read these facts from here; every table here is exportable and
//! queryable by the project that owns its rows.
//!
//! The columns of the tables ingest writes are declared in [`crate::ingest::to_arrow`], each
//! with the expression that fills it from an event, so that a schema and the code that fills it
//! cannot disagree; [`Table::schema`] serves them from there.

use std::sync::{Arc, LazyLock};

use arrow_schema::{DataType, Field, Schema, SchemaRef};

use crate::ingest::to_arrow::{
    DeadLetterColumns, FileOperationColumns, GitLinkColumns, MetricColumns, ObservationColumns, ScoreColumns,
    SearchTermColumns, TerminalCommandColumns, TraceColumns,
};

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
    /// The full-text index: terms of the searchable text of the rows above, written with them.
    SearchPostings,
}

impl Table {
    pub const ALL: [Table; 10] = [
        Table::Traces,
        Table::Observations,
        Table::Scores,
        Table::FileOperations,
        Table::TerminalCommands,
        Table::GitLinks,
        Table::Metrics,
        Table::DeadLetters,
        Table::ExperimentRollups,
        Table::SearchPostings,
    ];

    /// The tables that hold events agents sent (not dead letters, job results or indexes).
    pub fn events() -> impl Iterator<Item = Table> {
        Table::ALL.into_iter().filter(|t| {
            !matches!(
                t,
                Table::DeadLetters | Table::ExperimentRollups | Table::SearchPostings
            )
        })
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
            Table::SearchPostings => "search_postings",
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
            | Table::GitLinks
            | Table::SearchPostings => "timestamp_us",
        }
    }

    /// Tables materialized views fill from this one's inserts (the read indexes of
    /// `migrations/clickhouse/0007_read_layout.sql`), with the same time column: whatever
    /// removes rows here (retention) removes them there too.
    pub fn derived_tables(self) -> &'static [&'static str] {
        match self {
            Table::Traces => &[
                "traces_by_time",
                "session_traces",
                "traces_by_ingest",
                "trace_summaries",
            ],
            Table::Observations => &["observations_by_time", "observations_by_ingest"],
            Table::Scores => &["scores_by_time"],
            _ => &[],
        }
    }

    /// Every column a query may name: the stored ones, those ClickHouse fills on insert and the
    /// DateTime it derives from the time column (`timestamp` from `timestamp_us`).
    pub fn columns(self) -> std::collections::HashSet<String> {
        let mut columns: std::collections::HashSet<String> =
            self.schema().fields().iter().map(|f| f.name().clone()).collect();
        columns.extend(self.insert_time_column().map(str::to_owned));
        columns.extend(self.materialized_column().map(str::to_owned));
        columns
    }

    /// The `DateTime DEFAULT now()` column ClickHouse fills when a row is inserted (ingest never
    /// writes it; `SELECT *` returns it), if the table has one.
    pub fn insert_time_column(self) -> Option<&'static str> {
        match self {
            Table::Observations => Some("ingested_at"),
            _ => None,
        }
    }

    /// The `DateTime` column ClickHouse computes from the time column (`MATERIALIZED`, so
    /// `SELECT *` leaves it out), if the table has one.
    pub fn materialized_column(self) -> Option<&'static str> {
        match self {
            Table::ExperimentRollups | Table::SearchPostings => None,
            _ => self.time_column().strip_suffix("_us"),
        }
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
            // A posting is its key: copies are identical.
            Table::SearchPostings => &[
                "project_id",
                "term",
                "timestamp_us",
                "trace_id",
                "observation_id",
                "source",
                "id",
                "field",
            ],
        }
    }

    /// How replays deduplicate (the table's ReplacingMergeTree key and version).
    pub fn dedup(self) -> Dedup {
        match self {
            Table::DeadLetters => Dedup {
                key: "batch_id, event_index",
                version: None,
            },
            Table::SearchPostings => Dedup {
                key: "term, timestamp_us, trace_id, observation_id, source, id, field",
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
                .map(|table| Arc::new(Schema::new(table.fields())))
                .collect()
        });
        SCHEMAS[self as usize].clone()
    }

    /// The table ingest inserts this one's rows through. The search index's rows arrive one
    /// per searchable row with its fields' terms as arrays, in `search_terms` (a `Null` table),
    /// and a materialized view stores one posting per term here (`0014_search_terms.sql`): a
    /// row's ids cross the wire once, not once per term.
    pub fn insert_table(self) -> &'static str {
        match self {
            Table::SearchPostings => "search_terms",
            _ => self.name(),
        }
    }

    /// The columns of the batches ingest inserts for this table, into [`Table::insert_table`].
    pub fn insert_schema(self) -> SchemaRef {
        static SEARCH_TERMS: LazyLock<SchemaRef> =
            LazyLock::new(|| Arc::new(Schema::new(SearchTermColumns::fields())));
        match self {
            Table::SearchPostings => SEARCH_TERMS.clone(),
            _ => self.schema(),
        }
    }

    fn fields(self) -> Vec<Field> {
        match self {
            Table::Traces => TraceColumns::fields(),
            Table::Observations => ObservationColumns::fields(),
            Table::Scores => ScoreColumns::fields(),
            Table::FileOperations => FileOperationColumns::fields(),
            Table::TerminalCommands => TerminalCommandColumns::fields(),
            Table::GitLinks => GitLinkColumns::fields(),
            Table::Metrics => MetricColumns::fields(),
            Table::DeadLetters => DeadLetterColumns::fields(),
            Table::ExperimentRollups => experiment_rollup_fields(),
            Table::SearchPostings => search_posting_fields(),
        }
    }
}

/// One term of one field of a searchable row (see [`Table::insert_table`] for how they are
/// written).
fn search_posting_fields() -> Vec<Field> {
    let text = |name: &str| Field::new(name, DataType::Utf8, false);
    vec![
        text("project_id"),
        text("term"),
        Field::new("timestamp_us", DataType::Int64, false),
        text("trace_id"),
        text("observation_id"),
        text("source"),
        text("id"),
        text("field"),
    ]
}

/// Written by the rollup job (`agenttrace-jobs`), which fills it from its own rows.
fn experiment_rollup_fields() -> Vec<Field> {
    use DataType::{Float64, Int64, UInt64, Utf8};
    let field = |name: &str, data_type: DataType, nullable: bool| Field::new(name, data_type, nullable);
    let mut fields = vec![field("project_id", Utf8, false), field("id", Utf8, false)];
    for name in ["experiment_id", "dataset_id", "score_name"] {
        fields.push(field(name, Utf8, false));
    }
    fields.push(field("computed_at_us", Int64, false));
    fields.push(field("items", UInt64, false));
    fields.push(field("scores", UInt64, false));
    for name in ["mean", "median", "p95", "pass_rate"] {
        fields.push(field(name, Float64, true));
    }
    fields.push(field(
        "total_cost",
        DataType::Decimal128(COST_PRECISION, COST_SCALE),
        true,
    ));
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
    fields
}

/// USD → `Decimal(18, 12)` units.
pub fn cost_to_decimal(usd: f64) -> i128 {
    (usd * 1e12).round() as i128
}
