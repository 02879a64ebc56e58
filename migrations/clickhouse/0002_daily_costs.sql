-- Cost per project, day and model, pre-aggregated at insert time.
-- The view sees every inserted block, replays included (ReplacingMergeTree deduplicates
-- observations only at merge time), so a replayed generation is counted twice here until
-- the daily-costs job reconciles the day against `observations FINAL`.
CREATE TABLE IF NOT EXISTS daily_costs (
    project_id String,
    day Date,
    model String,
    generations UInt64,
    input_tokens UInt64,
    output_tokens UInt64,
    cache_read_tokens UInt64,
    cache_write_tokens UInt64,
    total_cost Decimal128(12)
) ENGINE = SummingMergeTree()
PARTITION BY toYYYYMM(day)
ORDER BY (project_id, day, model);

CREATE MATERIALIZED VIEW IF NOT EXISTS daily_costs_mv TO daily_costs AS
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
