//! `agenttrace connection add|list|test|delete`: a project's model connections, which LLM
//! judges call. The key is read from the environment or stdin, never from the command line
//! (where `ps` and shell history would keep it).

use std::collections::BTreeMap;
use std::io::{Read, Write};

use agenttrace_etl::control::connections::{self, ConnectionUpsert};
use agenttrace_etl::judge::provider::{self, ModelClient};
use anyhow::Context;
use clap::Subcommand;
use serde_json::json;
use uuid::Uuid;

use crate::DatabaseArgs;

#[derive(Debug, Subcommand)]
pub enum ConnectionCommand {
    /// Create or replace (by name) a project's connection to a model provider.
    Add {
        #[arg(long)]
        project: Uuid,
        /// The connection's name in the project (judges name it in `config.connection`).
        #[arg(long)]
        name: String,
        /// openai (and any OpenAI-compatible server: vLLM, Ollama, llama.cpp), azure or anthropic.
        #[arg(long)]
        adapter: String,
        /// The provider's API key; read from stdin when this variable is unset.
        #[arg(
            long = "secret-key",
            env = "AGENTTRACE_PROVIDER_KEY",
            hide_env_values = true,
            hide = true
        )]
        secret_key: Option<String>,
        /// Read the key from stdin (one line).
        #[arg(long)]
        secret_key_stdin: bool,
        /// The API's base URL (https://api.openai.com/v1 for openai, https://api.anthropic.com/v1
        /// for anthropic; required for azure).
        #[arg(long)]
        base_url: Option<String>,
        /// The judges' default model.
        #[arg(long)]
        model: Option<String>,
        /// Calls at once (1 to 32; 4 by default).
        #[arg(long)]
        concurrency: Option<u64>,
        /// `Name: value`, sent with every call (repeat for several); values are sealed like the key.
        #[arg(long = "header")]
        headers: Vec<String>,
        /// Azure's api-version.
        #[arg(long)]
        api_version: Option<String>,
    },
    /// A project's connections (the key shows as its last four characters).
    List {
        #[arg(long)]
        project: Uuid,
        #[arg(long)]
        json: bool,
    },
    /// Ask the model one tiny structured judgment and say what happened.
    Test {
        #[arg(long)]
        project: Uuid,
        /// The connection's name or id.
        #[arg(long)]
        name: String,
        /// The model to ask (the connection's default otherwise).
        #[arg(long)]
        model: Option<String>,
        /// Let the call reach loopback and private addresses (a local model server).
        #[arg(long, env = "AGENTTRACE_ALLOW_PRIVATE_MODEL_URLS", value_parser = clap::builder::BoolishValueParser::new(),
              num_args = 0..=1, default_value_t = false, default_missing_value = "true")]
        allow_private_model_urls: bool,
    },
    /// Delete a connection; the judges calling through it stop until one of that name returns.
    Delete {
        #[arg(long)]
        project: Uuid,
        /// The connection's name or id.
        #[arg(long)]
        name: String,
    },
}

pub async fn run(
    command: ConnectionCommand,
    databases: &DatabaseArgs,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let pg = databases.postgres().await?;
    match command {
        ConnectionCommand::Add {
            project,
            name,
            adapter,
            secret_key,
            secret_key_stdin,
            base_url,
            model,
            concurrency,
            headers,
            api_version,
        } => {
            let secret_key = match secret_key {
                Some(key) if !secret_key_stdin => key,
                _ => {
                    let mut line = String::new();
                    std::io::stdin()
                        .read_to_string(&mut line)
                        .context("reading the key from stdin")?;
                    line.trim().to_owned()
                }
            };
            let mut extra_headers = BTreeMap::new();
            for header in headers {
                let (header_name, value) = header
                    .split_once(':')
                    .with_context(|| format!("--header {header:?}: write `Name: value`"))?;
                extra_headers.insert(header_name.trim().to_owned(), value.trim().to_owned());
            }
            let mut config = serde_json::Map::new();
            if let Some(model) = model {
                config.insert("model".into(), json!(model));
            }
            if let Some(concurrency) = concurrency {
                config.insert("concurrency".into(), json!(concurrency));
            }
            if let Some(version) = api_version {
                config.insert("apiVersion".into(), json!(version));
            }
            let (connection, created) = connections::upsert(
                &pg,
                databases.sealer()?.as_ref(),
                project,
                &ConnectionUpsert {
                    provider: name,
                    adapter,
                    secret_key,
                    base_url,
                    extra_headers: (!extra_headers.is_empty()).then_some(extra_headers),
                    config: Some(config.into()),
                    ..ConnectionUpsert::default()
                },
            )
            .await?;
            let verb = if created { "added" } else { "replaced" };
            writeln!(
                out,
                "{verb} connection {} ({}, key {}): {}",
                connection.provider, connection.adapter, connection.display_secret_key, connection.id
            )?;
        }
        ConnectionCommand::List { project, json } => {
            let (listed, _) = connections::list(&pg, project, 1, 1000).await?;
            if crate::commands::output::json_wanted(json) {
                writeln!(out, "{}", serde_json::to_string(&listed)?)?;
                return Ok(());
            }
            let mut table = comfy_table::Table::new();
            table
                .load_preset(comfy_table::presets::UTF8_BORDERS_ONLY)
                .set_header(["name", "adapter", "base URL", "key", "config"]);
            for connection in listed {
                table.add_row([
                    connection.provider,
                    connection.adapter,
                    connection.base_url.unwrap_or_else(|| "(the provider's)".into()),
                    connection.display_secret_key,
                    connection.config.to_string(),
                ]);
            }
            writeln!(out, "{table}")?;
        }
        ConnectionCommand::Test {
            project,
            name,
            model,
            allow_private_model_urls,
        } => {
            let callable = connections::callable(&pg, databases.sealer()?.as_ref(), project, &name).await?;
            let model = model
                .or_else(|| callable.connection.default_model().map(str::to_owned))
                .context("--model: the connection has no default model")?;
            let client = ModelClient::new(allow_private_model_urls);
            match provider::test_call(&client, &callable.endpoint, &model).await {
                Ok(reply) => writeln!(
                    out,
                    "ok: {} answered in {} ms ({} tokens in, {} out)",
                    reply.model,
                    reply.latency.as_millis(),
                    reply.usage.all_input(),
                    reply.usage.output
                )?,
                Err(error) => anyhow::bail!("the test call failed: {error}"),
            }
        }
        ConnectionCommand::Delete { project, name } => {
            let connection = connections::get(&pg, project, &name).await?;
            let stopped = connections::delete(&pg, project, connection.id).await?;
            writeln!(out, "deleted {}; {stopped} judges stopped", connection.provider)?;
        }
    }
    Ok(())
}
