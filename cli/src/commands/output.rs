//! How commands print: a table for a person at a terminal, JSON for a pipe or with `--json`.

use std::io::{IsTerminal, Write};

use serde::Serialize;

/// Whether to print JSON: asked for, or standard output is not a terminal.
pub fn json_wanted(flag: bool) -> bool {
    flag || !std::io::stdout().is_terminal()
}

/// Prints `value` as JSON, or as a two-column table of its top-level fields.
pub fn emit(out: &mut dyn Write, as_json: bool, value: &impl Serialize) -> anyhow::Result<()> {
    let value = serde_json::to_value(value)?;
    if as_json {
        writeln!(out, "{value}")?;
        return Ok(());
    }
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::UTF8_BORDERS_ONLY);
    if let serde_json::Value::Object(fields) = &value {
        for (key, field) in fields {
            let text = match field {
                serde_json::Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            table.add_row([key.clone(), text]);
        }
        writeln!(out, "{table}")?;
    } else {
        writeln!(out, "{value:#}")?;
    }
    Ok(())
}
