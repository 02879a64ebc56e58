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

    /// The handlers' sources, by file name (not the web UI's, the server's or this file).
    fn handler_sources() -> Vec<(String, String)> {
        let http = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http");
        let mut sources = Vec::new();
        for dir in [http.clone(), http.join("control")] {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                let handlers = path.extension().is_some_and(|e| e == "rs")
                    && !["ui.rs", "server.rs", "openapi.rs", "limits.rs"]
                        .iter()
                        .any(|other| path.ends_with(other));
                if handlers {
                    let name = path.display().to_string();
                    sources.push((name, std::fs::read_to_string(path).unwrap()));
                }
            }
        }
        sources
    }

    /// The document names each schema after its type, without its module: two types of one
    /// name would be one schema, the last registered replacing the other in every route that
    /// uses either (a queue's `Item` once replaced a dataset's). Generic types are named per use.
    #[test]
    fn no_two_schema_types_share_a_name() {
        fn sources(dir: &std::path::Path, found: &mut Vec<(String, String)>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    sources(&path, found);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    found.push((
                        path.display().to_string(),
                        std::fs::read_to_string(&path).unwrap(),
                    ));
                }
            }
        }
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = Vec::new();
        sources(&root.join("src"), &mut files);
        sources(&root.join("../schemas/src"), &mut files);
        let mut seen: std::collections::HashMap<String, String> = Default::default();
        for (file, text) in &files {
            let lines: Vec<&str> = text.lines().collect();
            for (i, line) in lines.iter().enumerate() {
                if !line.contains("ToSchema") || !line.trim_start().starts_with("#[") {
                    continue;
                }
                let Some(declaration) = lines[i + 1..].iter().map(|l| l.trim_start()).find(|l| {
                    l.starts_with("pub struct ")
                        || l.starts_with("pub enum ")
                        || l.starts_with("struct ")
                        || l.starts_with("enum ")
                }) else {
                    continue;
                };
                let name: String = declaration
                    .split_whitespace()
                    .find(|word| !["pub", "struct", "enum"].contains(word))
                    .unwrap_or_default()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '<')
                    .collect();
                if name.contains('<') {
                    continue;
                }
                if let Some(other) = seen.insert(name.clone(), file.clone()) {
                    panic!("two schema types are named {name}: in {other} and {file}; rename one");
                }
            }
        }
    }

    /// The edge forwards Langfuse's control-plane paths by `LANGFUSE_FORWARDED`: each of the
    /// ETL's `/api/public` routes must be under one of them (or the edge would answer 404 for
    /// it), and each listed path must lead to a route of the ETL.
    #[test]
    fn the_edge_forwards_exactly_the_langfuse_routes_served_here() {
        use agenttrace_schemas::routes::{LANGFUSE_FORWARDED, LANGFUSE_FORWARDED_BELOW, langfuse_forwarded};
        let document: serde_json::Value = serde_json::from_str(&document()).unwrap();
        let paths: Vec<&String> = document["paths"].as_object().unwrap().keys().collect();
        for path in paths.iter().filter(|p| p.starts_with("/api/public/")) {
            assert!(
                langfuse_forwarded(path),
                "{path} is served here but the edge does not forward it: add it to LANGFUSE_FORWARDED"
            );
        }
        for root in LANGFUSE_FORWARDED.iter().chain(LANGFUSE_FORWARDED_BELOW) {
            assert!(
                paths
                    .iter()
                    .any(|path| langfuse_forwarded(path) && path.starts_with(root)),
                "the edge forwards {root}, which no route here serves"
            );
        }
    }

    #[test]
    fn every_route_but_the_web_uis_is_in_the_document() {
        let router = include_str!("router.rs");
        let plain: Vec<&str> = router
            .match_indices(".route(\"")
            .map(|(at, _)| router[at..].split('"').nth(1).unwrap())
            .collect();
        assert_eq!(
            plain,
            ["/", "/assets/{name}"],
            "register API routes with routes!(handler) and #[utoipa::path] on the handler, so \
             that the OpenAPI document has them"
        );
    }

    /// A handler's query or path struct is described only when its `#[utoipa::path]` names it
    /// in `params(...)` (utoipa does not take `IntoParams` types from the arguments).
    #[test]
    fn every_query_and_path_struct_is_in_its_routes_params() {
        for (file, source) in handler_sources() {
            for attribute in source.split("#[utoipa::path(").skip(1) {
                let (attribute, rest) = attribute.split_once(")]\n").unwrap();
                let signature = rest.split_once(") ->").map_or(rest, |(s, _)| s);
                let name = signature
                    .trim_start_matches("pub async fn ")
                    .split('(')
                    .next()
                    .unwrap_or_default();
                for extractor in ["Query<", "Path<"] {
                    for (at, _) in signature.match_indices(extractor) {
                        let ty = signature[at + extractor.len()..].split('>').next().unwrap();
                        let named = attribute
                            .lines()
                            .filter(|line| line.trim_start().starts_with("params("))
                            .flat_map(|line| line.split(|c: char| !c.is_alphanumeric()))
                            .any(|word| word == ty);
                        let described =
                            !ty.starts_with(char::is_uppercase) || ["String", "Uuid"].contains(&ty) || named;
                        assert!(described, "{file}: {name} takes {ty}: name it in params(...)");
                    }
                }
            }
        }
    }

    #[test]
    fn every_handler_has_its_route_described() {
        for (file, source) in handler_sources() {
            let handlers = source.matches("\npub async fn ").count();
            let described = source.matches("#[utoipa::path(").count();
            assert_eq!(handlers, described, "{file}: a handler without #[utoipa::path]");
        }
    }

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
