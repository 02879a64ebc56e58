//! `agenttrace alerts`: a project's alert rules (add, list, silence, pause, remove), channels
//! (add, list, remove), what fired (`events`) and what was sent (`deliveries`). The scheduler's
//! `alerts` job evaluates and delivers; `agenttrace jobs run alerts` runs it once.

use std::io::Write;

use agenttrace_etl::control::alerts::{self, AlertRuleChange, NewAlertChannel, NewAlertRule};
use clap::Subcommand;
use uuid::Uuid;

use crate::DatabaseArgs;
use crate::commands::output::{emit, json_wanted};

#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// Add a rule: e.g. `--metric cost --above 5 --window 60 --group-by user --channel <id>`.
    Add {
        #[arg(long)]
        project: Uuid,
        #[arg(long)]
        name: String,
        /// cost, tokens, requests, error_rate, latency_p50, latency_p95, latency_p99,
        /// score_mean or score_pass_rate.
        #[arg(long)]
        metric: String,
        /// Fire when the metric is above this (or `--below`).
        #[arg(long, conflicts_with = "below", required_unless_present = "below")]
        above: Option<f64>,
        #[arg(long)]
        below: Option<f64>,
        /// The rolling window, in minutes (1 to 43200).
        #[arg(long = "window", default_value_t = 60)]
        window_minutes: i32,
        /// Fire once per group: user, model, name, tool, type, environment, tag, api_key (scores:
        /// name, evaluator, source).
        #[arg(long)]
        group_by: Option<String>,
        /// `KEY=VALUE` filters of the metrics API: type, model, name, tool, api_key, evaluator,
        /// source.
        #[arg(long = "filter")]
        filters: Vec<String>,
        /// A channel to notify; repeat for several.
        #[arg(long = "channel")]
        channels: Vec<Uuid>,
        #[arg(long)]
        json: bool,
    },
    /// The project's rules and the groups firing now.
    List {
        #[arg(long)]
        project: Uuid,
        #[arg(long)]
        json: bool,
    },
    /// Record what fires but send nothing for a while (`--minutes 0` lifts the silence).
    Silence {
        #[arg(long)]
        project: Uuid,
        rule: Uuid,
        #[arg(long, default_value_t = 60)]
        minutes: i64,
    },
    /// Stop evaluating a rule (`--resume` starts again).
    Pause {
        #[arg(long)]
        project: Uuid,
        rule: Uuid,
        #[arg(long)]
        resume: bool,
    },
    /// Delete a rule with its history.
    Remove {
        #[arg(long)]
        project: Uuid,
        rule: Uuid,
    },
    /// Add a channel: a signed webhook or a Slack incoming-webhook URL. Prints its signing
    /// secret once.
    Channel {
        #[arg(long)]
        project: Uuid,
        #[arg(long)]
        name: String,
        /// webhook or slack.
        #[arg(long, default_value = "webhook")]
        kind: String,
        #[arg(long)]
        url: String,
        #[arg(long)]
        json: bool,
    },
    /// The project's channels (scheme and host of each URL only).
    Channels {
        #[arg(long)]
        project: Uuid,
        #[arg(long)]
        json: bool,
    },
    /// Delete a channel; rules stop naming it.
    RemoveChannel {
        #[arg(long)]
        project: Uuid,
        channel: Uuid,
    },
    /// What fired, resolved or could not be evaluated, newest first.
    Events {
        #[arg(long)]
        project: Uuid,
        #[arg(long)]
        rule: Option<Uuid>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
    /// Every notification and its attempts, newest first.
    Deliveries {
        #[arg(long)]
        project: Uuid,
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
}

fn table(header: &[&str]) -> comfy_table::Table {
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::UTF8_BORDERS_ONLY);
    table.set_header(header);
    table
}

