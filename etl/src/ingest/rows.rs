//! Valid events → one Arrow `RecordBatch` per ClickHouse table, with the schemas of
//! [`crate::clickhouse::catalog`]. Arrow is the only row representation between validation and
//! ClickHouse.

use std::sync::Arc;

use agenttrace_schemas::event::{
    Cost, FileOperation, GitLink, Json, MetaValue, Metadata, Metric, Observation, Score, ScoreValue,
    TerminalCommand, Text, Trace,
};
use agenttrace_schemas::{Event, Payload, Timestamp};
use arrow_array::builder::{
    Decimal128Builder, Float64Builder, Int32Builder, Int64Builder, ListBuilder, StringBuilder, UInt8Builder,
    UInt32Builder, UInt64Builder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{ArrowError, DataType, Field};

use crate::clickhouse::catalog::{COST_PRECISION, COST_SCALE, Table, cost_to_decimal};

fn string_list_builder() -> ListBuilder<StringBuilder> {
    ListBuilder::new(StringBuilder::new()).with_field(Arc::new(Field::new("item", DataType::Utf8, false)))
}

fn append_strings<'a>(builder: &mut ListBuilder<StringBuilder>, values: impl IntoIterator<Item = &'a str>) {
    for value in values {
        builder.values().append_value(value);
    }
    builder.append(true);
}

/// Columns shared by every event table.
struct Common {
    project_id: StringBuilder,
    id: StringBuilder,
    event_id: StringBuilder,
    version: UInt64Builder,
    project_name: StringBuilder,
}

/// The project every row of a batch belongs to: its id and (denormalized) name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowProject {
    pub id: String,
    pub name: String,
}

impl Common {
    fn new() -> Self {
        Common {
            project_id: StringBuilder::new(),
            id: StringBuilder::new(),
            event_id: StringBuilder::new(),
            version: UInt64Builder::new(),
            project_name: StringBuilder::new(),
        }
    }

    fn append(&mut self, project: &RowProject, id: &str, event: &Event) {
        self.project_id.append_value(&project.id);
        self.project_name.append_value(&project.name);
        self.id.append_value(id);
        self.event_id.append_value(&event.id);
        // The event's own time orders updates of one entity; a replay carries the same version.
        self.version
            .append_value(event.timestamp.as_micros().max(0) as u64);
    }
}

struct Meta {
    keys: ListBuilder<StringBuilder>,
    values: ListBuilder<StringBuilder>,
}

impl Meta {
    fn new() -> Self {
        Meta {
            keys: string_list_builder(),
            values: string_list_builder(),
        }
    }

    fn append(&mut self, metadata: &Metadata) {
        append_strings(&mut self.keys, metadata.keys().map(|key| key.as_str()));
        append_strings(&mut self.values, metadata.values().map(MetaValue::as_str));
    }
}

/// `trace_id`, `observation_id`, `timestamp_us` of scores, file operations, commands, git links.
struct TraceLink {
    trace_id: StringBuilder,
    observation_id: StringBuilder,
    timestamp_us: Int64Builder,
}

impl TraceLink {
    fn new() -> Self {
        TraceLink {
            trace_id: StringBuilder::new(),
            observation_id: StringBuilder::new(),
            timestamp_us: Int64Builder::new(),
        }
    }

    fn append(
        &mut self,
        trace_id: &str,
        observation_id: Option<&str>,
        timestamp: Option<Timestamp>,
        event: &Event,
    ) {
        self.trace_id.append_value(trace_id);
        self.observation_id.append_option(observation_id);
        self.timestamp_us
            .append_value(timestamp.unwrap_or(event.timestamp).as_micros());
    }

    fn finish(&mut self) -> [ArrayRef; 3] {
        [
            Arc::new(self.trace_id.finish()),
            Arc::new(self.observation_id.finish()),
            Arc::new(self.timestamp_us.finish()),
        ]
    }
}

fn json_text<'a>(value: &'a Option<Json<'_>>) -> Option<&'a str> {
    value.as_ref().map(Json::as_str)
}

