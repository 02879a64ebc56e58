//! The rows the read API answers with, as JSON schemas for the OpenAPI document.
//!
//! A stored row's schema comes from its table's Arrow schema in the catalog, through the same
//! changes [`readable`](super::paging::readable) makes (bookkeeping columns dropped, metadata
//! as an object, payloads as the JSON they were sent as), so a column added to a table is in
//! the document by itself. The columns a query computes are declared here beside the names the
//! query gives them. `tests/tests/openapi_rows.rs` checks real answers against these schemas,
//! closed: a field a schema does not name fails it.

use agenttrace_schemas::event::{
    FileOperationKind, Level, MetricKind, ObservationType, ScoreDataType, ScoreSource,
};
use arrow_schema::{DataType, Field};
use utoipa::openapi::schema::{
    AdditionalProperties, AnyOfBuilder, ArrayBuilder, Object, ObjectBuilder, Schema, SchemaType, Type,
};
use utoipa::openapi::{Ref, RefOr};

use crate::clickhouse::Table;

/// Columns `readable` removes: storage bookkeeping.
pub const INTERNAL_COLUMNS: [&str; 4] = ["project_id", "project_name", "version", "event_id"];

/// Text columns `readable` parses back into the JSON they were sent as.
pub const JSON_COLUMNS: [&str; 3] = ["input", "output", "model_parameters"];

/// A JSON type, nullable or not.
fn typed(kind: Type, nullable: bool) -> Schema {
    Schema::Object(Object::with_type(typed_kind(kind, nullable)))
}

pub fn array(items: impl Into<RefOr<Schema>>) -> Schema {
    let items: RefOr<Schema> = items.into();
    Schema::Array(ArrayBuilder::new().items(items).build())
}

/// Any JSON value (what an agent sent as input or output).
pub fn any() -> Schema {
    Schema::Object(Object::with_type(SchemaType::AnyValue))
}

/// Text naming one of `values` of a wire enum (or null, if `nullable`).
fn one_of<T: Copy>(values: &[T], name: fn(T) -> &'static str, nullable: bool) -> Schema {
    let names: Vec<&str> = values.iter().map(|v| name(*v)).collect();
    text_of(&names, nullable)
}

/// Text with one of `values` (or null, if `nullable`).
pub fn text_of(values: &[&str], nullable: bool) -> Schema {
    let mut values: Vec<Option<&str>> = values.iter().copied().map(Some).collect();
    if nullable {
        values.push(None);
    }
    let mut object = ObjectBuilder::new()
        .schema_type(typed_kind(Type::String, nullable))
        .enum_values(Some(values));
    if nullable {
        object = object.description(Some("null when not set"));
    }
    Schema::Object(object.build())
}

fn typed_kind(kind: Type, nullable: bool) -> SchemaType {
    if nullable {
        SchemaType::from_iter([kind, Type::Null])
    } else {
        SchemaType::Type(kind)
    }
}

/// Text columns whose values ingest checks against a closed set.
fn enumerated(table: Table, column: &str, nullable: bool) -> Option<Schema> {
    Some(match (table, column) {
        (Table::Observations, "level") => one_of(Level::ALL, Level::as_str, nullable),
        (Table::Observations, "type") => one_of(ObservationType::ALL, ObservationType::as_str, nullable),
        (Table::Scores, "data_type") => one_of(ScoreDataType::ALL, ScoreDataType::as_str, nullable),
        (Table::Scores, "source") => one_of(ScoreSource::ALL, ScoreSource::as_str, nullable),
        (Table::FileOperations, "operation") => {
            one_of(FileOperationKind::ALL, FileOperationKind::as_str, nullable)
        }
        (Table::Metrics, "kind") => one_of(MetricKind::ALL, MetricKind::as_str, nullable),
        _ => return None,
    })
}

/// A column's value as ClickHouse's `JSONEachRow` writes it, 64-bit integers unquoted (as
/// [`read`](super::paging::read) asks) and decimals as numbers.
fn column(table: Table, field: &Field) -> Schema {
    if let Some(schema) = enumerated(table, field.name(), field.is_nullable()) {
        return schema;
    }
    value(field.data_type(), field.is_nullable())
}

fn value(data_type: &DataType, nullable: bool) -> Schema {
    match data_type {
        DataType::Utf8 | DataType::LargeUtf8 => typed(Type::String, nullable),
        DataType::Boolean => typed(Type::Boolean, nullable),
        DataType::Float32 | DataType::Float64 | DataType::Decimal128(..) => typed(Type::Number, nullable),
        DataType::List(item) | DataType::LargeList(item) => {
            array(value(item.data_type(), item.is_nullable()))
        }
        integer if integer.is_integer() => typed(Type::Integer, nullable),
        other => unreachable!("no ClickHouse column is stored as Arrow {other}"),
    }
}

/// The properties of one kind of row, in the order the row carries them.
#[derive(Default)]
pub struct Row {
    properties: Vec<(String, Schema, bool)>,
}

impl Row {
    /// `table`'s whole row as [`readable`](super::paging::readable) gives it.
    pub fn readable(table: Table) -> Row {
        let mut row = Row::default();
        for field in table.schema().fields() {
            let name = field.name().as_str();
            match name {
                _ if INTERNAL_COLUMNS.contains(&name) => {}
                "metadata_keys" => {}
                "metadata_values" => {
                    row = row.field("metadata", metadata());
                }
                _ if JSON_COLUMNS.contains(&name) => {
                    row = row.field(name, any());
                }
                _ => row = row.field(name, column(table, field)),
            }
        }
        match table.insert_time_column() {
            Some(inserted) => row.field(inserted, date_time()),
            None => row,
        }
    }

