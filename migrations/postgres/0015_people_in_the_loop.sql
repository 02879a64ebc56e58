-- People in the loop: comments on what agents did, annotation queues that put traces,
-- observations and sessions in front of reviewers, and traces shared by link.

-- A comment on a trace, an observation, a session or a prompt (Langfuse's objects), by a
-- member of the project's organization; edited and deleted by its author only.
CREATE TABLE comments (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    project_id     uuid NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    object_type    text NOT NULL CHECK (object_type IN ('TRACE', 'OBSERVATION', 'SESSION', 'PROMPT')),
    object_id      text NOT NULL,
    content        text NOT NULL CHECK (char_length(content) BETWEEN 1 AND 5000),
    author_user_id uuid REFERENCES users(id) ON DELETE SET NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX comments_object ON comments (project_id, object_type, object_id, created_at);

-- A queue of things to review, with the score configs a reviewer gives, and how many people
-- review each item before it is complete.
CREATE TABLE annotation_queues (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    project_id          uuid NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name                text NOT NULL,
    description         text,
    score_config_ids    uuid[] NOT NULL DEFAULT '{}',
    annotators_per_item integer NOT NULL DEFAULT 1 CHECK (annotators_per_item BETWEEN 1 AND 10),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (project_id, name)
);

-- An item: one object to review. While someone works on it, it is theirs until `locked_until`
-- (the lock expires, so an abandoned item goes back to the queue).
CREATE TABLE annotation_queue_items (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    queue_id     uuid NOT NULL REFERENCES annotation_queues(id) ON DELETE CASCADE,
    project_id   uuid NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    object_id    text NOT NULL,
    object_type  text NOT NULL CHECK (object_type IN ('TRACE', 'OBSERVATION', 'SESSION')),
    -- An observation's trace, so that it can be shown and scored.
    trace_id     text,
    status       text NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING', 'COMPLETED')),
    locked_by    uuid REFERENCES users(id) ON DELETE SET NULL,
    locked_until timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz,
    UNIQUE (queue_id, object_type, object_id)
);
CREATE INDEX annotation_queue_items_next ON annotation_queue_items (queue_id, status, created_at, id);

-- What each person did with an item: completed it (with scores) or skipped it.
CREATE TABLE annotation_reviews (
    item_id    uuid NOT NULL REFERENCES annotation_queue_items(id) ON DELETE CASCADE,
    user_id    uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    outcome    text NOT NULL CHECK (outcome IN ('completed', 'skipped')),
    at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (item_id, user_id)
);

-- The people a queue is assigned to (Langfuse's assignments).
CREATE TABLE annotation_assignments (
    queue_id   uuid NOT NULL REFERENCES annotation_queues(id) ON DELETE CASCADE,
    user_id    uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (queue_id, user_id)
);

-- Whether a trace is public (anyone may read it, and only it, at its share link), as set by
-- a member; without a row it is private. The trace's own `public` flag (Langfuse's, from the
-- SDK) opens nothing: an ingest-only key could set it on any trace id.
CREATE TABLE trace_shares (
    project_id  uuid NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    trace_id    text NOT NULL,
    public      boolean NOT NULL,
    changed_by  uuid REFERENCES users(id) ON DELETE SET NULL,
    changed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, trace_id)
);