struct TraceColumns {
    common: Common,
    timestamp_us: Int64Builder,
    name: StringBuilder,
    user_id: StringBuilder,
    session_id: StringBuilder,
    release: StringBuilder,
    version_tag: StringBuilder,
    environment: StringBuilder,
    tags: ListBuilder<StringBuilder>,
    input: StringBuilder,
    output: StringBuilder,
    meta: Meta,
    experiment_id: StringBuilder,
    dataset_item_id: StringBuilder,
    public: UInt8Builder,
}

impl TraceColumns {
    fn new() -> Self {
        TraceColumns {
            common: Common::new(),
            timestamp_us: Int64Builder::new(),
            name: StringBuilder::new(),
            user_id: StringBuilder::new(),
            session_id: StringBuilder::new(),
            release: StringBuilder::new(),
            version_tag: StringBuilder::new(),
            environment: StringBuilder::new(),
            tags: string_list_builder(),
            input: StringBuilder::new(),
            output: StringBuilder::new(),
            meta: Meta::new(),
            experiment_id: StringBuilder::new(),
            dataset_item_id: StringBuilder::new(),
            public: UInt8Builder::new(),
        }
    }

    fn append(&mut self, project: &RowProject, event: &Event, t: &Trace) {
        self.common.append(project, &t.id, event);
        self.timestamp_us
            .append_value(t.timestamp.unwrap_or(event.timestamp).as_micros());
        self.name.append_option(t.name.as_deref());
        self.user_id.append_option(t.user_id.as_deref());
        self.session_id.append_option(t.session_id.as_deref());
        self.release.append_option(t.release.as_deref());
        self.version_tag.append_option(t.version.as_deref());
        self.environment.append_value(&t.environment);
        append_strings(&mut self.tags, t.tags.iter().map(Text::as_str));
        self.input.append_option(json_text(&t.input));
        self.output.append_option(json_text(&t.output));
        self.meta.append(&t.metadata);
        self.experiment_id.append_option(t.experiment_id.as_deref());
        self.dataset_item_id.append_option(t.dataset_item_id.as_deref());
        self.public.append_value(u8::from(t.public));
    }

    fn finish(mut self) -> Result<RecordBatch, ArrowError> {
        let c = &mut self.common;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(c.project_id.finish()),
            Arc::new(c.id.finish()),
            Arc::new(self.timestamp_us.finish()),
            Arc::new(self.name.finish()),
            Arc::new(self.user_id.finish()),
            Arc::new(self.session_id.finish()),
            Arc::new(self.release.finish()),
            Arc::new(self.version_tag.finish()),
            Arc::new(self.environment.finish()),
            Arc::new(self.tags.finish()),
            Arc::new(self.input.finish()),
            Arc::new(self.output.finish()),
            Arc::new(self.meta.keys.finish()),
            Arc::new(self.meta.values.finish()),
            Arc::new(self.experiment_id.finish()),
            Arc::new(self.dataset_item_id.finish()),
            Arc::new(self.public.finish()),
            Arc::new(c.event_id.finish()),
            Arc::new(c.version.finish()),
            Arc::new(c.project_name.finish()),
        ];
        RecordBatch::try_new(Table::Traces.schema(), columns)
    }
}

/// Cost columns: each part, the total, and where the numbers came from.
struct CostColumns {
    parts: [Decimal128Builder; 5],
    source: StringBuilder,
}

impl CostColumns {
    fn new() -> Self {
        let decimal = || {
            Decimal128Builder::new()
                .with_precision_and_scale(COST_PRECISION, COST_SCALE)
                .unwrap()
        };
        CostColumns {
            parts: [decimal(), decimal(), decimal(), decimal(), decimal()],
            source: StringBuilder::new(),
        }
    }

    fn append(&mut self, cost: Option<&Cost>, source: &str) {
        let values = match cost {
            Some(c) => [
                c.input,
                c.output,
                c.cache_read,
                c.cache_write,
                c.effective_total(),
            ],
            None => [None; 5],
        };
        for (builder, value) in self.parts.iter_mut().zip(values) {
            builder.append_option(value.map(cost_to_decimal));
        }
        self.source.append_value(source);
    }
}

