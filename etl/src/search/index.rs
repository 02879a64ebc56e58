//! What the search index holds: which rows are searchable, by which fields, and the unique
//! terms of each field. Ingest builds postings from events with [`event_fields`]; queries check
//! candidates against the stored rows with [`stored_fields`]. Both name the same fields from the
//! same columns, so a posting and the text it is checked against cannot disagree.

use std::borrow::Cow;
use std::collections::HashSet;
use std::hash::BuildHasher;

use agenttrace_schemas::event::{Json, Metadata};
use agenttrace_schemas::{Event, Payload};
use serde_json::Value;

use crate::clickhouse::catalog::Table;
use crate::search::text;

/// How much of one field is indexed. A phrase is still checked against the whole text, but a
/// word only past this point of a longer text is not found: a 10 MB log indexed whole would
/// cost its batch more than every other row of it.
pub const MAX_INDEXED_BYTES: usize = 256 * 1024;
/// Distinct terms indexed per field: 256 KiB of prose holds a few thousand; random CJK text
/// would give ~90K bigrams, each a row.
pub const MAX_TERMS_PER_FIELD: usize = 4096;
/// Longest metadata key whose value is indexed: the key is each posting's field name.
pub const MAX_METADATA_KEY_BYTES: usize = 64;

/// The tables whose rows are searchable, each with the columns its fields come from.
pub const SOURCES: [Table; 5] = [
    Table::Traces,
    Table::Observations,
    Table::Scores,
    Table::TerminalCommands,
    Table::FileOperations,
];

/// The stored columns a source's fields are read from (besides its keys).
pub fn text_columns(source: Table) -> &'static [&'static str] {
    match source {
        Table::Traces => &[
            "name",
            "input",
            "output",
            "tags",
            "metadata_keys",
            "metadata_values",
        ],
        Table::Observations => &[
            "name",
            "input",
            "output",
            "status_message",
            "metadata_keys",
            "metadata_values",
        ],
        Table::Scores => &["comment"],
        Table::TerminalCommands => &["command", "cwd", "stdout", "stderr"],
        Table::FileOperations => &["path", "new_path", "diff"],
        _ => &[],
    }
}

/// The stored columns one field of `source` is read from: a candidate's check reads only the
/// columns of the fields its postings name (a granule of each column read is the check's cost).
pub fn field_columns(source: Table, field: &str) -> &'static [&'static str] {
    let columns = text_columns(source);
    match field {
        "status" => &["status_message"],
        _ if field.starts_with("metadata.") => &["metadata_keys", "metadata_values"],
        _ => columns
            .iter()
            .position(|column| *column == field)
            .map_or(&[], |i| &columns[i..=i]),
    }
}

/// The row a posting points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document<'a> {
    pub source: Table,
    pub id: &'a str,
    pub trace_id: &'a str,
    /// The observation the row is part of; empty for a trace.
    pub observation_id: &'a str,
    pub timestamp_us: i64,
}

impl Document<'_> {
    /// The id a posting stores: empty for a trace's or an observation's own fields (it is the
    /// posting's trace or observation id), the row's id for the others.
    pub fn posted_id(&self) -> &str {
        match self.source {
            Table::Traces | Table::Observations => "",
            _ => self.id,
        }
    }
}

/// The row a posting points at, from its stored columns (see [`Document::posted_id`]).
pub fn posted_row_id<'a>(source: Table, trace_id: &'a str, observation_id: &'a str, id: &'a str) -> &'a str {
    match source {
        Table::Traces if id.is_empty() => trace_id,
        Table::Observations if id.is_empty() => observation_id,
        _ => id,
    }
}

/// One searchable field: its name (`input`, `metadata.branch`, ...) and the text a person
/// searches (a JSON value's strings, not its syntax).
pub type Field<'a> = (Cow<'a, str>, Cow<'a, str>);

fn json<'a>(value: &'a Option<Json<'_>>) -> Option<Cow<'a, str>> {
    value.as_ref().map(|json| text::searchable_text(json.as_str()))
}

fn metadata_fields<'a>(metadata: &'a Metadata<'_>, fields: &mut Vec<Field<'a>>) {
    for (key, value) in metadata {
        if key.len() <= MAX_METADATA_KEY_BYTES {
            fields.push((metadata_field(key).into(), Cow::Borrowed(value.as_str())));
        }
    }
}

