-- A judge asked to judge what arrived before it existed: the targets of a time range, added to
-- its ledger by the judge job (so a backfill costs what a run costs, is judged once like
-- everything else, and stays within the judge's budget).
CREATE TABLE judge_backfills (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    evaluator_id uuid NOT NULL REFERENCES evaluators(id) ON DELETE CASCADE,
    project_id   uuid NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    from_us      bigint NOT NULL,
    to_us        bigint NOT NULL CHECK (to_us > from_us),
    status       text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'failed')),
    -- Targets looked at and added to the ledger; a note when the range held more than a
    -- backfill takes.
    seen         bigint NOT NULL DEFAULT 0,
    queued       bigint NOT NULL DEFAULT 0,
    note         text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz
);
CREATE INDEX judge_backfills_pending ON judge_backfills (created_at) WHERE status = 'pending';
CREATE INDEX judge_backfills_evaluator ON judge_backfills (evaluator_id, created_at DESC);
