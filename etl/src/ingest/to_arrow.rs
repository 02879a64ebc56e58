//! Valid events → one Arrow `RecordBatch` per ClickHouse table. Arrow is the only row
//! representation between validation and ClickHouse.
//!
//! Each table ingest writes is declared once, with `table!`: every column's name, its type and
//! the expression that fills it from an event, in ClickHouse's column order. The declaration
//! makes both the table's schema (which [`Table::schema`] serves) and its builders, so no second
//! list has to be kept in the same order, and a column is filled where it is named.

use agenttrace_schemas::event::{
    Cost, FileOperation, GitLink, Json, MetaValue, Metric, Observation, Score, ScoreValue, TerminalCommand,
    Trace,
};
use agenttrace_schemas::{Event, Payload, Timestamp};
use arrow_array::RecordBatch;
use arrow_array::builder::ArrayBuilder;
use arrow_schema::{ArrowError, Field};

use self::column::{Append, ColumnType, Float64, Int32, Int64, List, Null, UInt8, UInt32, UInt64, Usd, Utf8};
use crate::clickhouse::catalog::Table;
use crate::search::index::{Document, FieldTerms, event_fields};

/// The types a table's columns are declared with, named as Arrow's `DataType`s: `Null<T>` is a
/// nullable `T`, `List<T>` an array of non-null `T`s, `Usd` a cost (ClickHouse `Decimal64(12)`).
/// Each says which builder its column needs and which Rust values a row may put in it.
mod column {
    use std::marker::PhantomData;
    use std::sync::Arc;

    use arrow_array::builder::{
        ArrayBuilder, Decimal128Builder, ListBuilder, PrimitiveBuilder, StringBuilder,
    };
    use arrow_array::types::ArrowPrimitiveType;
    pub use arrow_array::types::{
        Float64Type as Float64, Int32Type as Int32, Int64Type as Int64, UInt8Type as UInt8,
        UInt32Type as UInt32, UInt64Type as UInt64,
    };
    use arrow_schema::{DataType, Field};

    use crate::clickhouse::catalog::{COST_PRECISION, COST_SCALE, cost_to_decimal};

    pub struct Utf8;
    pub struct Usd;
    pub struct Null<T>(PhantomData<T>);
    pub struct List<T>(PhantomData<T>);

    pub trait ColumnType {
        type Builder: ArrayBuilder;
        const NULLABLE: bool = false;
        fn data_type() -> DataType;
        fn builder() -> Self::Builder;
    }

    /// A value of type `V` appended as one row of a column of this type. The impls are
    /// `#[inline]`: they run for every column of every row, and a call costs more than most
    /// appends.
    pub trait Append<V>: ColumnType {
        fn append(builder: &mut Self::Builder, value: V);
    }

    pub fn field<T: ColumnType>(name: &str) -> Field {
        Field::new(name, T::data_type(), T::NULLABLE)
    }

    impl ColumnType for Utf8 {
        type Builder = StringBuilder;
        fn data_type() -> DataType {
            DataType::Utf8
        }
        fn builder() -> StringBuilder {
            StringBuilder::new()
        }
    }

    impl<T: ArrowPrimitiveType> ColumnType for T {
        type Builder = PrimitiveBuilder<T>;
        fn data_type() -> DataType {
            T::DATA_TYPE
        }
        fn builder() -> PrimitiveBuilder<T> {
            PrimitiveBuilder::new()
        }
    }

    impl ColumnType for Usd {
        type Builder = Decimal128Builder;
        fn data_type() -> DataType {
            DataType::Decimal128(COST_PRECISION, COST_SCALE)
        }
        fn builder() -> Decimal128Builder {
            Decimal128Builder::new().with_data_type(Self::data_type())
        }
    }

    impl<T: ColumnType> ColumnType for Null<T> {
        type Builder = T::Builder;
        const NULLABLE: bool = true;
        fn data_type() -> DataType {
            T::data_type()
        }
        fn builder() -> T::Builder {
            T::builder()
        }
    }

    impl<T: ColumnType> ColumnType for List<T> {
        type Builder = ListBuilder<T::Builder>;
        fn data_type() -> DataType {
            DataType::List(Arc::new(field::<T>("item")))
        }
        fn builder() -> Self::Builder {
            ListBuilder::new(T::builder()).with_field(Arc::new(field::<T>("item")))
        }
    }

    impl<S: AsRef<str>> Append<S> for Utf8 {
        #[inline]
        fn append(builder: &mut StringBuilder, value: S) {
            builder.append_value(value);
        }
    }

    impl<S: AsRef<str>> Append<Option<S>> for Null<Utf8> {
        #[inline]
        fn append(builder: &mut StringBuilder, value: Option<S>) {
            builder.append_option(value);
        }
    }

    impl<T: ArrowPrimitiveType> Append<T::Native> for T {
        #[inline]
        fn append(builder: &mut PrimitiveBuilder<T>, value: T::Native) {
            builder.append_value(value);
        }
    }

    impl<T: ArrowPrimitiveType> Append<Option<T::Native>> for Null<T> {
        #[inline]
        fn append(builder: &mut PrimitiveBuilder<T>, value: Option<T::Native>) {
            builder.append_option(value);
        }
    }

    /// Dollars, stored as `Decimal(18, 12)` units.
    impl Append<Option<f64>> for Null<Usd> {
        #[inline]
        fn append(builder: &mut Decimal128Builder, value: Option<f64>) {
            builder.append_option(value.map(cost_to_decimal));
        }
    }

    impl<I> Append<I> for List<Utf8>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        #[inline]
        fn append(builder: &mut ListBuilder<StringBuilder>, values: I) {
            for value in values {
                builder.values().append_value(value);
            }
            builder.append(true);
        }
    }

    impl<T: ArrowPrimitiveType> Append<&[T::Native]> for List<T> {
        #[inline]
        fn append(builder: &mut ListBuilder<PrimitiveBuilder<T>>, values: &[T::Native]) {
            builder.values().append_slice(values);
            builder.append(true);
        }
    }
}

