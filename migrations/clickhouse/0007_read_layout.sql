-- Storage laid out for the reads (docs/storage-layout.md has the measurements behind it).
--
-- 1. A trace's rows sit together: observations, scores, file operations, terminal commands
--    and git links are ordered by (project_id, trace_id, id), so reading one trace is a
--    primary-key range instead of a scan of the project. Replays still collapse: every
--    version of a row keeps its trace (the ETL's merge never moves a stored row to another
--    trace), so the sorting key still identifies the row. These tables and `traces` (still
--    keyed by id) index every 1,024 rows instead of 8,192: a trace is a few rows, and reading
--    a whole 8,192-row granule of every column (input and output included) of each part cost
--    more than the lookup itself (146 ms with FINAL for one trace of a 2M-observation project
--    at 8,192; 11 ms at 1,024).
-- 2. Time-ordered indexes, filled by materialized views at insert time: `traces_by_time`
--    (the trace list), `observations_by_time` (observation lists and metrics, the narrow
--    columns only) and `session_traces` (a session's traces). Their keys hold only what never
--    changes between versions (a stored row keeps its start; see the merge), except
--    `session_traces`, whose session can change: readers confirm it against `traces`. They
--    have no MATERIALIZED columns (18.16 cannot fill those through a view); they partition
--    by the month of their microsecond time directly.
--
-- The reordering copies rows into a new table. The old one is renamed away first, so events
-- loaded while the copy runs go to the new table and none are lost; the daily-costs view is
-- re-attached after the copy so copied rows are not counted twice.

DROP TABLE IF EXISTS daily_costs_mv;

CREATE TABLE traces_reordered AS traces
ENGINE = ReplacingMergeTree(version) PARTITION BY toYYYYMM(timestamp) ORDER BY (project_id, id)
SETTINGS index_granularity = 1024;
CREATE TABLE observations_reordered AS observations
ENGINE = ReplacingMergeTree(version) PARTITION BY toYYYYMM(start_time) ORDER BY (project_id, trace_id, id)
SETTINGS index_granularity = 1024;
CREATE TABLE scores_reordered AS scores
ENGINE = ReplacingMergeTree(version) PARTITION BY toYYYYMM(timestamp) ORDER BY (project_id, trace_id, id)
SETTINGS index_granularity = 1024;
CREATE TABLE file_operations_reordered AS file_operations
ENGINE = ReplacingMergeTree(version) PARTITION BY toYYYYMM(timestamp) ORDER BY (project_id, trace_id, id)
SETTINGS index_granularity = 1024;
CREATE TABLE terminal_commands_reordered AS terminal_commands
ENGINE = ReplacingMergeTree(version) PARTITION BY toYYYYMM(timestamp) ORDER BY (project_id, trace_id, id)
SETTINGS index_granularity = 1024;
CREATE TABLE git_links_reordered AS git_links
ENGINE = ReplacingMergeTree(version) PARTITION BY toYYYYMM(timestamp) ORDER BY (project_id, trace_id, id)
SETTINGS index_granularity = 1024;

RENAME TABLE
    traces TO traces_by_id,
    traces_reordered TO traces,
    observations TO observations_by_id,
    observations_reordered TO observations,
    scores TO scores_by_id,
    scores_reordered TO scores,
    file_operations TO file_operations_by_id,
    file_operations_reordered TO file_operations,
    terminal_commands TO terminal_commands_by_id,
    terminal_commands_reordered TO terminal_commands,
    git_links TO git_links_by_id,
    git_links_reordered TO git_links;

CREATE TABLE traces_by_time (
    project_id String,
    id String,
    timestamp_us Int64,
    name Nullable(String),
    user_id Nullable(String),
    session_id Nullable(String),
    release Nullable(String),
    environment String,
    tags Array(String),
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(toDateTime(intDiv(timestamp_us, 1000000)))
ORDER BY (project_id, timestamp_us, id);

CREATE MATERIALIZED VIEW traces_by_time_mv TO traces_by_time AS
SELECT project_id, id, timestamp_us, name, user_id, session_id, release, environment, tags, version
FROM traces;

CREATE TABLE session_traces (
    project_id String,
    session_id String,
    trace_id String,
    timestamp_us Int64,
    user_id Nullable(String),
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(toDateTime(intDiv(timestamp_us, 1000000)))
ORDER BY (project_id, session_id, trace_id);

CREATE MATERIALIZED VIEW session_traces_mv TO session_traces AS
SELECT project_id, assumeNotNull(session_id) AS session_id, id AS trace_id, timestamp_us, user_id, version
FROM traces
WHERE isNotNull(session_id);

CREATE TABLE observations_by_time (
    project_id String,
    id String,
    trace_id String,
    parent_observation_id Nullable(String),
    type String,
    name String,
    start_time_us Int64,
    end_time_us Nullable(Int64),
    completion_start_time_us Nullable(Int64),
    level String,
    model Nullable(String),
    tool_name Nullable(String),
    input_tokens UInt64,
    output_tokens UInt64,
    cache_read_tokens UInt64,
    cache_write_tokens UInt64,
    total_cost Nullable(Decimal64(12)),
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(toDateTime(intDiv(start_time_us, 1000000)))
ORDER BY (project_id, type, start_time_us, id);

CREATE MATERIALIZED VIEW observations_by_time_mv TO observations_by_time AS
SELECT project_id, id, trace_id, parent_observation_id, type, name, start_time_us, end_time_us,
       completion_start_time_us, level, model, tool_name, input_tokens, output_tokens,
       cache_read_tokens, cache_write_tokens, total_cost, version
FROM observations;

INSERT INTO traces SELECT * FROM traces_by_id;
INSERT INTO observations SELECT * FROM observations_by_id;
INSERT INTO scores SELECT * FROM scores_by_id;
INSERT INTO file_operations SELECT * FROM file_operations_by_id;
INSERT INTO terminal_commands SELECT * FROM terminal_commands_by_id;
INSERT INTO git_links SELECT * FROM git_links_by_id;

CREATE MATERIALIZED VIEW daily_costs_mv TO daily_costs AS
SELECT
    project_id,
    toDate(toDateTime(intDiv(start_time_us, 1000000))) AS day,
    ifNull(model, '') AS model,
    count() AS generations,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(cache_read_tokens) AS cache_read_tokens,
    sum(cache_write_tokens) AS cache_write_tokens,
    sum(ifNull(total_cost, toDecimal64(0, 12))) AS total_cost
FROM observations
WHERE type = 'generation'
GROUP BY project_id, day, model;

DROP TABLE traces_by_id;
DROP TABLE observations_by_id;
DROP TABLE scores_by_id;
DROP TABLE file_operations_by_id;
DROP TABLE terminal_commands_by_id;
DROP TABLE git_links_by_id;
