//! JSON Schemas generated from the wire types, checked in under `schemas/json/`.

use schemars::{JsonSchema, generate::SchemaSettings};

use crate::batch::SignedBatch;
use crate::event::Event;

fn render<T: JsonSchema>() -> String {
    let schema = SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<T>();
    let mut text = serde_json::to_string_pretty(&schema).expect("schemas serialize");
    text.push('\n');
    text
}

/// Every checked-in schema: (file name under `schemas/json/`, current contents).
pub fn all() -> Vec<(&'static str, String)> {
    vec![
        ("event.schema.json", render::<Event>()),
        ("signed-batch.schema.json", render::<SignedBatch>()),
    ]
}
