//! People in the loop: score configs (what a score of a name means) and scores given against
//! them, annotation queues two people work through at once, comments, traces shared by link,
//! and dataset items taken from traces; through the unmodified Langfuse Python SDK, the edge in
//! workerd, the ETL and both databases.

use std::time::Duration;

use agenttrace_etl::control::identity::{self, Role};
use agenttrace_etl::control::projects;
use agenttrace_schemas::event::IntoStatic;
use agenttrace_schemas::{Event, Scope, Timestamp};
use agenttrace_tests::TestEnv;
use agenttrace_tests::edge::Edge;
use agenttrace_tests::etl::TestProject;
use agenttrace_tests::people::{Person, signed_in as person};
use serde_json::{Value, json};
use uuid::Uuid;

/// `method url` with `auth` (none when empty) and a JSON body unless it is null: (status, body).
async fn call(auth: &str, method: &str, url: &str, body: Value) -> (u16, Value) {
    let mut request = reqwest::Client::new().request(method.parse().unwrap(), url);
    if !auth.is_empty() {
        request = request.header("Authorization", auth);
    }
    if !body.is_null() {
        request = request.json(&body);
    }
    let answer = request.send().await.unwrap();
    let status = answer.status().as_u16();
    let text = answer.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// A project in a new organization that `owner` founded and `others` joined as members, and a
/// key that may ingest, read and manage.
async fn team_project(env: &TestEnv, name: &str, owner: &Person, others: &[&Person]) -> TestProject {
    let mut pg = env.postgres().await;
    let organization = identity::found_organization(&mut pg, name, owner.id)
        .await
        .unwrap()
        .id;
    for other in others {
        identity::add_member(&pg, organization, other.id, Role::Member)
            .await
            .unwrap();
    }
    let project = projects::create_project(&pg, organization, name, None)
        .await
        .unwrap();
    TestProject::with_key(&pg, project.id, &[Scope::Ingest, Scope::Read, Scope::Manage]).await
}

/// Traces `ids`, each with an answer (a generation) and a session.
fn traces(ids: &[&str]) -> Vec<Event<'static>> {
    let at = Timestamp::now();
    ids.iter()
        .flat_map(|id| {
            [
                json!({"id": format!("{id}-t"), "type": "trace", "timestamp": at, "body": {
                    "id": id, "timestamp": at, "name": "fix-bug", "session_id": "s-1",
                    "input": format!("Fix {id}"), "output": format!("Fixed {id}")}}),
                json!({"id": format!("{id}-o"), "type": "observation", "timestamp": at, "body": {
                    "id": format!("{id}-gen"), "trace_id": id, "type": "generation", "name": "answer",
                    "start_time": at, "input": format!("Fix {id}"), "output": format!("Fixed {id}")}}),
            ]
        })
        .map(|event| Event::parse(&event.to_string()).unwrap().into_static())
        .collect()
}

