-- A deletion that fails attempt after attempt (about half an hour of retries) stops as `failed`
-- with its last error, rather than retrying for ever and holding one of its project's slots;
-- asking again starts a new job.
ALTER TABLE deletion_jobs DROP CONSTRAINT deletion_jobs_status_check;
ALTER TABLE deletion_jobs ADD CONSTRAINT deletion_jobs_status_check
    CHECK (status IN ('pending', 'running', 'succeeded', 'failed'));
DROP INDEX deletion_jobs_due;
CREATE INDEX deletion_jobs_due ON deletion_jobs (next_attempt_at) WHERE status IN ('pending', 'running');