/// Declares a table ingest writes: its columns in ClickHouse's order, each with its name, its
/// type (from `column`) and the expression that fills it from `append`'s arguments (after the
/// `let`s, which compute what several columns share). Makes a struct of one builder per column,
/// with `fields` (the table's schema), `new`, `append` (one row) and `finish` (the batch).
macro_rules! table {
    (
        $(#[$meta:meta])*
        struct $name:ident for $table:expr;
        fn append($($arg:ident: $arg_type:ty),* $(,)?) {
            $(let $binding:pat = $init:expr;)*
            [$($column:ident: $type:ty = $value:expr),* $(,)?]
        }
    ) => {
        $(#[$meta])*
        pub(crate) struct $name {
            $($column: <$type as ColumnType>::Builder,)*
        }

        impl $name {
            pub(crate) fn fields() -> Vec<Field> {
                // A raw identifier names a column that is a Rust keyword (`r#type`).
                vec![$(column::field::<$type>(stringify!($column).trim_start_matches("r#")),)*]
            }

            fn new() -> Self {
                $name {
                    $($column: <$type as ColumnType>::builder(),)*
                }
            }

            fn append(&mut self, $($arg: $arg_type),*) {
                $(let $binding = $init;)*
                $(<$type as Append<_>>::append(&mut self.$column, $value);)*
            }

            fn finish(mut self) -> Result<RecordBatch, ArrowError> {
                RecordBatch::try_new($table.insert_schema(), vec![$(ArrayBuilder::finish(&mut self.$column),)*])
            }
        }
    };
}

/// The project every row of a batch belongs to: its id and (denormalized) name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowProject {
    pub id: String,
    pub name: String,
    /// The public key of the API key that sent the batch; empty for rows AgentTrace writes.
    pub api_key: String,
}

/// The event's own time orders updates of one entity; a replay carries the same version.
fn version(event: &Event) -> u64 {
    event.timestamp.as_micros().max(0) as u64
}

fn json_text<'a>(value: &'a Option<Json<'_>>) -> Option<&'a str> {
    value.as_ref().map(Json::as_str)
}

/// Where an observation's cost came from, as stored in `cost_source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CostSource {
    /// The agent sent it.
    Agent,
    /// Computed by the ETL from the model price table.
    PriceTable,
    /// Unknown (no cost sent, no price for the model).
    None,
}

impl CostSource {
    pub fn as_str(self) -> &'static str {
        match self {
            CostSource::Agent => "agent",
            CostSource::PriceTable => "price_table",
            CostSource::None => "",
        }
    }
}

table! {
    struct TraceColumns for Table::Traces;
    fn append(project: &RowProject, event: &Event, t: &Trace) {
        [
            project_id: Utf8 = &project.id,
            id: Utf8 = &t.id,
            timestamp_us: Int64 = t.timestamp.unwrap_or(event.timestamp).as_micros(),
            name: Null<Utf8> = t.name.as_deref(),
            user_id: Null<Utf8> = t.user_id.as_deref(),
            session_id: Null<Utf8> = t.session_id.as_deref(),
            release: Null<Utf8> = t.release.as_deref(),
            version_tag: Null<Utf8> = t.version.as_deref(),
            environment: Utf8 = &t.environment,
            tags: List<Utf8> = &t.tags,
            input: Null<Utf8> = json_text(&t.input),
            output: Null<Utf8> = json_text(&t.output),
            metadata_keys: List<Utf8> = t.metadata.keys(),
            metadata_values: List<Utf8> = t.metadata.values().map(MetaValue::as_str),
            experiment_id: Null<Utf8> = t.experiment_id.as_deref(),
            dataset_item_id: Null<Utf8> = t.dataset_item_id.as_deref(),
            public: UInt8 = u8::from(t.public),
            event_id: Utf8 = &event.id,
            version: UInt64 = version(event),
            project_name: Utf8 = &project.name,
        ]
    }
}

table! {
    struct ObservationColumns for Table::Observations;
    fn append(project: &RowProject, event: &Event, o: &Observation, computed: Option<Cost>) {
        // A cost the agent sent wins over the price table's.
        let (cost, cost_source) = match (&o.cost, &computed) {
            (Some(sent), _) => (Some(sent), CostSource::Agent),
            (None, Some(priced)) => (Some(priced), CostSource::PriceTable),
            (None, None) => (None, CostSource::None),
        };
        [
            project_id: Utf8 = &project.id,
            id: Utf8 = &o.id,
            trace_id: Utf8 = &o.trace_id,
            parent_observation_id: Null<Utf8> = o.parent_observation_id.as_deref(),
            r#type: Utf8 = o.kind.as_str(),
            name: Utf8 = &o.name,
            start_time_us: Int64 = o.start_time.as_micros(),
            end_time_us: Null<Int64> = o.end_time.map(Timestamp::as_micros),
            level: Utf8 = o.level.as_str(),
            status_message: Null<Utf8> = o.status_message.as_deref(),
            input: Null<Utf8> = json_text(&o.input),
            output: Null<Utf8> = json_text(&o.output),
            metadata_keys: List<Utf8> = o.metadata.keys(),
            metadata_values: List<Utf8> = o.metadata.values().map(MetaValue::as_str),
            model: Null<Utf8> = o.model.as_deref(),
            model_parameters: Null<Utf8> = json_text(&o.model_parameters),
            input_tokens: UInt64 = o.usage.input_tokens,
            output_tokens: UInt64 = o.usage.output_tokens,
            cache_read_tokens: UInt64 = o.usage.cache_read_input_tokens,
            cache_write_tokens: UInt64 = o.usage.cache_creation_input_tokens,
            input_cost: Null<Usd> = cost.and_then(|c| c.input),
            output_cost: Null<Usd> = cost.and_then(|c| c.output),
            cache_read_cost: Null<Usd> = cost.and_then(|c| c.cache_read),
            cache_write_cost: Null<Usd> = cost.and_then(|c| c.cache_write),
            total_cost: Null<Usd> = cost.and_then(Cost::effective_total),
            cost_source: Utf8 = cost_source.as_str(),
            tool_name: Null<Utf8> = o.tool_name.as_deref(),
            tool_call_id: Null<Utf8> = o.tool_call_id.as_deref(),
            completion_start_time_us: Null<Int64> = o.completion_start_time.map(Timestamp::as_micros),
            prompt_name: Null<Utf8> = o.prompt_name.as_deref(),
            prompt_version: Null<UInt32> = o.prompt_version,
            event_id: Utf8 = &event.id,
            version: UInt64 = version(event),
            project_name: Utf8 = &project.name,
            api_key: Utf8 = &project.api_key,
        ]
    }
}

