-- Exact hourly rollups of the observation metrics (docs/storage-layout.md, "Rollups").
--
-- A job (`metric_rollups`) aggregates each settled hour of each project from the deduplicated
-- rows (`observations_by_time FINAL`) into `observation_hourly`, and records in
-- `observation_hours` the second its rollup stands for. Every insert into `observations`
-- (a new event, a replay, a partial update, a late arrival, a restore) marks the hours its rows
-- fall in as touched, by a view, with the server's clock. A metrics query reads the rollup
-- for the hours untouched since they were rolled up and the raw rows for the others, so its
-- answer stays the one a full deduplicated scan gives. Deletions and retention, which change
-- rows without inserting, mark the hours they change themselves.

-- The last second each (project, hour) was touched: what readers compare with the rollup.
CREATE TABLE IF NOT EXISTS observation_hour_touches (
    project_id String,
    hour_us Int64,
    touched_second UInt32
) ENGINE = ReplacingMergeTree(touched_second)
PARTITION BY toYYYYMM(toDateTime(intDiv(hour_us, 1000000)))
ORDER BY (project_id, hour_us);

CREATE MATERIALIZED VIEW IF NOT EXISTS observation_hour_touches_mv TO observation_hour_touches AS
SELECT project_id, intDiv(start_time_us, 3600000000) * 3600000000 AS hour_us, max(toUInt32(now())) AS touched_second
FROM observations
GROUP BY project_id, hour_us;

-- The same touches in the order they happened: the job reads what was touched since its last
-- run here, so its cost grows with what is new, not with what is stored.
CREATE TABLE IF NOT EXISTS observation_touch_log (
    touched_second UInt32,
    project_id String,
    hour_us Int64
) ENGINE = MergeTree()
PARTITION BY toYYYYMM(toDateTime(touched_second))
ORDER BY (touched_second, project_id, hour_us);

CREATE MATERIALIZED VIEW IF NOT EXISTS observation_touch_log_mv TO observation_touch_log AS
SELECT max(toUInt32(now())) AS touched_second, project_id, intDiv(start_time_us, 3600000000) * 3600000000 AS hour_us
FROM observations
GROUP BY project_id, hour_us;

-- Which rollup of each hour is current: touches at or after `rolled_second` are not in it.
CREATE TABLE IF NOT EXISTS observation_hours (
    project_id String,
    hour_us Int64,
    rolled_second UInt32
) ENGINE = ReplacingMergeTree(rolled_second)
PARTITION BY toYYYYMM(toDateTime(intDiv(hour_us, 1000000)))
ORDER BY (project_id, hour_us);

-- One row per (hour, type, name, model, tool, level, judge call or not) of a rollup. An hour
-- rolled up again gets rows with a newer `rolled_second`; readers take only the current
-- rollup's rows, so rows of an older one never count (and are never replaced under a reader).
CREATE TABLE IF NOT EXISTS observation_hourly (
    project_id String,
    hour_us Int64,
    rolled_second UInt32,
    type String,
    name String,
    model String,
    tool String,
    level String,
    judge UInt8,
    count UInt64,
    timed UInt64,
    errors UInt64,
    total_cost Decimal128(12),
    input_tokens UInt64,
    output_tokens UInt64,
    cache_read_tokens UInt64,
    cache_write_tokens UInt64,
    latency AggregateFunction(quantilesIf(0.5, 0.95, 0.99), Float64, UInt8)
) ENGINE = MergeTree()
PARTITION BY toYYYYMM(toDateTime(intDiv(hour_us, 1000000)))
ORDER BY (project_id, hour_us, rolled_second, type, model, name, tool, level);

-- Every hour stored so far is touched now, so the first run rolls up what is already there.
INSERT INTO observation_hour_touches
SELECT project_id, intDiv(start_time_us, 3600000000) * 3600000000 AS hour_us, toUInt32(now())
FROM observations_by_time GROUP BY project_id, hour_us;
INSERT INTO observation_touch_log
SELECT toUInt32(now()), project_id, intDiv(start_time_us, 3600000000) * 3600000000 AS hour_us
FROM observations_by_time GROUP BY project_id, hour_us;
