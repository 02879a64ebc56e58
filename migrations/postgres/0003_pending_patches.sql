-- Partial updates of observations (Langfuse's `span-update` and friends) that arrived before
-- the observation could be stored: it lacks a trace, a name or a start time until its create
-- arrives. They wait here, durably, and are merged and loaded when it does.
CREATE TABLE pending_patches (
    project_id   uuid NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    entity_id    text NOT NULL,
    event_id     text NOT NULL,
    -- The envelope timestamp, microseconds: orders patches of one entity.
    version      bigint NOT NULL,
    patch        jsonb NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, entity_id, event_id)
);
CREATE INDEX pending_patches_received_at_idx ON pending_patches (received_at);
