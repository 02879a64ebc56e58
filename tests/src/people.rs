//! People signed in to an ETL: an account made in PostgreSQL, then a session from the real
//! sign-in route.

use serde_json::{Value, json};
use uuid::Uuid;

use agenttrace_etl::control::identity;

/// The password of every account these helpers make.
pub const PASSWORD: &str = "a long enough password";

/// A person with a session token.
pub struct Person {
    pub id: Uuid,
    pub email: String,
    pub token: String,
}

/// Creates `email`'s account and signs it in through `{url}/v1/auth/sign-in`.
pub async fn signed_in(pg: &tokio_postgres::Client, url: &str, email: &str) -> Person {
    let user = identity::create_user(pg, email, None, PASSWORD).await.unwrap();
    let answer = reqwest::Client::new()
        .post(format!("{url}/v1/auth/sign-in"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200, "signing in {email}");
    let answer: Value = answer.json().await.unwrap();
    Person {
        id: user.id,
        email: user.email,
        token: answer["token"].as_str().unwrap().to_owned(),
    }
}
