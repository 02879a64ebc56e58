//! The ingest pipeline on its own: real PostgreSQL (keys, the batch ledger), a memory sink in
//! place of ClickHouse, so what each batch would load is checked directly and fast.

use std::sync::Arc;
use std::time::Duration;

use agenttrace_cli::agent::SessionGenerator;
use agenttrace_etl::clickhouse::Table;
use agenttrace_etl::ingest::key_status::KeyCache;
use agenttrace_etl::ingest::memory_sink::MemorySink;
use agenttrace_etl::ingest::pricing::PriceCache;
use agenttrace_etl::ingest::signing::Keyring;
use agenttrace_etl::ingest::{IngestError, Ingestor};
use agenttrace_schemas::Timestamp;
use agenttrace_schemas::batch::BatchStatus;
use agenttrace_schemas::signature::SigningKey;
use agenttrace_tests::TestEnv;
use agenttrace_tests::etl::SIGNING_KEYS;
use serde_json::value::to_raw_value;

#[tokio::test]
async fn a_batch_loads_valid_events_dead_letters_the_rest_and_is_never_loaded_twice() {
    let env = TestEnv::migrated().await;
    let project = env.create_project("pipeline").await;
    let sink = Arc::new(MemorySink::default());
    let ingestor = Ingestor {
        keyring: Keyring::parse(SIGNING_KEYS).unwrap(),
        pool: agenttrace_etl::postgres::pool(&env.database_url, 2).unwrap(),
        clickhouse: env.clickhouse.clone(),
        sink: sink.clone(),
        prices: PriceCache::default(),
        key_cache: KeyCache::new(Duration::ZERO, 10),
    };
    let now = Timestamp::now();
    let session = SessionGenerator::new(7).session(now, 2);
    let mut events: Vec<_> = session.iter().map(|e| to_raw_value(e).unwrap()).collect();
    events.push(
        to_raw_value(
            &serde_json::json!({"id": "bad", "type": "trace", "timestamp": "yesterday", "body": {}}),
        )
        .unwrap(),
    );
    let client = agenttrace_cli::send::BatchClient::new("http://unused", SIGNING_KEYS, "test-edge").unwrap();
    let body = client.batch_body(&project.key, uuid::Uuid::now_v7(), events);
    let signing_key = SigningKey::parse(SIGNING_KEYS).unwrap();
    let [(_, signature), (_, key_id)] = signing_key.headers(now.as_micros() / 1_000_000, &body);

    let first = ingestor
        .ingest(body.clone().into(), Some(&key_id), Some(&signature))
        .await
        .unwrap();
    assert_eq!(first.status, BatchStatus::Accepted);
    assert_eq!(first.accepted as usize, session.len());
    assert_eq!(first.rejected.len(), 1);
    assert_eq!(first.rejected[0].field, "timestamp");
    let observations = session
        .iter()
        .filter(|e| e.payload.event_type().as_str() == "observation")
        .count();
    assert_eq!(sink.rows(Table::Observations), observations);
    assert_eq!(sink.rows(Table::Traces), 1);
    assert_eq!(sink.rows(Table::DeadLetters), 1);
    // Each observation records the API key that sent it (metrics and alerts group by it).
    for (table, batch) in sink.batches() {
        if table == Table::Observations {
            let keys = batch
                .column_by_name("api_key")
                .unwrap()
                .as_any()
                .downcast_ref::<arrow_array::StringArray>()
                .unwrap()
                .clone();
            assert!(keys.iter().all(|k| k == Some(project.key.public_key.as_str())));
        }
    }

    // The same batch again: answered from the ledger, nothing loaded twice.
    let loaded = sink.batches().len();
    let again = ingestor
        .ingest(body.clone().into(), Some(&key_id), Some(&signature))
        .await
        .unwrap();
    assert_eq!(again.status, BatchStatus::AlreadyAccepted);
    assert_eq!(sink.batches().len(), loaded);

    // A tampered body fails the signature before anything else happens.
    let mut tampered = body.clone();
    tampered.push(b' ');
    let refused = ingestor
        .ingest(tampered.clone().into(), Some(&key_id), Some(&signature))
        .await
        .unwrap_err();
    assert!(matches!(refused, IngestError::Auth(_)), "{refused}");
    assert_eq!(sink.batches().len(), loaded);
}
