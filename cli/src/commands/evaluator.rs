//! `agenttrace evaluator add`.

use std::io::Write;

use agenttrace_etl::control::evaluators::{self, Added, NewEvaluator};
use anyhow::Context;
use clap::Subcommand;
use uuid::Uuid;

use crate::DatabaseArgs;

#[derive(Debug, Subcommand)]
pub enum EvaluatorCommand {
    /// Add an evaluator to a project (kept as is if one with that name exists).
    Add {
        #[arg(long)]
        project: Uuid,
        #[arg(long)]
        name: String,
        /// regex, contains, not_contains, valid_json, json_schema, latency_threshold,
        /// cost_threshold, token_threshold, tool_call_failure, exact_match, fuzzy_match, or
        /// llm_judge (run by the `judge` job; its config: etl/src/judge/template.rs).
        #[arg(long)]
        kind: String,
        /// Kind-specific JSON, e.g. '{"pattern": "TODO"}', '{"max_ms": 5000}',
        /// '{"schema": {"type": "object"}}', '{"threshold": 0.8}', or for a judge
        /// '{"connection": "openai", "prompt": "Is {{output}} helpful for {{input}}?",
        /// "output": {"type": "numeric", "min": 0, "max": 1}, "filter": {"type": ["generation"]}}'.
        #[arg(long, default_value = "{}")]
        config: String,
        /// A cron schedule of its own (`sec min hour day month weekday`); without one the
        /// evaluator runs with the `evaluate` job.
        #[arg(long)]
        schedule: Option<String>,
    },
    /// A project's evaluators.
    List {
        #[arg(long)]
        project: Uuid,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(
    command: EvaluatorCommand,
    databases: &DatabaseArgs,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let (project, name, kind, config, schedule) = match command {
        EvaluatorCommand::Add {
            project,
            name,
            kind,
            config,
            schedule,
        } => (project, name, kind, config, schedule),
        EvaluatorCommand::List { project, json } => {
            let pg = databases.postgres().await?;
            let listed = evaluators::list(&pg, project).await?;
            if crate::commands::output::json_wanted(json) {
                writeln!(out, "{}", serde_json::to_string(&listed)?)?;
                return Ok(());
            }
            let mut table = comfy_table::Table::new();
            table
                .load_preset(comfy_table::presets::UTF8_BORDERS_ONLY)
                .set_header(["name", "kind", "config", "schedule", "active"]);
            for evaluator in listed {
                table.add_row([
                    evaluator.name,
                    evaluator.kind,
                    evaluator.config.to_string(),
                    evaluator.schedule.unwrap_or_else(|| "with evaluate".into()),
                    evaluator.active.to_string(),
                ]);
            }
            writeln!(out, "{table}")?;
            return Ok(());
        }
    };
    let config = serde_json::from_str(&config).with_context(|| format!("--config is not JSON: {config}"))?;
    let evaluator = NewEvaluator {
        project_id: project,
        name,
        kind,
        config,
        schedule,
    };
    let pg = databases.postgres().await?;
    let state = match evaluators::add(&pg, &evaluator).await? {
        Added::Created => "added",
        Added::Exists => "exists",
    };
    writeln!(out, "{state}: evaluator {} ({})", evaluator.name, evaluator.kind)?;
    Ok(())
}
