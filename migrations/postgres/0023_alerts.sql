-- Alerts: rules that watch a metric, the channels they notify, each group's state, the history
-- of what fired and resolved, and every delivery with its attempts.

-- Where notifications go. The URL (a Slack webhook's is a credential) and the signing secret
-- are sealed with AGENTTRACE_ENCRYPTION_KEY; the secret is shown once, when made.
CREATE TABLE alert_channels (
    id uuid PRIMARY KEY,
    project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name text NOT NULL,
    kind text NOT NULL CHECK (kind IN ('webhook', 'slack')),
    url_sealed bytea NOT NULL,
    url_hint text NOT NULL,
    secret_sealed bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (project_id, name)
);

CREATE TABLE alert_rules (
    id uuid PRIMARY KEY,
    project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name text NOT NULL,
    metric text NOT NULL,
    filters jsonb NOT NULL DEFAULT '{}',
    comparison text NOT NULL CHECK (comparison IN ('>', '>=', '<', '<=')),
    threshold double precision NOT NULL,
    window_minutes integer NOT NULL CHECK (window_minutes BETWEEN 1 AND 43200),
    group_by text,
    channel_ids uuid[] NOT NULL DEFAULT '{}',
    enabled boolean NOT NULL DEFAULT true,
    silenced_until timestamptz,
    last_evaluated_at timestamptz,
    last_error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (project_id, name)
);

-- Each group's current state ('' when the rule has no group-by).
CREATE TABLE alert_states (
    rule_id uuid NOT NULL REFERENCES alert_rules (id) ON DELETE CASCADE,
    group_key text NOT NULL,
    firing boolean NOT NULL,
    value double precision,
    changed_at timestamptz NOT NULL,
    PRIMARY KEY (rule_id, group_key)
);

-- What happened: a group began firing, resolved, or the rule could not be evaluated.
CREATE TABLE alert_events (
    id uuid PRIMARY KEY,
    rule_id uuid NOT NULL REFERENCES alert_rules (id) ON DELETE CASCADE,
    project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    group_key text NOT NULL,
    kind text NOT NULL CHECK (kind IN ('firing', 'resolved', 'error')),
    value double precision,
    threshold double precision NOT NULL,
    message text NOT NULL,
    silenced boolean NOT NULL DEFAULT false,
    at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX alert_events_by_rule ON alert_events (rule_id, at DESC);
CREATE INDEX alert_events_by_project ON alert_events (project_id, at DESC);
-- The job keeps 90 days of history: what is older is found by time.
CREATE INDEX alert_events_by_time ON alert_events (at);

-- One notification of one event to one channel, retried with backoff until acknowledged.
CREATE TABLE alert_deliveries (
    id uuid PRIMARY KEY,
    event_id uuid NOT NULL REFERENCES alert_events (id) ON DELETE CASCADE,
    channel_id uuid NOT NULL REFERENCES alert_channels (id) ON DELETE CASCADE,
    project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_status integer,
    last_error text,
    delivered_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (event_id, channel_id)
);
CREATE INDEX alert_deliveries_due ON alert_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX alert_deliveries_by_project ON alert_deliveries (project_id, created_at DESC);
