-- Experiment rollups: one row per experiment and score name, written by the rollup job and
-- exportable like the event tables. A re-run replaces a row (same id, newer version). The table
-- is small and unpartitioned so that replacement works whenever the job runs (FINAL does not
-- merge across partitions).
CREATE TABLE IF NOT EXISTS experiment_rollups (
    project_id String,
    -- '<experiment_id>/<score_name>'
    id String,
    experiment_id String,
    dataset_id String,
    score_name String,
    computed_at_us Int64,
    items UInt64,
    scores UInt64,
    mean Nullable(Float64),
    median Nullable(Float64),
    p95 Nullable(Float64),
    pass_rate Nullable(Float64),
    total_cost Nullable(Decimal64(12)),
    mean_cost Nullable(Float64),
    latency_p50_ms Nullable(Float64),
    latency_p95_ms Nullable(Float64),
    input_tokens UInt64,
    output_tokens UInt64,
    -- Paired comparison against another experiment on the same dataset (bootstrap 95% CI).
    baseline_experiment_id Nullable(String),
    paired_items UInt64,
    paired_mean_difference Nullable(Float64),
    paired_ci_low Nullable(Float64),
    paired_ci_high Nullable(Float64),
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (project_id, id);