struct ObservationColumns {
    common: Common,
    trace_id: StringBuilder,
    parent_observation_id: StringBuilder,
    kind: StringBuilder,
    name: StringBuilder,
    start_time_us: Int64Builder,
    end_time_us: Int64Builder,
    level: StringBuilder,
    status_message: StringBuilder,
    input: StringBuilder,
    output: StringBuilder,
    meta: Meta,
    model: StringBuilder,
    model_parameters: StringBuilder,
    tokens: [UInt64Builder; 4],
    cost: CostColumns,
    tool_name: StringBuilder,
    tool_call_id: StringBuilder,
    completion_start_time_us: Int64Builder,
    prompt_name: StringBuilder,
    prompt_version: UInt32Builder,
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

impl ObservationColumns {
    fn new() -> Self {
        ObservationColumns {
            common: Common::new(),
            trace_id: StringBuilder::new(),
            parent_observation_id: StringBuilder::new(),
            kind: StringBuilder::new(),
            name: StringBuilder::new(),
            start_time_us: Int64Builder::new(),
            end_time_us: Int64Builder::new(),
            level: StringBuilder::new(),
            status_message: StringBuilder::new(),
            input: StringBuilder::new(),
            output: StringBuilder::new(),
            meta: Meta::new(),
            model: StringBuilder::new(),
            model_parameters: StringBuilder::new(),
            tokens: [
                UInt64Builder::new(),
                UInt64Builder::new(),
                UInt64Builder::new(),
                UInt64Builder::new(),
            ],
            cost: CostColumns::new(),
            tool_name: StringBuilder::new(),
            tool_call_id: StringBuilder::new(),
            completion_start_time_us: Int64Builder::new(),
            prompt_name: StringBuilder::new(),
            prompt_version: UInt32Builder::new(),
        }
    }

    fn append(&mut self, project: &RowProject, event: &Event, o: &Observation, computed: Option<Cost>) {
        self.common.append(project, &o.id, event);
        self.trace_id.append_value(&o.trace_id);
        self.parent_observation_id
            .append_option(o.parent_observation_id.as_deref());
        self.kind.append_value(o.kind.as_str());
        self.name.append_value(&o.name);
        self.start_time_us.append_value(o.start_time.as_micros());
        self.end_time_us
            .append_option(o.end_time.map(Timestamp::as_micros));
        self.level.append_value(o.level.as_str());
        self.status_message.append_option(o.status_message.as_deref());
        self.input.append_option(json_text(&o.input));
        self.output.append_option(json_text(&o.output));
        self.meta.append(&o.metadata);
        self.model.append_option(o.model.as_deref());
        self.model_parameters
            .append_option(json_text(&o.model_parameters));
        let usage = &o.usage;
        let tokens = [
            usage.input_tokens,
            usage.output_tokens,
            usage.cache_read_input_tokens,
            usage.cache_creation_input_tokens,
        ];
        for (builder, value) in self.tokens.iter_mut().zip(tokens) {
            builder.append_value(value);
        }
        let (cost, source) = match (&o.cost, &computed) {
            (Some(sent), _) => (Some(sent), CostSource::Agent),
            (None, Some(priced)) => (Some(priced), CostSource::PriceTable),
            (None, None) => (None, CostSource::None),
        };
        self.cost.append(cost, source.as_str());
        self.tool_name.append_option(o.tool_name.as_deref());
        self.tool_call_id.append_option(o.tool_call_id.as_deref());
        self.completion_start_time_us
            .append_option(o.completion_start_time.map(Timestamp::as_micros));
        self.prompt_name.append_option(o.prompt_name.as_deref());
        self.prompt_version.append_option(o.prompt_version);
    }