/// A metadata key's field name, as `metadata.key:` queries name it.
pub fn metadata_field(key: &str) -> String {
    format!("metadata.{}", key.to_lowercase())
}

/// The searchable fields of an event's row, or `None` for a row that is not searchable.
pub fn event_fields<'a>(event: &'a Event<'_>) -> Option<(Document<'a>, Vec<Field<'a>>)> {
    let at = |time: Option<agenttrace_schemas::Timestamp>| time.unwrap_or(event.timestamp).as_micros();
    let mut fields: Vec<Field<'a>> = Vec::new();
    let push = |fields: &mut Vec<Field<'a>>, name: &'static str, text: Option<Cow<'a, str>>| {
        if let Some(text) = text.filter(|t| !t.is_empty()) {
            fields.push((Cow::Borrowed(name), text));
        }
    };
    let document = match &event.payload {
        Payload::Trace(t) => {
            push(&mut fields, "name", t.name.as_deref().map(Cow::Borrowed));
            push(&mut fields, "input", json(&t.input));
            push(&mut fields, "output", json(&t.output));
            let tags: Vec<&str> = t.tags.iter().map(|tag| &**tag).collect();
            push(&mut fields, "tags", Some(Cow::Owned(tags.join("\n"))));
            metadata_fields(&t.metadata, &mut fields);
            Document {
                source: Table::Traces,
                id: &t.id,
                trace_id: &t.id,
                observation_id: "",
                timestamp_us: at(t.timestamp),
            }
        }
        Payload::Observation(o) => {
            push(&mut fields, "name", Some(Cow::Borrowed(&o.name)));
            push(&mut fields, "input", json(&o.input));
            push(&mut fields, "output", json(&o.output));
            push(
                &mut fields,
                "status",
                o.status_message.as_deref().map(Cow::Borrowed),
            );
            metadata_fields(&o.metadata, &mut fields);
            Document {
                source: Table::Observations,
                id: &o.id,
                trace_id: &o.trace_id,
                observation_id: &o.id,
                timestamp_us: o.start_time.as_micros(),
            }
        }
        Payload::Score(s) => {
            push(&mut fields, "comment", s.comment.as_deref().map(Cow::Borrowed));
            Document {
                source: Table::Scores,
                id: &s.id,
                trace_id: &s.trace_id,
                observation_id: s.observation_id.as_deref().unwrap_or(""),
                timestamp_us: at(s.timestamp),
            }
        }
        Payload::TerminalCommand(c) => {
            push(&mut fields, "command", Some(Cow::Borrowed(&c.command)));
            push(&mut fields, "cwd", c.cwd.as_deref().map(Cow::Borrowed));
            push(&mut fields, "stdout", c.stdout.as_deref().map(Cow::Borrowed));
            push(&mut fields, "stderr", c.stderr.as_deref().map(Cow::Borrowed));
            Document {
                source: Table::TerminalCommands,
                id: &c.id,
                trace_id: &c.trace_id,
                observation_id: c.observation_id.as_deref().unwrap_or(""),
                timestamp_us: at(c.timestamp),
            }
        }
        Payload::FileOperation(f) => {
            push(&mut fields, "path", Some(Cow::Borrowed(&f.path)));
            push(&mut fields, "new_path", f.new_path.as_deref().map(Cow::Borrowed));
            push(&mut fields, "diff", f.diff.as_deref().map(Cow::Borrowed));
            Document {
                source: Table::FileOperations,
                id: &f.id,
                trace_id: &f.trace_id,
                observation_id: f.observation_id.as_deref().unwrap_or(""),
                timestamp_us: at(f.timestamp),
            }
        }
        _ => return None,
    };
    Some((document, fields))
}