    /// The `columns` of `table`, as stored.
    pub fn stored(table: Table, columns: &[&str]) -> Row {
        Row::default().columns(table, columns)
    }

    /// Adds stored columns of `table`; a name the table lacks is a programming error.
    pub fn columns(mut self, table: Table, columns: &[&str]) -> Row {
        let schema = table.schema();
        for name in columns {
            let field = schema
                .field_with_name(name)
                .unwrap_or_else(|_| panic!("{} has no column {name}", table.name()));
            self = self.field(name, column(table, field));
        }
        self
    }

    /// Adds (or replaces) a field every row carries.
    pub fn field(self, name: &str, schema: Schema) -> Row {
        self.put(name, schema, true)
    }

    /// Adds a field some rows leave out.
    pub fn optional(self, name: &str, schema: Schema) -> Row {
        self.put(name, schema, false)
    }

    fn put(mut self, name: &str, schema: Schema, required: bool) -> Row {
        match self.properties.iter_mut().find(|(n, ..)| n == name) {
            Some(existing) => *existing = (name.to_owned(), schema, required),
            None => self.properties.push((name.to_owned(), schema, required)),
        }
        self
    }

    pub fn build(self, description: &str) -> Schema {
        let mut object = ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(description));
        for (name, schema, required) in self.properties {
            object = object.property(&name, schema);
            if required {
                object = object.required(&name);
            }
        }
        Schema::Object(object.build())
    }
}

/// A ClickHouse `DateTime` as `JSONEachRow` writes it: `2026-12-05 19:18:14`, UTC.
fn date_time() -> Schema {
    Schema::Object(
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$"))
            .description(Some("UTC, `YYYY-MM-DD hh:mm:ss`"))
            .build(),
    )
}

/// Metadata as an object of text values.
pub fn metadata() -> Schema {
    Schema::Object(
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .additional_properties(Some(AdditionalProperties::RefOr(RefOr::T(typed(
                Type::String,
                false,
            )))))
            .build(),
    )
}

pub fn string(nullable: bool) -> Schema {
    typed(Type::String, nullable)
}

pub fn integer(nullable: bool) -> Schema {
    typed(Type::Integer, nullable)
}

pub fn number(nullable: bool) -> Schema {
    typed(Type::Number, nullable)
}

/// Always null: a field Langfuse has that AgentTrace does not store.
pub fn null() -> Schema {
    Schema::Object(Object::with_type(SchemaType::Type(Type::Null)))
}

pub fn boolean() -> Schema {
    typed(Type::Boolean, false)
}

pub fn strings() -> Schema {
    array(string(false))
}

/// A reference to another row schema by its name in the document.
pub fn reference(name: &str) -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(name))
}

/// Any of `schemas`.
pub fn any_of(schemas: impl IntoIterator<Item = RefOr<Schema>>) -> Schema {
    let mut builder = AnyOfBuilder::new();
    for schema in schemas {
        builder = builder.item(schema);
    }
    Schema::AnyOf(builder.build())
}

/// An object whose fields the query names, each a number, text or null.
pub fn open_row(description: &str) -> Schema {
    let scalar = SchemaType::from_iter([Type::Number, Type::String, Type::Boolean, Type::Null]);
    Schema::Object(
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(description))
            .additional_properties(Some(AdditionalProperties::RefOr(RefOr::T(Schema::Object(
                Object::with_type(scalar),
            )))))
            .build(),
    )
}

/// Declares a row schema: a unit type the OpenAPI derive can name, whose schema `$build`
/// makes; the row schemas it refers to by name follow `uses`.
#[macro_export]
macro_rules! row_schema {
    ($(#[$doc:meta])* $name:ident => $build:expr $(; uses $($used:ty),+)?) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $name;

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::RefOr::T($build)
            }
        }

        impl utoipa::ToSchema for $name {
            fn schemas(
                _schemas: &mut Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>)>,
            ) {
                $($(
                    _schemas.push((
                        <$used as utoipa::ToSchema>::name().into(),
                        <$used as utoipa::PartialSchema>::schema(),
                    ));
                )+)?
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stored_rows_follow_the_catalog_as_readable_changes_them() {
        let score = serde_json::to_value(Row::readable(Table::Scores).build("score")).unwrap();
        let properties = score["properties"].as_object().unwrap();
        for hidden in [
            "project_id",
            "project_name",
            "version",
            "event_id",
            "metadata_keys",
        ] {
            assert!(!properties.contains_key(hidden), "{hidden}");
        }
        assert_eq!(
            properties["metadata"]["additionalProperties"],
            json!({"type": "string"})
        );
        assert_eq!(properties["timestamp_us"], json!({"type": "integer"}));
        assert_eq!(properties["source"]["enum"], json!(["api", "eval", "annotation"]));
        let observation = serde_json::to_value(Row::readable(Table::Observations).build("o")).unwrap();
        assert_eq!(observation["properties"]["input"], json!({}));
        assert_eq!(
            observation["properties"]["total_cost"]["type"],
            json!(["number", "null"])
        );
        assert_eq!(observation["properties"]["level"]["enum"][0], json!("debug"));
    }

    #[test]
    #[should_panic(expected = "traces has no column nope")]
    fn a_column_the_table_lacks_is_caught() {
        Row::stored(Table::Traces, &["id", "nope"]);
    }
}