    fn finish(mut self) -> Result<RecordBatch, ArrowError> {
        let c = &mut self.common;
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(c.project_id.finish()),
            Arc::new(c.id.finish()),
            Arc::new(self.trace_id.finish()),
            Arc::new(self.parent_observation_id.finish()),
            Arc::new(self.kind.finish()),
            Arc::new(self.name.finish()),
            Arc::new(self.start_time_us.finish()),
            Arc::new(self.end_time_us.finish()),
            Arc::new(self.level.finish()),
            Arc::new(self.status_message.finish()),
            Arc::new(self.input.finish()),
            Arc::new(self.output.finish()),
            Arc::new(self.meta.keys.finish()),
            Arc::new(self.meta.values.finish()),
            Arc::new(self.model.finish()),
            Arc::new(self.model_parameters.finish()),
        ];
        columns.extend(self.tokens.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
        columns.extend(
            self.cost
                .parts
                .iter_mut()
                .map(|b| Arc::new(b.finish()) as ArrayRef),
        );
        columns.push(Arc::new(self.cost.source.finish()));
        columns.push(Arc::new(self.tool_name.finish()));
        columns.push(Arc::new(self.tool_call_id.finish()));
        columns.push(Arc::new(self.completion_start_time_us.finish()));
        columns.push(Arc::new(self.prompt_name.finish()));
        columns.push(Arc::new(self.prompt_version.finish()));
        columns.push(Arc::new(c.event_id.finish()));
        columns.push(Arc::new(c.version.finish()));
        columns.push(Arc::new(c.project_name.finish()));
        RecordBatch::try_new(Table::Observations.schema(), columns)
    }
}

struct ScoreColumns {
    common: Common,
    link: TraceLink,
    name: StringBuilder,
    data_type: StringBuilder,
    value: Float64Builder,
    string_value: StringBuilder,
    source: StringBuilder,
    evaluator_id: StringBuilder,
    comment: StringBuilder,
    meta: Meta,
}

impl ScoreColumns {
    fn new() -> Self {
        ScoreColumns {
            common: Common::new(),
            link: TraceLink::new(),
            name: StringBuilder::new(),
            data_type: StringBuilder::new(),
            value: Float64Builder::new(),
            string_value: StringBuilder::new(),
            source: StringBuilder::new(),
            evaluator_id: StringBuilder::new(),
            comment: StringBuilder::new(),
            meta: Meta::new(),
        }
    }

    fn append(&mut self, project: &RowProject, event: &Event, s: &Score) {
        self.common.append(project, &s.id, event);
        self.link
            .append(&s.trace_id, s.observation_id.as_deref(), s.timestamp, event);
        self.name.append_value(&s.name);
        self.data_type.append_value(s.effective_data_type().as_str());
        let (value, text) = match &s.value {
            ScoreValue::Numeric(v) => (*v, None),
            ScoreValue::Boolean(b) => (if *b { 1.0 } else { 0.0 }, None),
            ScoreValue::Categorical(c) => (0.0, Some(c.as_str())),
        };
        self.value.append_value(value);
        self.string_value.append_option(text);
        self.source.append_value(s.source.as_str());
        self.evaluator_id.append_option(s.evaluator_id.as_deref());
        self.comment.append_option(s.comment.as_deref());
        self.meta.append(&s.metadata);
    }

    fn finish(mut self) -> Result<RecordBatch, ArrowError> {
        let c = &mut self.common;
        let mut columns: Vec<ArrayRef> = vec![Arc::new(c.project_id.finish()), Arc::new(c.id.finish())];
        columns.extend(self.link.finish());
        columns.extend([
            Arc::new(self.name.finish()) as ArrayRef,
            Arc::new(self.data_type.finish()),
            Arc::new(self.value.finish()),
            Arc::new(self.string_value.finish()),
            Arc::new(self.source.finish()),
            Arc::new(self.evaluator_id.finish()),
            Arc::new(self.comment.finish()),
            Arc::new(self.meta.keys.finish()),
            Arc::new(self.meta.values.finish()),
            Arc::new(c.event_id.finish()),
            Arc::new(c.version.finish()),
            Arc::new(c.project_name.finish()),
        ]);
        RecordBatch::try_new(Table::Scores.schema(), columns)
    }
}

struct FileOperationColumns {
    common: Common,
    link: TraceLink,
    operation: StringBuilder,
    path: StringBuilder,
    new_path: StringBuilder,
    language: StringBuilder,
    lines_added: UInt32Builder,
    lines_removed: UInt32Builder,
    bytes: UInt64Builder,
    diff: StringBuilder,
}

impl FileOperationColumns {
    fn new() -> Self {
        FileOperationColumns {
            common: Common::new(),
            link: TraceLink::new(),
            operation: StringBuilder::new(),
            path: StringBuilder::new(),
            new_path: StringBuilder::new(),
            language: StringBuilder::new(),
            lines_added: UInt32Builder::new(),
            lines_removed: UInt32Builder::new(),
            bytes: UInt64Builder::new(),
            diff: StringBuilder::new(),
        }
    }

