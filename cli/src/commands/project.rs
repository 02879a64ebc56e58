//! `agenttrace project create|list`.

use std::io::Write;

use agenttrace_etl::control::{api_keys, projects};
use agenttrace_schemas::Scope;
use clap::Subcommand;

use crate::DatabaseArgs;
use crate::commands::key::print_key;

#[derive(Debug, Subcommand)]
pub enum ProjectCommand {
    /// Create a project and its first API key (the secret is printed once).
    Create {
        name: String,
        /// Organization name; created when missing.
        #[arg(long, default_value = "default")]
        organization: String,
        /// Delete events older than this many days (default: keep forever).
        #[arg(long)]
        retention_days: Option<i32>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List active projects.
    List,
}

pub async fn run(
    command: ProjectCommand,
    databases: &DatabaseArgs,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    match command {
        ProjectCommand::Create {
            name,
            organization,
            retention_days,
            json,
        } => {
            let mut pg = databases.postgres().await?;
            let tx = pg.transaction().await?;
            let organization_id = projects::ensure_organization(&tx, &organization).await?;
            let project = projects::create_project(&tx, organization_id, &name, retention_days).await?;
            let key = api_keys::create_key(
                &tx,
                project.id,
                &[Scope::Ingest],
                Some("created with the project"),
            )
            .await?;
            tx.commit().await?;
            print_key(out, &key, json)?;
        }
        ProjectCommand::List => {
            let pg = databases.postgres().await?;
            for project in projects::list_projects(&pg).await? {
                let retention = project
                    .retention_days
                    .map_or("forever".to_owned(), |d| format!("{d} days"));
                writeln!(out, "{}\t{}\tretention {retention}", project.id, project.name)?;
            }
        }
    }
    Ok(())
}
