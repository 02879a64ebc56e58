-- 1. Which API key sent each observation (its public key; '' for rows written before this
--    migration and for those AgentTrace writes itself, such as the judges' calls), so that
--    metrics and alerts can group by key. `observations_by_time` carries it too: its view is
--    re-created with the column, the new view first, so that no insert in between is missed (a
--    row both views copy collapses: same key, same version).
-- 2. The hourly rollup's latency percentiles become t-digest states: the reservoir states
--    (up to 8,192 values each) made merging 30 days of them 400 ms of a 420 ms read; a t-digest
--    is a few hundred bytes and merges in microseconds. The raw path uses the same estimator,
--    so the rollup and a full scan agree. The rollup tables are re-created with the key column
--    and every stored hour is touched, so the `metric_rollups` job rebuilds them (reads use
--    the raw rows meanwhile and stay exact).
-- 3. `scores_by_time`, the scores in time order (narrow columns), so that a scores list reads
--    a time window's scores instead of merging every score of the project.

ALTER TABLE observations ADD COLUMN api_key String DEFAULT '';
ALTER TABLE observations_by_time ADD COLUMN api_key String DEFAULT '';

CREATE MATERIALIZED VIEW IF NOT EXISTS observations_by_time_keyed_mv TO observations_by_time AS
SELECT project_id, id, trace_id, parent_observation_id, type, name, start_time_us, end_time_us,
       completion_start_time_us, level, model, tool_name, input_tokens, output_tokens,
       cache_read_tokens, cache_write_tokens, total_cost, version, api_key
FROM observations;

DROP TABLE IF EXISTS observations_by_time_mv;

DROP TABLE IF EXISTS observation_hourly;
DROP TABLE IF EXISTS observation_hours;

CREATE TABLE IF NOT EXISTS observation_hours (
    project_id String,
    hour_us Int64,
    rolled_second UInt32
) ENGINE = ReplacingMergeTree(rolled_second)
PARTITION BY toYYYYMM(toDateTime(intDiv(hour_us, 1000000)))
ORDER BY (project_id, hour_us);

CREATE TABLE IF NOT EXISTS observation_hourly (
    project_id String,
    hour_us Int64,
    rolled_second UInt32,
    type String,
    name String,
    model String,
    tool String,
    level String,
    api_key String,
    judge UInt8,
    count UInt64,
    timed UInt64,
    errors UInt64,
    total_cost Decimal128(12),
    input_tokens UInt64,
    output_tokens UInt64,
    cache_read_tokens UInt64,
    cache_write_tokens UInt64,
    latency AggregateFunction(quantilesTDigestIf(0.5, 0.95, 0.99), Float64, UInt8)
) ENGINE = MergeTree()
PARTITION BY toYYYYMM(toDateTime(intDiv(hour_us, 1000000)))
ORDER BY (project_id, hour_us, rolled_second, type, model, name, tool, level, api_key);

INSERT INTO observation_hour_touches
SELECT project_id, intDiv(start_time_us, 3600000000) * 3600000000 AS hour_us, toUInt32(now())
FROM observations_by_time GROUP BY project_id, hour_us;
INSERT INTO observation_touch_log
SELECT toUInt32(now()), project_id, intDiv(start_time_us, 3600000000) * 3600000000 AS hour_us
FROM observations_by_time GROUP BY project_id, hour_us;

CREATE TABLE IF NOT EXISTS scores_by_time (
    project_id String,
    id String,
    trace_id String,
    timestamp_us Int64,
    name String,
    data_type String,
    value Float64,
    source String,
    evaluator_id Nullable(String),
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(toDateTime(intDiv(timestamp_us, 1000000)))
ORDER BY (project_id, timestamp_us, id);

CREATE MATERIALIZED VIEW IF NOT EXISTS scores_by_time_mv TO scores_by_time AS
SELECT project_id, id, trace_id, timestamp_us, name, data_type, value, source, evaluator_id, version
FROM scores;

-- The scores stored before the view (a score the view also copied collapses with its copy).
INSERT INTO scores_by_time
SELECT project_id, id, trace_id, timestamp_us, name, data_type, value, source, evaluator_id, version
FROM scores;
