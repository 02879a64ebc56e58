//! `agenttrace key create|revoke|list`.

use std::io::Write;

use agenttrace_etl::control::api_keys::{self, NewKey};
use agenttrace_schemas::Scope;
use clap::Subcommand;
use serde_json::json;
use uuid::Uuid;

use crate::DatabaseArgs;

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create an API key for a project (the secret is printed once).
    Create {
        #[arg(long)]
        project: Uuid,
        /// Repeat for several: ingest, export, query, read, manage, admin.
        #[arg(long = "scope", default_values_t = vec![Scope::Ingest])]
        scopes: Vec<Scope>,
        #[arg(long)]
        note: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by its public key; it stops working at once (within the cache TTL).
    Revoke { public_key: String },
    /// List a project's keys (never their secrets).
    List {
        #[arg(long)]
        project: Uuid,
    },
}

/// Prints a new key; the secret is shown only here.
pub(crate) fn print_key(out: &mut dyn Write, key: &NewKey, as_json: bool) -> anyhow::Result<()> {
    if as_json {
        let value = json!({
            "project_id": key.project_id,
            "public_key": key.public_key,
            "secret_key": key.secret_key,
        });
        writeln!(out, "{value}")?;
    } else {
        writeln!(out, "project_id: {}", key.project_id)?;
        writeln!(out, "public_key: {}", key.public_key)?;
        writeln!(out, "secret_key: {}", key.secret_key)?;
        writeln!(out, "The secret key is shown only now; store it safely.")?;
    }
    Ok(())
}

pub async fn run(command: KeyCommand, databases: &DatabaseArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let pg = databases.postgres().await?;
    match command {
        KeyCommand::Create {
            project,
            scopes,
            note,
            json,
        } => {
            let key = api_keys::create_key(&pg, project, &scopes, note.as_deref()).await?;
            print_key(out, &key, json)?;
        }
        KeyCommand::Revoke { public_key } => {
            api_keys::revoke_key(&pg, &public_key).await?;
            writeln!(out, "revoked {public_key}")?;
        }
        KeyCommand::List { project } => {
            for key in api_keys::list_keys(&pg, project).await? {
                let state = if key.revoked { "revoked" } else { "active" };
                let scopes: Vec<&str> = key.scopes.iter().map(|s| s.as_str()).collect();
                writeln!(
                    out,
                    "{}\t{}\t{}\t{state}\t{}",
                    key.public_key,
                    key.secret_hint,
                    scopes.join(","),
                    key.note.unwrap_or_default()
                )?;
            }
        }
    }
    Ok(())
}
