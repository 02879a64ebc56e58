-- What the edge redacts for a project before anything is buffered (agenttrace-redact's Rules as
-- JSON). A project without a row gets the default: every secret detector, no personal data.
CREATE TABLE redaction_rules (
    project_id uuid PRIMARY KEY REFERENCES projects(id) ON DELETE CASCADE,
    rules      jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by uuid REFERENCES users(id) ON DELETE SET NULL
);
