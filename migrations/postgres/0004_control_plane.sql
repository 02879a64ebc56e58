-- The control plane: who may do what, and everything an API key or a signed-in user manages.

-- Users sign in with an email and a password (argon2id, PHC string); a session is a random
-- token of which only the SHA-256 is stored.
ALTER TABLE users ADD COLUMN password_hash text;
ALTER TABLE users ADD COLUMN disabled_at timestamptz;

CREATE TABLE user_sessions (
    token_hash  bytea PRIMARY KEY CHECK (length(token_hash) = 32),
    user_id     uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz
);
CREATE INDEX user_sessions_user_idx ON user_sessions (user_id);

-- Project keys gain `read` (the read API and control-plane reads) and `manage` (control-plane
-- writes: prompts, datasets, experiments, evaluators, prices).
ALTER TABLE api_keys DROP CONSTRAINT api_keys_scopes_check;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_scopes_check
    CHECK (scopes <@ ARRAY['ingest', 'export', 'query', 'read', 'manage', 'admin']::text[]);

-- Organization keys, for automation: they act as an organization admin.
CREATE TABLE organization_keys (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id  uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    public_key       text NOT NULL UNIQUE CHECK (public_key LIKE 'pk-org-%'),
    secret_hash      bytea NOT NULL CHECK (length(secret_hash) = 32),
    secret_hint      text NOT NULL,
    note             text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    revoked_at       timestamptz
);

-- Prompts: text or chat, with immutable versions. Labels live in their own table so that the
-- database itself keeps a label on at most one version of a prompt (the primary key); moving
-- a label is one UPDATE. `latest` is not stored: it is always the newest version.
ALTER TABLE prompts ADD COLUMN type text NOT NULL DEFAULT 'text' CHECK (type IN ('text', 'chat'));
ALTER TABLE prompts ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();
ALTER TABLE prompt_versions ADD COLUMN content jsonb;
ALTER TABLE prompt_versions ADD COLUMN tags text[] NOT NULL DEFAULT '{}';
ALTER TABLE prompt_versions ADD COLUMN commit_message text;
ALTER TABLE prompt_versions DROP COLUMN labels;
UPDATE prompt_versions SET content = to_jsonb(template) WHERE content IS NULL;
ALTER TABLE prompt_versions ALTER COLUMN content SET NOT NULL;
ALTER TABLE prompt_versions DROP COLUMN template;

CREATE TABLE prompt_labels (
    prompt_id   uuid NOT NULL REFERENCES prompts(id) ON DELETE CASCADE,
    label       text NOT NULL CHECK (label ~ '^[a-z0-9_.-]{1,36}$' AND label <> 'latest'),
    version_id  uuid NOT NULL REFERENCES prompt_versions(id) ON DELETE CASCADE,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (prompt_id, label)
);
CREATE INDEX prompt_labels_version_idx ON prompt_labels (version_id);

-- Datasets validate their items against optional JSON Schemas.
ALTER TABLE datasets ADD COLUMN metadata jsonb NOT NULL DEFAULT '{}';
ALTER TABLE datasets ADD COLUMN input_schema jsonb;
ALTER TABLE datasets ADD COLUMN expected_output_schema jsonb;
ALTER TABLE datasets ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();

-- Dataset items are upserted by an id the client may choose (Langfuse: any string up to 255
-- characters, unique per project), archived rather than deleted when runs refer to them.
ALTER TABLE dataset_items ALTER COLUMN id DROP DEFAULT;
ALTER TABLE dataset_items ALTER COLUMN id TYPE text USING id::text;
ALTER TABLE dataset_items ALTER COLUMN id SET DEFAULT gen_random_uuid()::text;
ALTER TABLE dataset_items ADD CONSTRAINT dataset_items_id_length CHECK (length(id) BETWEEN 1 AND 255);
ALTER TABLE dataset_items ADD COLUMN status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'archived'));
ALTER TABLE dataset_items ADD COLUMN source_trace_id text;
ALTER TABLE dataset_items ADD COLUMN source_observation_id text;
ALTER TABLE dataset_items ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();

-- Experiments are dataset runs; run items link a trace (or one observation) to the item it ran.
ALTER TABLE experiments ADD COLUMN description text;
-- The id a client gave the run (the Langfuse SDK derives one from project, dataset and run
-- name and sends it as `langfuse.experiment.id`); traces carry it as their experiment id.
ALTER TABLE experiments ADD COLUMN external_id text;
CREATE UNIQUE INDEX experiments_external_id_idx ON experiments (project_id, external_id);
ALTER TABLE experiments ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();

CREATE TABLE experiment_items (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    experiment_id    uuid NOT NULL REFERENCES experiments(id) ON DELETE CASCADE,
    dataset_item_id  text NOT NULL REFERENCES dataset_items(id) ON DELETE CASCADE,
    trace_id         text NOT NULL,
    observation_id   text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (experiment_id, dataset_item_id, trace_id)
);
CREATE INDEX experiment_items_trace_idx ON experiment_items (trace_id);

-- Model prices may be overridden per project, from a date on.
ALTER TABLE model_prices ADD COLUMN project_id uuid REFERENCES projects(id) ON DELETE CASCADE;
ALTER TABLE model_prices DROP CONSTRAINT model_prices_model_pattern_valid_from_key;
CREATE UNIQUE INDEX model_prices_scope_pattern_from_idx
    ON model_prices (coalesce(project_id, '00000000-0000-0000-0000-000000000000'), model_pattern, valid_from);
