//! `agenttrace audit` (an organization's audit log) and the CLI's own entries in it: a command
//! that changes something is recorded as `cli <its subcommand words>` by `cli:<os user>`, with
//! the project or organization it names. Only subcommand names and ids are kept, never other
//! arguments (a password, a key).

use std::io::Write;

use agenttrace_etl::control::audit::{self, NewAuditEvent};
use clap::{Args, CommandFactory};
use serde_json::json;
use uuid::Uuid;

use crate::commands::output::json_wanted;
use crate::{Cli, DatabaseArgs};

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[arg(long)]
    organization: Uuid,
    /// Entries older than this id.
    #[arg(long)]
    before: Option<i64>,
    #[arg(long, default_value_t = 100)]
    limit: i64,
    #[arg(long)]
    json: bool,
}

pub async fn list(args: AuditArgs, databases: &DatabaseArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let pg = databases.postgres().await?;
    let events = audit::list(&pg, args.organization, args.before, args.limit).await?;
    if json_wanted(args.json) {
        writeln!(out, "{}", serde_json::to_string(&events)?)?;
        return Ok(());
    }
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::UTF8_BORDERS_ONLY);
    table.set_header(["id", "at", "actor", "action", "target", "status", "from"]);
    for event in events {
        table.add_row([
            event.id.to_string(),
            event.at,
            event.actor,
            event.action,
            event.target.to_string(),
            event.status.to_string(),
            event.address.unwrap_or_default(),
        ]);
    }
    writeln!(out, "{table}")?;
    Ok(())
}

/// Subcommands that only read, or whose changes the ETL's API records itself.
const NOT_CHANGES: &[&str] = &[
    "serve",
    "demo",
    "export",
    "query",
    "jobs",
    "bench",
    "deletions",
    "audit",
    "openapi",
    "list",
    "show",
    "get",
    "status",
    "compile",
    "help",
    "channels",
    "events",
    "deliveries",
];

/// The subcommand words of `args` (`["key", "create"]`), if the command changes something.
pub fn change_words(args: &[String]) -> Option<Vec<String>> {
    let mut command = Cli::command();
    let mut words = Vec::new();
    for arg in args {
        match command.find_subcommand(arg).cloned() {
            Some(sub) => {
                words.push(sub.get_name().to_owned());
                command = sub;
            }
            // Global options (and their values) before the first subcommand.
            None if words.is_empty() => continue,
            None => break,
        }
    }
    let reads = words.is_empty() || words.iter().any(|w| NOT_CHANGES.contains(&w.as_str()));
    (!reads).then_some(words)
}

/// The uuid given as `--<flag> <uuid>` or `--<flag>=<uuid>`.
fn flag_uuid(args: &[String], flag: &str) -> Option<Uuid> {
    let long = format!("--{flag}");
    args.iter().enumerate().find_map(|(i, arg)| {
        let value = if *arg == long {
            args.get(i + 1)?.as_str()
        } else {
            arg.strip_prefix(&format!("{long}="))?
        };
        value.parse().ok()
    })
}

/// Records a CLI command that changed something (after it succeeded).
pub async fn record(databases: &DatabaseArgs, args: &[String]) -> anyhow::Result<()> {
    let Some(words) = change_words(args) else {
        return Ok(());
    };
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let project_id = flag_uuid(args, "project");
    let organization_id = flag_uuid(args, "organization").or_else(|| flag_uuid(args, "org"));
    let pg = databases.postgres().await?;
    audit::record(
        &pg,
        NewAuditEvent {
            organization_id,
            project_id,
            actor: format!("cli:{user}"),
            action: format!("cli {}", words.join(" ")),
            target: json!({"project": project_id, "organization": organization_id}),
            status: 0,
            address: Some(host.trim().to_owned()).filter(|h| !h.is_empty()),
            ..NewAuditEvent::default()
        },
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Option<Vec<String>> {
        let args: Vec<String> = line.split(' ').map(str::to_owned).collect();
        change_words(&args)
    }

    #[test]
    fn changes_are_named_by_their_subcommands_only() {
        assert_eq!(
            words("key create --project 00000000-0000-0000-0000-000000000001 --scope read"),
            Some(vec!["key".into(), "create".into()])
        );
        assert_eq!(
            words("key revoke pk-at-secretish"),
            Some(vec!["key".into(), "revoke".into()])
        );
        assert_eq!(words("key list --project x"), None);
        assert_eq!(words("serve"), None);
        assert_eq!(words("--json"), None);
        assert_eq!(
            words("--database-url postgres://x project create --organization o"),
            Some(vec!["project".into(), "create".into()])
        );
    }

    #[test]
    fn ids_are_read_from_their_flags() {
        let args: Vec<String> = [
            "delete",
            "--project=00000000-0000-0000-0000-000000000002",
            "--user",
            "u",
        ]
        .map(str::to_owned)
        .to_vec();
        assert_eq!(flag_uuid(&args, "project"), Some(Uuid::from_u128(2)));
        assert_eq!(flag_uuid(&args, "user"), None);
    }
}
