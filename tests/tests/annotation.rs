//! People in the loop: score configs (what a score of a name means), and scores given against
//! them, through the unmodified Langfuse Python SDK, the edge in workerd, the ETL and both
//! databases.

use std::time::Duration;

use agenttrace_tests::TestEnv;
use agenttrace_tests::edge::Edge;
use serde_json::{Value, json};

/// Runs a script of `tests/python/` and reads the JSON it prints on its last line.
async fn python(script: &str, args: &[&str]) -> Value {
    let script = agenttrace_tests::repo_root().join("tests/python").join(script);
    let output = tokio::process::Command::new("python3")
        .arg(script)
        .args(args)
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    serde_json::from_str(stdout.trim().lines().last().unwrap()).unwrap()
}

/// Score configs made, listed, read and archived through the SDK; the scores that fit their
/// config are stored, the others are dead letters whose reason names the field and the rule.
#[tokio::test]
async fn scores_sent_with_a_config_must_fit_it() {
    let env = TestEnv::migrated().await;
    let etl = env.start_etl(|_| {}).await;
    let project = env.create_project("score-configs").await;
    let edge = Edge::start(&etl.url, &[]).await;
    let seen = python(
        "langfuse_score_configs.py",
        &[&edge.url, &project.key.public_key, &project.secret_key],
    )
    .await;
    let numeric = &seen["numeric"];
    assert_eq!(numeric["dataType"], "NUMERIC", "{seen}");
    assert_eq!(
        (numeric["minValue"].as_f64(), numeric["maxValue"].as_f64()),
        (Some(0.0), Some(5.0))
    );
    assert_eq!(numeric["isArchived"], false);
    assert_eq!(numeric["projectId"], project.key.project_id.to_string());
    assert_eq!(seen["boolean_categories"], json!([["True", 1.0], ["False", 0.0]]));
    assert_eq!(
        seen["listed"],
        json!(["legacy", "resolved", "tone", "helpfulness"])
    );
    assert_eq!(seen["got"], "tone");
    assert_eq!(seen["archived"], true);
    for (call, status) in [
        ("no_categories", "400"),
        ("inverted_bounds", "400"),
        ("missing", "404"),
    ] {
        assert_eq!(seen[call], status, "{call}: {seen}");
    }

    let p = project.key.project_id;
    let trace = seen["trace_id"].as_str().unwrap();
    env.wait_until(
        &format!(
            "SELECT name, data_type, value, ifNull(string_value, '') FROM scores FINAL \
             WHERE project_id = '{p}' AND trace_id = '{trace}' ORDER BY name"
        ),
        "helpfulness\tnumeric\t4\t\nresolved\tboolean\t1\t\ntone\tcategorical\t0\tpolite",
        Duration::from_secs(60),
    )
    .await;
    env.wait_until(
        &format!("SELECT count() FROM dead_letters WHERE project_id = '{p}'"),
        "5",
        Duration::from_secs(60),
    )
    .await;
    let dead = env
        .ch(&format!(
            "SELECT raw, reason FROM dead_letters WHERE project_id = '{p}'"
        ))
        .await;
    let reason_of = |label: &str| {
        let id = seen["misfits"][label].as_str().unwrap();
        dead.lines()
            .find(|line| line.contains(id))
            .and_then(|line| line.rsplit('\t').next())
            .unwrap_or_else(|| panic!("no dead letter for {label} ({id}):\n{dead}"))
            .to_owned()
    };
    for (label, expected) in [
        (
            "above max",
            "body.value: 7 is above the maxValue 5 of score config \"helpfulness\"",
        ),
        (
            "not a category",
            "body.value: \"sarcastic\" is not a category of score config \"tone\"; use one of [\"rude\", \"polite\"]",
        ),
        ("archived", "body.configId: score config"),
        (
            "other name",
            "body.name: \"helpful\" differs from the name of score config",
        ),
        (
            "unknown config",
            "body.configId: no score config 00000000-0000-0000-0000-000000000000 in this project",
        ),
    ] {
        let reason = reason_of(label);
        assert!(reason.contains(expected), "{label}: {reason}");
    }

    // Read back and deleted through the SDK's score routes, which the edge passes to the ETL.
    let helpfulness = seen["fits"]["helpfulness 4"].as_str().unwrap();
    let read = python(
        "langfuse_scores_read.py",
        &[
            &edge.url,
            &project.key.public_key,
            &project.secret_key,
            trace,
            numeric["id"].as_str().unwrap(),
            helpfulness,
        ],
    )
    .await;
    assert_eq!(
        read["all"],
        json!({
            "helpfulness": {"value": 4.0, "dataType": "NUMERIC", "source": "API", "configId": numeric["id"], "subject": "trace"},
            "resolved": {"value": true, "dataType": "BOOLEAN", "source": "API", "configId": seen["boolean_id"], "subject": "trace"},
            "tone": {"value": "polite", "dataType": "CATEGORICAL", "source": "API", "configId": seen["category_id"], "subject": "trace"},
        }),
        "{read}"
    );
    assert_eq!(read["by_config"], json!(["helpfulness"]));
    assert_eq!(read["at_least_3"], json!(["helpfulness"]));
    assert_eq!(read["pages"][0].as_array().unwrap().len(), 2, "{read}");
    assert_eq!(read["pages"][1].as_array().unwrap().len(), 1, "{read}");
    assert_eq!(read["pages"][2], Value::Null);
    for (call, status) in [
        ("session", "400"),
        ("value_without_type", "400"),
        ("too_many", "400"),
        ("delete_missing", "404"),
    ] {
        assert_eq!(read[call], status, "{call}: {read}");
    }
    env.wait_until(
        &format!(
            "SELECT name FROM scores FINAL WHERE project_id = '{p}' AND trace_id = '{trace}' ORDER BY name"
        ),
        "resolved\ntone",
        Duration::from_secs(60),
    )
    .await;
}
