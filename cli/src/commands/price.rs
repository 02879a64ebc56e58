//! `agenttrace price set|list`: model prices, a project's own or everyone's, from a date on.
//! Re-price past generations afterwards with `agenttrace jobs run recompute_costs`.

use std::io::Write;

use agenttrace_etl::control::prices::{self, NewPrice};
use clap::Subcommand;
use uuid::Uuid;

use crate::DatabaseArgs;
use crate::commands::output::{emit, json_wanted};

#[derive(Debug, Subcommand)]
pub enum PriceCommand {
    /// Set a price in USD per million tokens (a project's own with --project, else the default).
    Set {
        #[arg(long)]
        project: Option<Uuid>,
        /// Anchored, case-insensitive regular expression over model names, e.g. 'gpt-4\.1-mini(-\d{4}-\d{2}-\d{2})?'.
        #[arg(long)]
        model_pattern: String,
        #[arg(long, default_value = "custom")]
        provider: String,
        #[arg(long)]
        input: f64,
        #[arg(long)]
        output: f64,
        #[arg(long, default_value_t = 0.0)]
        cache_read: f64,
        #[arg(long, default_value_t = 0.0)]
        cache_write: f64,
        /// When it takes effect (RFC 3339; default now).
        #[arg(long)]
        from: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// The prices that apply to a project: its own first, then the defaults.
    List {
        #[arg(long)]
        project: Uuid,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(command: PriceCommand, databases: &DatabaseArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let pg = databases.postgres().await?;
    match command {
        PriceCommand::Set {
            project,
            model_pattern,
            provider,
            input,
            output,
            cache_read,
            cache_write,
            from,
            json,
        } => {
            let price = prices::set(
                &pg,
                &NewPrice {
                    project_id: project,
                    model_pattern,
                    provider,
                    input,
                    output,
                    cache_read,
                    cache_write,
                    valid_from: from,
                },
            )
            .await?;
            emit(out, json_wanted(json), &price)
        }
        PriceCommand::List { project, json } => {
            let listed = prices::list(&pg, project).await?;
            if json_wanted(json) {
                writeln!(out, "{}", serde_json::to_string(&listed)?)?;
                return Ok(());
            }
            let mut table = comfy_table::Table::new();
            table
                .load_preset(comfy_table::presets::UTF8_BORDERS_ONLY)
                .set_header([
                    "model pattern",
                    "whose",
                    "input",
                    "output",
                    "cache read",
                    "cache write",
                    "from",
                ]);
            for price in listed {
                table.add_row([
                    price.model_pattern,
                    if price.project_id.is_some() {
                        "project".into()
                    } else {
                        "default".into()
                    },
                    price.input_per_mtok.to_string(),
                    price.output_per_mtok.to_string(),
                    price.cache_read_per_mtok.to_string(),
                    price.cache_write_per_mtok.to_string(),
                    price.valid_from,
                ]);
            }
            writeln!(out, "{table}")?;
            Ok(())
        }
    }
}