    fn append(&mut self, project: &RowProject, event: &Event, f: &FileOperation) {
        self.common.append(project, &f.id, event);
        self.link
            .append(&f.trace_id, f.observation_id.as_deref(), f.timestamp, event);
        self.operation.append_value(f.operation.as_str());
        self.path.append_value(&f.path);
        self.new_path.append_option(f.new_path.as_deref());
        self.language.append_option(f.language.as_deref());
        self.lines_added.append_value(f.lines_added);
        self.lines_removed.append_value(f.lines_removed);
        self.bytes.append_option(f.bytes);
        self.diff.append_option(f.diff.as_deref());
    }

    fn finish(mut self) -> Result<RecordBatch, ArrowError> {
        let c = &mut self.common;
        let mut columns: Vec<ArrayRef> = vec![Arc::new(c.project_id.finish()), Arc::new(c.id.finish())];
        columns.extend(self.link.finish());
        columns.extend([
            Arc::new(self.operation.finish()) as ArrayRef,
            Arc::new(self.path.finish()),
            Arc::new(self.new_path.finish()),
            Arc::new(self.language.finish()),
            Arc::new(self.lines_added.finish()),
            Arc::new(self.lines_removed.finish()),
            Arc::new(self.bytes.finish()),
            Arc::new(self.diff.finish()),
            Arc::new(c.event_id.finish()),
            Arc::new(c.version.finish()),
            Arc::new(c.project_name.finish()),
        ]);
        RecordBatch::try_new(Table::FileOperations.schema(), columns)
    }
}

struct TerminalCommandColumns {
    common: Common,
    link: TraceLink,
    command: StringBuilder,
    cwd: StringBuilder,
    exit_code: Int32Builder,
    duration_ms: UInt64Builder,
    stdout: StringBuilder,
    stderr: StringBuilder,
}

impl TerminalCommandColumns {
    fn new() -> Self {
        TerminalCommandColumns {
            common: Common::new(),
            link: TraceLink::new(),
            command: StringBuilder::new(),
            cwd: StringBuilder::new(),
            exit_code: Int32Builder::new(),
            duration_ms: UInt64Builder::new(),
            stdout: StringBuilder::new(),
            stderr: StringBuilder::new(),
        }
    }

    fn append(&mut self, project: &RowProject, event: &Event, t: &TerminalCommand) {
        self.common.append(project, &t.id, event);
        self.link
            .append(&t.trace_id, t.observation_id.as_deref(), t.timestamp, event);
        self.command.append_value(&t.command);
        self.cwd.append_option(t.cwd.as_deref());
        self.exit_code.append_option(t.exit_code);
        self.duration_ms.append_option(t.duration_ms);
        self.stdout.append_option(t.stdout.as_deref());
        self.stderr.append_option(t.stderr.as_deref());
    }

    fn finish(mut self) -> Result<RecordBatch, ArrowError> {
        let c = &mut self.common;
        let mut columns: Vec<ArrayRef> = vec![Arc::new(c.project_id.finish()), Arc::new(c.id.finish())];
        columns.extend(self.link.finish());
        columns.extend([
            Arc::new(self.command.finish()) as ArrayRef,
            Arc::new(self.cwd.finish()),
            Arc::new(self.exit_code.finish()),
            Arc::new(self.duration_ms.finish()),
            Arc::new(self.stdout.finish()),
            Arc::new(self.stderr.finish()),
            Arc::new(c.event_id.finish()),
            Arc::new(c.version.finish()),
            Arc::new(c.project_name.finish()),
        ]);
        RecordBatch::try_new(Table::TerminalCommands.schema(), columns)
    }
}

struct GitLinkColumns {
    common: Common,
    link: TraceLink,
    repository: StringBuilder,
    branch: StringBuilder,
    commit_sha: StringBuilder,
    message: StringBuilder,
    author: StringBuilder,
    counters: [UInt32Builder; 3],
    pull_request_url: StringBuilder,
}

impl GitLinkColumns {
    fn new() -> Self {
        GitLinkColumns {
            common: Common::new(),
            link: TraceLink::new(),
            repository: StringBuilder::new(),
            branch: StringBuilder::new(),
            commit_sha: StringBuilder::new(),
            message: StringBuilder::new(),
            author: StringBuilder::new(),
            counters: [UInt32Builder::new(), UInt32Builder::new(), UInt32Builder::new()],
            pull_request_url: StringBuilder::new(),
        }
    }