table! {
    struct ScoreColumns for Table::Scores;
    fn append(project: &RowProject, event: &Event, s: &Score) {
        // A categorical score's value is text; its number is 0.
        let (value, string_value) = match &s.value {
            ScoreValue::Numeric(v) => (*v, None),
            ScoreValue::Boolean(b) => (if *b { 1.0 } else { 0.0 }, None),
            ScoreValue::Categorical(c) => (0.0, Some(c.as_str())),
        };
        [
            project_id: Utf8 = &project.id,
            id: Utf8 = &s.id,
            trace_id: Utf8 = &s.trace_id,
            observation_id: Null<Utf8> = s.observation_id.as_deref(),
            timestamp_us: Int64 = s.timestamp.unwrap_or(event.timestamp).as_micros(),
            name: Utf8 = &s.name,
            data_type: Utf8 = s.effective_data_type().as_str(),
            value: Float64 = value,
            string_value: Null<Utf8> = string_value,
            source: Utf8 = s.source.as_str(),
            evaluator_id: Null<Utf8> = s.evaluator_id.as_deref(),
            comment: Null<Utf8> = s.comment.as_deref(),
            metadata_keys: List<Utf8> = s.metadata.keys(),
            metadata_values: List<Utf8> = s.metadata.values().map(MetaValue::as_str),
            event_id: Utf8 = &event.id,
            version: UInt64 = version(event),
            project_name: Utf8 = &project.name,
        ]
    }
}

table! {
    struct FileOperationColumns for Table::FileOperations;
    fn append(project: &RowProject, event: &Event, f: &FileOperation) {
        [
            project_id: Utf8 = &project.id,
            id: Utf8 = &f.id,
            trace_id: Utf8 = &f.trace_id,
            observation_id: Null<Utf8> = f.observation_id.as_deref(),
            timestamp_us: Int64 = f.timestamp.unwrap_or(event.timestamp).as_micros(),
            operation: Utf8 = f.operation.as_str(),
            path: Utf8 = &f.path,
            new_path: Null<Utf8> = f.new_path.as_deref(),
            language: Null<Utf8> = f.language.as_deref(),
            lines_added: UInt32 = f.lines_added,
            lines_removed: UInt32 = f.lines_removed,
            bytes: Null<UInt64> = f.bytes,
            diff: Null<Utf8> = f.diff.as_deref(),
            event_id: Utf8 = &event.id,
            version: UInt64 = version(event),
            project_name: Utf8 = &project.name,
        ]
    }
}

table! {
    struct TerminalCommandColumns for Table::TerminalCommands;
    fn append(project: &RowProject, event: &Event, t: &TerminalCommand) {
        [
            project_id: Utf8 = &project.id,
            id: Utf8 = &t.id,
            trace_id: Utf8 = &t.trace_id,
            observation_id: Null<Utf8> = t.observation_id.as_deref(),
            timestamp_us: Int64 = t.timestamp.unwrap_or(event.timestamp).as_micros(),
            command: Utf8 = &t.command,
            cwd: Null<Utf8> = t.cwd.as_deref(),
            exit_code: Null<Int32> = t.exit_code,
            duration_ms: Null<UInt64> = t.duration_ms,
            stdout: Null<Utf8> = t.stdout.as_deref(),
            stderr: Null<Utf8> = t.stderr.as_deref(),
            event_id: Utf8 = &event.id,
            version: UInt64 = version(event),
            project_name: Utf8 = &project.name,
        ]
    }
}

table! {
    struct GitLinkColumns for Table::GitLinks;
    fn append(project: &RowProject, event: &Event, g: &GitLink) {
        [
            project_id: Utf8 = &project.id,
            id: Utf8 = &g.id,
            trace_id: Utf8 = &g.trace_id,
            observation_id: Null<Utf8> = g.observation_id.as_deref(),
            timestamp_us: Int64 = g.timestamp.unwrap_or(event.timestamp).as_micros(),
            repository: Utf8 = &g.repository,
            branch: Null<Utf8> = g.branch.as_deref(),
            commit_sha: Utf8 = &g.commit_sha,
            message: Null<Utf8> = g.message.as_deref(),
            author: Null<Utf8> = g.author.as_deref(),
            files_changed: UInt32 = g.files_changed,
            insertions: UInt32 = g.insertions,
            deletions: UInt32 = g.deletions,
            pull_request_url: Null<Utf8> = g.pull_request_url.as_deref(),
            event_id: Utf8 = &event.id,
            version: UInt64 = version(event),
            project_name: Utf8 = &project.name,
        ]
    }
}

