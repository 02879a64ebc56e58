//! The OpenAPI document, generated from the code: each handler's `#[utoipa::path]`, the query
//! and path structs' `IntoParams`, the bodies' `ToSchema`, and the route table in
//! [`router`](crate::http::router), which is built from the same handlers (`routes!`). The
//! committed copy, `etl/api/openapi.json`, is checked against it by a test; rewrite it with
//! `AGENTTRACE_WRITE_OPENAPI=1 cargo test -p agenttrace-etl --lib openapi`, or print it with
//! `agenttrace openapi`.

use utoipa::Modify;
use utoipa::openapi::OpenApi;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};

use crate::http::error::ErrorBody;

/// What the document says besides its routes.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "AgentTrace ETL API",
        description = "Signed batches from the edge, and project-scoped exports and read-only queries for analysts. Every error is JSON {\"error\": code, \"message\": text}."
    ),
    servers((url = "http://127.0.0.1:8080")),
    components(schemas(ErrorBody)),
    modifiers(&SecuritySchemes)
)]
pub struct ApiDoc;

/// The three ways a caller proves who it is.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "apiKey",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "`Bearer public_key:secret_key`, or HTTP Basic with the public key as user and the secret key as password. Export needs the `export` scope, query the `query` scope (or `admin`).",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "edgeSignature",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "x-agenttrace-signature",
                "`t=<unix seconds>,v1=<hex HMAC-SHA256(secret, \"<t>.<body>\")>` with `x-agenttrace-key-id` naming the secret; at most 300 s off the server's clock.",
            ))),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A session token from /v1/auth/sign-in"))
                    .build(),
            ),
        );
    }
}

/// The document as `etl/api/openapi.json` holds it: pretty JSON and a final newline.
pub fn document() -> String {
    let mut text = crate::http::router::openapi()
        .to_pretty_json()
        .expect("an OpenAPI document serializes");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::document;

    #[test]
    fn every_operation_has_its_own_id() {
        let openapi = crate::http::router::openapi();
        let mut seen = HashSet::new();
        for (path, item) in &openapi.paths.paths {
            let operations = [&item.get, &item.post, &item.put, &item.patch, &item.delete];
            for operation in operations.into_iter().flatten() {
                let id = operation.operation_id.clone().unwrap_or_default();
                assert!(
                    seen.insert(id.clone()),
                    "operation id {id:?} of {path} is taken: set operation_id"
                );
            }
        }
    }

    const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/api/openapi.json");

    #[test]
    fn the_committed_openapi_document_is_the_generated_one() {
        let generated = document();
        if std::env::var_os("AGENTTRACE_WRITE_OPENAPI").is_some() {
            std::fs::write(COMMITTED, &generated).unwrap();
            return;
        }
        let committed = std::fs::read_to_string(COMMITTED).unwrap_or_default();
        assert!(
            committed == generated,
            "etl/api/openapi.json is not the document the code generates (a route, parameter or \
             schema changed): rewrite it with `AGENTTRACE_WRITE_OPENAPI=1 cargo test -p \
             agenttrace-etl --lib openapi`, then the UI's types with `npm run generate-api` in ui/"
        );
    }
}
