//! The project's dead letters (events the ETL refused, kept with the reason and the raw JSON
//! exactly as received), newest first, by cursor.

use uuid::Uuid;

use crate::analytics::AnalyticsError;
use crate::analytics::answers::CursorPage;
use crate::analytics::conditions::Conditions;
use crate::analytics::paging::{cursor_at, next_page, page_limit, parse_json_rows, read};
use crate::analytics::rows::{self, Row};
use crate::clickhouse::ClickHouse;
use crate::clickhouse::catalog::Table;
use crate::row_schema;

/// A dead letter's identity: its batch and its place in it.
const ID: &str = "concat(batch_id, '/', toString(event_index))";

/// The stored columns a listed dead letter carries.
const COLUMNS: [&str; 7] = [
    "batch_id",
    "event_index",
    "event_id",
    "event_type",
    "received_at_us",
    "reason",
    "raw",
];

row_schema!(
    /// A refused event: where it was in its batch, why it was refused, and the JSON as received.
    DeadLetter => Row::default()
        .field("id", rows::string(false))
        .columns(Table::DeadLetters, &COLUMNS)
        .build("A refused event, its reason and its JSON exactly as received.")
);

/// One page of dead letters with `next_cursor` while more remain. Refusals are rare, so the
/// project's range of the table is read whole.
pub async fn dead_letter_list(
    clickhouse: &ClickHouse,
    project: Uuid,
    limit: Option<usize>,
    cursor: Option<&str>,
) -> Result<CursorPage<DeadLetter>, AnalyticsError> {
    let limit = page_limit(limit, 50, 1000)?;
    let mut conditions = Conditions::project(project);
    conditions.before("received_at_us", ID, cursor_at(cursor)?.as_ref());
    let sql = format!(
        "SELECT {ID} AS id, {} FROM dead_letters FINAL {}
         ORDER BY received_at_us DESC, id DESC LIMIT {} FORMAT JSONEachRow",
        COLUMNS.join(", "),
        conditions.render(),
        limit + 1
    );
    let body = read(clickhouse, &sql).await?;
    let mut rows = parse_json_rows(&body)?;
    let next_cursor = next_page(&mut rows, limit, "received_at_us");
    Ok(CursorPage::new(rows, next_cursor))
}
