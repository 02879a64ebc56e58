//! The read API's answers as types, so that the OpenAPI document describes them. The rows
//! themselves are ClickHouse's `JSONEachRow` objects, kept as JSON values; their schemas (the
//! `R` of a page, the row types named below) are declared beside the queries that make them,
//! from the catalog (see [`rows`](super::rows)).

use std::marker::PhantomData;

use serde::Serialize;
use serde_json::Value;

use crate::analytics::langfuse::{LangfuseMetricsRow, LangfuseObservation};
use crate::analytics::metrics::{ObservationMetrics, ScoreMetrics};
use crate::analytics::scores::StoredScore;
use crate::analytics::traces::{
    FileOperation, GitLink, ObservationNode, SessionTrace, StoredTrace, TerminalCommand,
};

/// A page of rows of kind `R` by cursor: `next_cursor` (null on the last page) is the next
/// page's `cursor`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CursorPage<R> {
    /// The rows, newest first (a session's traces: oldest first).
    #[schema(value_type = Vec<R>)]
    pub data: Vec<Value>,
    /// The next page's `cursor`; null when this page is the last.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
    #[serde(skip)]
    #[schema(ignore)]
    row: PhantomData<R>,
}

impl<R> CursorPage<R> {
    pub fn new(data: Vec<Value>, next_cursor: Option<String>) -> Self {
        CursorPage {
            data,
            next_cursor,
            row: PhantomData,
        }
    }
}

/// A session's traces, oldest first, each with its summary, input and output.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionPage {
    pub session_id: String,
    /// The session's traces (trace-list rows with `input` and `output`).
    #[schema(value_type = Vec<SessionTrace>)]
    pub data: Vec<Value>,
    /// The next page's `cursor`; null when this page is the last.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// One trace: its row, its observations as a tree and what was recorded against it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TraceDetail {
    pub id: String,
    /// The trace's row; null while only its observations have arrived.
    #[schema(value_type = Option<StoredTrace>, required = true)]
    pub trace: Option<Value>,
    /// How many observations the tree holds (at most 10,000).
    pub observation_count: usize,
    /// Whether the trace had more observations than the tree holds.
    pub observations_truncated: bool,
    /// The root observations in time order, each with its `children`.
    #[schema(value_type = Vec<ObservationNode>)]
    pub observations: Vec<Value>,
    #[schema(value_type = Vec<StoredScore>)]
    pub scores: Vec<Value>,
    #[schema(value_type = Vec<FileOperation>)]
    pub file_operations: Vec<Value>,
    #[schema(value_type = Vec<TerminalCommand>)]
    pub terminal_commands: Vec<Value>,
    #[schema(value_type = Vec<GitLink>)]
    pub git_links: Vec<Value>,
}

/// `GET /v1/metrics`: the view, the dimensions asked for and one row per group.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MetricsAnswer {
    /// `observations` or `scores`.
    pub view: &'static str,
    pub dimensions: Vec<&'static str>,
    /// One row per bucket and dimension values: the bucket, each dimension asked for by name,
    /// and the view's measures.
    #[schema(value_type = Vec<MetricsRow>)]
    pub data: Vec<Value>,
}

crate::row_schema!(
    /// A metrics row of either view.
    MetricsRow => super::rows::any_of([
        super::rows::reference("ObservationMetrics"),
        super::rows::reference("ScoreMetrics"),
    ]);
    uses ObservationMetrics, ScoreMetrics
);

/// Langfuse's `GET /api/public/v2/observations`: observations in Langfuse's shape, by cursor.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LangfuseObservations {
    #[schema(value_type = Vec<LangfuseObservation>)]
    pub data: Vec<Value>,
    pub meta: LangfuseCursor,
}

/// Where the next page of a Langfuse v2 listing starts.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LangfuseCursor {
    /// Null on the last page.
    #[schema(required = true)]
    pub cursor: Option<String>,
}

/// Langfuse's `GET /api/public/v2/metrics`: one row per group, its columns depending on the query.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LangfuseMetrics {
    #[schema(value_type = Vec<LangfuseMetricsRow>)]
    pub data: Vec<Value>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The typed answers send what the `json!` ones did: same fields, same order, nulls kept.
    #[test]
    fn answers_keep_their_wire_shape() {
        let page = CursorPage::<StoredTrace>::new(vec![json!({"id": "t"})], None);
        assert_eq!(
            serde_json::to_string(&page).unwrap(),
            r#"{"data":[{"id":"t"}],"next_cursor":null}"#
        );
        let detail = TraceDetail {
            id: "t".into(),
            trace: None,
            observation_count: 0,
            observations_truncated: false,
            observations: vec![],
            scores: vec![],
            file_operations: vec![],
            terminal_commands: vec![],
            git_links: vec![],
        };
        assert_eq!(
            serde_json::to_string(&detail).unwrap(),
            r#"{"id":"t","trace":null,"observation_count":0,"observations_truncated":false,"observations":[],"scores":[],"file_operations":[],"terminal_commands":[],"git_links":[]}"#
        );
        let observations = LangfuseObservations {
            data: vec![],
            meta: LangfuseCursor { cursor: None },
        };
        assert_eq!(
            serde_json::to_string(&observations).unwrap(),
            r#"{"data":[],"meta":{"cursor":null}}"#
        );
    }
}
