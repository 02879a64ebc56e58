-- How ingest writes the search index: one row per field of a searchable row, with the field's
-- unique terms as an array, into a table that stores nothing; the view below turns each row into
-- one posting per term in `search_postings`, within the same insert (a failed posting fails the
-- insert, so an acknowledged batch is indexed).
--
-- Why not postings straight from the ETL: a posting is ~120 bytes of which ~110 repeat its
-- project, trace and observation ids, about twelve postings per observation. Sent once per field
-- instead, the ids cross the wire (and are appended, encoded and compressed by the ETL) about
-- five times per observation rather than twelve.
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
    field String,
    terms Array(String)
) ENGINE = Null;

CREATE MATERIALIZED VIEW IF NOT EXISTS search_terms_postings TO search_postings AS
SELECT project_id, term, timestamp_us, trace_id, observation_id, source, id, field
FROM search_terms
ARRAY JOIN terms AS term;