table! {
    struct MetricColumns for Table::Metrics;
    fn append(project: &RowProject, event: &Event, m: &Metric) {
        [
            project_id: Utf8 = &project.id,
            id: Utf8 = &m.id,
            name: Utf8 = &m.name,
            kind: Utf8 = m.kind.as_str(),
            unit: Null<Utf8> = m.unit.as_deref(),
            temporality: Null<Utf8> = m.temporality.as_deref(),
            time_us: Int64 = m.time.as_micros(),
            start_time_us: Null<Int64> = m.start_time.map(Timestamp::as_micros),
            value: Null<Float64> = m.value,
            count: Null<UInt64> = m.count,
            sum: Null<Float64> = m.sum,
            min: Null<Float64> = m.min,
            max: Null<Float64> = m.max,
            bucket_counts: List<UInt64> = m.bucket_counts.as_slice(),
            explicit_bounds: List<Float64> = m.explicit_bounds.as_slice(),
            attribute_keys: List<Utf8> = m.attributes.keys(),
            attribute_values: List<Utf8> = m.attributes.values().map(MetaValue::as_str),
            resource_keys: List<Utf8> = m.resource.keys(),
            resource_values: List<Utf8> = m.resource.values().map(MetaValue::as_str),
            event_id: Utf8 = &event.id,
            version: UInt64 = version(event),
            project_name: Utf8 = &project.name,
        ]
    }
}

table! {
    /// One searchable row with the unique terms of its fields, for `search_terms` (a view stores a
    /// posting per term: see `Table::insert_table`). As the tokenizer finds them, each term goes
    /// to `terms.values()` and its field's number (1-based) to `term_fields.values()`, and each
    /// field that had a term to `fields.values()`; `append` then closes the row's lists.
    struct SearchTermColumns for Table::SearchPostings;
    fn append(project: &RowProject, document: &Document<'_>) {
        [
            project_id: Utf8 = &project.id,
            timestamp_us: Int64 = document.timestamp_us,
            trace_id: Utf8 = document.trace_id,
            observation_id: Utf8 = document.observation_id,
            source: Utf8 = document.source.name(),
            id: Utf8 = document.posted_id(),
            fields: List<Utf8> = std::iter::empty::<&str>(),
            terms: List<Utf8> = std::iter::empty::<&str>(),
            term_fields: List<UInt8> = &[][..],
        ]
    }
}

/// Fields one `search_terms` row numbers (`term_fields` is `UInt8`); a row with more comes as
/// several.
const MAX_FIELDS_PER_TERMS_ROW: u8 = u8::MAX;

/// A rejected event, as stored in `dead_letters`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub event_index: u32,
    pub event_id: Option<String>,
    pub event_type: Option<String>,
    pub reason: String,
    pub raw: String,
}

table! {
    struct DeadLetterColumns for Table::DeadLetters;
    fn append(project_id: &str, batch_id: &str, received_at: Timestamp, row: &DeadLetter) {
        [
            project_id: Utf8 = project_id,
            batch_id: Utf8 = batch_id,
            event_index: UInt32 = row.event_index,
            event_id: Null<Utf8> = row.event_id.as_deref(),
            event_type: Null<Utf8> = row.event_type.as_deref(),
            received_at_us: Int64 = received_at.as_micros(),
            reason: Utf8 = &row.reason,
            raw: Utf8 = &row.raw,
        ]
    }
}

/// Search postings one batch makes at most (about 200 MB of Arrow columns at worst): a batch of
/// 10,000 events of ordinary text makes a few hundred thousand.
pub const MAX_POSTINGS_PER_BATCH: usize = 1_000_000;

/// A patch event handed to [`TableBatches::push`] before it was merged into a full row.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event {0}: a patch must be merged into a full row before it is converted")]
pub struct UnmergedPatch(pub String);

/// Accumulates the rows of one signed batch, per table.
pub struct TableBatches {
    project: RowProject,
    // Each table's builders are made when its first row comes: a request brings rows for a
    // few tables, and every builder made costs allocations.
    traces: Option<TraceColumns>,
    observations: Option<ObservationColumns>,
    scores: Option<ScoreColumns>,
    file_operations: Option<FileOperationColumns>,
    terminal_commands: Option<TerminalCommandColumns>,
    git_links: Option<GitLinkColumns>,
    metrics: Option<MetricColumns>,
    /// The search index's rows: one per searchable row, with its fields' terms.
    search_terms: Option<SearchTermColumns>,
    /// Whether rows are indexed for search as they are added (off only to measure its cost).
    indexing: bool,
    terms: FieldTerms,
    /// Postings made so far, and whether the batch reached its bound.
    posted: usize,
    index_full: bool,
    dead_letters: Vec<DeadLetter>,
}

impl TableBatches {
    pub fn new(project_id: &str, project_name: &str) -> Self {
        TableBatches {
            project: RowProject {
                id: project_id.to_owned(),
                name: project_name.to_owned(),
                api_key: String::new(),
            },
            traces: None,
            observations: None,
            scores: None,
            file_operations: None,
            terminal_commands: None,
            git_links: None,
            metrics: None,
            search_terms: None,
            indexing: true,
            terms: FieldTerms::default(),
            posted: 0,
            index_full: false,
            dead_letters: Vec::new(),
        }
    }

    /// Leaves the search index out: what a batch costs without it, for `agenttrace bench`.
    pub fn without_search_index(mut self) -> Self {
        self.indexing = false;
        self
    }

    /// Rows of this batch record `public_key` as the API key that sent them.
    pub fn sent_by(mut self, public_key: &str) -> Self {
        self.project.api_key = public_key.to_owned();
        self
    }

