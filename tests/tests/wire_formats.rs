//! The exact bodies the loader sends (Native and ArrowStream) load into modern ClickHouse
//! (chDB) and read back equal to the events they came from.

use agenttrace_cli::agent::SessionGenerator;
use agenttrace_etl::clickhouse::Table;
use agenttrace_etl::clickhouse::insert::{WireFormat, insert_statement};
use agenttrace_etl::ingest::to_arrow::{DeadLetter, TableBatches};
use agenttrace_etl::migrate::{MigrationSet, split_statements};
use agenttrace_schemas::event::{
    FileOperation, GitLink, IntoStatic, Json, Metric, Observation, Score, TerminalCommand, Trace,
};
use agenttrace_schemas::{Event, Payload, Timestamp};
use agenttrace_tests::chdb;
use agenttrace_tests::readback::{body_from_row, select_list};
use arrow_array::cast::AsArray;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A body as its type serializes it, so a read-back body compares by value.
fn canonical<'a, T: Deserialize<'a> + Serialize>(body: &'a str) -> Value {
    let typed: T = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    serde_json::to_value(typed).unwrap()
}

fn canonical_for(table: Table, body: Value) -> Value {
    let text = body.to_string();
    match table {
        Table::Traces => canonical::<Trace>(&text),
        Table::Observations => canonical::<Observation>(&text),
        Table::Scores => canonical::<Score>(&text),
        Table::FileOperations => canonical::<FileOperation>(&text),
        Table::TerminalCommands => canonical::<TerminalCommand>(&text),
        Table::GitLinks => canonical::<GitLink>(&text),
        Table::Metrics => canonical::<Metric>(&text),
        Table::DeadLetters | Table::ExperimentRollups | Table::SearchPostings => body,
    }
}

fn sent_body(event: &Event) -> (Table, Value) {
    match &event.payload {
        Payload::Trace(b) => (Table::Traces, serde_json::to_value(b).unwrap()),
        Payload::Observation(b) => (Table::Observations, serde_json::to_value(b).unwrap()),
        Payload::Score(b) => (Table::Scores, serde_json::to_value(b).unwrap()),
        Payload::FileOperation(b) => (Table::FileOperations, serde_json::to_value(b).unwrap()),
        Payload::TerminalCommand(b) => (Table::TerminalCommands, serde_json::to_value(b).unwrap()),
        Payload::GitLink(b) => (Table::GitLinks, serde_json::to_value(b).unwrap()),
        Payload::Metric(b) => (Table::Metrics, serde_json::to_value(b).unwrap()),
        Payload::TracePatch(_) | Payload::ObservationPatch(_) => unreachable!("no patches here"),
    }
}

