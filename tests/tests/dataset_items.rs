//! Dataset item ids are each project's own, on real PostgreSQL: the same id in two projects is
//! two items (a 409 used to tell one project that the other's existed), and deleting or
//! checking one never touches the other's.

use agenttrace_etl::control::datasets::{self, NewDataset, NewItem};
use agenttrace_tests::TestEnv;
use serde_json::json;
use uuid::Uuid;

async fn item(pg: &tokio_postgres::Client, project: Uuid, question: &str) -> datasets::DatasetItem {
    datasets::upsert_item(
        pg,
        project,
        &NewItem {
            id: Some("q1".into()),
            dataset_name: "d".into(),
            input: Some(json!({ "q": question })),
            ..NewItem::default()
        },
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn the_same_item_id_in_two_projects_is_two_items() {
    let env = TestEnv::migrated().await;
    let pg = env.postgres().await;
    let (a, b) = (
        env.create_project("items-a").await.key.project_id,
        env.create_project("items-b").await.key.project_id,
    );
    for project in [a, b] {
        let dataset = NewDataset {
            name: "d".into(),
            ..NewDataset::default()
        };
        datasets::upsert(&pg, project, &dataset).await.unwrap();
    }
    item(&pg, a, "from a").await;
    // B takes the same id: its own item, not a conflict, and A's is untouched.
    let theirs = item(&pg, b, "from b").await;
    assert_eq!(theirs.input, json!({"q": "from b"}));
    let ours = datasets::get_item(&pg, a, "q1").await.unwrap();
    assert_eq!(ours.input, json!({"q": "from a"}));

    // Deleting B's leaves A's.
    datasets::delete_item(&pg, b, "q1").await.unwrap();
    assert!(datasets::get_item(&pg, b, "q1").await.is_err());
    assert_eq!(
        datasets::get_item(&pg, a, "q1").await.unwrap().input,
        json!({"q": "from a"})
    );

    // An item's project is its dataset's, whatever an INSERT says.
    let stored: Uuid = pg
        .query_one("SELECT project_id FROM dataset_items WHERE id = 'q1'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, a);
}