/// Score configs made, listed, read and archived through the SDK; the scores that fit their
/// config are stored, the others are dead letters whose reason names the field and the rule.
#[tokio::test]
async fn scores_sent_with_a_config_must_fit_it() {
    let env = TestEnv::migrated().await;
    let etl = env.start_etl(|_| {}).await;
    let owner = person(&env.postgres().await, &etl.url, "owner@configs.test").await;
    let project = team_project(&env, "score-configs", &owner, &[]).await;
    let edge = Edge::start(&etl.url, &[]).await;
    let seen = agenttrace_tests::python_script(
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

    // The edge answers for the config: a misfit is a 400 naming the field (one score), or a 400
    // among the batch's 207; another project's config is unknown to this one.
    let numeric_id = numeric["id"].as_str().unwrap();
    let auth = project.basic_auth();
    let scores_url = format!("{}/api/public/scores", edge.url);
    let (status, answer) = call(
        &auth,
        "POST",
        &scores_url,
        json!({"id": "edge-misfit", "traceId": "edge-checked", "name": "helpfulness", "value": 9, "configId": numeric_id}),
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .starts_with("body.value: 9 is above the maxValue 5 of score config \"helpfulness\""),
        "{answer}"
    );
    let (status, answer) = call(
        &auth,
        "POST",
        &format!("{}/api/public/ingestion", edge.url),
        json!({"batch": [
            {"id": "e-fits", "type": "score-create", "timestamp": Timestamp::now(),
             "body": {"id": "edge-fits", "traceId": "edge-checked", "name": "helpfulness", "value": 2, "configId": numeric_id}},
            {"id": "e-misfit", "type": "score-create", "timestamp": Timestamp::now(),
             "body": {"id": "edge-boolean", "traceId": "edge-checked", "name": "helpfulness", "value": true, "configId": numeric_id}}
        ]}),
    )
    .await;
    assert_eq!(status, 207, "{answer}");
    assert_eq!(answer["successes"][0]["id"], "e-fits", "{answer}");
    assert_eq!(answer["errors"][0]["id"], "e-misfit", "{answer}");
    assert!(
        answer["errors"][0]["error"].as_str().unwrap().starts_with(
            "body.dataType: boolean differs from score config \"helpfulness\"'s data type, NUMERIC"
        ),
        "{answer}"
    );
    let other_owner = person(&env.postgres().await, &etl.url, "other@configs.test").await;
    let other = team_project(&env, "other-configs", &other_owner, &[]).await;
    let (status, answer) = call(
        &other.basic_auth(),
        "POST",
        &scores_url,
        json!({"traceId": "theirs", "name": "helpfulness", "value": 3, "configId": numeric_id}),
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().starts_with(&format!(
            "body.configId: no score config {numeric_id} in this project"
        )),
        "{answer}"
    );
    env.wait_until(
        &format!("SELECT count() FROM dead_letters WHERE project_id = '{p}'"),
        "7",
        Duration::from_secs(60),
    )
    .await;
    let misfit = env
        .ch(&format!(
            "SELECT reason FROM dead_letters WHERE project_id = '{p}' AND position(raw, 'edge-misfit') > 0"
        ))
        .await;
    assert!(
        misfit.contains("body.value: 9 is above the maxValue 5"),
        "{misfit}"
    );

    // Read back and deleted through the SDK's score routes, which the edge passes to the ETL.
    let helpfulness = seen["fits"]["helpfulness 4"].as_str().unwrap();
    let read = agenttrace_tests::python_script(
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
    // With the score the edge took above, on another trace.
    assert_eq!(read["by_config"], json!(["helpfulness", "helpfulness"]));
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

/// A queue through Langfuse's SDK (items, statuses, an assignment, a comment), then two people
/// reviewing one queue at once: they never hold the same item, a held item is refused to the
/// other, both finish every item (the queue asks two reviews each), their scores carry their
/// names and are corrected by completing again, and another project sees none of it.
#[tokio::test]
async fn two_reviewers_work_through_one_queue_without_colliding() {
    let env = TestEnv::migrated().await;
    let etl = env.start_etl(|_| {}).await;
    let pg = env.postgres().await;
    let alice = person(&pg, &etl.url, "alice@review.test").await;
    let bob = person(&pg, &etl.url, "bob@review.test").await;
    let project = team_project(&env, "review", &alice, &[&bob]).await;
    let p = project.key.project_id;
    let ids = ["t-0", "t-1", "t-2", "t-3", "t-4", "t-5"];
    etl.load(&project.key, &traces(&ids)).await;

    let mut args = vec![
        etl.url.clone(),
        project.key.public_key.clone(),
        project.secret_key.clone(),
        p.to_string(),
        bob.id.to_string(),
    ];
    args.extend(ids.iter().map(|id| id.to_string()));
    let seen = agenttrace_tests::python_script(
        "langfuse_annotation_queues.py",
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .await;
    assert_eq!(seen["queue"]["name"], "review", "{seen}");
    assert_eq!(seen["queue"]["scoreConfigIds"], json!([seen["config_id"]]));
    assert_eq!(seen["items"], json!(ids), "oldest first, the repeated one once");
    assert_eq!(seen["again_is_first"], true);
    assert_eq!(seen["total"], 6);
    assert_eq!(
        seen["completed"],
        json!({"status": "COMPLETED", "has_completed_at": true})
    );
    assert_eq!(seen["pending"], json!(&ids[..5]));
    assert_eq!(seen["got"], "t-0");
    assert_eq!(seen["listed_queues"], json!(["review"]));
    assert_eq!(seen["assigned"], bob.id.to_string());
    assert_eq!(seen["removed"], true);
    assert_eq!(seen["comment"]["content"], "The agent **skipped** the tests.");
    assert_eq!(seen["comment"]["authorUserId"], bob.id.to_string());
    assert_eq!(
        seen["comments_of_trace"],
        json!(["The agent **skipped** the tests."])
    );
    for (call, status) in [
        ("queue_without_configs", "400"),
        ("same_name", "409"),
        ("comment_elsewhere", "400"),
        ("empty_comment", "400"),
        ("bad_object_type", "400"),
    ] {
        assert_eq!(seen[call], status, "{call}: {seen}");
    }

    // A queue two people review each item of.
    let base = format!("{}/v1/projects/{p}/annotation-queues", etl.url);
    let (alice_auth, bob_auth) = (format!("Bearer {}", alice.token), format!("Bearer {}", bob.token));
    let config = seen["config_id"].as_str().unwrap();
    let (status, queue) = call(
        &alice_auth,
        "POST",
        &base,
        json!({"name": "pairs", "scoreConfigIds": [config], "annotatorsPerItem": 2}),
    )
    .await;
    assert_eq!(status, 201, "{queue}");
    let queue = format!("{base}/{}", queue["id"].as_str().unwrap());
    let items: Vec<Value> = ids
        .iter()
        .map(|id| json!({"objectType": "TRACE", "objectId": id}))
        .collect();
    let (status, added) = call(
        &alice_auth,
        "POST",
        &format!("{queue}/items"),
        json!({"items": items}),
    )
    .await;
    assert_eq!(status, 200, "{added}");

    // Both ask at once, round after round; each completes what they hold.
    let mut done = [Vec::new(), Vec::new()];
    loop {
        let next = format!("{queue}/next");
        let (a, b) = tokio::join!(
            call(&alice_auth, "POST", &next, Value::Null),
            call(&bob_auth, "POST", &next, Value::Null),
        );
        let held: Vec<Option<String>> = [&a, &b]
            .iter()
            .map(|(status, item)| (*status == 200).then(|| item["id"].as_str().unwrap().to_owned()))
            .collect();
        if held.iter().all(Option::is_none) {
            assert_eq!((a.0, b.0), (204, 204));
            break;
        }
        if let [Some(first), Some(second)] = held.as_slice() {
            assert_ne!(first, second, "two reviewers took the same item");
            // The other's item is theirs while they hold it.
            let (status, refused) = call(
                &bob_auth,
                "POST",
                &format!("{queue}/items/{first}/take"),
                Value::Null,
            )
            .await;
            assert_eq!(status, 409, "{refused}");
        }
        for (who, (auth, item)) in [(&alice_auth, &held[0]), (&bob_auth, &held[1])]
            .into_iter()
            .enumerate()
        {
            let Some(item) = item else { continue };
            let value = who == 0;
            let (status, after) = call(
                auth,
                "POST",
                &format!("{queue}/items/{item}/complete"),
                json!({"scores": [{"config_id": config, "value": value, "comment": "looked at it"}]}),
            )
            .await;
            assert_eq!(status, 200, "{after}");
            done[who].push(item.clone());
        }
    }
    assert_eq!((done[0].len(), done[1].len()), (6, 6), "both finish every item");
    let (_, detail) = call(&alice_auth, "GET", &queue, Value::Null).await;
    let progress = &detail["progress"];
    assert_eq!(
        (
            progress["total"].as_i64(),
            progress["completed"].as_i64(),
            progress["pending"].as_i64()
        ),
        (Some(6), Some(6), Some(0)),
        "{detail}"
    );
    let people: Vec<(String, i64)> = progress["people"]
        .as_array()
        .unwrap()
        .iter()
        .map(|person| {
            (
                person["user_id"].as_str().unwrap().to_owned(),
                person["completed"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(people.len(), 2, "{detail}");
    assert!(people.iter().all(|(_, completed)| *completed == 6), "{detail}");
    // Reviewers' emails are for people; an API key reads their user ids.
    let names = |detail: &Value| -> Vec<String> {
        let mut names: Vec<String> = detail["progress"]["people"]
            .as_array()
            .unwrap()
            .iter()
            .map(|person| person["name"].as_str().unwrap().to_owned())
            .collect();
        names.sort();
        names
    };
    assert!(names(&detail).iter().all(|name| name.contains('@')), "{detail}");
    let (_, to_key) = call(&project.basic_auth(), "GET", &queue, Value::Null).await;
    let mut ids: Vec<String> = people.iter().map(|(id, _)| id.clone()).collect();
    ids.sort();
    assert_eq!(names(&to_key), ids, "{to_key}");

    // Their scores, one per person and item, with their names on them.
    let scores_of = |author: Uuid| {
        format!(
            "SELECT count(), sum(value) FROM scores FINAL WHERE project_id = '{p}' AND source = 'annotation' \
             AND metadata_values[indexOf(metadata_keys, 'langfuse.authorUserId')] = '{author}'"
        )
    };
    assert_eq!(env.ch(&scores_of(alice.id)).await, "6\t6");
    assert_eq!(env.ch(&scores_of(bob.id)).await, "6\t0");
    // Bob corrects one of his: the score is replaced, not added.
    let corrected = &done[1][0];
    let (status, _) = call(
        &bob_auth,
        "POST",
        &format!("{queue}/items/{corrected}/complete"),
        json!({"scores": [{"config_id": config, "value": true}]}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(env.ch(&scores_of(bob.id)).await, "6\t1");
    // A value the config does not take is refused, naming it.
    let (status, refused) = call(
        &bob_auth,
        "POST",
        &format!("{queue}/items/{corrected}/complete"),
        json!({"scores": [{"config_id": config, "value": "maybe"}]}),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        refused["message"].as_str().unwrap().contains("scores[0].value"),
        "{refused}"
    );
    // Taking one item lets go of the other one holds: no one holds a queue's items away.
    let (status, third) = call(
        &alice_auth,
        "POST",
        &base,
        json!({"name": "locks", "scoreConfigIds": [config]}),
    )
    .await;
    assert_eq!(status, 201, "{third}");
    let locks = format!("{base}/{}", third["id"].as_str().unwrap());
    let (_, items) = call(
        &alice_auth,
        "POST",
        &format!("{locks}/items"),
        json!({"items": [{"objectType": "TRACE", "objectId": "t-0"}, {"objectType": "TRACE", "objectId": "t-1"}]}),
    )
    .await;
    let (first, second) = (items[0]["id"].as_str().unwrap(), items[1]["id"].as_str().unwrap());
    for item in [first, second] {
        let (status, _) = call(
            &alice_auth,
            "POST",
            &format!("{locks}/items/{item}/take"),
            Value::Null,
        )
        .await;
        assert_eq!(status, 200);
    }
    let (status, taken) = call(
        &bob_auth,
        "POST",
        &format!("{locks}/items/{first}/take"),
        Value::Null,
    )
    .await;
    assert_eq!(
        status, 200,
        "alice let go of the first when she took the second: {taken}"
    );

    // An agent's key cannot write a reviewer's score: neither its id nor its author.
    let at = Timestamp::now();
    let forged = [
        json!({"id": "forged-1", "type": "score", "timestamp": at, "body": {"id": format!("annotation-{first}"),
               "trace_id": "t-0", "name": "correct", "value": true, "source": "annotation"}}),
        json!({"id": "forged-2", "type": "score", "timestamp": at, "body": {"id": "mine", "trace_id": "t-0",
               "name": "correct", "value": true, "source": "annotation",
               "metadata": {"langfuse.authorUserId": alice.id.to_string()}}}),
    ];
    let answer = etl
        .load(
            &project.key,
            &forged
                .iter()
                .map(|event| Event::parse(&event.to_string()).unwrap().into_static())
                .collect::<Vec<_>>(),
        )
        .await;
    let fields: Vec<&str> = answer.rejected.iter().map(|r| r.field.as_str()).collect();
    assert_eq!(
        fields,
        ["body.id", "body.metadata.langfuse.authorUserId"],
        "{answer:?}"
    );

    // A key is no reviewer: its scores would carry no one's name.
    let (status, _) = call(
        &project.basic_auth(),
        "POST",
        &format!("{queue}/next"),
        Value::Null,
    )
    .await;
    assert_eq!(status, 403);

    // Another organization's member sees neither the queue, its items nor the comment.
    let mallory = person(&pg, &etl.url, "mallory@else.test").await;
    let elsewhere = team_project(&env, "elsewhere", &mallory, &[]).await;
    let mallory_auth = format!("Bearer {}", mallory.token);
    for (method, url) in [
        ("GET", queue.clone()),
        ("GET", format!("{queue}/items")),
        ("POST", format!("{queue}/next")),
        ("GET", format!("{}/v1/projects/{p}/comments", etl.url)),
    ] {
        let (status, answer) = call(&mallory_auth, method, &url, Value::Null).await;
        assert_eq!(status, 404, "{method} {url}: {answer}");
    }
    let (_, theirs) = call(
        &mallory_auth,
        "GET",
        &format!(
            "{}/v1/projects/{}/annotation-queues",
            etl.url, elsewhere.key.project_id
        ),
        Value::Null,
    )
    .await;
    assert_eq!(theirs["data"], json!([]));
}

/// Comments from the web UI's route: written as the signed-in member, edited by their author
/// only, deleted by their author or a moderating owner; a project's comments are capped.
#[tokio::test]
async fn comments_are_edited_by_their_author_and_moderated_by_admins() {
    let env = TestEnv::migrated().await;
    let etl = env.start_etl(|_| {}).await;
    let pg = env.postgres().await;
    let alice = person(&pg, &etl.url, "alice@comments.test").await;
    let bob = person(&pg, &etl.url, "bob@comments.test").await;
    let project = team_project(&env, "comments", &alice, &[&bob]).await;
    let base = format!("{}/v1/projects/{}/comments", etl.url, project.key.project_id);
    let (alice_auth, bob_auth) = (format!("Bearer {}", alice.token), format!("Bearer {}", bob.token));
    let (status, comment) = call(
        &alice_auth,
        "POST",
        &base,
        json!({"objectType": "OBSERVATION", "objectId": "t-0-gen", "content": "Why this tool?"}),
    )
    .await;
    assert_eq!(status, 201, "{comment}");
    assert_eq!(comment["authorUserId"], alice.id.to_string());
    assert_eq!(comment["authorName"], "alice@comments.test");
    let url = format!("{base}/{}", comment["id"].as_str().unwrap());
    let (status, _) = call(&bob_auth, "PATCH", &url, json!({"content": "hijacked"})).await;
    assert_eq!(status, 403);
    let (status, _) = call(&bob_auth, "DELETE", &url, Value::Null).await;
    assert_eq!(status, 403);
    let (status, edited) = call(
        &alice_auth,
        "PATCH",
        &url,
        json!({"content": "Why this tool, not grep?"}),
    )
    .await;
    assert_eq!(
        (status, edited["content"].as_str()),
        (200, Some("Why this tool, not grep?"))
    );
    let (_, listed) = call(
        &bob_auth,
        "GET",
        &format!("{base}?objectType=OBSERVATION&objectId=t-0-gen"),
        Value::Null,
    )
    .await;
    assert_eq!(listed["data"][0]["content"], "Why this tool, not grep?");
    let (status, _) = call(&alice_auth, "DELETE", &url, Value::Null).await;
    assert_eq!(status, 204);
    let (_, listed) = call(&bob_auth, "GET", &base, Value::Null).await;
    assert_eq!(listed["data"], json!([]));
    let (status, refused) = call(
        &alice_auth,
        "POST",
        &base,
        json!({"objectType": "DATASET", "objectId": "x", "content": "x"}),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        refused["message"].as_str().unwrap().starts_with("objectType"),
        "{refused}"
    );

    // An owner moderates: deletes a member's comment and a key's (which has no author), but
    // does not put words in anyone's mouth.
    let (_, bobs) = call(
        &bob_auth,
        "POST",
        &base,
        json!({"objectType": "TRACE", "objectId": "t-0", "content": "my password is hunter2"}),
    )
    .await;
    let bobs = format!("{base}/{}", bobs["id"].as_str().unwrap());
    // A person sees who wrote it by email (bob gave no name); an API key does not.
    let (_, to_people) = call(&alice_auth, "GET", &base, Value::Null).await;
    assert_eq!(to_people["data"][0]["authorName"], "bob@comments.test");
    let (_, to_keys) = call(&project.basic_auth(), "GET", &base, Value::Null).await;
    assert_eq!(to_keys["data"][0]["authorName"], Value::Null, "{to_keys}");
    assert_eq!(to_keys["data"][0]["authorUserId"], bob.id.to_string());
    let (status, _) = call(&alice_auth, "PATCH", &bobs, json!({"content": "edited"})).await;
    assert_eq!(status, 403);
    let (status, _) = call(&alice_auth, "DELETE", &bobs, Value::Null).await;
    assert_eq!(status, 204);
    let (status, keys) = call(
        &project.basic_auth(),
        "POST",
        &base,
        json!({"objectType": "TRACE", "objectId": "t-0", "content": "from a script"}),
    )
    .await;
    assert_eq!((status, &keys["authorUserId"]), (201, &Value::Null), "{keys}");
    let keys = format!("{base}/{}", keys["id"].as_str().unwrap());
    let (status, _) = call(&bob_auth, "DELETE", &keys, Value::Null).await;
    assert_eq!(status, 403, "a member is no moderator");
    let (status, _) = call(&alice_auth, "DELETE", &keys, Value::Null).await;
    assert_eq!(status, 204);

    // A project holds at most MAX_COMMENTS.
    let p = project.key.project_id;
    pg.execute(
        "INSERT INTO comments (project_id, object_type, object_id, content)
         SELECT $1, 'TRACE', 't-0', 'filler ' || n FROM generate_series(1::bigint, $2) AS n",
        &[&p, &agenttrace_etl::control::comments::MAX_COMMENTS],
    )
    .await
    .unwrap();
    let (status, full) = call(
        &alice_auth,
        "POST",
        &base,
        json!({"objectType": "TRACE", "objectId": "t-0", "content": "one more"}),
    )
    .await;
    assert_eq!(status, 409, "{full}");
    assert!(
        full["message"].as_str().unwrap().contains("the most it may"),
        "{full}"
    );
}

/// A trace made public opens signed out at its share link, and only it; made private, the link
/// is a 404 again. The SDK's `public` flag opens nothing (an ingest key could set it). Another
/// project's trace of the same id never opens through this project's link.
#[tokio::test]
async fn a_public_trace_opens_signed_out_until_it_is_made_private() {
    let env = TestEnv::migrated().await;
    let etl = env.start_etl(|_| {}).await;
    let pg = env.postgres().await;
    let alice = person(&pg, &etl.url, "alice@share.test").await;
    let project = team_project(&env, "share", &alice, &[]).await;
    let p = project.key.project_id;
    let mut events = traces(&["t-0", "t-1"]);
    events.push(
        Event::parse(
            &json!({"id": "flagged-t", "type": "trace", "timestamp": Timestamp::now(), "body": {
                "id": "flagged", "timestamp": Timestamp::now(), "name": "sdk-public", "public": true}})
            .to_string(),
        )
        .unwrap()
        .into_static(),
    );
    etl.load(&project.key, &events).await;
    let alice_auth = format!("Bearer {}", alice.token);
    let shared = |trace: &str| format!("{}/v1/shared/{p}/traces/{trace}", etl.url);

    let (status, _) = call("", "GET", &shared("t-0"), Value::Null).await;
    assert_eq!(status, 404, "private until made public");
    let sharing = format!("{}/v1/projects/{p}/traces/t-0/sharing", etl.url);
    let (status, made) = call(&alice_auth, "PUT", &sharing, json!({"public": true})).await;
    assert_eq!(status, 200, "{made}");
    assert_eq!(made["share_path"], format!("#/share/{p}/t-0"));
    let (status, trace) = call("", "GET", &shared("t-0"), Value::Null).await;
    assert_eq!(status, 200, "{trace}");
    assert_eq!(trace["trace"]["output"], "Fixed t-0");
    let (status, observation) = call(
        "",
        "GET",
        &format!("{}/observations/t-0-gen", shared("t-0")),
        Value::Null,
    )
    .await;
    assert_eq!((status, observation["output"].as_str()), (200, Some("Fixed t-0")));
    let (status, _) = call("", "GET", &shared("t-1"), Value::Null).await;
    assert_eq!(status, 404, "only the shared trace");
    let (status, _) = call(
        "",
        "GET",
        &format!("{}/observations/t-1-gen", shared("t-0")),
        Value::Null,
    )
    .await;
    assert_eq!(status, 404, "nor another trace's observation through it");

    let (status, _) = call(&alice_auth, "PUT", &sharing, json!({"public": false})).await;
    assert_eq!(status, 200);
    let (status, _) = call("", "GET", &shared("t-0"), Value::Null).await;
    assert_eq!(status, 404, "the link is revoked");

    // The SDK's flag opens nothing: an ingest-only key sets it, and must not publish data.
    let (status, _) = call("", "GET", &shared("flagged"), Value::Null).await;
    assert_eq!(status, 404);

    // Another project with a trace of the same id: its link opens only what it made public.
    let mallory = person(&pg, &etl.url, "mallory@share.test").await;
    let other = team_project(&env, "other-share", &mallory, &[]).await;
    let o = other.key.project_id;
    etl.load(&other.key, &traces(&["t-0"])).await;
    let (status, _) = call(
        "",
        "GET",
        &format!("{}/v1/shared/{o}/traces/t-0", etl.url),
        Value::Null,
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = call(
        &format!("Bearer {}", mallory.token),
        "PUT",
        &format!("{}/v1/projects/{p}/traces/t-0/sharing", etl.url),
        json!({"public": true}),
    )
    .await;
    assert_eq!(status, 404, "a stranger cannot publish another project's trace");
}

/// "Add to dataset" from a trace keeps where the item came from, through our API and the SDK's.
#[tokio::test]
async fn a_dataset_item_taken_from_a_trace_keeps_its_source() {
    let env = TestEnv::migrated().await;
    let etl = env.start_etl(|_| {}).await;
    let pg = env.postgres().await;
    let alice = person(&pg, &etl.url, "alice@datasets.test").await;
    let project = team_project(&env, "from-traces", &alice, &[]).await;
    let base = format!("{}/v1/projects/{}/datasets", etl.url, project.key.project_id);
    let auth = format!("Bearer {}", alice.token);
    let (status, _) = call(&auth, "POST", &base, json!({"name": "regressions"})).await;
    assert_eq!(status, 200);
    let (status, item) = call(
        &auth,
        "POST",
        &format!("{base}/regressions/items"),
        json!({"input": "Fix t-0", "expected_output": "Fixed t-0, with a test",
               "source_trace_id": "t-0", "source_observation_id": "t-0-gen"}),
    )
    .await;
    assert_eq!(status, 200, "{item}");
    assert_eq!(
        (
            item["source_trace_id"].as_str(),
            item["source_observation_id"].as_str()
        ),
        (Some("t-0"), Some("t-0-gen"))
    );
    let (_, listed) = call(&auth, "GET", &format!("{base}/regressions/items"), Value::Null).await;
    assert_eq!(listed["data"][0]["source_trace_id"], "t-0");

    // In bulk: traces by id (one the project does not hold is named), then a queue's reviewed
    // items, an observation item with the observation's own input and output.
    etl.load(&project.key, &traces(&["t-1", "t-2"])).await;
    let (status, taken) = call(
        &auth,
        "POST",
        &format!("{base}/regressions/items/from-traces"),
        json!({"trace_ids": ["t-1", "nowhere"]}),
    )
    .await;
    assert_eq!(status, 200, "{taken}");
    assert_eq!(taken["missing"], json!(["nowhere"]));
    assert_eq!(
        (
            taken["items"][0]["input"].as_str(),
            taken["items"][0]["expected_output"].as_str()
        ),
        (Some("Fix t-1"), Some("Fixed t-1"))
    );
    let config = agenttrace_etl::control::score_configs::create(
        &pg,
        project.key.project_id,
        agenttrace_etl::control::score_configs::NewScoreConfig {
            name: "good".into(),
            data_type: agenttrace_schemas::score_config::ConfigDataType::Boolean,
            min_value: None,
            max_value: None,
            categories: None,
            description: None,
        },
    )
    .await
    .unwrap();
    let queues = format!(
        "{}/v1/projects/{}/annotation-queues",
        etl.url, project.key.project_id
    );
    let (_, queue) = call(
        &auth,
        "POST",
        &queues,
        json!({"name": "picks", "scoreConfigIds": [config.id]}),
    )
    .await;
    let queue = format!("{queues}/{}", queue["id"].as_str().unwrap());
    let (status, _) = call(
        &auth,
        "POST",
        &format!("{queue}/items"),
        json!({"items": [{"objectType": "TRACE", "objectId": "t-1"}, {"objectType": "OBSERVATION", "objectId": "t-2-gen"}]}),
    )
    .await;
    assert_eq!(status, 200);
    for _ in 0..2 {
        let (_, item) = call(&auth, "POST", &format!("{queue}/next"), Value::Null).await;
        let item = item["id"].as_str().unwrap().to_owned();
        let (status, _) = call(
            &auth,
            "POST",
            &format!("{queue}/items/{item}/complete"),
            json!({"scores": [{"config_id": config.id, "value": true}]}),
        )
        .await;
        assert_eq!(status, 200);
    }
    let (status, taken) = call(
        &auth,
        "POST",
        &format!("{base}/regressions/items/from-traces"),
        json!({"queue_id": queue.rsplit('/').next().unwrap()}),
    )
    .await;
    assert_eq!(status, 200, "{taken}");
    let sources: Vec<(Value, Value, Value)> = taken["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["source_trace_id"].clone(),
                i["source_observation_id"].clone(),
                i["expected_output"].clone(),
            )
        })
        .collect();
    assert_eq!(
        sources,
        [
            (json!("t-1"), Value::Null, json!("Fixed t-1")),
            (json!("t-2"), json!("t-2-gen"), json!("Fixed t-2"))
        ]
    );
    let (_, listed) = call(&auth, "GET", &format!("{base}/regressions/items"), Value::Null).await;
    assert_eq!(
        listed["meta"]["totalItems"], 3,
        "taking t-1 again replaced its item: {listed}"
    );
}

/// A queue's standing rule keeps adding what arrives: here every target a judge failed, each
/// once, whichever run sees it; a rule with two sources is refused, naming the field.
#[tokio::test]
async fn a_queue_rule_keeps_adding_what_a_judge_fails() {
    let env = TestEnv::migrated().await;
    let etl = env.start_etl(|_| {}).await;
    let pg = env.postgres().await;
    let alice = person(&pg, &etl.url, "alice@rules.test").await;
    let project = team_project(&env, "rules", &alice, &[]).await;
    let p = project.key.project_id;
    let auth = format!("Bearer {}", alice.token);
    let (_, config) = call(
        &auth,
        "POST",
        &format!("{}/v1/projects/{p}/score-configs", etl.url),
        json!({"name": "correct", "dataType": "BOOLEAN"}),
    )
    .await;
    let queues = format!("{}/v1/projects/{p}/annotation-queues", etl.url);
    let (_, queue) = call(
        &auth,
        "POST",
        &queues,
        json!({"name": "failures", "scoreConfigIds": [config["id"]]}),
    )
    .await;
    let queue = format!("{queues}/{}", queue["id"].as_str().unwrap());
    let judge = Uuid::new_v4();
    let (status, refused) = call(
        &auth,
        "PUT",
        &format!("{queue}/rule"),
        json!({"rule": {"traces": {}, "judge_failures": {"evaluator_id": judge}}}),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        refused["message"].as_str().unwrap().starts_with("traces"),
        "{refused}"
    );
    let (status, ruled) = call(
        &auth,
        "PUT",
        &format!("{queue}/rule"),
        json!({"rule": {"judge_failures": {"evaluator_id": judge}}}),
    )
    .await;
    assert_eq!(status, 200, "{ruled}");
    assert_eq!(ruled["rule"]["judge_failures"]["evaluator_id"], judge.to_string());

    let judged = |trace: &str, passed: bool| {
        let at = Timestamp::now();
        (
            json!({"id": format!("judge-{trace}"), "type": "score", "timestamp": at, "body": {
                "id": format!("judge-{trace}"), "trace_id": trace, "name": "correct", "value": passed,
                "source": "eval", "evaluator_id": judge.to_string(), "timestamp": at}})
            .to_string(),
            None,
        )
    };
    let load = |events: Vec<(String, Option<agenttrace_schemas::event::Cost>)>| {
        let env = &env;
        async move {
            agenttrace_etl::ingest::direct::load(&env.clickhouse, p, "rules", "judge", &events)
                .await
                .unwrap()
        }
    };
    let run = || {
        let (pg, env) = (&pg, &env);
        async move {
            agenttrace_jobs::run_job(agenttrace_jobs::Job::AnnotationRules, pg, &env.clickhouse, None)
                .await
                .unwrap()
        }
    };
    let items = || {
        let (auth, queue) = (&auth, &queue);
        async move {
            let (_, listed) = call(auth, "GET", &format!("{queue}/items"), Value::Null).await;
            listed["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|item| item["objectId"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    load(vec![judged("t-0", false), judged("t-1", true)]).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    run().await;
    assert_eq!(items().await, ["t-0"]);
    run().await;
    assert_eq!(
        items().await,
        ["t-0"],
        "a run sees only what arrived since the last"
    );
    load(vec![judged("t-2", false)]).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    run().await;
    assert_eq!(items().await, ["t-0", "t-2"]);
    let (_, stopped) = call(&auth, "PUT", &format!("{queue}/rule"), json!({"rule": null})).await;
    assert_eq!(stopped["rule"], Value::Null);
}