    fn append(&mut self, project: &RowProject, event: &Event, g: &GitLink) {
        self.common.append(project, &g.id, event);
        self.link
            .append(&g.trace_id, g.observation_id.as_deref(), g.timestamp, event);
        self.repository.append_value(&g.repository);
        self.branch.append_option(g.branch.as_deref());
        self.commit_sha.append_value(&g.commit_sha);
        self.message.append_option(g.message.as_deref());
        self.author.append_option(g.author.as_deref());
        for (builder, value) in self
            .counters
            .iter_mut()
            .zip([g.files_changed, g.insertions, g.deletions])
        {
            builder.append_value(value);
        }
        self.pull_request_url.append_option(g.pull_request_url.as_deref());
    }

    fn finish(mut self) -> Result<RecordBatch, ArrowError> {
        let c = &mut self.common;
        let mut columns: Vec<ArrayRef> = vec![Arc::new(c.project_id.finish()), Arc::new(c.id.finish())];
        columns.extend(self.link.finish());
        columns.extend([
            Arc::new(self.repository.finish()) as ArrayRef,
            Arc::new(self.branch.finish()),
            Arc::new(self.commit_sha.finish()),
            Arc::new(self.message.finish()),
            Arc::new(self.author.finish()),
        ]);
        columns.extend(self.counters.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
        columns.extend([
            Arc::new(self.pull_request_url.finish()) as ArrayRef,
            Arc::new(c.event_id.finish()),
            Arc::new(c.version.finish()),
            Arc::new(c.project_name.finish()),
        ]);
        RecordBatch::try_new(Table::GitLinks.schema(), columns)
    }
}

struct MetricColumns {
    common: Common,
    name: StringBuilder,
    kind: StringBuilder,
    unit: StringBuilder,
    temporality: StringBuilder,
    time_us: Int64Builder,
    start_time_us: Int64Builder,
    value: Float64Builder,
    count: UInt64Builder,
    sum: Float64Builder,
    min: Float64Builder,
    max: Float64Builder,
    bucket_counts: ListBuilder<UInt64Builder>,
    explicit_bounds: ListBuilder<Float64Builder>,
    attributes: Meta,
    resource: Meta,
}

impl MetricColumns {
    fn new() -> Self {
        let item = |data_type| Arc::new(Field::new("item", data_type, false));
        MetricColumns {
            common: Common::new(),
            name: StringBuilder::new(),
            kind: StringBuilder::new(),
            unit: StringBuilder::new(),
            temporality: StringBuilder::new(),
            time_us: Int64Builder::new(),
            start_time_us: Int64Builder::new(),
            value: Float64Builder::new(),
            count: UInt64Builder::new(),
            sum: Float64Builder::new(),
            min: Float64Builder::new(),
            max: Float64Builder::new(),
            bucket_counts: ListBuilder::new(UInt64Builder::new()).with_field(item(DataType::UInt64)),
            explicit_bounds: ListBuilder::new(Float64Builder::new()).with_field(item(DataType::Float64)),
            attributes: Meta::new(),
            resource: Meta::new(),
        }
    }

    fn append(&mut self, project: &RowProject, event: &Event, m: &Metric) {
        self.common.append(project, &m.id, event);
        self.name.append_value(&m.name);
        self.kind.append_value(m.kind.as_str());
        self.unit.append_option(m.unit.as_deref());
        self.temporality.append_option(m.temporality.as_deref());
        self.time_us.append_value(m.time.as_micros());
        self.start_time_us
            .append_option(m.start_time.map(Timestamp::as_micros));
        self.value.append_option(m.value);
        self.count.append_option(m.count);
        self.sum.append_option(m.sum);
        self.min.append_option(m.min);
        self.max.append_option(m.max);
        self.bucket_counts.values().append_slice(&m.bucket_counts);
        self.bucket_counts.append(true);
        self.explicit_bounds.values().append_slice(&m.explicit_bounds);
        self.explicit_bounds.append(true);
        self.attributes.append(&m.attributes);
        self.resource.append(&m.resource);
    }