    /// Adds a valid event; `computed_cost` is the price-table cost for generations without one.
    ///
    /// A patch has no row of its own: the pipeline merges it into a full trace or observation
    /// first (see `ingest::merge`), and one passed here is refused.
    pub fn push(&mut self, event: &Event, computed_cost: Option<Cost>) -> Result<(), UnmergedPatch> {
        let project = &self.project;
        match &event.payload {
            Payload::Trace(b) => self
                .traces
                .get_or_insert_with(TraceColumns::new)
                .append(project, event, b),
            Payload::Observation(b) => self
                .observations
                .get_or_insert_with(ObservationColumns::new)
                .append(project, event, b, computed_cost),
            Payload::Score(b) => self
                .scores
                .get_or_insert_with(ScoreColumns::new)
                .append(project, event, b),
            Payload::FileOperation(b) => self
                .file_operations
                .get_or_insert_with(FileOperationColumns::new)
                .append(project, event, b),
            Payload::TerminalCommand(b) => self
                .terminal_commands
                .get_or_insert_with(TerminalCommandColumns::new)
                .append(project, event, b),
            Payload::GitLink(b) => self
                .git_links
                .get_or_insert_with(GitLinkColumns::new)
                .append(project, event, b),
            Payload::Metric(b) => self
                .metrics
                .get_or_insert_with(MetricColumns::new)
                .append(project, event, b),
            Payload::TracePatch(_) | Payload::ObservationPatch(_) => {
                return Err(UnmergedPatch(event.id.to_string()));
            }
        }
        if self.indexing {
            self.index(event);
        }
        Ok(())
    }

    /// Postings for the searchable fields of `event`'s row: one per distinct term of a field,
    /// up to [`MAX_POSTINGS_PER_BATCH`] for the batch.
    fn index(&mut self, event: &Event) {
        let Some((document, fields)) = event_fields(event) else {
            return;
        };
        if self.posted >= MAX_POSTINGS_PER_BATCH {
            if !self.index_full {
                self.index_full = true;
                tracing::warn!(
                    project = %self.project.id,
                    "a batch reached {MAX_POSTINGS_PER_BATCH} search postings: its later rows are stored but not indexed"
                );
            }
            return;
        }
        let rows = self.search_terms.get_or_insert_with(SearchTermColumns::new);
        let mut posted = 0;
        // Fields with terms in the row being built.
        let mut numbered: u8 = 0;
        for (field, text) in &fields {
            if numbered == MAX_FIELDS_PER_TERMS_ROW {
                rows.append(&self.project, &document);
                numbered = 0;
            }
            let number = numbered + 1;
            let (terms, term_fields) = (rows.terms.values(), rows.term_fields.values());
            let before = posted;
            self.terms.each(text, |term| {
                terms.append_value(term);
                term_fields.append_value(number);
                posted += 1;
            });
            if posted > before {
                rows.fields.values().append_value(field);
                numbered = number;
            }
        }
        if numbered > 0 {
            rows.append(&self.project, &document);
        }
        self.posted += posted;
    }

    pub fn push_dead_letter(&mut self, dead_letter: DeadLetter) {
        self.dead_letters.push(dead_letter);
    }

    /// The non-empty batches, one per table; `received_at` stamps the dead letters.
    pub fn finish(
        self,
        batch_id: &str,
        received_at: Timestamp,
    ) -> Result<Vec<(Table, RecordBatch)>, ArrowError> {
        let mut out = Vec::new();
        // A table gets a batch only if some event of this batch went to it.
        if let Some(columns) = self.traces {
            out.push((Table::Traces, columns.finish()?));
        }
        if let Some(columns) = self.observations {
            out.push((Table::Observations, columns.finish()?));
        }
        if let Some(columns) = self.scores {
            out.push((Table::Scores, columns.finish()?));
        }
        if let Some(columns) = self.file_operations {
            out.push((Table::FileOperations, columns.finish()?));
        }
        if let Some(columns) = self.terminal_commands {
            out.push((Table::TerminalCommands, columns.finish()?));
        }
        if let Some(columns) = self.git_links {
            out.push((Table::GitLinks, columns.finish()?));
        }
        if let Some(columns) = self.metrics {
            out.push((Table::Metrics, columns.finish()?));
        }
        if let Some(columns) = self.search_terms {
            out.push((Table::SearchPostings, columns.finish()?));
        }
        if !self.dead_letters.is_empty() {
            out.push((
                Table::DeadLetters,
                dead_letter_batch(&self.project.id, batch_id, received_at, &self.dead_letters)?,
            ));
        }
        Ok(out)
    }
}