#[test]
fn native_and_arrow_stream_bodies_load_into_modern_clickhouse_and_read_back_equal() {
    let now = Timestamp::parse("2026-11-25T12:00:00.123456Z").unwrap();
    let mut generator = SessionGenerator::new(11);
    let mut events: Vec<Event> = (0..5).flat_map(|i| generator.session(now, 3 + i)).collect();
    // Edge cases the generator does not produce: empty and large strings, no optional fields.
    if let Payload::Trace(trace) = &mut events[0].payload {
        trace.output = Some(Json::from_value(&Value::String("ü".repeat(300_000))));
        trace.user_id = Some("".into());
        trace.tags.clear();
        trace.metadata.clear();
    }
    for (id, body) in [
        (
            "metric-sum",
            serde_json::json!({"id": "m1", "name": "claude_code.token.usage", "kind": "sum", "unit": "tokens",
                "temporality": "delta", "time": now, "start_time": now, "value": 1234.5,
                "attributes": {"type": "input", "model": "claude-sonnet-4-5"}, "resource": {"service.name": "claude-code"}}),
        ),
        (
            "metric-histogram",
            serde_json::json!({"id": "m2", "name": "codex.tool.call.duration_ms", "kind": "histogram", "time": now,
                "count": 3, "sum": 42.0, "min": 1.0, "max": 30.0, "bucket_counts": [1, 2, 0], "explicit_bounds": [5.0, 50.0]}),
        ),
    ] {
        let text =
            serde_json::json!({"id": id, "type": "metric", "timestamp": now, "body": body}).to_string();
        events.push(Event::parse(&text).unwrap().into_static());
    }
    let project = "7f1d6f5e-0000-4000-8000-000000000001";
    let mut tables = TableBatches::new(project, "wire-formats");
    for event in &events {
        tables.push(event, None).unwrap();
    }
    tables.push_dead_letter(DeadLetter {
        event_index: 3,
        event_id: Some("e-bad".into()),
        event_type: None,
        reason: "type: unknown variant `x`".into(),
        raw: r#"{"id":"e-bad","type":"x","note":"tab	and newline\n"}"#.into(),
    });
    let batches = tables.finish("batch-1", now).unwrap();
    assert_eq!(batches.len(), 9, "one batch per table");
    // Ingest sends the index as one row per field with its terms; the view stores a posting
    // per term.
    let postings = batches
        .iter()
        .find(|(table, _)| *table == Table::SearchPostings)
        .map(|(_, batch)| {
            let terms = batch.column_by_name("terms").unwrap();
            terms.as_list::<i32>().values().len()
        })
        .unwrap();
    assert!(postings > batches.len());

    let dir = std::env::temp_dir().join(format!("at-wire-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let migrations = MigrationSet::embedded().unwrap().clickhouse;
    let mut statements = vec!["SET output_format_json_quote_64bit_integers = 0".to_owned()];
    let mut reads = Vec::new();
    for format in [WireFormat::Native, WireFormat::ArrowStream] {
        let database = format.name().to_lowercase();
        statements.push(format!("CREATE DATABASE {database}"));
        statements.push(format!("USE {database}"));
        for migration in &migrations {
            statements.extend(split_statements(&migration.sql));
        }
        for (table, batch) in &batches {
            let path = dir.join(format!("{}.{database}", table.name()));
            std::fs::write(&path, format.encode(std::slice::from_ref(batch)).unwrap()).unwrap();
            // The loader's own statement, fed the exact body from a file instead of HTTP.
            let insert = insert_statement(*table, format);
            let (head, _) = insert.split_once(" FORMAT ").unwrap();
            statements.push(format!(
                "{head} SELECT * FROM file('{}', {})",
                path.display(),
                format.name()
            ));
        }
        for table in Table::ALL {
            let order = if table == Table::DeadLetters {
                "event_index"
            } else {
                "id"
            };
            reads.push((format, table, statements.len()));
            let columns = select_list(table.name());
            statements.push(format!(
                "SELECT {columns} FROM {} ORDER BY {order} FORMAT JSONEachRow",
                table.name()
            ));
        }
    }
    let outputs = chdb(&statements).unwrap_or_else(|e| panic!("chDB: {e}"));
    std::fs::remove_dir_all(&dir).unwrap();

    for (format, table, index) in reads {
        let rows: Vec<Map<String, Value>> = outputs[index]
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        if table == Table::DeadLetters {
            assert_eq!(rows.len(), 1);
            assert_eq!(
                rows[0]["raw"], r#"{"id":"e-bad","type":"x","note":"tab	and newline\n"}"#,
                "{format:?}"
            );
            assert_eq!(rows[0]["received_at_us"], now.as_micros());
            continue;
        }
        if table == Table::SearchPostings {
            // Postings are made from the rows (checked in `search::index`); here, every term of
            // every field's row became one.
            assert_eq!(rows.len(), postings, "{format:?}");
            continue;
        }
        let mut expected: Vec<Value> = events
            .iter()
            .map(sent_body)
            .filter(|(t, _)| *t == table)
            .map(|(_, body)| canonical_for(table, body))
            .collect();
        expected.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
        for row in &rows {
            assert_eq!(row["project_id"], project);
        }
        let actual: Vec<Value> = rows
            .into_iter()
            .map(|row| canonical_for(table, body_from_row(table.name(), row)))
            .collect();
        assert_eq!(actual.len(), expected.len(), "{format:?} {}", table.name());
        for (actual, expected) in actual.iter().zip(&expected) {
            assert_eq!(actual, expected, "{format:?} {}", table.name());
        }
    }
}
