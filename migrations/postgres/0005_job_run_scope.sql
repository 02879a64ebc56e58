-- Job runs as tenants see them: a run of one project's evaluator belongs to that project, and a
-- platform-wide run (every project's unscheduled evaluators, rollups, retention) keeps what
-- went wrong for each project apart, so no project reads another's evaluator names or errors.
ALTER TABLE job_runs ADD COLUMN project_id uuid REFERENCES projects(id) ON DELETE CASCADE;
CREATE INDEX job_runs_project_started_idx ON job_runs (project_id, started_at DESC);

CREATE TABLE job_run_problems (
    run_id     bigint NOT NULL REFERENCES job_runs(id) ON DELETE CASCADE,
    project_id uuid NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    message    text NOT NULL
);
CREATE INDEX job_run_problems_project_idx ON job_run_problems (project_id, run_id);
