//! `agenttrace demo`: a simulated coding agent sends realistic sessions (and, with
//! `--experiments`, two experiment runs over a dataset), then what landed is shown.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use agenttrace_etl::clickhouse::{Table, quote};
use agenttrace_etl::control::datasets::{self, ItemFilter, NewDataset, NewItem};
use agenttrace_etl::control::prompts::{self, NewPromptVersion, PromptType, Selector};
use agenttrace_etl::control::{ControlError, experiments};
use agenttrace_schemas::{Event, Timestamp};
use anyhow::Context;
use clap::Args;
use serde_json::json;
use uuid::Uuid;

use crate::DatabaseArgs;
use crate::agent::{DATASET_ITEMS, DatasetItem, SessionGenerator};
use crate::send::{BatchClient, EdgeClient, ProjectKey};

#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Send as an agent does, through the edge at this URL (with the key file's secret key).
    #[arg(long, env = "AGENTTRACE_EDGE_URL", conflicts_with = "etl_url")]
    pub edge_url: Option<String>,
    /// Or send signed batches straight to the ETL at this URL, as the edge does.
    #[arg(long, env = "AGENTTRACE_ETL_URL")]
    pub etl_url: Option<String>,
    /// The edge's signing key (`id:secret`), to send straight to the ETL.
    #[arg(long, env = "AGENTTRACE_SIGNING_KEYS", hide_env_values = true)]
    pub signing_keys: Option<String>,
    /// JSON file with `project_id`, `public_key` and `secret_key` (what `project create
    /// --json` prints).
    #[arg(long)]
    pub key_file: PathBuf,
    #[arg(long, default_value_t = 20)]
    pub sessions: usize,
    #[arg(long, default_value_t = 6)]
    pub turns: usize,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Pause between sessions, in milliseconds: a steady stream instead of a burst (the
    /// production-shaped run rolls its ETLs under it).
    #[arg(long, default_value_t = 0)]
    pub interval_ms: u64,
    /// Also run the demo dataset's two experiments (creates the dataset once).
    #[arg(long)]
    pub experiments: bool,
}

/// Where the demo sends: through the edge, or straight to the ETL.
enum Transport {
    Edge(EdgeClient),
    Etl(BatchClient, ProjectKey),
}

