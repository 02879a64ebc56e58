-- Per-trace summaries (observation count, cost, tokens, latency, worst level), kept by the
-- `trace_summaries` job from deduplicated rows, so that trace lists filtered by level, cost or
-- latency read a narrow table instead of summarizing every trace of a window. Rows are keyed
-- like `traces_by_time` (a trace keeps its time between versions) and replaced by newer
-- summaries of the same trace.
--
-- `trace_summary_runs` records each run's second: every trace whose observations or row
-- arrived before it is summarized as of then. Readers summarize the traces that arrived since
-- (in `observations_by_ingest` and `traces_by_ingest`) themselves, so answers stay exact.

CREATE TABLE IF NOT EXISTS trace_summaries (
    project_id String,
    timestamp_us Int64,
    trace_id String,
    observation_count UInt64,
    total_cost Float64,
    input_tokens UInt64,
    output_tokens UInt64,
    latency_ms Float64,
    worst_level UInt8,
    summarized_second UInt32
) ENGINE = ReplacingMergeTree(summarized_second)
PARTITION BY toYYYYMM(toDateTime(intDiv(timestamp_us, 1000000)))
ORDER BY (project_id, timestamp_us, trace_id);

CREATE TABLE IF NOT EXISTS trace_summary_runs (
    summarized_second UInt32
) ENGINE = MergeTree()
PARTITION BY toYYYYMM(toDateTime(summarized_second))
ORDER BY summarized_second;
