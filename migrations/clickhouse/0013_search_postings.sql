-- Full-text search: an inverted index the ETL fills at load, in the same acknowledged insert as
-- the rows it indexes (18.16 has no skipping indexes, and its functions cannot tokenize the way
-- search needs: CJK bigrams, identifiers split and kept whole). One row per term of each field
-- of each searchable row (a trace, an observation, a score's comment, a terminal command, a
-- file operation). The key starts with the term, then time: one term's postings over a time
-- window are one range of the index, read newest first window by window.
--
-- Postings are candidates, never answers: a replaced text's old terms stay until their
-- partition is dropped, so every candidate is checked against the row's current text.
-- Deduplication collapses replays (identical rows); no version is needed.
--
-- Size: at 20M observations the ids were 80% of a posting (random hex compresses little), so a
-- trace's or an observation's own postings leave `id` empty (it is the trace or observation
-- id), and no DateTime is stored beside the time (the partition is computed from it).

CREATE TABLE IF NOT EXISTS search_postings (
    project_id String,
    term String,
    timestamp_us Int64,
    trace_id String,
    observation_id String,
    source String,
    id String,
    field String
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(toDateTime(intDiv(timestamp_us, 1000000)))
ORDER BY (project_id, term, timestamp_us, trace_id, observation_id, source, id, field)
SETTINGS index_granularity = 1024;