pub async fn run(
    command: AlertsCommand,
    databases: &DatabaseArgs,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let pg = databases.postgres().await?;
    match command {
        AlertsCommand::Add {
            project,
            name,
            metric,
            above,
            below,
            window_minutes,
            group_by,
            filters,
            channels,
            json,
        } => {
            let mut map = serde_json::Map::new();
            for filter in filters {
                let (key, value) = filter
                    .split_once('=')
                    .ok_or_else(|| anyhow::anyhow!("--filter {filter:?}: give KEY=VALUE"))?;
                map.insert(key.to_owned(), value.into());
            }
            let (comparison, threshold) = match (above, below) {
                (Some(above), _) => (">", above),
                (None, Some(below)) => ("<", below),
                (None, None) => anyhow::bail!("give --above or --below"),
            };
            let rule = alerts::create_rule(
                &pg,
                project,
                &NewAlertRule {
                    name,
                    metric,
                    filters: map,
                    comparison: comparison.to_owned(),
                    threshold,
                    window_minutes,
                    group_by,
                    channels,
                },
            )
            .await?;
            emit(out, json_wanted(json), &rule)?;
        }
        AlertsCommand::List { project, json } => {
            let rules = alerts::list_rules(&pg, project).await?;
            if json_wanted(json) {
                writeln!(out, "{}", serde_json::to_string(&rules)?)?;
                return Ok(());
            }
            let mut rows = table(&["id", "name", "rule", "window", "group by", "state", "last error"]);
            for rule in rules {
                let state = if !rule.enabled {
                    "paused".to_owned()
                } else if let Some(until) = &rule.silenced_until {
                    format!("silenced until {until}; {} firing", rule.firing.len())
                } else if rule.firing.is_empty() {
                    "ok".to_owned()
                } else {
                    let groups: Vec<&str> = rule.firing.iter().take(3).map(|f| f.group.as_str()).collect();
                    format!("{} firing: {}", rule.firing.len(), groups.join(", "))
                };
                rows.add_row([
                    rule.id.to_string(),
                    rule.name,
                    format!("{} {} {}", rule.metric, rule.comparison, rule.threshold),
                    format!("{} min", rule.window_minutes),
                    rule.group_by.unwrap_or_default(),
                    state,
                    rule.last_error.unwrap_or_default(),
                ]);
            }
            writeln!(out, "{rows}")?;
        }
        AlertsCommand::Silence {
            project,
            rule,
            minutes,
        } => {
            let until = if minutes > 0 {
                (chrono::Utc::now() + chrono::Duration::minutes(minutes)).to_rfc3339()
            } else {
                String::new()
            };
            let change = AlertRuleChange {
                silenced_until: Some(until),
                ..Default::default()
            };
            let rule = alerts::change_rule(&pg, project, rule, &change).await?;
            match rule.silenced_until {
                Some(until) => writeln!(out, "{}: silenced until {until}", rule.name)?,
                None => writeln!(out, "{}: not silenced", rule.name)?,
            }
        }
        AlertsCommand::Pause {
            project,
            rule,
            resume,
        } => {
            let change = AlertRuleChange {
                enabled: Some(resume),
                ..Default::default()
            };
            let rule = alerts::change_rule(&pg, project, rule, &change).await?;
            writeln!(
                out,
                "{}: {}",
                rule.name,
                if rule.enabled { "evaluated" } else { "paused" }
            )?;
        }
        AlertsCommand::Remove { project, rule } => {
            alerts::delete_rule(&pg, project, rule).await?;
            writeln!(out, "deleted rule {rule}")?;
        }
        AlertsCommand::Channel {
            project,
            name,
            kind,
            url,
            json,
        } => {
            let sealer = databases.sealer()?;
            let allow_private = alerts::private_urls_allowed();
            let created = alerts::create_channel(
                &pg,
                sealer.as_ref(),
                allow_private,
                project,
                &NewAlertChannel { name, kind, url },
            )
            .await?;
            if json_wanted(json) {
                emit(out, true, &created)?;
            } else {
                writeln!(
                    out,
                    "channel {} ({}, {})",
                    created.channel.id, created.channel.kind, created.channel.url_hint
                )?;
                writeln!(out, "signing secret (shown once): {}", created.secret)?;
            }
        }
        AlertsCommand::Channels { project, json } => {
            let channels = alerts::list_channels(&pg, project).await?;
            if json_wanted(json) {
                writeln!(out, "{}", serde_json::to_string(&channels)?)?;
                return Ok(());
            }
            let mut rows = table(&["id", "name", "kind", "url", "created"]);
            for channel in channels {
                rows.add_row([
                    channel.id.to_string(),
                    channel.name,
                    channel.kind,
                    channel.url_hint,
                    channel.created_at,
                ]);
            }
            writeln!(out, "{rows}")?;
        }
        AlertsCommand::RemoveChannel { project, channel } => {
            alerts::delete_channel(&pg, project, channel).await?;
            writeln!(out, "deleted channel {channel}")?;
        }
        AlertsCommand::Events {
            project,
            rule,
            limit,
            json,
        } => {
            let events = alerts::events(&pg, project, rule, limit).await?;
            if json_wanted(json) {
                writeln!(out, "{}", serde_json::to_string(&events)?)?;
                return Ok(());
            }
            let mut rows = table(&["at", "kind", "group", "value", "message"]);
            for event in events {
                let kind = if event.silenced {
                    format!("{} (silenced)", event.kind)
                } else {
                    event.kind
                };
                rows.add_row([
                    event.at,
                    kind,
                    event.group,
                    event.value.map(|v| format!("{v:.6}")).unwrap_or_default(),
                    event.message,
                ]);
            }
            writeln!(out, "{rows}")?;
        }
        AlertsCommand::Deliveries { project, limit, json } => {
            let deliveries = alerts::deliveries(&pg, project, None, limit).await?;
            if json_wanted(json) {
                writeln!(out, "{}", serde_json::to_string(&deliveries)?)?;
                return Ok(());
            }
            let mut rows = table(&[
                "id",
                "event",
                "channel",
                "status",
                "attempts",
                "last status",
                "next attempt",
                "error",
            ]);
            for delivery in deliveries {
                rows.add_row([
                    delivery.id.to_string(),
                    delivery.event_id.to_string(),
                    delivery.channel_id.to_string(),
                    delivery.status,
                    delivery.attempts.to_string(),
                    delivery.last_status.map(|s| s.to_string()).unwrap_or_default(),
                    delivery.next_attempt_at.unwrap_or_default(),
                    delivery.last_error.unwrap_or_default(),
                ]);
            }
            writeln!(out, "{rows}")?;
        }
    }
    Ok(())
}
