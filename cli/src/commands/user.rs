//! `agenttrace user create-owner|create|revoke-sessions` and `agenttrace member set|list`: people
//! and their roles.

use std::io::{BufRead, Write};

use agenttrace_etl::control::identity::{self, Actor, Role};
use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::json;
use uuid::Uuid;

use crate::DatabaseArgs;
use crate::commands::output::{emit, json_wanted};

#[derive(Debug, Clone, Args)]
pub struct Password {
    /// Read the password from standard input (first line), else from AGENTTRACE_PASSWORD.
    #[arg(long)]
    password_stdin: bool,
    #[arg(long, env = "AGENTTRACE_PASSWORD", hide_env_values = true, hide = true)]
    password: Option<String>,
}

impl Password {
    fn read(&self) -> anyhow::Result<String> {
        if self.password_stdin {
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            return Ok(line.trim_end_matches(['\r', '\n']).to_owned());
        }
        self.password
            .clone()
            .context("give the password on standard input (--password-stdin) or in AGENTTRACE_PASSWORD")
    }
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// The first owner of a new install: their organization (created when missing) and account.
    CreateOwner {
        #[arg(long)]
        organization: String,
        #[arg(long)]
        email: String,
        #[command(flatten)]
        password: Password,
        #[arg(long)]
        json: bool,
    },
    /// Another user (add them to an organization with `agenttrace member set`).
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        password: Password,
        #[arg(long)]
        json: bool,
    },
    /// Sign a user out everywhere: end every session they have.
    RevokeSessions {
        #[arg(long)]
        email: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum MemberCommand {
    /// Give a user a role in an organization (owner, admin, member, viewer), or change it.
    Set {
        #[arg(long)]
        organization: Uuid,
        #[arg(long)]
        email: String,
        #[arg(long)]
        role: String,
    },
    /// List an organization's members and their roles.
    List {
        #[arg(long)]
        organization: Uuid,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run_user(
    command: UserCommand,
    databases: &DatabaseArgs,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let mut pg = databases.postgres().await?;
    match command {
        UserCommand::CreateOwner {
            organization,
            email,
            password,
            json,
        } => {
            let (organization, user) =
                identity::bootstrap_owner(&mut pg, &organization, &email, &password.read()?).await?;
            let value = json!({"organization_id": organization.id, "organization": organization.name,
                               "user_id": user.id, "email": user.email, "role": "owner"});
            emit(out, json_wanted(json), &value)
        }
        UserCommand::Create {
            email,
            name,
            password,
            json,
        } => {
            let user = identity::create_user(&pg, &email, name.as_deref(), &password.read()?).await?;
            emit(out, json_wanted(json), &user)
        }
        UserCommand::RevokeSessions { email } => {
            let user = identity::find_user(&pg, &email).await?;
            let ended = identity::revoke_sessions(&pg, user.id).await?;
            writeln!(out, "ended {ended} sessions of {}", user.email)?;
            Ok(())
        }
    }
}

pub async fn run_member(
    command: MemberCommand,
    databases: &DatabaseArgs,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let mut pg = databases.postgres().await?;
    match command {
        MemberCommand::Set {
            organization,
            email,
            role,
        } => {
            let role = Role::parse(&role)?;
            let user = identity::find_user(&pg, &email).await?;
            // The operator acts as an owner, but the last owner stays one here too.
            if identity::role_of(&pg, organization, user.id).await?.is_some() {
                let change = identity::MemberChange::SetRole(role);
                identity::change_member(&mut pg, organization, user.id, change, Actor::Role(Role::Owner))
                    .await?;
            } else {
                identity::add_member(&pg, organization, user.id, role).await?;
            }
            writeln!(out, "{} is now {} of {organization}", user.email, role.as_str())?;
            Ok(())
        }
        MemberCommand::List { organization, json } => {
            let members = identity::members(&pg, organization).await?;
            if json_wanted(json) {
                writeln!(out, "{}", serde_json::to_string(&members)?)?;
                return Ok(());
            }
            let mut table = comfy_table::Table::new();
            table
                .load_preset(comfy_table::presets::UTF8_BORDERS_ONLY)
                .set_header(["email", "role", "user id"]);
            for member in members {
                table.add_row([
                    member.user.email,
                    member.role.as_str().to_owned(),
                    member.user.id.to_string(),
                ]);
            }
            writeln!(out, "{table}")?;
            Ok(())
        }
    }
}
