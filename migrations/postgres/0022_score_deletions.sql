-- A score deleted by id (Langfuse's score delete) is a deletion job too, and its id joins the
-- ledger: a score sent again after its deletion is refused, as a deleted trace's events are.
ALTER TABLE deletion_jobs DROP CONSTRAINT deletion_jobs_target_check;
ALTER TABLE deletion_jobs ADD CONSTRAINT deletion_jobs_target_check
    CHECK (target IN ('traces', 'session', 'user', 'project', 'scores'));
ALTER TABLE deletion_tombstones RENAME COLUMN trace_id TO id;
ALTER TABLE deletion_tombstones ADD COLUMN kind text NOT NULL DEFAULT 'trace' CHECK (kind IN ('trace', 'score'));
ALTER TABLE deletion_tombstones DROP CONSTRAINT deletion_tombstones_pkey;
ALTER TABLE deletion_tombstones ADD PRIMARY KEY (project_id, kind, id);
