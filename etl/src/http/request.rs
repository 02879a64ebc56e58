//! What control-plane handlers share when reading a request and shaping a listing: JSON bodies
//! that name the field at fault, pages, and which version of a prompt is asked for.

use axum::Json;
use serde::{Deserialize, Serialize};

use crate::control::prompts::{self, Selector};
use crate::http::error::ApiError;

/// A 400 naming the field and what is wrong with it.
pub fn bad(field: &str, message: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request("invalid_request", format!("{field}: {message}"))
}

/// A JSON body, with the field at fault named when it does not fit.
pub fn json_body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        bad(if path == "." { "body" } else { &path }, e.into_inner())
    })
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
    let data = all
        .into_iter()
        .skip(((page - 1) * limit) as usize)
        .take(limit as usize)
        .collect();
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
