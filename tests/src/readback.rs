//! Reading rows back from ClickHouse and turning them into the event bodies agents sent, so
//! tests can compare what came out with what went in, field by field.

use agenttrace_etl::clickhouse::{ClickHouse, ClickHouseConfig};
use agenttrace_schemas::Timestamp;
use serde_json::{Map, Value, json};

use crate::TestEnv;

/// Reads rows as JSON objects with 64-bit integers unquoted.
pub async fn json_rows(env: &TestEnv, sql: &str) -> Vec<Map<String, Value>> {
    let client = ClickHouse::new(ClickHouseConfig {
        url: format!(
            "{}/?output_format_json_quote_64bit_integers=0",
            env.clickhouse.url()
        ),
        database: env.name.clone(),
        user: None,
        password: None,
        cluster: env.clickhouse.cluster().map(str::to_owned),
        node_urls: Vec::new(),
    });
    let text = client
        .query_text(&format!("{sql} FORMAT JSONEachRow"))
        .await
        .unwrap();
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn take(row: &mut Map<String, Value>, column: &str) -> Value {
    row.remove(column).unwrap_or_else(|| panic!("no column {column}"))
}

fn time_field(row: &mut Map<String, Value>, column: &str, field: &str) {
    let value = take(row, column);
    let value = value
        .as_i64()
        .map_or(Value::Null, |us| json!(Timestamp::from_micros(us).to_string()));
    row.insert(field.to_owned(), value);
}

fn json_field(row: &mut Map<String, Value>, column: &str) {
    let value = take(row, column);
    let parsed = value
        .as_str()
        .map_or(Value::Null, |text| serde_json::from_str(text).unwrap());
    row.insert(column.to_owned(), parsed);
}

fn metadata_field(row: &mut Map<String, Value>) {
    let keys = take(row, "metadata_keys");
    let values = take(row, "metadata_values");
    let metadata: Map<String, Value> = keys
        .as_array()
        .unwrap()
        .iter()
        .zip(values.as_array().unwrap())
        .map(|(k, v)| (k.as_str().unwrap().to_owned(), v.clone()))
        .collect();
    row.insert("metadata".into(), Value::Object(metadata));
}

/// The select list that [`body_from_row`] expects for `table`. Float64 values also come as
/// their bit pattern, because ClickHouse prints floats with 15 significant digits.
pub fn select_list(table: &str) -> &'static str {
    if table == "scores" {
        "*, reinterpretAsUInt64(reinterpretAsString(value)) AS value_bits"
    } else {
        "*"
    }
}

/// Turns a ClickHouse row back into the event body the agent sent.
pub fn body_from_row(table: &str, mut row: Map<String, Value>) -> Value {
    for column in ["project_id", "event_id", "version"] {
        take(&mut row, column);
    }
    // Set by ClickHouse on arrival, or stamped at load from the project; not part of what the
    // agent sent.
    row.remove("ingested_at");
    row.remove("project_name");
    // The public key the batch came with (observations), stamped at load.
    row.remove("api_key");
    match table {
        "traces" => {
            time_field(&mut row, "timestamp_us", "timestamp");
            let tag = take(&mut row, "version_tag");
            row.insert("version".into(), tag);
            json_field(&mut row, "input");
            json_field(&mut row, "output");
            metadata_field(&mut row);
            let public = take(&mut row, "public");
            row.insert("public".into(), json!(public.as_u64() == Some(1)));
        }
        "observations" => {
            time_field(&mut row, "start_time_us", "start_time");
            time_field(&mut row, "end_time_us", "end_time");
            time_field(&mut row, "completion_start_time_us", "completion_start_time");
            json_field(&mut row, "input");
            json_field(&mut row, "output");
            json_field(&mut row, "model_parameters");
            metadata_field(&mut row);
            let usage = json!({
                "input_tokens": take(&mut row, "input_tokens"),
                "output_tokens": take(&mut row, "output_tokens"),
                "cache_read_input_tokens": take(&mut row, "cache_read_tokens"),
                "cache_creation_input_tokens": take(&mut row, "cache_write_tokens"),
            });
            row.insert("usage".into(), usage);
            let source = take(&mut row, "cost_source");
            let cost = json!({
                "input": take(&mut row, "input_cost"),
                "output": take(&mut row, "output_cost"),
                "cache_read": take(&mut row, "cache_read_cost"),
                "cache_write": take(&mut row, "cache_write_cost"),
                "total": take(&mut row, "total_cost"),
            });
            // Only an agent-sent cost is part of what the agent sent.
            row.insert("cost".into(), if source == "agent" { cost } else { Value::Null });
        }
        "scores" => {
            time_field(&mut row, "timestamp_us", "timestamp");
            metadata_field(&mut row);
            let data_type = take(&mut row, "data_type");
            take(&mut row, "value");
            let bits = take(&mut row, "value_bits")
                .as_u64()
                .expect("value_bits is a number");
            let number = json!(f64::from_bits(bits));
            let text = take(&mut row, "string_value");
            let value = match data_type.as_str().unwrap() {
                "numeric" => number,
                "boolean" => json!(number.as_f64() == Some(1.0)),
                _ => text,
            };
            row.insert("value".into(), value);
            // The data type the value's JSON type implies is not sent; only `text` is.
            if data_type == "text" {
                row.insert("data_type".into(), data_type);
            }
        }
        "metrics" => {
            time_field(&mut row, "time_us", "time");
            time_field(&mut row, "start_time_us", "start_time");
            for (keys, values, field) in [
                ("attribute_keys", "attribute_values", "attributes"),
                ("resource_keys", "resource_values", "resource"),
            ] {
                let keys = take(&mut row, keys);
                let values = take(&mut row, values);
                let map: Map<String, Value> = keys
                    .as_array()
                    .unwrap()
                    .iter()
                    .zip(values.as_array().unwrap())
                    .map(|(k, v)| (k.as_str().unwrap().to_owned(), v.clone()))
                    .collect();
                row.insert(field.into(), Value::Object(map));
            }
        }
        _ => time_field(&mut row, "timestamp_us", "timestamp"),
    }
    Value::Object(row)
}