fn dead_letter_batch(
    project_id: &str,
    batch_id: &str,
    received_at: Timestamp,
    rows: &[DeadLetter],
) -> Result<RecordBatch, ArrowError> {
    let mut columns = DeadLetterColumns::new();
    for row in rows {
        columns.append(project_id, batch_id, received_at, row);
    }
    columns.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::index::MAX_TERMS_PER_FIELD;
    use agenttrace_schemas::event::TimeWindow;
    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{
        Decimal128Type, Float64Type, Int32Type, Int64Type, UInt8Type, UInt32Type, UInt64Type,
    };
    use arrow_schema::DataType;

    fn event(json: &str) -> Event<'_> {
        Event::parse_valid(json, &TimeWindow::unbounded()).unwrap()
    }

    #[test]
    fn builds_one_batch_per_table_with_matching_schema() {
        let mut batches = TableBatches::new("p1", "demo").without_search_index();
        batches.push(
            &event(r#"{"id":"e1","type":"trace","timestamp":"2026-01-01T00:00:00.000001Z","body":{"id":"t1","tags":["a","b"],"metadata":{"k":1}}}"#),
            None,
        )
        .unwrap();
        batches.push(
            &event(r#"{"id":"e2","type":"observation","timestamp":"2026-01-01T00:00:01Z","body":{"id":"o1","trace_id":"t1","type":"generation","name":"chat","start_time":"2026-01-01T00:00:00.5Z","cost":{"input":0.001,"output":0.002}}}"#),
            None,
        )
        .unwrap();
        batches.push_dead_letter(DeadLetter {
            event_index: 2,
            event_id: None,
            event_type: None,
            reason: "bad".into(),
            raw: "{}".into(),
        });
        let out = batches.finish("b1", Timestamp::from_micros(5)).unwrap();
        let tables: Vec<Table> = out.iter().map(|(t, _)| *t).collect();
        assert_eq!(
            tables,
            vec![Table::Traces, Table::Observations, Table::DeadLetters]
        );
        let (_, traces) = &out[0];
        assert_eq!(traces.schema(), Table::Traces.schema());
        assert_eq!(
            traces
                .column_by_name("timestamp_us")
                .unwrap()
                .as_primitive::<Int64Type>()
                .value(0),
            1_767_225_600_000_001
        );
        let values = traces
            .column_by_name("metadata_values")
            .unwrap()
            .as_list::<i32>()
            .value(0);
        assert_eq!(values.as_string::<i32>().value(0), "1");
        let (_, observations) = &out[1];
        let total = observations
            .column_by_name("total_cost")
            .unwrap()
            .as_primitive::<Decimal128Type>();
        assert_eq!(total.value(0), 3_000_000_000);
        assert_eq!(
            observations
                .column_by_name("cost_source")
                .unwrap()
                .as_string::<i32>()
                .value(0),
            "agent"
        );
    }

    /// The postings a batch of `search_terms` rows stands for, as the view makes them:
    /// (field, term) in order.
    fn postings_of(rows: &RecordBatch) -> Vec<(String, String)> {
        let list = |name: &str| rows.column_by_name(name).unwrap().as_list::<i32>().clone();
        let (fields, terms, numbers) = (list("fields"), list("terms"), list("term_fields"));
        let mut postings = Vec::new();
        for row in 0..rows.num_rows() {
            let (names, terms, numbers) = (fields.value(row), terms.value(row), numbers.value(row));
            let (names, terms) = (names.as_string::<i32>(), terms.as_string::<i32>());
            let numbers = numbers.as_primitive::<UInt8Type>();
            assert_eq!(terms.len(), numbers.len(), "a term without its field");
            for i in 0..terms.len() {
                let field = names.value(usize::from(numbers.value(i)) - 1);
                postings.push((field.to_owned(), terms.value(i).to_owned()));
            }
        }
        postings
    }

    /// A searchable row gets one row of its fields' distinct terms, pointing at the row, in the
    /// same batch as the row.
    #[test]
    fn searchable_rows_bring_their_terms() {
        let mut batches = TableBatches::new("p1", "demo");
        batches
            .push(
                &event(r#"{"id":"e1","type":"observation","timestamp":"2026-01-01T00:00:00Z","body":{"id":"o1","trace_id":"t1","type":"span","name":"Bash","start_time":"2026-01-01T00:00:01Z","input":{"command":"cargo test billing"},"output":"Error: Error","status_message":"..."}}"#),
                None,
            )
            .unwrap();
        let out = batches.finish("b1", Timestamp::from_micros(5)).unwrap();
        let (table, rows) = &out[1];
        assert_eq!(*table, Table::SearchPostings);
        assert_eq!(rows.schema(), Table::SearchPostings.insert_schema());
        let column = |name: &str| {
            let column = rows.column_by_name(name).unwrap().as_string::<i32>();
            (0..column.len())
                .map(|i| column.value(i).to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(rows.num_rows(), 1);
        let names = rows.column_by_name("fields").unwrap().as_list::<i32>().value(0);
        let names = names.as_string::<i32>();
        let names: Vec<&str> = (0..names.len()).map(|i| names.value(i)).collect();
        // A field with no term (the status's dots) is not named.
        assert_eq!(names, ["name", "input", "output"]);
        let pair = |field: &str, term: &str| (field.to_owned(), term.to_owned());
        assert_eq!(
            postings_of(rows),
            [
                pair("name", "bash"),
                pair("input", "cargo"),
                pair("input", "test"),
                pair("input", "billing"),
                pair("output", "error"),
            ]
        );
        assert!(column("trace_id").iter().all(|t| t == "t1"));
        assert!(column("observation_id").iter().all(|o| o == "o1"));
        assert!(column("source").iter().all(|s| s == "observations"));
        assert!(
            column("id").iter().all(String::is_empty),
            "an observation's own id is its observation_id"
        );
        let times = rows
            .column_by_name("timestamp_us")
            .unwrap()
            .as_primitive::<Int64Type>();
        assert!(times.iter().all(|t| t == Some(1_767_225_601_000_000)));
    }

    /// A row with more fields than one `search_terms` row numbers comes as several, each term
    /// still with its own field.
    #[test]
    fn a_row_of_many_fields_comes_as_several_terms_rows() {
        // The most metadata an event may carry: with the name, 257 fields.
        let metadata: serde_json::Map<String, serde_json::Value> = (0..256)
            .map(|i| (format!("k{i}"), format!("value{i}").into()))
            .collect();
        let json = serde_json::json!({"id": "e1", "type": "observation", "timestamp": "2026-01-01T00:00:00Z",
            "body": {"id": "o1", "trace_id": "t1", "type": "span", "name": "step",
                     "start_time": "2026-01-01T00:00:01Z", "metadata": metadata}})
        .to_string();
        let mut batches = TableBatches::new("p1", "demo");
        batches.push(&event(&json), None).unwrap();
        let out = batches.finish("b1", Timestamp::from_micros(5)).unwrap();
        let (_, rows) = out.iter().find(|(t, _)| *t == Table::SearchPostings).unwrap();
        assert_eq!(rows.num_rows(), 2, "257 fields: 255 in the first row");
        let postings = postings_of(rows);
        assert_eq!(postings.len(), 257);
        assert_eq!(postings[0], ("name".to_owned(), "step".to_owned()));
        for i in 0..256 {
            assert!(
                postings.contains(&(format!("metadata.k{i}"), format!("value{i}"))),
                "metadata.k{i}"
            );
        }
    }

    /// A batch stops indexing once it holds [`MAX_POSTINGS_PER_BATCH`] postings (the row that
    /// crosses it is indexed whole), and still stores every row.
    #[test]
    fn a_batch_indexes_up_to_its_bound_and_stores_every_row() {
        let words: Vec<String> = (0..MAX_TERMS_PER_FIELD).map(|i| format!("w{i}")).collect();
        let input = words.join(" ");
        let rows = MAX_POSTINGS_PER_BATCH / MAX_TERMS_PER_FIELD + 10;
        let mut batches = TableBatches::new("p1", "demo");
        for n in 0..rows {
            let json = format!(
                r#"{{"id":"e{n}","type":"observation","timestamp":"2026-01-01T00:00:00Z","body":{{"id":"o{n}","trace_id":"t1","type":"span","name":"x","start_time":"2026-01-01T00:00:01Z","input":"{input}"}}}}"#
            );
            batches.push(&event(&json), None).unwrap();
        }
        let out = batches.finish("b1", Timestamp::from_micros(5)).unwrap();
        let batch = |table: Table| out.iter().find(|(t, _)| *t == table).map(|(_, batch)| batch);
        assert_eq!(batch(Table::Observations).unwrap().num_rows(), rows);
        let postings = postings_of(batch(Table::SearchPostings).unwrap()).len();
        let per_row = MAX_TERMS_PER_FIELD + 1; // the input's words and the name
        assert!(
            (MAX_POSTINGS_PER_BATCH..MAX_POSTINGS_PER_BATCH + per_row).contains(&postings),
            "{postings} postings"
        );
    }

    /// One cell as text, for comparing a column with what it should hold.
    fn cell(column: &dyn Array, row: usize) -> String {
        if column.is_null(row) {
            return "null".into();
        }
        match column.data_type() {
            DataType::Utf8 => column.as_string::<i32>().value(row).to_owned(),
            DataType::UInt8 => column.as_primitive::<UInt8Type>().value(row).to_string(),
            DataType::Int32 => column.as_primitive::<Int32Type>().value(row).to_string(),
            DataType::UInt32 => column.as_primitive::<UInt32Type>().value(row).to_string(),
            DataType::Int64 => column.as_primitive::<Int64Type>().value(row).to_string(),
            DataType::UInt64 => column.as_primitive::<UInt64Type>().value(row).to_string(),
            DataType::Float64 => column.as_primitive::<Float64Type>().value(row).to_string(),
            DataType::Decimal128(..) => column.as_primitive::<Decimal128Type>().value(row).to_string(),
            DataType::List(_) => {
                let items = column.as_list::<i32>().value(row);
                let items: Vec<String> = (0..items.len()).map(|i| cell(&items, i)).collect();
                format!("[{}]", items.join(", "))
            }
            other => panic!("no test rendering for {other}"),
        }
    }

    /// Events that set every field, each to its own value: a string field holds the name of
    /// the column it is stored in (`"stdout": "stdout"`), other fields distinct values.
    const EVERY_FIELD: [&str; 7] = [
        r#"{"id":"event_id","type":"trace","timestamp":"2026-01-01T00:00:00Z","body":{"id":"id","timestamp":"2026-01-01T00:00:01Z","name":"name","user_id":"user_id","session_id":"session_id","release":"release","version":"version_tag","environment":"environment","tags":["tags"],"input":"input","output":"output","metadata":{"metadata_keys":"metadata_values"},"experiment_id":"experiment_id","dataset_item_id":"dataset_item_id","public":true}}"#,
        r#"{"id":"event_id","type":"observation","timestamp":"2026-01-01T00:00:00Z","body":{"id":"id","trace_id":"trace_id","parent_observation_id":"parent_observation_id","type":"generation","name":"name","start_time":"2026-01-01T00:00:01Z","end_time":"2026-01-01T00:00:03Z","level":"warning","status_message":"status_message","input":"input","output":"output","metadata":{"metadata_keys":"metadata_values"},"model":"model","model_parameters":"model_parameters","usage":{"input_tokens":1,"output_tokens":2,"cache_read_input_tokens":3,"cache_creation_input_tokens":4},"cost":{"input":0.001,"output":0.002,"cache_read":0.003,"cache_write":0.004,"total":0.02},"tool_name":"tool_name","tool_call_id":"tool_call_id","completion_start_time":"2026-01-01T00:00:02Z","prompt_name":"prompt_name","prompt_version":5}}"#,
        r#"{"id":"event_id","type":"score","timestamp":"2026-01-01T00:00:00Z","body":{"id":"id","trace_id":"trace_id","observation_id":"observation_id","timestamp":"2026-01-01T00:00:01Z","name":"name","value":"string_value","source":"eval","evaluator_id":"evaluator_id","comment":"comment","metadata":{"metadata_keys":"metadata_values"}}}"#,
        r#"{"id":"event_id","type":"file_operation","timestamp":"2026-01-01T00:00:00Z","body":{"id":"id","trace_id":"trace_id","observation_id":"observation_id","timestamp":"2026-01-01T00:00:01Z","operation":"rename","path":"path","new_path":"new_path","language":"language","lines_added":1,"lines_removed":2,"bytes":3,"diff":"diff"}}"#,
        r#"{"id":"event_id","type":"terminal_command","timestamp":"2026-01-01T00:00:00Z","body":{"id":"id","trace_id":"trace_id","observation_id":"observation_id","timestamp":"2026-01-01T00:00:01Z","command":"command","cwd":"cwd","exit_code":3,"duration_ms":4,"stdout":"stdout","stderr":"stderr"}}"#,
        r#"{"id":"event_id","type":"git_link","timestamp":"2026-01-01T00:00:00Z","body":{"id":"id","trace_id":"trace_id","observation_id":"observation_id","timestamp":"2026-01-01T00:00:01Z","repository":"repository","branch":"branch","commit_sha":"c0ffee1","message":"message","author":"author","files_changed":1,"insertions":2,"deletions":3,"pull_request_url":"https://pull_request_url"}}"#,
        r#"{"id":"event_id","type":"metric","timestamp":"2026-01-01T00:00:00Z","body":{"id":"id","name":"name","kind":"histogram","unit":"unit","temporality":"delta","time":"2026-01-01T00:00:01Z","start_time":"2026-01-01T00:00:02Z","value":1.5,"count":3,"sum":2.5,"min":0.5,"max":4.5,"bucket_counts":[1,2],"explicit_bounds":[0.75],"attributes":{"attribute_keys":"attribute_values"},"resource":{"resource_keys":"resource_values"}}}"#,
    ];

    /// What the columns that do not hold their own name hold, for the events of `EVERY_FIELD`.
    fn expected_values(table: Table) -> &'static [(&'static str, &'static str)] {
        const VERSION: (&str, &str) = ("version", "1767225600000000");
        const AT_1S: (&str, &str) = ("timestamp_us", "1767225601000000");
        match table {
            Table::Traces => &[
                AT_1S,
                ("input", "\"input\""),
                ("output", "\"output\""),
                ("public", "1"),
                VERSION,
            ],
            Table::Observations => &[
                ("type", "generation"),
                ("start_time_us", "1767225601000000"),
                ("end_time_us", "1767225603000000"),
                ("level", "warning"),
                ("input", "\"input\""),
                ("output", "\"output\""),
                ("model_parameters", "\"model_parameters\""),
                ("input_tokens", "1"),
                ("output_tokens", "2"),
                ("cache_read_tokens", "3"),
                ("cache_write_tokens", "4"),
                ("input_cost", "1000000000"),
                ("output_cost", "2000000000"),
                ("cache_read_cost", "3000000000"),
                ("cache_write_cost", "4000000000"),
                ("total_cost", "20000000000"),
                ("cost_source", "agent"),
                ("completion_start_time_us", "1767225602000000"),
                ("prompt_version", "5"),
                VERSION,
            ],
            Table::Scores => &[
                AT_1S,
                ("data_type", "categorical"),
                ("value", "0"),
                ("source", "eval"),
                VERSION,
            ],
            Table::FileOperations => &[
                AT_1S,
                ("operation", "rename"),
                ("lines_added", "1"),
                ("lines_removed", "2"),
                ("bytes", "3"),
                VERSION,
            ],
            Table::TerminalCommands => &[AT_1S, ("exit_code", "3"), ("duration_ms", "4"), VERSION],
            Table::GitLinks => &[
                AT_1S,
                ("commit_sha", "c0ffee1"),
                ("files_changed", "1"),
                ("insertions", "2"),
                ("deletions", "3"),
                ("pull_request_url", "https://pull_request_url"),
                VERSION,
            ],
            Table::Metrics => &[
                ("kind", "histogram"),
                ("temporality", "delta"),
                ("time_us", "1767225601000000"),
                ("start_time_us", "1767225602000000"),
                ("value", "1.5"),
                ("count", "3"),
                ("sum", "2.5"),
                ("min", "0.5"),
                ("max", "4.5"),
                ("bucket_counts", "[1, 2]"),
                ("explicit_bounds", "[0.75]"),
                VERSION,
            ],
            Table::DeadLetters => &[("event_index", "7"), ("received_at_us", "5")],
            Table::ExperimentRollups | Table::SearchPostings => &[],
        }
    }

    /// Each column, read back by name, holds the field it is named for. Every value is distinct
    /// from the others of its type, so a column filled from the wrong field, or two columns of
    /// one type swapped (`stdout`/`stderr`, `lines_added`/`lines_removed`), fails here.
    #[test]
    fn every_column_is_filled_from_its_own_field() {
        let mut batches = TableBatches::new("project_id", "project_name")
            .sent_by("api_key")
            .without_search_index();
        for json in EVERY_FIELD {
            batches.push(&event(json), None).unwrap();
        }
        batches.push_dead_letter(DeadLetter {
            event_index: 7,
            event_id: Some("event_id".into()),
            event_type: Some("event_type".into()),
            reason: "reason".into(),
            raw: "raw".into(),
        });
        let out = batches.finish("batch_id", Timestamp::from_micros(5)).unwrap();
        let tables: Vec<Table> = out.iter().map(|(table, _)| *table).collect();
        let mut written: Vec<Table> = Table::events().collect();
        written.push(Table::DeadLetters);
        assert_eq!(tables, written, "a batch for every table ingest writes");
        for (table, batch) in &out {
            assert_eq!(batch.schema(), table.schema());
            let expected = expected_values(*table);
            for (name, _) in expected {
                assert!(
                    batch.column_by_name(name).is_some(),
                    "{table:?} has no column {name}"
                );
            }
            let mut seen: Vec<(&DataType, String, &str)> = Vec::new();
            for (field, column) in batch.schema_ref().fields().iter().zip(batch.columns()) {
                let name = field.name().as_str();
                let value = cell(column, 0);
                let want = match expected.iter().find(|(column, _)| *column == name) {
                    Some((_, value)) => (*value).to_owned(),
                    None if matches!(field.data_type(), DataType::List(_)) => format!("[{name}]"),
                    None => name.to_owned(),
                };
                assert_eq!(value, want, "{table:?}.{name}");
                if let Some((_, _, other)) = seen
                    .iter()
                    .find(|(data_type, seen, _)| *data_type == field.data_type() && *seen == value)
                {
                    panic!("{table:?}.{name} and .{other} hold the same value: a swap would pass");
                }
                seen.push((field.data_type(), value, name));
            }
        }
    }
}
