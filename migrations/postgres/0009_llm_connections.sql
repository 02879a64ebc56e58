-- Model connections: where LLM judges send their calls, per project. The provider API key is
-- sealed with AES-256-GCM (etl/src/control/sealing.rs) under AGENTTRACE_ENCRYPTION_KEY and
-- bound to (project, provider): never stored in clear, never returned, shown as a hint.
CREATE TABLE llm_connections (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    project_id          uuid NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    -- The connection's name in the project (Langfuse's `provider`, the upsert key).
    provider            text NOT NULL CHECK (length(provider) BETWEEN 1 AND 100),
    adapter             text NOT NULL CHECK (adapter IN ('openai', 'azure', 'anthropic')),
    base_url            text CHECK (length(base_url) <= 2000),
    secret_sealed       bytea NOT NULL,
    secret_hint         text NOT NULL,
    custom_models       text[] NOT NULL DEFAULT '{}',
    with_default_models boolean NOT NULL DEFAULT true,
    -- Extra request headers: names in clear, the whole {name: value} object sealed.
    extra_header_keys   text[] NOT NULL DEFAULT '{}',
    extra_headers_sealed bytea,
    -- Adapter settings (Azure's apiVersion) and judge defaults: model, temperature,
    -- max_tokens, concurrency (calls at once), timeout_secs.
    config              jsonb NOT NULL DEFAULT '{}',
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (project_id, provider)
);

-- A judge's kind beside the rules.
ALTER TABLE evaluators DROP CONSTRAINT evaluators_kind_check;
ALTER TABLE evaluators ADD CONSTRAINT evaluators_kind_check CHECK (kind IN (
    'regex', 'contains', 'not_contains', 'valid_json', 'json_schema',
    'latency_threshold', 'cost_threshold', 'token_threshold',
    'tool_call_failure', 'exact_match', 'fuzzy_match', 'llm_judge'));
-- Why an evaluator stopped by itself (its connection deleted or refusing the key, its daily
-- spend cap reached), shown beside it; cleared when it runs again.
ALTER TABLE evaluators ADD COLUMN blocked_reason text;
