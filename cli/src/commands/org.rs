//! `agenttrace org create|key`: organizations and their automation keys.

use std::io::Write;

use agenttrace_etl::control::identity::{self, Role};
use clap::Subcommand;
use serde_json::json;
use uuid::Uuid;

use crate::DatabaseArgs;
use crate::commands::output::{emit, json_wanted};

#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Create an organization, with an existing user as its owner.
    Create {
        name: String,
        #[arg(long)]
        owner: String,
        #[arg(long)]
        json: bool,
    },
    /// Create an organization key (acts as the organization's admin; the secret is shown once).
    Key {
        #[arg(long)]
        organization: Uuid,
        #[arg(long)]
        note: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(command: OrgCommand, databases: &DatabaseArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let mut pg = databases.postgres().await?;
    match command {
        OrgCommand::Create { name, owner, json } => {
            let tx = pg.transaction().await?;
            let user = identity::find_user(&tx, &owner).await?;
            let organization = identity::create_organization(&tx, &name).await?;
            identity::add_member(&tx, organization.id, user.id, Role::Owner).await?;
            tx.commit().await?;
            emit(
                out,
                json_wanted(json),
                &json!({"id": organization.id, "name": organization.name, "owner": user.email}),
            )
        }
        OrgCommand::Key {
            organization,
            note,
            json,
        } => {
            let key = identity::create_organization_key(&pg, organization, note.as_deref()).await?;
            emit(out, json_wanted(json), &key)?;
            if !json_wanted(json) {
                writeln!(out, "The secret key is shown only now; store it safely.")?;
            }
            Ok(())
        }
    }
}
