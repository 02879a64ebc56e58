-- Event tables. Must apply on ClickHouse 18.16 and on modern ClickHouse (see DESIGN.md):
-- no DateTime64, Map, JSON, TTL or CODEC. Sub-second time is kept as integer microseconds
-- (`*_us`); the DateTime beside it is derived and used for partitioning only. Key/value data
-- is stored as parallel arrays. JSON payloads (input, output, model parameters) are strings.
--
-- Every event table is a ReplacingMergeTree ordered by (project_id, id): replaying an event
-- never shows twice in queries that read with FINAL. The version is the event's own
-- timestamp (microseconds), so the newest update of an entity wins and a replay is a no-op.

CREATE TABLE IF NOT EXISTS traces (
    project_id String,
    id String,
    timestamp_us Int64,
    timestamp DateTime MATERIALIZED toDateTime(intDiv(timestamp_us, 1000000)),
    name Nullable(String),
    user_id Nullable(String),
    session_id Nullable(String),
    release Nullable(String),
    version_tag Nullable(String),
    environment String,
    tags Array(String),
    input Nullable(String),
    output Nullable(String),
    metadata_keys Array(String),
    metadata_values Array(String),
    experiment_id Nullable(String),
    dataset_item_id Nullable(String),
    event_id String,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(timestamp)
ORDER BY (project_id, id);

CREATE TABLE IF NOT EXISTS observations (
    project_id String,
    id String,
    trace_id String,
    parent_observation_id Nullable(String),
    type String,
    name String,
    start_time_us Int64,
    start_time DateTime MATERIALIZED toDateTime(intDiv(start_time_us, 1000000)),
    end_time_us Nullable(Int64),
    level String,
    status_message Nullable(String),
    input Nullable(String),
    output Nullable(String),
    metadata_keys Array(String),
    metadata_values Array(String),
    model Nullable(String),
    model_parameters Nullable(String),
    input_tokens UInt64,
    output_tokens UInt64,
    cache_read_tokens UInt64,
    cache_write_tokens UInt64,
    input_cost Nullable(Decimal64(12)),
    output_cost Nullable(Decimal64(12)),
    cache_read_cost Nullable(Decimal64(12)),
    cache_write_cost Nullable(Decimal64(12)),
    total_cost Nullable(Decimal64(12)),
    cost_source String,
    tool_name Nullable(String),
    tool_call_id Nullable(String),
    event_id String,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(start_time)
ORDER BY (project_id, id);

CREATE TABLE IF NOT EXISTS scores (
    project_id String,
    id String,
    trace_id String,
    observation_id Nullable(String),
    timestamp_us Int64,
    timestamp DateTime MATERIALIZED toDateTime(intDiv(timestamp_us, 1000000)),
    name String,
    data_type String,
    value Float64,
    string_value Nullable(String),
    source String,
    evaluator_id Nullable(String),
    comment Nullable(String),
    metadata_keys Array(String),
    metadata_values Array(String),
    event_id String,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(timestamp)
ORDER BY (project_id, id);

CREATE TABLE IF NOT EXISTS file_operations (
    project_id String,
    id String,
    trace_id String,
    observation_id Nullable(String),
    timestamp_us Int64,
    timestamp DateTime MATERIALIZED toDateTime(intDiv(timestamp_us, 1000000)),
    operation String,
    path String,
    new_path Nullable(String),
    language Nullable(String),
    lines_added UInt32,
    lines_removed UInt32,
    bytes Nullable(UInt64),
    diff Nullable(String),
    event_id String,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(timestamp)
ORDER BY (project_id, id);

CREATE TABLE IF NOT EXISTS terminal_commands (
    project_id String,
    id String,
    trace_id String,
    observation_id Nullable(String),
    timestamp_us Int64,
    timestamp DateTime MATERIALIZED toDateTime(intDiv(timestamp_us, 1000000)),
    command String,
    cwd Nullable(String),
    exit_code Nullable(Int32),
    duration_ms Nullable(UInt64),
    stdout Nullable(String),
    stderr Nullable(String),
    event_id String,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(timestamp)
ORDER BY (project_id, id);

CREATE TABLE IF NOT EXISTS git_links (
    project_id String,
    id String,
    trace_id String,
    observation_id Nullable(String),
    timestamp_us Int64,
    timestamp DateTime MATERIALIZED toDateTime(intDiv(timestamp_us, 1000000)),
    repository String,
    branch Nullable(String),
    commit_sha String,
    message Nullable(String),
    author Nullable(String),
    files_changed UInt32,
    insertions UInt32,
    deletions UInt32,
    pull_request_url Nullable(String),
    event_id String,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(timestamp)
ORDER BY (project_id, id);

-- Rejected events, kept with their reason and the raw JSON exactly as received.
-- Keyed by (project, batch, position) so a re-delivered batch does not duplicate them.
CREATE TABLE IF NOT EXISTS dead_letters (
    project_id String,
    batch_id String,
    event_index UInt32,
    event_id Nullable(String),
    event_type Nullable(String),
    received_at_us Int64,
    received_at DateTime MATERIALIZED toDateTime(intDiv(received_at_us, 1000000)),
    reason String,
    raw String
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(received_at)
ORDER BY (project_id, batch_id, event_index);
