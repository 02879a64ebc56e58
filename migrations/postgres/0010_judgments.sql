-- The LLM judges' ledger: one row per (evaluator, target, target version), so a crash, a re-run
-- or a second scheduler never pays for the same judgment twice. A row is claimed with a lease
-- (`calling`), keeps the answer the moment it arrives (`answered`: a crash before the score is
-- written re-writes it without calling again), and ends `done` or `failed` with its reason.
CREATE TABLE judgments (
    evaluator_id    uuid NOT NULL REFERENCES evaluators(id) ON DELETE CASCADE,
    target_kind     text NOT NULL CHECK (target_kind IN ('observation', 'trace', 'session', 'run_item')),
    target_id       text NOT NULL,
    target_version  bigint NOT NULL,
    project_id      uuid NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    trace_id        text NOT NULL,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'calling', 'answered', 'done', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    lease_until     timestamptz,
    called_at       timestamptz,
    error           text,
    prompt          text,
    answer          jsonb,
    model           text,
    input_tokens    bigint,
    output_tokens   bigint,
    cost_usd        double precision,
    latency_ms      bigint,
    judge_trace_id  text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    PRIMARY KEY (evaluator_id, target_kind, target_id, target_version)
);
-- What is due, oldest first; what an evaluator spent today and called in the last minute.
CREATE INDEX judgments_due ON judgments (next_attempt_at) WHERE status IN ('pending', 'calling', 'answered');
CREATE INDEX judgments_calls ON judgments (evaluator_id, called_at);

-- An evaluator paused until a time (its daily spend cap reached): the job clears the pause,
-- and its reason in blocked_reason, once the time has passed.
ALTER TABLE evaluators ADD COLUMN paused_until timestamptz;
