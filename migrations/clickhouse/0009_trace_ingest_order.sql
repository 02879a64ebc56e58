-- Traces in the order ClickHouse received them, beside `observations_by_ingest`: the judges of
-- whole traces, sessions and experiment runs find what changed since their last run here, so a
-- trace row updated without new observations (an SDK setting a trace's output at the end) is
-- noticed, and a run reads what is new, not what is stored. One narrow row per stored version;
-- the second is the insert's (`traces` has no ingest-time column).

CREATE TABLE IF NOT EXISTS traces_by_ingest (
    ingested_second UInt32,
    project_id String,
    id String,
    session_id Nullable(String),
    timestamp_us Int64,
    version UInt64
) ENGINE = MergeTree()
PARTITION BY toYYYYMM(toDateTime(ingested_second))
ORDER BY (ingested_second, project_id, id);

CREATE MATERIALIZED VIEW IF NOT EXISTS traces_by_ingest_mv TO traces_by_ingest AS
SELECT toUInt32(now()) AS ingested_second, project_id, id, session_id, timestamp_us, version
FROM traces;
