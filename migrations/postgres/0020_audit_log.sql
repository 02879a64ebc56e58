-- The audit log: every control-plane change (and sign-in, and export), who made it, from where,
-- appended by the ETL as it answers, and by the CLI. Readable by organization owners and admins;
-- nothing may change or remove an entry (the trigger refuses, whoever asks).
CREATE TABLE audit_events (
    id              bigserial PRIMARY KEY,
    at              timestamptz NOT NULL DEFAULT now(),
    -- No foreign keys: the trail outlives what it names.
    organization_id uuid,
    project_id      uuid,
    -- `user:<email>`, `key:<public key>`, `organization-key:<id>`, `cli:<os user>`, `anonymous`.
    actor           text NOT NULL,
    actor_user_id   uuid,
    -- `POST /v1/projects/{project}/api-keys`, `cli key create`.
    action          text NOT NULL,
    -- The path's parameters and what the answer named (its id, name, version), never a secret.
    target          jsonb NOT NULL DEFAULT '{}',
    status          smallint NOT NULL,
    -- The peer's address, and X-Forwarded-For as the request carried it.
    address         text,
    forwarded_for   text,
    user_agent      text
);
CREATE INDEX audit_events_organization ON audit_events (organization_id, id DESC);
CREATE INDEX audit_events_user ON audit_events (actor_user_id, id DESC) WHERE organization_id IS NULL;

CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only: % refused', TG_OP;
END $$;
CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();
