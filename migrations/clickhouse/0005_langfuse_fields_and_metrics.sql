-- What Langfuse and OpenTelemetry clients send beyond the first event model: a generation's
-- first-token time and managed prompt, a trace's public flag (UInt8: 18.16 has no Bool), and
-- OTLP metric data points.
ALTER TABLE observations ADD COLUMN completion_start_time_us Nullable(Int64);
ALTER TABLE observations ADD COLUMN prompt_name Nullable(String);
ALTER TABLE observations ADD COLUMN prompt_version Nullable(UInt32);
ALTER TABLE traces ADD COLUMN public UInt8 DEFAULT 0;

-- One row per data point: sums and gauges carry `value`; histograms `count`, `sum`, `min`,
-- `max` and their buckets. The id is derived from the point's content by the edge, so a
-- replayed export replaces rather than duplicates.
CREATE TABLE IF NOT EXISTS metrics (
    project_id String,
    id String,
    name String,
    kind String,
    unit Nullable(String),
    temporality Nullable(String),
    time_us Int64,
    time DateTime MATERIALIZED toDateTime(intDiv(time_us, 1000000)),
    start_time_us Nullable(Int64),
    value Nullable(Float64),
    count Nullable(UInt64),
    sum Nullable(Float64),
    min Nullable(Float64),
    max Nullable(Float64),
    bucket_counts Array(UInt64),
    explicit_bounds Array(Float64),
    attribute_keys Array(String),
    attribute_values Array(String),
    resource_keys Array(String),
    resource_values Array(String),
    event_id String,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(time)
ORDER BY (project_id, name, id);
