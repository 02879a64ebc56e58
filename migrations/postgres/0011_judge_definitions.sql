-- Langfuse's v2 evaluators and evaluation rules (its SDK's `langfuse.api.evaluators` and
-- `langfuse.api.evaluation_rules`). A judge definition says how to score (a prompt, an output
-- definition, a model), versioned; a rule says what to score (filters, sampling) with which
-- definitions. Each (rule, definition) pair runs as one llm_judge evaluator whose config is
-- derived from both and rewritten whenever either changes, so the judge job runs one kind of
-- judge; deleting a rule or a definition deletes the evaluators derived from it.
CREATE TABLE judge_definitions (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    project_id  uuid NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX judge_definitions_newest ON judge_definitions (project_id, created_at DESC, id DESC);

CREATE TABLE judge_definition_versions (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    definition_id     uuid NOT NULL REFERENCES judge_definitions(id) ON DELETE CASCADE,
    version           integer NOT NULL CHECK (version >= 1),
    -- [{role, content}]
    prompt            jsonb NOT NULL,
    -- [{variable, source, jsonPath}], or NULL: no default mapping.
    variable_mapping  jsonb,
    -- {provider, model}, or NULL: the project's first model connection and its model.
    model_config      jsonb,
    output_definition jsonb NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (definition_id, version)
);

CREATE TABLE evaluation_rules (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    project_id uuid NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name       text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    enabled    boolean NOT NULL,
    sampling   double precision NOT NULL DEFAULT 1 CHECK (sampling > 0 AND sampling <= 1),
    -- Langfuse's filter list, kept as given.
    filter     jsonb NOT NULL DEFAULT '[]',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX evaluation_rules_newest ON evaluation_rules (project_id, created_at DESC, id DESC);

-- A rule's assignment of a definition is the evaluator it runs as.
ALTER TABLE evaluators ADD COLUMN rule_id uuid REFERENCES evaluation_rules(id) ON DELETE CASCADE;
ALTER TABLE evaluators ADD COLUMN definition_id uuid REFERENCES judge_definitions(id) ON DELETE CASCADE;
ALTER TABLE evaluators ADD COLUMN rule_position integer;
-- The rule's own mapping for this definition, or NULL: the definition's default.
ALTER TABLE evaluators ADD COLUMN variable_mapping_override jsonb;
ALTER TABLE evaluators ADD COLUMN assigned_at timestamptz;
CREATE UNIQUE INDEX evaluators_rule_definition ON evaluators (rule_id, definition_id) WHERE rule_id IS NOT NULL;

-- A judge's system message, kept with its prompt.
ALTER TABLE judgments ADD COLUMN system_prompt text;
