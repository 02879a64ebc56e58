//! What control-plane handlers share when reading a request and shaping a listing: JSON bodies
//! that name the field at fault, pages, and which version of a prompt is asked for; and the
//! refusal of the NUL character in any JSON body string or parameter (PostgreSQL stores it in
//! no text), as a 400 naming the field rather than a database error.

use axum::Json;
use axum::extract::{FromRequestParts, Query, RawPathParams};
use serde::{Deserialize, Serialize};

use crate::control::prompts::{self, Selector};
use crate::http::error::ApiError;

/// A 400 naming the field and what is wrong with it.
pub fn bad(field: &str, message: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request("invalid_request", format!("{field}: {message}"))
}

/// A JSON body, with the field at fault named when it does not fit: also when a string in it
/// (a value or a key, however deep) holds the NUL character, which PostgreSQL stores in neither
/// `text` nor `jsonb`.
pub fn json_body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    reject_nul_in_json(bytes, "")?;
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        bad(if path == "." { "body" } else { &path }, e.into_inner())
    })
}

/// What a field holding NUL is told.
const NUL: &str = "must not contain the NUL character (\\u0000)";

/// A 400 naming the first string of the JSON document `bytes` (after `prefix`, e.g. `line 3`)
/// that holds NUL. JSON can only write NUL as the escape `\u0000` (a raw 0 byte is no JSON), so
/// a document without that text is passed over without parsing it again.
pub fn reject_nul_in_json(bytes: &[u8], prefix: &str) -> Result<(), ApiError> {
    if memchr::memmem::find(bytes, br"\u0000").is_none() {
        return Ok(());
    }
    // Not JSON: the caller's parse names what is wrong with it.
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return Ok(());
    };
    let Some(path) = nul_path(&value, String::new()) else {
        return Ok(());
    };
    let field = match (prefix.is_empty(), path.is_empty()) {
        (true, true) => "body".to_owned(),
        (true, false) => path,
        (false, true) => prefix.to_owned(),
        (false, false) => format!("{prefix}: {path}"),
    };
    Err(bad(&field, NUL))
}

/// The path (as `serde_path_to_error` writes one: `a.b[2].c`) of the first string or key in
/// `value` holding NUL.
fn nul_path(value: &serde_json::Value, path: String) -> Option<String> {
    let join = |path: &str, key: &str| {
        if path.is_empty() {
            key.to_owned()
        } else {
            format!("{path}.{key}")
        }
    };
    match value {
        serde_json::Value::String(text) => text.contains('\0').then_some(path),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| nul_path(item, format!("{path}[{i}]"))),
        serde_json::Value::Object(fields) => fields.iter().find_map(|(key, field)| {
            if key.contains('\0') {
                return Some(join(&path, &key.replace('\0', "\\u0000")));
            }
            nul_path(field, join(&path, key))
        }),
        _ => None,
    }
}

/// Routes whose parameters only filter ClickHouse rows, which may hold NUL (ingest keeps what
/// agents send, and `clickhouse::quote` escapes it): a name with NUL finds its rows there.
pub(crate) const CLICKHOUSE_READS: &[&str] = &[
    "/v1/traces",
    "/v1/search",
    "/v1/traces/{id}",
    "/v1/traces/{id}/observations/{observation_id}",
    "/v1/sessions",
    "/v1/sessions/{id}",
    "/v1/observations",
    "/v1/scores",
    "/v1/metrics",
    "/api/public/v2/observations",
    "/api/public/v2/metrics",
];

/// A 400 naming the query or path parameter that holds NUL (once percent-decoded), before any
/// handler runs: every route's parameters, whatever extracts them later, but
/// [`CLICKHOUSE_READS`]'.
pub(crate) async fn reject_nul_in_parameters(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Result<axum::response::Response, ApiError> {
    let reads_clickhouse = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .is_some_and(|path| CLICKHOUSE_READS.contains(&path.as_str()));
    if reads_clickhouse {
        return Ok(next.run(request).await);
    }
    let (mut parts, body) = request.into_parts();
    // Parameters that do not decode are the extractors' to refuse, with their own messages.
    if let Ok(Query(pairs)) = Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
        && let Some((name, _)) = pairs
            .iter()
            .find(|(name, value)| name.contains('\0') || value.contains('\0'))
    {
        return Err(bad(&name.replace('\0', "\\u0000"), NUL));
    }
    if let Ok(params) = RawPathParams::from_request_parts(&mut parts, &()).await
        && let Some((name, _)) = params.iter().find(|(_, value)| value.contains('\0'))
    {
        return Err(bad(name, NUL));
    }
    Ok(next.run(axum::extract::Request::from_parts(parts, body)).await)
}

/// `?page=&limit=` of a listing: pages start at 1, 50 rows by default, 1000 at most.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// From 1 (the default).
    pub page: Option<i64>,
    /// Rows per page: 1 to 1000, 50 by default.
    pub limit: Option<i64>,
}

