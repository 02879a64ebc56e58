//! A table of the caller's project, deduplicated, as Arrow IPC or Parquet.

use agenttrace_schemas::Timestamp;
use uuid::Uuid;

use crate::analytics::conditions::Conditions;
use crate::analytics::stream::{OutputFormat, stream_query};
use crate::analytics::{AnalyticsError, Download};
use crate::clickhouse::{ClickHouse, Table};

/// What an analyst asks for (`GET /v1/export/{table}?from=&to=&columns=&format=`).
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ExportParams {
    /// RFC 3339 lower bound (inclusive) on the table's time column.
    pub from: Option<String>,
    /// RFC 3339 upper bound (exclusive).
    pub to: Option<String>,
    /// Comma-separated column names, as the event model names them (`start_time`).
    pub columns: Option<String>,
    /// `arrow` (default) or `parquet`.
    #[param(schema_with = crate::http::analytics::export_formats)]
    pub format: Option<String>,
}

fn bound(value: Option<&str>, default: i64, name: &str) -> Result<i64, AnalyticsError> {
    match value {
        None => Ok(default),
        Some(text) => Timestamp::parse(text)
            .map(Timestamp::as_micros)
            .map_err(|e| AnalyticsError::InvalidRange(format!("{name}: {e}"))),
    }
}

/// The stored columns for a requested list (a name may omit the `_us` suffix).
fn stored_columns(table: Table, list: Option<&str>) -> Result<String, AnalyticsError> {
    let Some(list) = list else {
        return Ok("*".to_owned());
    };
    let schema = table.schema();
    let mut chosen = Vec::new();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let stored = [name.to_owned(), format!("{name}_us")]
            .into_iter()
            .find(|candidate| schema.field_with_name(candidate).is_ok())
            .ok_or_else(|| AnalyticsError::UnknownColumn {
                table: table.name(),
                column: name.to_owned(),
            })?;
        chosen.push(stored);
    }
    if chosen.is_empty() {
        return Err(AnalyticsError::InvalidParameter {
            field: "columns",
            message: "names no column; leave it out for every column".into(),
        });
    }
    Ok(chosen.join(", "))
}

/// Streams `table_name` of `project` as asked.
pub async fn export_table(
    clickhouse: &ClickHouse,
    project: Uuid,
    table_name: &str,
    params: &ExportParams,
) -> Result<Download, AnalyticsError> {
    let table = Table::from_name(table_name).ok_or_else(|| AnalyticsError::UnknownTable {
        name: table_name.to_owned(),
        known: Table::ALL.map(Table::name).join(", "),
    })?;
    let format = match OutputFormat::parse(params.format.as_deref().unwrap_or("arrow")) {
        Ok(OutputFormat::Json) | Err(_) => {
            return Err(AnalyticsError::InvalidFormat(
                "format must be arrow or parquet".into(),
            ));
        }
        Ok(format) => format,
    };
    let from = bound(params.from.as_deref(), i64::MIN, "from")?;
    let to = bound(params.to.as_deref(), i64::MAX, "to")?;
    let columns = stored_columns(table, params.columns.as_deref())?;
    // Built here from checked parts (a catalog table, known columns, integer bounds, the
    // caller's UUID), so it can use FINAL, which deduplicates while streaming; the analyst
    // query guard has to dedup with a sort instead (sqlparser cannot express FINAL).
    let mut conditions = Conditions::project(project);
    conditions.time_range(table.time_column(), Some(from), Some(to));
    let sql = format!(
        "SELECT {columns} FROM {} FINAL {}",
        table.name(),
        conditions.render()
    );
    let body = stream_query(clickhouse, &sql, format, true, &[("readonly", "1")])
        .await
        .map_err(|e| AnalyticsError::built(&sql, e))?;
    Ok(Download {
        body,
        format,
        file_name: format!("{}.{}", table.name(), format.extension()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_named_as_in_the_event_model_and_checked() {
        assert_eq!(stored_columns(Table::Observations, None).unwrap(), "*");
        assert_eq!(
            stored_columns(Table::Observations, Some("id, start_time,model")).unwrap(),
            "id, start_time_us, model"
        );
        assert!(matches!(
            stored_columns(Table::Traces, Some("id,secret")),
            Err(AnalyticsError::UnknownColumn { .. })
        ));
        for empty in ["", " , ,"] {
            assert!(
                matches!(
                    stored_columns(Table::Traces, Some(empty)),
                    Err(AnalyticsError::InvalidParameter { field: "columns", .. })
                ),
                "{empty:?}"
            );
        }
    }
}