    fn finish(mut self) -> Result<RecordBatch, ArrowError> {
        let c = &mut self.common;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(c.project_id.finish()),
            Arc::new(c.id.finish()),
            Arc::new(self.name.finish()),
            Arc::new(self.kind.finish()),
            Arc::new(self.unit.finish()),
            Arc::new(self.temporality.finish()),
            Arc::new(self.time_us.finish()),
            Arc::new(self.start_time_us.finish()),
            Arc::new(self.value.finish()),
            Arc::new(self.count.finish()),
            Arc::new(self.sum.finish()),
            Arc::new(self.min.finish()),
            Arc::new(self.max.finish()),
            Arc::new(self.bucket_counts.finish()),
            Arc::new(self.explicit_bounds.finish()),
            Arc::new(self.attributes.keys.finish()),
            Arc::new(self.attributes.values.finish()),
            Arc::new(self.resource.keys.finish()),
            Arc::new(self.resource.values.finish()),
            Arc::new(c.event_id.finish()),
            Arc::new(c.version.finish()),
            Arc::new(c.project_name.finish()),
        ];
        RecordBatch::try_new(Table::Metrics.schema(), columns)
    }
}

/// A rejected event, as stored in `dead_letters`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub event_index: u32,
    pub event_id: Option<String>,
    pub event_type: Option<String>,
    pub reason: String,
    pub raw: String,
}

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
    dead_letters: Vec<DeadLetter>,
}

impl TableBatches {
    pub fn new(project_id: &str, project_name: &str) -> Self {
        TableBatches {
            project: RowProject {
                id: project_id.to_owned(),
                name: project_name.to_owned(),
            },
            traces: None,
            observations: None,
            scores: None,
            file_operations: None,
            terminal_commands: None,
            git_links: None,
            metrics: None,
            dead_letters: Vec::new(),
        }
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
        Ok(())
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
    let mut project = StringBuilder::new();
    let mut batch = StringBuilder::new();
    let mut index = UInt32Builder::new();
    let mut event_id = StringBuilder::new();
    let mut event_type = StringBuilder::new();
    let mut received = Int64Builder::new();
    let mut reason = StringBuilder::new();
    let mut raw = StringBuilder::new();
    for row in rows {
        project.append_value(project_id);
        batch.append_value(batch_id);
        index.append_value(row.event_index);
        event_id.append_option(row.event_id.as_deref());
        event_type.append_option(row.event_type.as_deref());
        received.append_value(received_at.as_micros());
        reason.append_value(&row.reason);
        raw.append_value(&row.raw);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(project.finish()),
        Arc::new(batch.finish()),
        Arc::new(index.finish()),
        Arc::new(event_id.finish()),
        Arc::new(event_type.finish()),
        Arc::new(received.finish()),
        Arc::new(reason.finish()),
        Arc::new(raw.finish()),
    ];
    RecordBatch::try_new(Table::DeadLetters.schema(), columns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use agenttrace_schemas::event::TimeWindow;
    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{
        Decimal128Type, Float64Type, Int32Type, Int64Type, UInt8Type, UInt32Type, UInt64Type,
    };

    fn event(json: &str) -> Event<'_> {
        Event::parse_valid(json, &TimeWindow::unbounded()).unwrap()
    }

    #[test]
    fn builds_one_batch_per_table_with_matching_schema() {
        let mut batches = TableBatches::new("p1", "demo");
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
        r#"{"id":"event_id","type":"git_link","timestamp":"2026-01-01T00:00:00Z","body":{"id":"id","trace_id":"trace_id","observation_id":"observation_id","timestamp":"2026-01-01T00:00:01Z","repository":"repository","branch":"branch","commit_sha":"c0ffee1","message":"message","author":"author","files_changed":1,"insertions":2,"deletions":3,"pull_request_url":"pull_request_url"}}"#,
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
            Table::ExperimentRollups => &[],
        }
    }

    /// Each column, read back by name, holds the field it is named for. Every value is distinct
    /// from the others of its type, so a column filled from the wrong field, or two columns of
    /// one type swapped (`stdout`/`stderr`, `lines_added`/`lines_removed`), fails here.
    #[test]
    fn every_column_is_filled_from_its_own_field() {
        let mut batches = TableBatches::new("project_id", "project_name");
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
