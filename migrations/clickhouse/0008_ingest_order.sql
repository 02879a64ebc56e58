-- Observations in the order ClickHouse received them, for the jobs that process what is new
-- (evaluations): `ingested_at` is in no sorting key of `observations`, so finding the rows
-- received after a watermark read the whole table, every chunk of every run (a 15 s scan per
-- 50,000-row chunk at 20M stored observations). This index, filled at insert time, holds one
-- narrow row per stored version, keyed by the second it arrived: a run reads the key range of
-- what arrived since the last one, then those observations by their own key.
--
-- `start_time_us` is kept so that retention deletes from here by the observations' time
-- column; rows are never replaced (each version's arrival is its own entry).

CREATE TABLE IF NOT EXISTS observations_by_ingest (
    ingested_second UInt32,
    project_id String,
    trace_id String,
    id String,
    start_time_us Int64,
    version UInt64
) ENGINE = MergeTree()
PARTITION BY toYYYYMM(toDateTime(ingested_second))
ORDER BY (ingested_second, project_id, trace_id, id);

CREATE MATERIALIZED VIEW IF NOT EXISTS observations_by_ingest_mv TO observations_by_ingest AS
SELECT toUInt32(ingested_at) AS ingested_second, project_id, trace_id, id, start_time_us, version
FROM observations;

-- What was stored before the view: an observation inserted meanwhile is indexed twice, which
-- the reads' `IN` makes one.
INSERT INTO observations_by_ingest
SELECT toUInt32(ingested_at), project_id, trace_id, id, start_time_us, version FROM observations;