/// The searchable fields of a stored row of `source` (as JSONEachRow gives it, with the
/// columns of [`text_columns`]): the same fields [`event_fields`] names for the event that
/// wrote it.
pub fn stored_fields(source: Table, row: &Value) -> Vec<(String, String)> {
    let text = |column: &str| row[column].as_str().filter(|t| !t.is_empty()).map(str::to_owned);
    let json = |column: &str| {
        row[column]
            .as_str()
            .map(|stored| text::searchable_text(stored).into_owned())
            .filter(|t| !t.is_empty())
    };
    let mut fields = Vec::new();
    let mut push = |name: &str, value: Option<String>| {
        if let Some(value) = value {
            fields.push((name.to_owned(), value));
        }
    };
    let strings = |column: &str| -> Vec<String> {
        row[column]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    match source {
        Table::Traces | Table::Observations => {
            push("name", text("name"));
            push("input", json("input"));
            push("output", json("output"));
            if source == Table::Traces {
                push("tags", Some(strings("tags").join("\n")).filter(|t| !t.is_empty()));
            } else {
                push("status", text("status_message"));
            }
            for (key, value) in strings("metadata_keys").iter().zip(strings("metadata_values")) {
                if key.len() <= MAX_METADATA_KEY_BYTES {
                    push(&metadata_field(key), Some(value));
                }
            }
        }
        Table::Scores => push("comment", text("comment")),
        Table::TerminalCommands => {
            for column in ["command", "cwd", "stdout", "stderr"] {
                push(column, text(column));
            }
        }
        Table::FileOperations => {
            for column in ["path", "new_path", "diff"] {
                push(column, text(column));
            }
        }
        _ => {}
    }
    fields
}

/// The unique terms of one field at a time, reusing its set between fields. Terms are told
/// apart by a 64-bit hash, so none is copied to be remembered (ingest makes a posting of every
/// term of every field: copies cost a fifth of the index's CPU); two of a field's ≤ 4,096 terms
/// share a hash once in ~10¹² fields, which would leave one of them out of the index.
#[derive(Default)]
pub struct FieldTerms {
    seen: HashSet<u64, foldhash::fast::FixedState>,
}

impl FieldTerms {
    /// Calls `each` once per distinct term of the first [`MAX_INDEXED_BYTES`] of `text`, for
    /// the first [`MAX_TERMS_PER_FIELD`] of them.
    pub fn each(&mut self, text: &str, mut each: impl FnMut(&str)) {
        self.seen.clear();
        let mut end = text.len().min(MAX_INDEXED_BYTES);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let text = &text[..end];
        let hasher = foldhash::fast::FixedState::with_seed(0x5eed);
        text::terms(text, &mut |term: &str| {
            if self.seen.len() < MAX_TERMS_PER_FIELD && self.seen.insert(hasher.hash_one(term)) {
                each(term);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agenttrace_schemas::event::TimeWindow;
    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    use arrow_schema::DataType;

    fn event(json: &str) -> Event<'_> {
        Event::parse_valid(json, &TimeWindow::unbounded()).unwrap()
    }

    fn row_of(event: &Event<'_>) -> Value {
        // The row as ClickHouse returns it: what ingest stores for the event.
        let mut batches = crate::ingest::to_arrow::TableBatches::new("p", "p");
        batches.push(event, None).unwrap();
        let (_, batch) = batches
            .finish("b", agenttrace_schemas::Timestamp::from_micros(0))
            .unwrap()
            .into_iter()
            .next()
            .unwrap();
        // Text and text-list columns are all the fields read; other columns stay out.
        let mut row = serde_json::Map::new();
        for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
            let value = match field.data_type() {
                DataType::Utf8 if column.is_null(0) => Value::Null,
                DataType::Utf8 => column.as_string::<i32>().value(0).into(),
                DataType::List(_) => {
                    let items = column.as_list::<i32>().value(0);
                    let items = items.as_string::<i32>();
                    (0..items.len()).map(|i| Value::from(items.value(i))).collect()
                }
                _ => continue,
            };
            row.insert(field.name().clone(), value);
        }
        Value::Object(row)
    }

    /// Each source's fields, from the event and from the row it stored, are the same: a
    /// posting is checked against the text it was made from.
    #[test]
    fn stored_rows_give_the_fields_their_events_indexed() {
        for json in [
            r#"{"id":"e1","type":"trace","timestamp":"2026-01-01T00:00:00Z","body":{"id":"t1","name":"Fix billing","tags":["prod","ci"],"input":{"messages":[{"role":"user","content":"fix billing.rs"}]},"output":"done","metadata":{"Branch":"main","n":3}}}"#,
            r#"{"id":"e2","type":"observation","timestamp":"2026-01-01T00:00:00Z","body":{"id":"o1","trace_id":"t1","type":"span","name":"Bash","start_time":"2026-01-01T00:00:01Z","input":"ls -la","status_message":"exit 1","metadata":{"k":"v"}}}"#,
            r#"{"id":"e3","type":"score","timestamp":"2026-01-01T00:00:00Z","body":{"id":"s1","trace_id":"t1","observation_id":"o1","name":"q","value":1,"comment":"looks right"}}"#,
            r#"{"id":"e4","type":"terminal_command","timestamp":"2026-01-01T00:00:00Z","body":{"id":"c1","trace_id":"t1","command":"cargo test","cwd":"/repo","stdout":"ok","stderr":"warning: unused"}}"#,
            r#"{"id":"e5","type":"file_operation","timestamp":"2026-01-01T00:00:00Z","body":{"id":"f1","trace_id":"t1","operation":"rename","path":"src/a.rs","new_path":"src/b.rs","diff":"+fn b()"}}"#,
        ] {
            let event = event(json);
            let (document, fields) = event_fields(&event).unwrap();
            let indexed: Vec<(String, String)> = fields
                .into_iter()
                .map(|(name, text)| (name.into_owned(), text.into_owned()))
                .collect();
            assert!(!indexed.is_empty());
            assert_eq!(stored_fields(document.source, &row_of(&event)), indexed, "{json}");
        }
    }

    /// Each field read from its own columns alone is the field read from the whole row.
    #[test]
    fn a_field_reads_from_its_own_columns() {
        for json in [
            r#"{"id":"e1","type":"trace","timestamp":"2026-01-01T00:00:00Z","body":{"id":"t1","name":"Fix billing","tags":["prod","ci"],"input":"fix billing.rs","output":"done","metadata":{"Branch":"main","n":3}}}"#,
            r#"{"id":"e2","type":"observation","timestamp":"2026-01-01T00:00:00Z","body":{"id":"o1","trace_id":"t1","type":"span","name":"Bash","start_time":"2026-01-01T00:00:01Z","input":"ls -la","output":"a b","status_message":"exit 1","metadata":{"k":"v"}}}"#,
            r#"{"id":"e3","type":"score","timestamp":"2026-01-01T00:00:00Z","body":{"id":"s1","trace_id":"t1","name":"q","value":1,"comment":"looks right"}}"#,
            r#"{"id":"e4","type":"terminal_command","timestamp":"2026-01-01T00:00:00Z","body":{"id":"c1","trace_id":"t1","command":"cargo test","cwd":"/repo","stdout":"ok","stderr":"warning"}}"#,
            r#"{"id":"e5","type":"file_operation","timestamp":"2026-01-01T00:00:00Z","body":{"id":"f1","trace_id":"t1","operation":"rename","path":"src/a.rs","new_path":"src/b.rs","diff":"+fn b()"}}"#,
        ] {
            let event = event(json);
            let source = event_fields(&event).unwrap().0.source;
            let row = row_of(&event);
            let whole = stored_fields(source, &row);
            assert!(!whole.is_empty(), "{json}");
            for (field, text) in &whole {
                let columns = field_columns(source, field);
                assert!(!columns.is_empty(), "{field} of {json}");
                let only: serde_json::Map<String, Value> = columns
                    .iter()
                    .map(|c| ((*c).to_owned(), row[*c].clone()))
                    .collect();
                let read = stored_fields(source, &Value::Object(only));
                assert!(read.contains(&(field.clone(), text.clone())), "{field} of {json}");
            }
        }
    }

    #[test]
    fn json_fields_index_their_strings_not_their_keys() {
        let event = event(
            r#"{"id":"e1","type":"trace","timestamp":"2026-01-01T00:00:00Z","body":{"id":"t1","input":{"messages":[{"role":"user","content":"hello"}]}}}"#,
        );
        let (_, fields) = event_fields(&event).unwrap();
        let (_, input) = fields.iter().find(|(name, _)| name == "input").unwrap();
        assert!(input.contains("hello"));
        assert!(!input.contains("messages"));
    }

    #[test]
    fn field_terms_are_unique_and_bounded() {
        let mut terms = FieldTerms::default();
        let mut seen = Vec::new();
        terms.each("error error ERROR", |t| seen.push(t.to_owned()));
        assert_eq!(seen, ["error"]);
        let long = format!("{} needle", "word ".repeat(MAX_INDEXED_BYTES / 5));
        let mut found = false;
        terms.each(&long, |t| found |= t == "needle");
        assert!(!found, "past the indexed prefix");
        let many: Vec<String> = (0..MAX_TERMS_PER_FIELD + 10).map(|i| format!("w{i}")).collect();
        let mut count = 0;
        terms.each(&many.join(" "), |_| count += 1);
        assert_eq!(count, MAX_TERMS_PER_FIELD);
    }
}
