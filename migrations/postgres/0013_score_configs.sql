-- Score configs: what a score of a name means in a project (numeric with bounds, boolean, one of
-- named categories, or free text), so that people annotating and scores sent with a config id
-- agree on it. Langfuse's shape: archived rather than deleted (scores keep referring to them).
CREATE TABLE score_configs (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    project_id  uuid NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name        text NOT NULL,
    data_type   text NOT NULL CHECK (data_type IN ('NUMERIC', 'BOOLEAN', 'CATEGORICAL', 'TEXT')),
    min_value   double precision,
    max_value   double precision,
    -- CATEGORICAL: [{value, label}]; BOOLEAN: fixed True = 1, False = 0.
    categories  jsonb,
    description text,
    archived    boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (min_value IS NULL OR max_value IS NULL OR min_value <= max_value)
);
CREATE INDEX score_configs_project ON score_configs (project_id, created_at DESC);