impl Page {
    /// (page, limit), checked.
    pub fn resolve(&self) -> Result<(i64, i64), ApiError> {
        let page = self.page.unwrap_or(1);
        let limit = self.limit.unwrap_or(50);
        if page < 1 {
            return Err(bad("page", "starts at 1"));
        }
        if !(1..=1000).contains(&limit) {
            return Err(bad("limit", "must be between 1 and 1000"));
        }
        Ok((page, limit))
    }
}

/// A page of a listing, in Langfuse's envelope (AgentTrace's own routes use it too).
#[derive(Serialize, utoipa::ToSchema)]
pub struct Paged<T> {
    pub data: Vec<T>,
    pub meta: PageMeta,
}

/// Where a page is in its listing.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PageMeta {
    /// From 1.
    pub page: i64,
    pub limit: i64,
    pub total_items: i64,
    pub total_pages: i64,
}

/// A page of one of the control plane's short lists (members, keys, projects, evaluators,
/// experiments, prices: tens of rows, read whole), in the same envelope as [`paged`].
pub fn page_of<T>(all: Vec<T>, page: &Page) -> Result<Json<Paged<T>>, ApiError> {
    let (page, limit) = page.resolve()?;
    let total = all.len() as i64;
    // Saturating: a page far past the end is an empty page, never an overflow.
    let skip = usize::try_from(crate::control::offset(page, limit)).unwrap_or(usize::MAX);
    let data = all.into_iter().skip(skip).take(limit as usize).collect();
    Ok(paged(data, page, limit, total))
}

/// A page of a listing.
pub fn paged<T>(data: Vec<T>, page: i64, limit: i64, total: i64) -> Json<Paged<T>> {
    Json(Paged {
        data,
        meta: PageMeta {
            page,
            limit,
            total_items: total,
            total_pages: (total + limit - 1) / limit,
        },
    })
}

/// `?version=` or `?label=` (not both) of a prompt.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PromptQuery {
    /// A version number (not with `label`).
    version: Option<i32>,
    /// A label, `production` by default (not with `version`).
    label: Option<String>,
}

impl PromptQuery {
    /// The version asked for; the `production` label when neither is given.
    pub fn selector(&self) -> Result<Selector, ApiError> {
        Ok(self
            .given()?
            .unwrap_or_else(|| Selector::Label(prompts::PRODUCTION.to_owned())))
    }

    /// The version asked for, if any (a delete without one removes every version).
    pub fn given(&self) -> Result<Option<Selector>, ApiError> {
        match (self.version, &self.label) {
            (Some(_), Some(_)) => Err(bad("version", "give a version or a label, not both")),
            (Some(version), None) => Ok(Some(Selector::Version(version))),
            (None, Some(label)) => Ok(Some(Selector::Label(label.clone()))),
            (None, None) => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by schemathesis: `(page - 1) * limit` overflowed for a huge page (a panic in
    /// debug builds, a wrapped offset in release ones).
    #[test]
    fn a_page_far_past_the_end_is_empty() {
        let page = Page {
            page: Some(61_489_146_912_365_174),
            limit: Some(150),
        };
        let answer = page_of(vec![1, 2, 3], &page).unwrap();
        assert!(answer.data.is_empty());
        assert_eq!(answer.meta.total_items, 3);
    }

    #[test]
    fn nul_in_any_json_string_names_its_field() {
        let refused = |json: &str| {
            json_body::<serde_json::Value>(json.as_bytes())
                .unwrap_err()
                .message
        };
        assert_eq!(
            refused(r#"{"name": "d", "input_schema": {"properties": {"q": {"description": "a\u0000b"}}}}"#),
            "input_schema.properties.q.description: must not contain the NUL character (\\u0000)"
        );
        assert!(refused(r#"{"tags": ["ok", "no\u0000"]}"#).starts_with("tags[1]: "));
        assert!(refused(r#"{"metadata": {"k\u0000": 1}}"#).starts_with("metadata.k\\u0000: "));
        assert!(refused(r#""\u0000""#).starts_with("body: "));
        // An escaped backslash before `u0000` is no NUL.
        assert!(json_body::<serde_json::Value>(br#"{"a": "\\u0000"}"#).is_ok());
        assert!(
            reject_nul_in_json(br#"{"input": "\u0000"}"#, "line 2")
                .unwrap_err()
                .message
                .starts_with("line 2: input: ")
        );
    }
}
