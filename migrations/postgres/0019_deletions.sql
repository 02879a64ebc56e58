-- Deletions: each request to delete a project's traces, a session, everything of a user id or
-- the whole project's events is a job, run by the ETL until a read of every table finds
-- nothing, and resumed after a crash from the steps it recorded.
CREATE TABLE deletion_jobs (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    project_id      uuid NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    target          text NOT NULL CHECK (target IN ('traces', 'session', 'user', 'project')),
    -- The trace ids (`traces`), the session id or the user id (one element), none (`project`).
    target_ids      text[] NOT NULL,
    -- Whether dataset items made from the deleted traces go too.
    dataset_items   boolean NOT NULL DEFAULT false,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'running', 'succeeded')),
    -- Rows found, per table, when its step ran; `remaining`: what the final read found.
    counts          jsonb NOT NULL DEFAULT '{}',
    remaining       jsonb,
    -- The steps finished (a table, `postgres`, `tombstones`), skipped when the job resumes.
    steps_done      text[] NOT NULL DEFAULT '{}',
    attempts        integer NOT NULL DEFAULT 0,
    -- The last attempt's failure, while the job retries.
    error           text,
    lease_until     timestamptz,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    requested_by    text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    finished_at     timestamptz
);
CREATE INDEX deletion_jobs_due ON deletion_jobs (next_attempt_at) WHERE status <> 'succeeded';
CREATE INDEX deletion_jobs_project ON deletion_jobs (project_id, created_at DESC);

-- Traces deleted: the ETL refuses their events when they arrive again (an agent retrying, an
-- edge replaying its buffer), so that nothing deleted comes back.
CREATE TABLE deletion_tombstones (
    project_id  uuid NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    trace_id    text NOT NULL,
    job_id      uuid NOT NULL,
    deleted_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, trace_id)
);