impl Transport {
    /// Sends one request; (accepted, rejected) events.
    async fn send(&self, events: &[Event<'_>]) -> anyhow::Result<(usize, usize)> {
        match self {
            Transport::Edge(client) => {
                let response = client.send(events).await?;
                Ok((response.accepted, response.rejected.len()))
            }
            Transport::Etl(client, key) => {
                let response = client.send(key, events).await?.response()?;
                Ok((response.accepted as usize, response.rejected.len()))
            }
        }
    }
}

#[derive(serde::Deserialize)]
struct DemoKey {
    project_id: Uuid,
    public_key: String,
    secret_key: Option<String>,
}

fn transport(args: &DemoArgs, key: &DemoKey) -> anyhow::Result<Transport> {
    if let Some(edge_url) = &args.edge_url {
        let secret = key.secret_key.as_deref().with_context(|| {
            format!(
                "{} has no secret_key to send through the edge",
                args.key_file.display()
            )
        })?;
        return Ok(Transport::Edge(EdgeClient::new(
            edge_url,
            &key.public_key,
            secret,
        )));
    }
    let signing_keys = args
        .signing_keys
        .as_deref()
        .context("sending straight to the ETL needs --signing-keys (AGENTTRACE_SIGNING_KEYS)")?;
    let client = BatchClient::new(
        args.etl_url.as_deref().unwrap_or("http://127.0.0.1:8080"),
        signing_keys,
        "demo",
    )?;
    let project = ProjectKey {
        project_id: key.project_id,
        public_key: key.public_key.clone(),
    };
    Ok(Transport::Etl(client, project))
}

pub async fn run(args: DemoArgs, databases: &DatabaseArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let key: DemoKey = serde_json::from_slice(
        &std::fs::read(&args.key_file).with_context(|| format!("reading {}", args.key_file.display()))?,
    )
    .with_context(|| format!("{} must hold project_id and public_key", args.key_file.display()))?;
    let transport = transport(&args, &key)?;
    let mut generator = SessionGenerator::new(args.seed);
    let (mut accepted, mut rejected) = (0, 0);
    for session in 0..args.sessions {
        let end = Timestamp::from_micros(
            Timestamp::now().as_micros() - (args.sessions - session) as i64 * 60_000_000,
        );
        let events = generator.session(end, args.turns);
        let (a, r) = transport.send(&events).await?;
        accepted += a;
        rejected += r;
        if args.interval_ms > 0 {
            tokio::time::sleep(Duration::from_millis(args.interval_ms)).await;
        }
    }
    writeln!(
        out,
        "sent {} sessions: {accepted} events accepted, {rejected} rejected",
        args.sessions
    )?;
    let mut total_accepted = accepted;
    if args.experiments {
        let pg = databases.postgres().await?;
        let (items, experiments) = demo_experiments(&pg, key.project_id).await?;
        let (mut accepted, mut rejected) = (0, 0);
        for (experiment_id, model, accuracy) in &experiments {
            let events = generator.experiment_run(Timestamp::now(), experiment_id, model, &items, *accuracy);
            let (a, r) = transport.send(&events).await?;
            accepted += a;
            rejected += r;
        }
        total_accepted += accepted;
        writeln!(
            out,
            "ran {} experiments over the {}-item demo dataset: {accepted} events accepted, {rejected} rejected",
            experiments.len(),
            items.len()
        )?;
    }
    let mut pg = databases.postgres().await?;
    if demo_prompt(&mut pg, key.project_id).await? {
        writeln!(
            out,
            "created the prompt {DEMO_PROMPT:?}: v1 labelled production, v2 labelled staging"
        )?;
    }
    if matches!(transport, Transport::Edge(_)) {
        wait_until_loaded(databases, key.project_id, total_accepted).await?;
    }
    show_what_landed(databases, key.project_id, out).await
}

async fn show_what_landed(
    databases: &DatabaseArgs,
    project: Uuid,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let clickhouse = databases.clickhouse();
    let project_literal = quote(&project.to_string());
    writeln!(out, "in ClickHouse for project {project}:")?;
    for table in Table::events().map(|t| t.name()) {
        let count = clickhouse
            .query_text(&format!(
                "SELECT count() FROM {table} FINAL WHERE project_id = {project_literal} FORMAT TabSeparated"
            ))
            .await?;
        writeln!(out, "  {table:<18} {}", count.trim())?;
    }
    let cost = clickhouse
        .query_text(&format!(
            "SELECT ifNull(model, '?'), count(), sum(input_tokens + cache_read_tokens), sum(output_tokens), \
             toString(sum(ifNull(total_cost, toDecimal64(0, 12)))) FROM observations FINAL \
             WHERE project_id = {project_literal} AND type = 'generation' GROUP BY model ORDER BY model FORMAT TabSeparated"
        ))
        .await?;
    writeln!(
        out,
        "generations by model (calls, input tokens, output tokens, cost USD):"
    )?;
    for line in cost.lines() {
        writeln!(out, "  {}", line.replace('\t', "  "))?;
    }
    Ok(())
}

/// The edge buffers events for up to its flush age: waits until ClickHouse holds at least
/// `events` rows for the project (a re-run replaces rows, so the count is a lower bound).
async fn wait_until_loaded(databases: &DatabaseArgs, project: Uuid, events: usize) -> anyhow::Result<()> {
    let clickhouse = databases.clickhouse();
    let tables: Vec<String> = Table::events()
        .map(|t| {
            format!(
                "(SELECT count() FROM {} FINAL WHERE project_id = {})",
                t.name(),
                quote(&project.to_string())
            )
        })
        .collect();
    let sql = format!("SELECT {} FORMAT TabSeparated", tables.join(" + "));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let loaded: usize = clickhouse.query_text(&sql).await?.trim().parse().unwrap_or(0);
        if loaded >= events {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "after 60 s ClickHouse holds {loaded} of the {events} events the edge accepted; is the ETL running?"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

const DEMO_PROMPT: &str = "coding-agent-system";

/// The demo's managed prompt, two chat versions (v1 in production, v2 on staging), created
/// once; true when this call created it.
async fn demo_prompt(pg: &mut tokio_postgres::Client, project: Uuid) -> anyhow::Result<bool> {
    match prompts::get(&*pg, project, DEMO_PROMPT, &Selector::Label("latest".into())).await {
        Ok(_) => return Ok(false),
        Err(ControlError::NotFound(_)) => {}
        Err(error) => return Err(error.into()),
    }
    let versions = [
        (
            "You are a careful coding agent. Read the code before you change it.",
            "production",
            "first version",
        ),
        (
            "You are a careful coding agent. Read the code before you change it.\nRun the tests after every edit and report their exit code.",
            "staging",
            "ask for the tests' exit code",
        ),
    ];
    for (system, label, message) in versions {
        let new = NewPromptVersion {
            name: DEMO_PROMPT.into(),
            kind: PromptType::Chat,
            prompt: json!([
                {"role": "system", "content": system},
                {"role": "user", "content": "{{task}}"}
            ]),
            config: json!({"model": "claude-sonnet-4-5", "temperature": 0.2}),
            labels: vec![label.into()],
            tags: vec!["demo".into()],
            commit_message: Some(message.into()),
        };
        prompts::create_version(pg, project, &new).await?;
    }
    Ok(true)
}

/// The demo dataset and its two experiments (a baseline and a better prompt), created once:
/// the items, and per experiment its id, model and how often it answers exactly.
async fn demo_experiments(
    pg: &tokio_postgres::Client,
    project: Uuid,
) -> anyhow::Result<(Vec<DatasetItem>, Vec<(String, &'static str, f64)>)> {
    let dataset = datasets::upsert(
        pg,
        project,
        &NewDataset {
            name: "coding-questions".into(),
            description: Some("Short questions a coding agent should answer exactly".into()),
            ..NewDataset::default()
        },
    )
    .await?;
    let filter = ItemFilter {
        dataset_name: Some(dataset.name.clone()),
        ..ItemFilter::default()
    };
    let mut stored = datasets::list_items(pg, project, &filter, 1, 1000).await?.0;
    if stored.is_empty() {
        for (question, answer) in DATASET_ITEMS {
            let new = NewItem {
                dataset_name: dataset.name.clone(),
                input: Some(json!({ "question": question })),
                expected_output: Some(json!(answer)),
                ..NewItem::default()
            };
            stored.push(datasets::upsert_item(pg, project, &new).await?);
        }
    }
    let text = |value: Option<&serde_json::Value>| match value {
        Some(serde_json::Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    };
    let items = stored
        .iter()
        .map(|item| DatasetItem {
            id: item.id.clone(),
            question: text(item.input.get("question")),
            answer: text(item.expected_output.as_ref()),
        })
        .collect();
    let mut runs = Vec::new();
    for (name, model, accuracy) in [
        ("baseline-prompt", "gpt-4.1-mini", 0.55),
        ("few-shot-prompt", "gpt-4.1-mini", 0.8),
    ] {
        let id = experiments::upsert(pg, project, dataset.id, name).await?;
        runs.push((id.to_string(), model, accuracy));
    }
    Ok((items, runs))
}
