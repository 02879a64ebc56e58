-- Signed batches the ETL has fully loaded. A batch re-sent with the same id (the edge retries
-- until it sees a 2xx) is acknowledged from here without loading it again.
CREATE TABLE accepted_batches (
    batch_id      uuid PRIMARY KEY,
    project_id    uuid NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    edge_id       text NOT NULL,
    events        integer NOT NULL CHECK (events >= 0),
    dead_lettered integer NOT NULL CHECK (dead_lettered >= 0),
    accepted_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX accepted_batches_accepted_at_idx ON accepted_batches (accepted_at);

-- List prices in USD per million tokens (provider price pages, late 2025). `input_per_mtok`
-- applies to uncached input tokens; cache reads and writes have their own prices.
-- Patterns are anchored, case-insensitive regular expressions over the model name; dated
-- snapshots (`-20250514`) and provider prefixes (`anthropic/`) are matched too.
INSERT INTO model_prices (model_pattern, provider, input_per_mtok, output_per_mtok, cache_read_per_mtok, cache_write_per_mtok, priority) VALUES
    ('(anthropic[./])?claude-opus-4-5.*',                 'anthropic',  5.00, 25.00, 0.50,  6.25, 10),
    ('(anthropic[./])?claude-opus-4(-1)?([-@].*)?',        'anthropic', 15.00, 75.00, 1.50, 18.75, 0),
    ('(anthropic[./])?claude-sonnet-4(-5)?([-@].*)?',      'anthropic',  3.00, 15.00, 0.30,  3.75, 0),
    ('(anthropic[./])?claude-haiku-4-5([-@].*)?',          'anthropic',  1.00,  5.00, 0.10,  1.25, 0),
    ('(anthropic[./])?claude-3-7-sonnet([-@].*)?',         'anthropic',  3.00, 15.00, 0.30,  3.75, 0),
    ('(anthropic[./])?claude-3-5-sonnet([-@].*)?',         'anthropic',  3.00, 15.00, 0.30,  3.75, 0),
    ('(anthropic[./])?claude-3-5-haiku([-@].*)?',          'anthropic',  0.80,  4.00, 0.08,  1.00, 0),
    ('(openai/)?gpt-5(-codex)?(-\d{4}-\d{2}-\d{2})?',      'openai',     1.25, 10.00, 0.125, 0, 0),
    ('(openai/)?gpt-5-mini(-\d{4}-\d{2}-\d{2})?',          'openai',     0.25,  2.00, 0.025, 0, 0),
    ('(openai/)?gpt-5-nano(-\d{4}-\d{2}-\d{2})?',          'openai',     0.05,  0.40, 0.005, 0, 0),
    ('(openai/)?gpt-4\.1(-\d{4}-\d{2}-\d{2})?',            'openai',     2.00,  8.00, 0.50,  0, 0),
    ('(openai/)?gpt-4\.1-mini(-\d{4}-\d{2}-\d{2})?',       'openai',     0.40,  1.60, 0.10,  0, 0),
    ('(openai/)?gpt-4\.1-nano(-\d{4}-\d{2}-\d{2})?',       'openai',     0.10,  0.40, 0.025, 0, 0),
    ('(openai/)?gpt-4o(-\d{4}-\d{2}-\d{2})?',              'openai',     2.50, 10.00, 1.25,  0, 0),
    ('(openai/)?gpt-4o-mini(-\d{4}-\d{2}-\d{2})?',         'openai',     0.15,  0.60, 0.075, 0, 0),
    ('(openai/)?o3(-\d{4}-\d{2}-\d{2})?',                  'openai',     2.00,  8.00, 0.50,  0, 0),
    ('(openai/)?o4-mini(-\d{4}-\d{2}-\d{2})?',             'openai',     1.10,  4.40, 0.275, 0, 0),
    ('(google/)?gemini-2\.5-pro(-.*)?',                    'google',     1.25, 10.00, 0.31,  0, 0),
    ('(google/)?gemini-2\.5-flash(-.*)?',                  'google',     0.30,  2.50, 0.075, 0, 0);
