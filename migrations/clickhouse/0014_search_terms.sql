-- How ingest writes the search index: one row per searchable row (a trace, an observation, a
-- score's comment, a terminal command, a file operation) with the unique terms of all its fields
-- as an array, each term with the number of its field (1-based, in `fields`), into a table that
-- stores nothing; the view below turns each row into one posting per term in `search_postings`,
-- within the same insert (a failed posting fails the insert, so an acknowledged batch is
-- indexed). A row with more than 255 fields comes as several rows.
--
-- Why not postings straight from the ETL: a posting is ~120 bytes of which ~110 repeat its
-- project, trace and observation ids, about twelve postings per observation. Sent once per row
-- instead, the ids cross the wire (and are appended, encoded and compressed by the ETL) once per
-- observation rather than twelve times.
--
-- Safe while an older ETL serves: it keeps inserting postings into `search_postings` directly,
-- which this leaves as it was.

CREATE TABLE IF NOT EXISTS search_terms (
    project_id String,
    timestamp_us Int64,
    trace_id String,
    observation_id String,
    source String,
    id String,
    fields Array(String),
    terms Array(String),
    term_fields Array(UInt8)
) ENGINE = Null;

CREATE MATERIALIZED VIEW IF NOT EXISTS search_terms_postings TO search_postings AS
SELECT project_id, term, timestamp_us, trace_id, observation_id, source, id, fields[field_number] AS field
FROM search_terms
ARRAY JOIN terms AS term, term_fields AS field_number;
