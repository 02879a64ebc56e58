//! Full-text search over what agents said and did: the tokenizer shared by ingest and queries
//! (`text`), the postings ingest writes beside each row (`index`), the query language
//! (`query`) and the reads that answer it (`read`).

pub mod index;
pub mod query;
pub mod read;
pub mod text;
