-- The models coding agents use as of December 2026, which 0002's seed (late 2025) lacks or
-- prices wrongly (`claude-opus-4(-1)?([-@].*)?` also matched Opus 4.6 to 4.8 at Opus 4's price).
-- List prices in USD per million tokens, standard tier; `cache_read_per_mtok` is the cached-input
-- (cache hit) price, `cache_write_per_mtok` the 5-minute cache write where the provider charges
-- one. Prices that depend on the prompt's length (GPT-5.4 and 5.5 over 272K tokens, Haiku 5.5
-- over 100K) are the default tier's: such long prompts are under-priced.
--
-- Sources (read 2026-12-06):
-- - OpenAI, developers.openai.com/api/docs/models/gpt-5.1: GPT-5.1 $1.25 / $0.125 cached / $10.
--   GPT-5.1-Codex and -Codex-Max are priced as GPT-5.1, and GPT-5-Codex-Mini and
--   GPT-5.1-Codex-Mini as GPT-5 mini ($0.25 / $0.025 / $2).
-- - GitHub Docs' Copilot model price table (github/docs data/tables/copilot/models-and-pricing.yml,
--   OpenAI's and Anthropic's list prices): GPT-5.2, GPT-5.2-Codex, GPT-5.3-Codex $1.75 / $0.175 /
--   $14; GPT-5.4 $2.50 / $0.25 / $15; GPT-5.4 mini $0.75 / $0.075 / $4.50; GPT-5.4 nano $0.20 /
--   $0.02 / $1.25; GPT-5.5 $5 / $0.50 / $30; GPT-5.6 Sol $5 / $0.50 / $30, cache write $6.25;
--   GPT-5.6 Terra $2 / $0.20 / $12, $2.50; GPT-5.6 Luna $0.20 / $0.02 / $1.20, $0.25.
-- - Anthropic, platform.claude.com/docs/en/about-claude/pricing and the models' overview pages
--   (input / 5m cache write / cache hit / output): Opus 4.5, 4.6, 4.7, 4.8 and Opus 5 $5 / $6.25 /
--   $0.50 / $25; Sonnet 4.6 $3 / $3.75 / $0.30 / $15; Sonnet 5 and 5.5 $2 / $2.50 / $0.20 / $10;
--   Opus 5.5 $4 / $20 with cache hits at 0.05× ($0.20) and writes at 1.25× ($5); Haiku 5.5 from
--   $0.10 / $0.125 / $0.01 / $0.50 (prompts up to 100K tokens). Sonnet 5.5's cache hits went
--   from $0.20 to $0.10 on 2026-10-07 (Anthropic's pricing page, as price trackers recorded it):
--   a second row from that date.
-- Opus 4 / 4.1, Sonnet 4 / 4.5 and Haiku 4.5 keep 0002's rows, which are current.
--
-- Anthropic's patterns take a dated snapshot (`-20260101`), Vertex's `@20260101`, Bedrock's
-- `-v1:0` and Claude Code's `[1m]`, but no further version digits, so that `claude-opus-5` does
-- not price `claude-opus-5-5`. Priority 10 puts them before 0002's broader Claude patterns.
INSERT INTO model_prices (model_pattern, provider, input_per_mtok, output_per_mtok, cache_read_per_mtok, cache_write_per_mtok, priority, valid_from) VALUES
    ('(openai/)?gpt-5\.1(-chat-latest|-codex|-codex-max)?(-\d{4}-\d{2}-\d{2})?',  'openai', 1.25, 10.00, 0.125, 0,    0, '1970-01-01T00:00:00Z'),
    ('(openai/)?gpt-5(\.1)?-codex-mini(-\d{4}-\d{2}-\d{2})?',                      'openai', 0.25,  2.00, 0.025, 0,    0, '1970-01-01T00:00:00Z'),
    ('(openai/)?gpt-5\.2(-chat-latest|-codex)?(-\d{4}-\d{2}-\d{2})?',               'openai', 1.75, 14.00, 0.175, 0,    0, '1970-01-01T00:00:00Z'),
    ('(openai/)?gpt-5\.3-codex(-\d{4}-\d{2}-\d{2})?',                               'openai', 1.75, 14.00, 0.175, 0,    0, '1970-01-01T00:00:00Z'),
    ('(openai/)?gpt-5\.4(-\d{4}-\d{2}-\d{2})?',                                     'openai', 2.50, 15.00, 0.25,  0,    0, '1970-01-01T00:00:00Z'),
    ('(openai/)?gpt-5\.4-mini(-\d{4}-\d{2}-\d{2})?',                                'openai', 0.75,  4.50, 0.075, 0,    0, '1970-01-01T00:00:00Z'),
    ('(openai/)?gpt-5\.4-nano(-\d{4}-\d{2}-\d{2})?',                                'openai', 0.20,  1.25, 0.02,  0,    0, '1970-01-01T00:00:00Z'),
    ('(openai/)?gpt-5\.5(-\d{4}-\d{2}-\d{2})?',                                     'openai', 5.00, 30.00, 0.50,  0,    0, '1970-01-01T00:00:00Z'),
    ('(openai/)?gpt-5\.6-sol(-\d{4}-\d{2}-\d{2})?',                                 'openai', 5.00, 30.00, 0.50,  6.25, 0, '1970-01-01T00:00:00Z'),
    ('(openai/)?gpt-5\.6-terra(-\d{4}-\d{2}-\d{2})?',                               'openai', 2.00, 12.00, 0.20,  2.50, 0, '1970-01-01T00:00:00Z'),
    ('(openai/)?gpt-5\.6-luna(-\d{4}-\d{2}-\d{2})?',                                'openai', 0.20,  1.20, 0.02,  0.25, 0, '1970-01-01T00:00:00Z'),
    ('(anthropic[./])?claude-opus-4-[5-8](-\d{8})?(@\d{8})?(-v\d+(:\d+)?)?(\[1m\])?', 'anthropic', 5.00, 25.00, 0.50, 6.25,  10, '1970-01-01T00:00:00Z'),
    ('(anthropic[./])?claude-opus-5(-\d{8})?(@\d{8})?(-v\d+(:\d+)?)?(\[1m\])?',       'anthropic', 5.00, 25.00, 0.50, 6.25,  10, '1970-01-01T00:00:00Z'),
    ('(anthropic[./])?claude-opus-5-5(-\d{8})?(@\d{8})?(-v\d+(:\d+)?)?(\[1m\])?',     'anthropic', 4.00, 20.00, 0.20, 5.00,  10, '1970-01-01T00:00:00Z'),
    ('(anthropic[./])?claude-sonnet-4-6(-\d{8})?(@\d{8})?(-v\d+(:\d+)?)?(\[1m\])?',   'anthropic', 3.00, 15.00, 0.30, 3.75,  10, '1970-01-01T00:00:00Z'),
    ('(anthropic[./])?claude-sonnet-5(-\d{8})?(@\d{8})?(-v\d+(:\d+)?)?(\[1m\])?',     'anthropic', 2.00, 10.00, 0.20, 2.50,  10, '1970-01-01T00:00:00Z'),
    ('(anthropic[./])?claude-sonnet-5-5(-\d{8})?(@\d{8})?(-v\d+(:\d+)?)?(\[1m\])?',   'anthropic', 2.00, 10.00, 0.20, 2.50,  10, '1970-01-01T00:00:00Z'),
    ('(anthropic[./])?claude-sonnet-5-5(-\d{8})?(@\d{8})?(-v\d+(:\d+)?)?(\[1m\])?',   'anthropic', 2.00, 10.00, 0.10, 2.50,  10, '2026-10-07T00:00:00Z'),
    ('(anthropic[./])?claude-haiku-5-5(-\d{8})?(@\d{8})?(-v\d+(:\d+)?)?(\[1m\])?',    'anthropic', 0.10,  0.50, 0.01, 0.125, 10, '1970-01-01T00:00:00Z');
