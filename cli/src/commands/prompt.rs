//! `agenttrace prompt create|get|label|list`: versioned prompt templates and their labels.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use agenttrace_etl::control::prompts::{self, NewPromptVersion, PromptFilter, PromptType, Selector};
use anyhow::Context;
use clap::Subcommand;
use uuid::Uuid;

use crate::DatabaseArgs;
use crate::commands::output::{emit, json_wanted};

#[derive(Debug, Subcommand)]
pub enum PromptCommand {
    /// Create the next version of a prompt (the prompt with its first).
    Create {
        #[arg(long)]
        project: Uuid,
        #[arg(long)]
        name: String,
        /// The template, with {{variables}}.
        #[arg(long, conflicts_with = "file")]
        text: Option<String>,
        /// A file holding the template (a JSON array of messages with --chat).
        #[arg(long)]
        file: Option<PathBuf>,
        /// The file holds chat messages: [{"role": ..., "content": ...}, ...].
        #[arg(long)]
        chat: bool,
        /// Repeat for several (production, staging, ...).
        #[arg(long = "label")]
        labels: Vec<String>,
        /// Model settings as a JSON object.
        #[arg(long, default_value = "{}")]
        config: String,
        #[arg(long)]
        message: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Show a version (by label, default production, or number), optionally compiled.
    Get {
        #[arg(long)]
        project: Uuid,
        #[arg(long)]
        name: String,
        #[arg(long, conflicts_with = "version")]
        label: Option<String>,
        #[arg(long)]
        version: Option<i32>,
        /// Fill a variable: --var movie=Dune (repeat).
        #[arg(long = "var")]
        variables: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Move labels onto a version.
    Label {
        #[arg(long)]
        project: Uuid,
        #[arg(long)]
        name: String,
        #[arg(long)]
        version: i32,
        #[arg(long = "label", required = true)]
        labels: Vec<String>,
    },
    /// The project's prompts with their versions and labels.
    List {
        #[arg(long)]
        project: Uuid,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(
    command: PromptCommand,
    databases: &DatabaseArgs,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let mut pg = databases.postgres().await?;
    match command {
        PromptCommand::Create {
            project,
            name,
            text,
            file,
            chat,
            labels,
            config,
            message,
            json,
        } => {
            let source = match (text, &file) {
                (Some(text), _) => text,
                (None, Some(path)) => {
                    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
                }
                (None, None) => anyhow::bail!("give the template with --text or --file"),
            };
            let prompt = if chat {
                serde_json::from_str(&source).context("a chat prompt is a JSON array of messages")?
            } else {
                serde_json::Value::String(source)
            };
            let new = NewPromptVersion {
                name,
                kind: if chat { PromptType::Chat } else { PromptType::Text },
                prompt,
                config: serde_json::from_str(&config)
                    .with_context(|| format!("--config is not JSON: {config}"))?,
                labels,
                tags: Vec::new(),
                commit_message: message,
            };
            let version = prompts::create_version(&mut pg, project, &new).await?;
            emit(out, json_wanted(json), &version)
        }
        PromptCommand::Get {
            project,
            name,
            label,
            version,
            variables,
            json,
        } => {
            let selector = match (version, label) {
                (Some(version), _) => Selector::Version(version),
                (None, Some(label)) => Selector::Label(label),
                (None, None) => Selector::Label(prompts::PRODUCTION.to_owned()),
            };
            let mut found = prompts::get(&pg, project, &name, &selector).await?;
            if !variables.is_empty() {
                let variables: BTreeMap<String, String> = variables
                    .iter()
                    .map(|pair| {
                        pair.split_once('=')
                            .map(|(k, v)| (k.to_owned(), v.to_owned()))
                            .with_context(|| format!("--var {pair:?} must look like name=value"))
                    })
                    .collect::<anyhow::Result<_>>()?;
                found.prompt = prompts::compile(&found.prompt, &variables);
            }
            emit(out, json_wanted(json), &found)
        }
        PromptCommand::Label {
            project,
            name,
            version,
            labels,
        } => {
            let moved = prompts::set_labels(&mut pg, project, &name, version, &labels).await?;
            writeln!(
                out,
                "{} version {}: {}",
                moved.name,
                moved.version,
                moved.labels.join(", ")
            )?;
            Ok(())
        }
        PromptCommand::List { project, json } => {
            let (listed, _) = prompts::list(&pg, project, &PromptFilter::default(), 1, 1000).await?;
            if json_wanted(json) {
                writeln!(out, "{}", serde_json::to_string(&listed)?)?;
                return Ok(());
            }
            let mut table = comfy_table::Table::new();
            table
                .load_preset(comfy_table::presets::UTF8_BORDERS_ONLY)
                .set_header(["name", "type", "versions", "labels", "updated"]);
            for prompt in listed {
                let versions: Vec<String> = prompt.versions.iter().map(i32::to_string).collect();
                table.add_row([
                    prompt.name,
                    prompt.kind.as_str().to_owned(),
                    versions.join(" "),
                    prompt.labels.join(", "),
                    prompt.last_updated_at,
                ]);
            }
            writeln!(out, "{table}")?;
            Ok(())
        }
    }
}
