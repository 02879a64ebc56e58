-- Transactional data: who owns what, how they authenticate, and what the pipeline needs to run.
-- PostgreSQL is the source of truth for project and user ids; ClickHouse copies them.

CREATE TABLE organizations (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email       text NOT NULL UNIQUE CHECK (position('@' in email) > 1),
    name        text,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE organization_members (
    organization_id uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    user_id         uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role            text NOT NULL DEFAULT 'member' CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
    PRIMARY KEY (organization_id, user_id)
);

CREATE TABLE projects (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL REFERENCES organizations(id) ON DELETE RESTRICT,
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    -- NULL keeps data forever; otherwise the retention job deletes older rows.
    retention_days  integer CHECK (retention_days > 0),
    -- An archived project accepts no more events.
    archived_at     timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organization_id, name)
);

-- The secret half of a key is never stored: only its SHA-256. Secrets are 256-bit random
-- values, so a fast hash is enough (no dictionary to guess from) and lets the ETL verify a
-- key per request without a slow KDF.
CREATE TABLE api_keys (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    project_id    uuid NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    public_key    text NOT NULL UNIQUE CHECK (public_key LIKE 'pk-at-%'),
    secret_hash   bytea NOT NULL CHECK (length(secret_hash) = 32),
    -- First characters of the secret, so a user can tell keys apart in listings.
    secret_hint   text NOT NULL,
    scopes        text[] NOT NULL DEFAULT ARRAY['ingest']
                  CHECK (scopes <@ ARRAY['ingest', 'export', 'query', 'admin']::text[]),
    note          text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz
);
CREATE INDEX api_keys_project_idx ON api_keys (project_id);

CREATE TABLE prompts (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    project_id  uuid NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (project_id, name)
);

CREATE TABLE prompt_versions (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    prompt_id   uuid NOT NULL REFERENCES prompts(id) ON DELETE CASCADE,
    version     integer NOT NULL CHECK (version > 0),
    template    text NOT NULL,
    config      jsonb NOT NULL DEFAULT '{}',
    labels      text[] NOT NULL DEFAULT '{}',
    created_by  uuid REFERENCES users(id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (prompt_id, version)
);

CREATE TABLE evaluators (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    project_id  uuid NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    kind        text NOT NULL CHECK (kind IN (
                    'regex', 'contains', 'not_contains', 'valid_json', 'json_schema',
                    'latency_threshold', 'cost_threshold', 'token_threshold',
                    'tool_call_failure', 'exact_match', 'fuzzy_match')),
    -- Kind-specific settings (pattern, field, threshold, schema, ...), validated by the job.
    config      jsonb NOT NULL DEFAULT '{}',
    -- cron expression; NULL runs with the evaluation job's own schedule.
    schedule    text,
    active      boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (project_id, name)
);

CREATE TABLE datasets (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    project_id  uuid NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (project_id, name)
);

CREATE TABLE dataset_items (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    dataset_id       uuid NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
    input            jsonb NOT NULL,
    expected_output  jsonb,
    metadata         jsonb NOT NULL DEFAULT '{}',
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dataset_items_dataset_idx ON dataset_items (dataset_id);

CREATE TABLE experiments (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    project_id  uuid NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    dataset_id  uuid NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    metadata    jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (project_id, name)
);

-- USD per million tokens, per usage key. A model name matches the first row (by priority,
-- then newest valid_from not in the future) whose pattern matches it (POSIX regex, anchored).
CREATE TABLE model_prices (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    model_pattern         text NOT NULL,
    provider              text NOT NULL,
    input_per_mtok        numeric(18, 9) NOT NULL CHECK (input_per_mtok >= 0),
    output_per_mtok       numeric(18, 9) NOT NULL CHECK (output_per_mtok >= 0),
    cache_read_per_mtok   numeric(18, 9) NOT NULL DEFAULT 0 CHECK (cache_read_per_mtok >= 0),
    cache_write_per_mtok  numeric(18, 9) NOT NULL DEFAULT 0 CHECK (cache_write_per_mtok >= 0),
    priority              integer NOT NULL DEFAULT 0,
    valid_from            timestamptz NOT NULL DEFAULT '1970-01-01T00:00:00Z',
    UNIQUE (model_pattern, valid_from)
);

CREATE TABLE job_watermarks (
    job         text PRIMARY KEY,
    -- Microseconds since the epoch of the newest row the job has fully processed.
    watermark   bigint NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE job_runs (
    id                bigserial PRIMARY KEY,
    job               text NOT NULL,
    started_at        timestamptz NOT NULL DEFAULT now(),
    finished_at       timestamptz,
    status            text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'succeeded', 'failed')),
    rows_in           bigint NOT NULL DEFAULT 0,
    rows_out          bigint NOT NULL DEFAULT 0,
    watermark_before  bigint,
    watermark_after   bigint,
    error             text,
    CHECK ((status = 'running') = (finished_at IS NULL))
);
CREATE INDEX job_runs_job_started_idx ON job_runs (job, started_at DESC);
