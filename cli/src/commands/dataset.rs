//! `agenttrace dataset create|import|items` and `agenttrace experiment list|show`.

use std::io::Write;
use std::path::PathBuf;

use agenttrace_etl::control::datasets::{self, ItemFilter, NewDataset};
use agenttrace_etl::control::experiments;
use anyhow::Context;
use clap::Subcommand;
use uuid::Uuid;

use crate::DatabaseArgs;
use crate::commands::output::{emit, json_wanted};

#[derive(Debug, Subcommand)]
pub enum DatasetCommand {
    /// Create a dataset (or update its description and schemas).
    Create {
        #[arg(long)]
        project: Uuid,
        #[arg(long)]
        name: String,
        #[arg(long)]
        description: Option<String>,
        /// A file with the JSON Schema every item's input must satisfy.
        #[arg(long)]
        input_schema: Option<PathBuf>,
        /// A file with the JSON Schema every item's expected output must satisfy.
        #[arg(long)]
        expected_output_schema: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Import items from JSONL: one `{"input", "expected_output", "metadata", "id"}` per line.
    Import {
        #[arg(long)]
        project: Uuid,
        #[arg(long)]
        name: String,
        file: PathBuf,
    },
    /// A dataset's items.
    Items {
        #[arg(long)]
        project: Uuid,
        #[arg(long)]
        name: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ExperimentCommand {
    /// The project's experiments (dataset runs) and how many items each ran.
    List {
        #[arg(long)]
        project: Uuid,
        #[arg(long)]
        json: bool,
    },
    /// An experiment's run items: which trace ran which dataset item.
    Show {
        #[arg(long)]
        project: Uuid,
        /// The experiment's id (`experiment list` shows it).
        id: Uuid,
        #[arg(long)]
        json: bool,
    },
}

fn schema(path: Option<PathBuf>) -> anyhow::Result<Option<serde_json::Value>> {
    path.map(|path| {
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
    })
    .transpose()
}

pub async fn run(
    command: DatasetCommand,
    databases: &DatabaseArgs,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let pg = databases.postgres().await?;
    match command {
        DatasetCommand::Create {
            project,
            name,
            description,
            input_schema,
            expected_output_schema,
            json,
        } => {
            let new = NewDataset {
                name,
                description,
                metadata: None,
                input_schema: schema(input_schema)?,
                expected_output_schema: schema(expected_output_schema)?,
            };
            emit(
                out,
                json_wanted(json),
                &datasets::upsert(&pg, project, &new).await?,
            )
        }
        DatasetCommand::Import { project, name, file } => {
            let text =
                std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            let imported = datasets::import_jsonl(&pg, project, &name, &text).await?;
            writeln!(out, "imported {imported} items into {name}")?;
            Ok(())
        }
        DatasetCommand::Items { project, name, json } => {
            let filter = ItemFilter {
                dataset_name: Some(name),
                ..ItemFilter::default()
            };
            let (items, _) = datasets::list_items(&pg, project, &filter, 1, 10_000).await?;
            if json_wanted(json) {
                writeln!(out, "{}", serde_json::to_string(&items)?)?;
                return Ok(());
            }
            let mut table = comfy_table::Table::new();
            table
                .load_preset(comfy_table::presets::UTF8_BORDERS_ONLY)
                .set_header(["id", "status", "input", "expected output"]);
            for item in items {
                table.add_row([
                    item.id,
                    item.status,
                    item.input.to_string(),
                    item.expected_output.map(|v| v.to_string()).unwrap_or_default(),
                ]);
            }
            writeln!(out, "{table}")?;
            Ok(())
        }
    }
}

pub async fn run_experiments(
    command: ExperimentCommand,
    databases: &DatabaseArgs,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let pg = databases.postgres().await?;
    let (project, json) = match command {
        ExperimentCommand::List { project, json } => (project, json),
        ExperimentCommand::Show { project, id, json } => {
            let (experiment, items) = experiments::get(&pg, project, id).await?;
            if json_wanted(json) {
                let shown = serde_json::json!({ "experiment": experiment, "items": items });
                writeln!(out, "{shown}")?;
                return Ok(());
            }
            writeln!(
                out,
                "{} ({} items, created {})",
                experiment.name, experiment.items, experiment.created_at
            )?;
            let mut table = comfy_table::Table::new();
            table
                .load_preset(comfy_table::presets::UTF8_BORDERS_ONLY)
                .set_header(["dataset item", "trace", "observation", "at"]);
            for item in items {
                table.add_row([
                    item.dataset_item_id,
                    item.trace_id,
                    item.observation_id.unwrap_or_default(),
                    item.created_at,
                ]);
            }
            writeln!(out, "{table}")?;
            return Ok(());
        }
    };
    let listed = experiments::list(&pg, project).await?;
    if json_wanted(json) {
        writeln!(out, "{}", serde_json::to_string(&listed)?)?;
        return Ok(());
    }
    let mut table = comfy_table::Table::new();
    table
        .load_preset(comfy_table::presets::UTF8_BORDERS_ONLY)
        .set_header(["name", "id", "items", "created", "id in traces"]);
    for experiment in listed {
        table.add_row([
            experiment.name,
            experiment.id.to_string(),
            experiment.items.to_string(),
            experiment.created_at,
            experiment.trace_experiment_id,
        ]);
    }
    writeln!(out, "{table}")?;
    Ok(())
}
