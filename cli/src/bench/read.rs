//! `agenttrace bench read`: every read route through the real service on the read layout, and
//! the same reads on the old `(project_id, id)` layout, over the same rows in one run.
//!
//! Rows are generated server-side (`INSERT … SELECT … FROM numbers()`): traces of 20 nested
//! observations (an agent step with generations, tool calls and spans under it) spread over
//! 30 days, grouped five to a session, with a score each; the largest project holds a fifth of
//! all observations, the next two 15% and 10%, the rest share what remains. The old layout is
//! a second database at the migrations before `0007_read_layout`, holding a copy of the rows.
//!
//! Each read runs `--requests` times with varied parameters (traces, sessions, filters) on the
//! largest project; the old layout runs the SQL the routes sent before the read layout.

use std::future::Future;
use std::io::Write;
use std::time::{Duration, Instant};

use agenttrace_etl::analytics::{hourly, metrics, summaries};
use agenttrace_etl::clickhouse::ClickHouse;
use agenttrace_etl::clickhouse::catalog::Table;
use agenttrace_etl::clickhouse::loader::LoaderOptions;
use agenttrace_etl::clickhouse::{quote, quote_identifier};
use agenttrace_etl::control::{api_keys, projects};
use agenttrace_etl::http::start;
use agenttrace_etl::migrate::{MigrationSet, migrate};
use agenttrace_etl::postgres;
use agenttrace_schemas::{Scope, Timestamp};
use anyhow::{Context, ensure};
use clap::Args;
use uuid::Uuid;

use crate::DatabaseArgs;
use crate::bench::text::Vocabulary;
use crate::bench::{bench_server_config, peak_rss_mb, quiesce, reset_peak_rss};

const DAY_US: i64 = 86_400_000_000;
/// Observations per trace, and traces per session.
const TRACE_SIZE: u64 = 20;
const SESSION_SIZE: u64 = 5;
const MODELS: &str = "['claude-sonnet-4-5', 'claude-opus-4-5', 'gpt-5', 'claude-haiku-4-5']";
const TOOLS: &str = "['Bash', 'Edit', 'Read', 'Write', 'Grep', 'WebFetch']";
const TASKS: &str = "['fix-failing-test', 'refactor-module', 'review-pr', 'write-docs', 'upgrade-deps']";
const TASK_NAMES: [&str; 5] = [
    "fix-failing-test",
    "refactor-module",
    "review-pr",
    "write-docs",
    "upgrade-deps",
];
/// Words of a generation's input and output, and of a tool call's input.
const GENERATION_INPUT_WORDS: u32 = 8;
const GENERATION_OUTPUT_WORDS: u32 = 5;
const TOOL_INPUT_WORDS: u32 = 3;

#[derive(Debug, Clone, Args)]
pub struct ReadBenchArgs {
    /// Observations across all projects.
    #[arg(long, default_value_t = 10_000_000)]
    pub observations: u64,
    /// Projects the observations are spread over (at least 4).
    #[arg(long, default_value_t = 10)]
    pub projects: usize,
    /// Requests per read on the read layout.
    #[arg(long, default_value_t = 50)]
    pub requests: usize,
    /// Requests per read on the old layout (each can take seconds at 100M rows); 0 skips it
    /// (with `--reuse`, to time the read layout again after a change).
    #[arg(long, default_value_t = 50)]
    pub old_requests: usize,
    /// Keep the filled databases, and reuse them when a run asks for the same sizes.
    #[arg(long)]
    pub reuse: bool,
    /// Fill only the first N projects, largest first (default: all). The reads run on the
    /// largest, inside its own key range, so `1` times them at the full size's largest project
    /// for a fifth of the fill's time and disk; the sizes then describe the filled projects.
    #[arg(long)]
    pub filled_projects: Option<usize>,
}

/// Each project's share of the observations: three large ones, the rest equal.
pub(crate) fn project_sizes(observations: u64, projects: usize) -> Vec<u64> {
    let mut sizes = vec![observations / 5, observations * 3 / 20, observations / 10];
    let rest = observations - sizes.iter().sum::<u64>();
    let others = (projects - 3) as u64;
    sizes.extend((0..others).map(|i| rest / others + u64::from(i < rest % others)));
    sizes
}

/// Timings of one read, in milliseconds.
struct Timings(Vec<f64>);

impl Timings {
    /// Nearest-rank percentile; NaN when nothing was timed.
    fn percentile(&self, level: f64) -> f64 {
        if self.0.is_empty() {
            return f64::NAN;
        }
        let mut sorted = self.0.clone();
        sorted.sort_by(f64::total_cmp);
        let rank = ((level * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1]
    }
}

async fn time<F, Fut>(requests: usize, mut request: F) -> anyhow::Result<Timings>
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let mut timings = Vec::with_capacity(requests);
    for i in 0..requests {
        let started = Instant::now();
        request(i).await?;
        timings.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(Timings(timings))
}

/// Records that `database` is filled for `fingerprint`, so that `--reuse` finds it.
pub(crate) async fn record_fill(database: &ClickHouse, fingerprint: &str, now_us: i64) -> anyhow::Result<()> {
    database
        .execute("CREATE TABLE IF NOT EXISTS bench_fill (fingerprint String, now_us Int64) ENGINE = TinyLog")
        .await?;
    database
        .execute(&format!(
            "INSERT INTO bench_fill VALUES ('{fingerprint}', {now_us})"
        ))
        .await?;
    Ok(())
}

/// A database at `migrations`, created unless `reuse` finds it filled for `fingerprint`.
pub(crate) async fn database(
    pg: &mut tokio_postgres::Client,
    clickhouse: &ClickHouse,
    name: &str,
    migrations: &MigrationSet,
    fingerprint: &str,
    reuse: bool,
) -> anyhow::Result<(ClickHouse, bool)> {
    let database = clickhouse.with_database(name);
    if reuse {
        let filled = database
            .query_text("SELECT fingerprint FROM bench_fill FORMAT TabSeparated")
            .await
            .unwrap_or_default();
        if filled.trim() == fingerprint {
            return Ok((database, true));
        }
    }
    database
        .execute_on_server(&format!("DROP DATABASE IF EXISTS {}", quote_identifier(name)))
        .await?;
    migrate(pg, &database, migrations).await?;
    Ok((database, false))
}

/// The project named `name` in `organization`, created if missing.
pub(crate) async fn bench_project(
    pg: &tokio_postgres::Client,
    organization: Uuid,
    name: &str,
) -> anyhow::Result<Uuid> {
    let existing = pg
        .query(
            "SELECT id FROM projects WHERE organization_id = $1 AND name = $2",
            &[&organization, &name],
        )
        .await?;
    match existing.first() {
        Some(row) => Ok(row.get("id")),
        None => Ok(projects::create_project(pg, organization, name, None).await?.id),
    }
}

/// Fills one project's traces, observations and scores, server-side.
pub(crate) async fn fill_project(
    database: &ClickHouse,
    project: Uuid,
    observations: u64,
    now_us: i64,
) -> anyhow::Result<()> {
    let traces = observations.div_ceil(TRACE_SIZE);
    let start = now_us - 30 * DAY_US;
    // Trace `t` starts at `start + t * step`; its observations follow it, 3 s apart.
    let step = (30 * DAY_US) / traces as i64;
    let trace_id = |t: &str| format!("lower(hex(cityHash64('{project}', 'trace', {t})))");
    let observation_id = |k: &str| format!("lower(hex(cityHash64('{project}', 'observation', {k})))");
    let settings = [("max_threads", "2"), ("max_query_size", "10000000")];
    database
        .query_with_settings(
            &format!(
                "INSERT INTO traces (project_id, id, timestamp_us, name, user_id, session_id, release, environment, \
                 tags, input, output, metadata_keys, metadata_values, event_id, version) \
                 SELECT '{project}', {id}, {start} + number * {step}, {TASKS}[number % 5 + 1], \
                 concat('user-', toString(number % 200)), \
                 concat('session-', toString(intDiv(number, {SESSION_SIZE}))), concat('v1.', toString(number % 10)), \
                 'production', ['agent:claude-code', concat('repo:', toString(number % 7))], \
                 '{{\"prompt\":\"fix the failing checkout test\"}}', '{{\"summary\":\"done\"}}', ['os'], ['linux'], \
                 concat('e-', toString(number)), 1 \
                 FROM numbers({traces})",
                id = trace_id("number"),
            ),
            &settings,
        )
        .await?;
    // The traces' postings: their names, input, output, tags and metadata, as ingest writes them.
    let tasks: Vec<String> = TASK_NAMES.iter().map(|t| (*t).to_owned()).collect();
    let repos: Vec<String> = (0..7).map(|r| format!("agent:claude-code\nrepo:{r}")).collect();
    for (term, field) in [
        (terms_of("name", &tasks), "name"),
        (
            format!("arrayJoin({})", terms_array("fix the failing checkout test")),
            "input",
        ),
        (format!("arrayJoin({})", terms_array("done")), "output"),
        (format!("arrayJoin({})", terms_array("linux")), "metadata.os"),
    ] {
        database
            .query_with_settings(
                &format!(
                    "INSERT INTO search_postings (project_id, term, timestamp_us, trace_id, observation_id, source, id, field) \
                     SELECT '{project}', {term}, {start} + number * {step}, {id}, '', 'traces', '', '{field}' \
                     FROM (SELECT number, {TASKS}[number % 5 + 1] AS name FROM numbers({traces}))",
                    id = trace_id("number"),
                ),
                &settings,
            )
            .await?;
    }
    let tag_terms: Vec<String> = repos.iter().map(|r| terms_array(r)).collect();
    database
        .query_with_settings(
            &format!(
                "INSERT INTO search_postings (project_id, term, timestamp_us, trace_id, observation_id, source, id, field) \
                 SELECT '{project}', arrayJoin([{tag_terms}][number % 7 + 1]), {start} + number * {step}, {id}, '', \
                 'traces', '', 'tags' FROM numbers({traces})",
                id = trace_id("number"),
                tag_terms = tag_terms.join(", "),
            ),
            &settings,
        )
        .await?;
    // The observations' rows, as the inserts below read them: trace `t`, position `j`, kind.
    let rows = format!(
        "SELECT number, number % {TRACE_SIZE} AS j, intDiv(number, {TRACE_SIZE}) AS t, \
                {start} + intDiv(number, {TRACE_SIZE}) * {step} AS t_start, \
                if(j = 0, 'agent_step', ['span', 'generation', 'tool_call'][j % 3 + 1]) AS kind, \
                {TOOLS}[intDiv(number, 3) % 6 + 1] AS tool, \
                multiIf(kind = 'generation', 'llm', kind = 'tool_call', tool, kind = 'agent_step', 'turn', 'step') AS name, \
                {trace} AS trace, {id} AS id, t_start + j * 3000000 AS start_us \
         FROM numbers({observations})",
        trace = trace_id("t"),
        id = observation_id("number"),
    );
    let vocabulary = Vocabulary::new();
    database
        .query_with_settings(
            &format!(
                "INSERT INTO observations (project_id, id, trace_id, parent_observation_id, type, name, start_time_us, \
                 end_time_us, level, status_message, input, output, metadata_keys, metadata_values, model, \
                 model_parameters, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, input_cost, \
                 output_cost, cache_read_cost, cache_write_cost, total_cost, cost_source, tool_name, tool_call_id, \
                 event_id, version, api_key) \
                 SELECT '{project}', id, trace, if(j = 0, NULL, {parent}), kind, name, \
                 start_us, start_us + 1000 * (cityHash64(number) % 30000), \
                 multiIf(number % 200 = 13, 'error', number % 50 = 7, 'warning', 'default'), NULL, \
                 multiIf(kind = 'generation', {generation_input}, kind = 'tool_call', {tool_input}, NULL), \
                 if(kind = 'generation', {generation_output}, NULL), ['agent'], ['claude-code'], \
                 if(kind = 'generation', {MODELS}[intDiv(number, 3) % 4 + 1], NULL), NULL, \
                 if(kind = 'generation', 1000 + number % 4000, 0), if(kind = 'generation', 200 + number % 800, 0), \
                 if(kind = 'generation', 8000, 0), 0, NULL, NULL, NULL, NULL, \
                 if(kind = 'generation', toDecimal64(((1000 + number % 4000) * 3 + (200 + number % 800) * 15) / 1000000., 12), NULL), \
                 if(kind = 'generation', 'table', ''), if(kind = 'tool_call', tool, NULL), NULL, \
                 concat('e-', toString(number)), 1, concat('pk-at-bench-', toString(t % 3)) \
                 FROM ({rows})",
                parent = observation_id("number - j"),
                generation_input = vocabulary.json_text("number", 1, GENERATION_INPUT_WORDS),
                generation_output = vocabulary.json_text("number", 2, GENERATION_OUTPUT_WORDS),
                tool_input = vocabulary.json_text("number", 3, TOOL_INPUT_WORDS),
            ),
            &settings,
        )
        .await?;
    // Their postings, as ingest writes them: each field's terms.
    let posting = |term: &str, field: &str, condition: &str| {
        format!(
            "INSERT INTO search_postings (project_id, term, timestamp_us, trace_id, observation_id, source, id, field) \
             SELECT '{project}', {term}, start_us, trace, id, 'observations', '', '{field}' FROM ({rows}) WHERE {condition}"
        )
    };
    let names: Vec<String> = [
        "llm", "turn", "step", "Bash", "Edit", "Read", "Write", "Grep", "WebFetch",
    ]
    .iter()
    .map(|n| (*n).to_owned())
    .collect();
    for statement in [
        posting(
            &vocabulary.text_terms("number", 1, GENERATION_INPUT_WORDS),
            "input",
            "kind = 'generation'",
        ),
        posting(
            &vocabulary.text_terms("number", 2, GENERATION_OUTPUT_WORDS),
            "output",
            "kind = 'generation'",
        ),
        posting(
            &vocabulary.text_terms("number", 3, TOOL_INPUT_WORDS),
            "input",
            "kind = 'tool_call'",
        ),
        posting(&terms_of("name", &names), "name", "1"),
        posting(
            &format!("arrayJoin({})", terms_array("claude-code")),
            "metadata.agent",
            "1",
        ),
    ] {
        database.query_with_settings(&statement, &settings).await?;
    }
    database
        .query_with_settings(
            &format!(
                "INSERT INTO scores (project_id, id, trace_id, observation_id, timestamp_us, name, data_type, value, \
                 string_value, source, evaluator_id, comment, metadata_keys, metadata_values, event_id, version) \
                 SELECT '{project}', lower(hex(cityHash64('{project}', 'score', number))), {trace}, NULL, \
                 {start} + number * {step} + 60000000, ['correctness', 'helpfulness'][number % 2 + 1], 'numeric', \
                 (cityHash64(number) % 100) / 100., NULL, 'eval', NULL, NULL, [], [], concat('s-', toString(number)), 1 \
                 FROM numbers({traces})",
                trace = trace_id("number"),
            ),
            &settings,
        )
        .await?;
    Ok(())
}

/// The terms the ETL's tokenizer makes of `text`, as a ClickHouse array literal.
fn terms_array(text: &str) -> String {
    let mut terms: Vec<String> = Vec::new();
    agenttrace_etl::search::text::terms(text, |term: &str| {
        if !terms.iter().any(|t| t == term) {
            terms.push(term.to_owned());
        }
    });
    let quoted: Vec<String> = terms.iter().map(|t| quote(t)).collect();
    format!("[{}]", quoted.join(", "))
}

/// SQL: one row per term of `column`'s value, one of `values`.
fn terms_of(column: &str, values: &[String]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| quote(v)).collect();
    let terms: Vec<String> = values.iter().map(|v| terms_array(v)).collect();
    format!(
        "arrayJoin([{}][indexOf([{}], {column})])",
        terms.join(", "),
        quoted.join(", ")
    )
}

/// The SQL the trace list and session routes sent before the read layout.
fn old_trace_page(project: &str, condition: &str, direction: &str) -> String {
    let trace_where = format!("project_id = {project}{condition}");
    format!(
        "SELECT id, name, timestamp_us, user_id, session_id, tags, environment, release,
                observation_count, total_cost, input_tokens, output_tokens, latency_ms, worst_level
         FROM (SELECT id, name, timestamp_us, user_id, session_id, tags, environment, release
               FROM traces FINAL WHERE {trace_where})
         ANY LEFT JOIN (
               SELECT trace_id AS id, count() AS observation_count,
                      ifNull(toFloat64(sum(total_cost)), 0.) AS total_cost,
                      sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
                      (max(ifNull(end_time_us, start_time_us)) - min(start_time_us)) / 1000 AS latency_ms,
                      max(multiIf(level = 'error', 3, level = 'warning', 2, 1)) AS worst_level
               FROM observations FINAL
               WHERE project_id = {project}
                 AND trace_id IN (SELECT id FROM traces FINAL WHERE {trace_where})
               GROUP BY trace_id) USING id
         ORDER BY timestamp_us {direction}, id {direction}
         LIMIT 51 FORMAT JSONEachRow"
    )
}

const OLD_LISTED_COLUMNS: &str = "id, trace_id, parent_observation_id, type, name, start_time_us, end_time_us, \
    level, model, tool_name, input_tokens, output_tokens, toFloat64(total_cost) AS total_cost";

fn old_metrics(project: &str, from_us: i64) -> String {
    format!(
        "SELECT intDiv(start_time_us, {DAY_US}) * {DAY_US} AS bucket_us, ifNull(model, '') AS model, count() AS count,
                ifNull(toFloat64(sum(total_cost)), 0.) AS total_cost, sum(input_tokens), sum(output_tokens),
                quantilesIf(0.5, 0.95, 0.99)((ifNull(end_time_us, start_time_us) - start_time_us) / 1000, isNotNull(end_time_us)),
                countIf(level = 'error') / count()
         FROM observations FINAL
         WHERE project_id = {project} AND type = 'generation' AND start_time_us >= {from_us}
         GROUP BY bucket_us, model ORDER BY bucket_us, model FORMAT JSONEachRow"
    )
}

/// One read's parameters, varied per request.
struct Samples {
    traces: Vec<String>,
    sessions: Vec<String>,
}

pub async fn run_read(
    args: ReadBenchArgs,
    databases: &DatabaseArgs,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    ensure!(args.projects >= 4, "--projects must be at least 4");
    ensure!(
        args.observations >= 1000 * args.projects as u64,
        "--observations must be at least 1000 per project"
    );
    ensure!(args.requests >= 1, "--requests must be at least 1");
    let clickhouse = databases.clickhouse();
    let mut pg = postgres::connect(&databases.database_url)
        .await
        .context("connecting to PostgreSQL")?;
    // The layout version: a fill made before a migration that changed the tables is not reused.
    let fingerprint = format!("{}x{}-v4", args.observations, args.projects);
    let filled_projects = args.filled_projects.unwrap_or(args.projects);
    ensure!(
        (1..=args.projects).contains(&filled_projects),
        "--filled-projects must be between 1 and --projects"
    );
    // A partial fill is recorded apart from a whole one (the projects' names stay the same).
    let fill_record = if filled_projects < args.projects {
        format!("{fingerprint}-{filled_projects}-filled")
    } else {
        fingerprint.clone()
    };
    let base = clickhouse.database().to_owned();
    let all = MigrationSet::embedded()?;
    let mut before_layout = all.clone();
    before_layout.clickhouse.retain(|m| m.name.as_str() < "0007");
    let (new, reused) = database(
        &mut pg,
        &clickhouse,
        &format!("{base}_bench_read"),
        &all,
        &fill_record,
        args.reuse,
    )
    .await?;
    // Without old-layout requests there is no old layout to fill (it doubles the disk used).
    let (old, old_reused) = if args.old_requests > 0 {
        database(
            &mut pg,
            &clickhouse,
            &format!("{base}_bench_read_old"),
            &before_layout,
            &fill_record,
            args.reuse,
        )
        .await?
    } else {
        (new.clone(), true)
    };
    let organization = projects::ensure_organization(&pg, "bench").await?;
    let sizes = project_sizes(args.observations, args.projects);
    let mut project_ids = Vec::new();
    for i in 0..args.projects {
        project_ids.push(bench_project(&pg, organization, &format!("bench-read-{fingerprint}-{i}")).await?);
    }
    let now_us = Timestamp::now().as_micros();
    if !(reused && old_reused) {
        writeln!(
            out,
            "filling {} observations over {} projects (largest {}), {filled_projects} of them, server-side…",
            args.observations, args.projects, sizes[0]
        )?;
        let started = Instant::now();
        for (project, size) in project_ids.iter().zip(&sizes).take(filled_projects) {
            fill_project(&new, *project, *size, now_us).await?;
            writeln!(
                out,
                "  project {project}: {size} observations ({:.0} s)",
                started.elapsed().as_secs_f64()
            )?;
        }
        if args.old_requests > 0 {
            for table in ["traces", "observations", "scores"] {
                // The old layout's columns only: later migrations added some.
                let columns = old
                    .query_text(&format!(
                        "SELECT name FROM system.columns WHERE database = {} AND table = '{table}' \
                         AND default_kind != 'MATERIALIZED' FORMAT TabSeparated",
                        quote(old.database())
                    ))
                    .await?;
                let columns: Vec<&str> = columns.lines().collect();
                old.execute(&format!(
                    "INSERT INTO {table} ({columns}) SELECT {columns} FROM {}.{table}",
                    quote_identifier(new.database()),
                    columns = columns.join(", ")
                ))
                .await?;
            }
            record_fill(&old, &fill_record, now_us).await?;
        }
        record_fill(&new, &fill_record, now_us).await?;
        writeln!(
            out,
            "  filled both layouts in {:.0} s",
            started.elapsed().as_secs_f64()
        )?;
    }
    let now_us: i64 = new
        .query_text("SELECT now_us FROM bench_fill FORMAT TabSeparated")
        .await?
        .trim()
        .parse()?;
    writeln!(out, "waiting for background merges to finish…")?;
    // Timings must not share the machine with the fill's background merges.
    quiesce(&clickhouse, Duration::from_secs(600)).await?;

    // The metrics job's first run: every hour of the fill rolled up from deduplicated rows.
    let second = new.clock().await.map_err(anyhow::Error::msg)?;
    new.wait_past(second).await.map_err(anyhow::Error::msg)?;
    let started = Instant::now();
    let rolled = hourly::roll(&new, None, 0).await?;
    writeln!(
        out,
        "rolled up {} (project, hour) pairs in {:.1} s",
        rolled.rolled,
        started.elapsed().as_secs_f64()
    )?;
    // The summaries' job: every trace of the fill summarized.
    let started = Instant::now();
    let summarized = summaries::summarize(&new, 0).await?;
    writeln!(
        out,
        "summarized {} traces in {:.1} s",
        summarized.traces,
        started.elapsed().as_secs_f64()
    )?;
    quiesce(&clickhouse, Duration::from_secs(600)).await?;

    let largest = project_ids[0];
    let project = format!("'{largest}'");
    let sample = |column: &str, table: &str| {
        format!(
            "SELECT DISTINCT {column} FROM {table} WHERE project_id = {project} AND cityHash64({column}) % 97 = 5 \
             LIMIT {} FORMAT TabSeparated",
            args.requests.max(args.old_requests)
        )
    };
    let lines = |text: String| text.lines().map(str::to_owned).collect::<Vec<_>>();
    let samples = Samples {
        traces: lines(new.query_text(&sample("id", "traces")).await?),
        sessions: lines(new.query_text(&sample("session_id", "traces")).await?),
    };
    ensure!(
        !samples.traces.is_empty() && !samples.sessions.is_empty(),
        "no traces to sample"
    );

    let key = api_keys::create_key(&pg, largest, &[Scope::Read], Some("bench read")).await?;
    let auth = format!("Bearer {}:{}", key.public_key, key.secret_key);
    reset_peak_rss();
    let server = start(
        bench_server_config(databases, &new, LoaderOptions::default())?,
        "127.0.0.1:0".parse()?,
    )
    .await
    .map_err(anyhow::Error::msg)?;
    let base_url = format!("http://{}", server.addr);
    let http = reqwest::Client::new();
    let get = |path: String| {
        let request = http
            .get(format!("{base_url}{path}"))
            .header("authorization", &auth);
        async move {
            let response = request.send().await?;
            let status = response.status();
            let body = response.bytes().await?;
            ensure!(
                status.is_success(),
                "{status}: {}",
                String::from_utf8_lossy(&body)
            );
            Ok(())
        }
    };
    let sql = |database: &ClickHouse, sql: String| {
        let database = database.clone();
        async move {
            database
                .query_with_settings(&sql, &[("max_execution_time", "600")])
                .await?;
            Ok::<(), anyhow::Error>(())
        }
    };
    let trace = |i: usize| samples.traces[i % samples.traces.len()].clone();
    let session = |i: usize| samples.sessions[i % samples.sessions.len()].clone();
    let iso = |us: i64| Timestamp::from_micros(us).to_string();
    // One filter per trace-list request, in turn.
    let list_filters: Vec<(String, String)> = vec![
        (String::new(), String::new()),
        ("name=review-pr".into(), " AND name = 'review-pr'".into()),
        ("user_id=user-17".into(), " AND user_id = 'user-17'".into()),
        ("level=warning".into(), String::new()),
        ("min_cost=0.02".into(), String::new()),
        (
            "environment=production".into(),
            " AND environment = 'production'".into(),
        ),
        ("tags=repo%3A3".into(), " AND has(tags, 'repo:3')".into()),
        ("release=v1.4".into(), " AND release = 'v1.4'".into()),
    ];
    let month_ago = now_us - 30 * DAY_US - DAY_US;

    struct Row {
        read: &'static str,
        new: Timings,
        old: Timings,
        /// The target in ms and the percentile it is for.
        target_ms: Option<(f64, f64)>,
        /// Whether the target also asks for 10× over `old` (the old layout's reads).
        speedup_target: bool,
    }
    let mut rows: Vec<Row> = Vec::new();
    writeln!(
        out,
        "timing {} requests per read (old layout: {})…",
        args.requests, args.old_requests
    )?;

    let new_timings = time(args.requests, |i| get(format!("/v1/traces/{}", trace(i)))).await?;
    let old_timings = time(args.old_requests, |i| {
        let id = trace(i);
        let old = old.clone();
        let project = project.clone();
        async move {
            let by_trace = format!("project_id = {project} AND trace_id = '{id}'");
            let query = |table: &str, condition: &str, time: &str| {
                format!("SELECT * FROM {table} FINAL WHERE {condition} ORDER BY {time}, id LIMIT 10001 FORMAT JSONEachRow")
            };
            tokio::try_join!(
                sql(&old, query("traces", &format!("project_id = {project} AND id = '{id}'"), "timestamp_us")),
                sql(&old, query("observations", &by_trace, "start_time_us")),
                sql(&old, query("scores", &by_trace, "timestamp_us")),
                sql(&old, query("file_operations", &by_trace, "timestamp_us")),
                sql(&old, query("terminal_commands", &by_trace, "timestamp_us")),
                sql(&old, query("git_links", &by_trace, "timestamp_us")),
            )?;
            Ok(())
        }
    })
    .await?;
    rows.push(Row {
        read: "trace detail",
        new: new_timings,
        old: old_timings,
        speedup_target: true,
        target_ms: Some((50.0, 0.5)),
    });

    let new_timings = time(args.requests, |i| {
        let (query, _) = &list_filters[i % list_filters.len()];
        get(format!("/v1/traces?limit=50&{query}"))
    })
    .await?;
    let old_timings = time(args.old_requests, |i| {
        let (_, condition) = &list_filters[i % list_filters.len()];
        sql(&old, old_trace_page(&project, condition, "DESC"))
    })
    .await?;
    rows.push(Row {
        read: "trace list page (50, one filter)",
        new: new_timings,
        old: old_timings,
        speedup_target: true,
        target_ms: Some((100.0, 0.5)),
    });

    // Summary filters alone, and one that no trace meets (it must be as fast as the others).
    let summary_filters = [
        "level=error",
        "min_cost=0.02",
        "min_latency_ms=20000",
        "min_cost=1000",
    ];
    let new_timings = time(args.requests, |i| {
        get(format!(
            "/v1/traces?limit=50&{}",
            summary_filters[i % summary_filters.len()]
        ))
    })
    .await?;
    rows.push(Row {
        read: "trace list, level/cost/latency filter",
        new: new_timings,
        old: Timings(Vec::new()),
        speedup_target: true,
        target_ms: Some((200.0, 0.95)),
    });
    let new_timings = time(args.requests, |_| get("/v1/traces?limit=50&min_cost=1000".into())).await?;
    rows.push(Row {
        read: "trace list, a filter none meets",
        new: new_timings,
        old: Timings(Vec::new()),
        speedup_target: true,
        target_ms: Some((200.0, 0.95)),
    });

    let new_timings = time(args.requests, |i| get(format!("/v1/sessions/{}", session(i)))).await?;
    let old_timings = time(args.old_requests, |i| {
        sql(
            &old,
            old_trace_page(&project, &format!(" AND session_id = '{}'", session(i)), "ASC"),
        )
    })
    .await?;
    rows.push(Row {
        read: "session detail",
        new: new_timings,
        old: old_timings,
        speedup_target: true,
        target_ms: Some((100.0, 0.5)),
    });

    let new_timings = time(args.requests, |_| get("/v1/sessions?limit=50".into())).await?;
    let old_timings = time(args.old_requests, |_| {
        sql(
            &old,
            format!(
                "SELECT session_id, min(timestamp_us), max(timestamp_us) AS last_us, count() FROM traces FINAL
                 WHERE project_id = {project} AND isNotNull(session_id) GROUP BY session_id
                 ORDER BY last_us DESC LIMIT 51 FORMAT JSONEachRow"
            ),
        )
    })
    .await?;
    rows.push(Row {
        read: "session list page",
        new: new_timings,
        old: old_timings,
        speedup_target: true,
        target_ms: Some((150.0, 0.5)),
    });

    let models = [
        "claude-sonnet-4-5",
        "claude-opus-4-5",
        "gpt-5",
        "claude-haiku-4-5",
    ];
    let new_timings = time(args.requests, |i| {
        get(format!(
            "/v1/observations?type=generation&model={}&limit=50",
            models[i % 4]
        ))
    })
    .await?;
    let old_timings = time(args.old_requests, |i| {
        sql(
            &old,
            format!(
                "SELECT {OLD_LISTED_COLUMNS} FROM observations FINAL
                 WHERE project_id = {project} AND type = 'generation' AND model = '{}'
                 ORDER BY start_time_us DESC, id DESC LIMIT 51 FORMAT JSONEachRow",
                models[i % 4]
            ),
        )
    })
    .await?;
    rows.push(Row {
        read: "observation list page",
        new: new_timings,
        old: old_timings,
        speedup_target: true,
        target_ms: None,
    });

    let new_timings = time(args.requests, |i| {
        get(format!("/v1/scores?trace_id={}", trace(i)))
    })
    .await?;
    let old_timings = time(args.old_requests, |i| {
        sql(
            &old,
            format!(
                "SELECT * FROM scores FINAL WHERE project_id = {project} AND trace_id = '{}'
                 ORDER BY timestamp_us DESC, id DESC LIMIT 51 FORMAT JSONEachRow",
                trace(i)
            ),
        )
    })
    .await?;
    rows.push(Row {
        read: "a trace's scores",
        new: new_timings,
        old: old_timings,
        speedup_target: true,
        target_ms: None,
    });
    let new_timings = time(args.requests, |_| get("/v1/scores?limit=50".into())).await?;
    rows.push(Row {
        read: "scores list page",
        new: new_timings,
        old: Timings(Vec::new()),
        speedup_target: true,
        target_ms: Some((150.0, 0.5)),
    });

    let new_timings = time(args.requests, |_| {
        get(format!(
            "/v1/metrics?from={}&to={}&bucket=day&dimensions=model&type=generation",
            iso(month_ago),
            iso(now_us + DAY_US)
        ))
    })
    .await?;
    let old_timings = time(args.old_requests, |_| sql(&old, old_metrics(&project, month_ago))).await?;
    rows.push(Row {
        read: "30 days of cost by day and model",
        new: new_timings,
        old: old_timings,
        speedup_target: true,
        target_ms: Some((300.0, 0.5)),
    });

    // Dashboard panels over 90 days, in turn.
    let quarter_ago = now_us - 90 * DAY_US;
    let panels = [
        "bucket=day&dimensions=model&type=generation",
        "bucket=day&dimensions=type",
        "bucket=hour",
        "bucket=week&dimensions=name",
        "bucket=day&dimensions=api_key",
    ];
    let panel = |i: usize| {
        format!(
            "/v1/metrics?from={}&to={}&{}",
            iso(quarter_ago),
            iso(now_us + DAY_US),
            panels[i % panels.len()]
        )
    };
    let new_timings = time(args.requests, |i| get(panel(i))).await?;
    rows.push(Row {
        read: "a dashboard panel over 90 days",
        new: new_timings,
        old: Timings(Vec::new()),
        speedup_target: true,
        target_ms: Some((500.0, 0.5)),
    });

    // Full-text search over the month: one word at a time (common to rare, several scripts),
    // phrases, and a word no row holds. The baseline is how it is done without an index: a
    // case-insensitive substring scan of the month's inputs and outputs, newest 20.
    let vocabulary = Vocabulary::new();
    let words = vocabulary.queries();
    let month = iso(month_ago);
    let search = |q: &str| {
        let q = crate::commands::search::urlencode(q);
        get(format!("/v1/search?from={month}&limit=20&q={q}"))
    };
    let like = |word: &str| {
        format!(
            "SELECT trace_id, id FROM observations WHERE project_id = {project} AND start_time_us >= {month_ago}
             AND (positionCaseInsensitiveUTF8(input, {word}) > 0 OR positionCaseInsensitiveUTF8(output, {word}) > 0)
             ORDER BY start_time_us DESC LIMIT 20 FORMAT JSONEachRow",
            word = quote(word)
        )
    };
    let new_timings = time(args.requests, |i| search(&words[i % words.len()].1)).await?;
    // The baseline scans the month: a few requests are enough.
    let baseline_requests = args.requests.min(5);
    let old_timings = time(baseline_requests, |i| sql(&new, like(&words[i % words.len()].1))).await?;
    rows.push(Row {
        read: "search: one word, 30 days",
        new: new_timings,
        old: old_timings,
        target_ms: Some((300.0, 0.5)),
        speedup_target: false,
    });
    let phrases = [
        format!("\"{} {}\"", vocabulary.entries[0], vocabulary.entries[1]),
        "\"数据库连接失败\"".to_owned(),
        format!("\"{} {}\"", vocabulary.entries[1], vocabulary.entries[0]),
    ];
    let new_timings = time(args.requests, |i| search(&phrases[i % phrases.len()])).await?;
    let old_timings = time(baseline_requests, |i| {
        sql(&new, like(phrases[i % phrases.len()].trim_matches('"')))
    })
    .await?;
    rows.push(Row {
        read: "search: a phrase, 30 days",
        new: new_timings,
        old: old_timings,
        target_ms: Some((800.0, 0.5)),
        speedup_target: false,
    });
    let new_timings = time(args.requests, |_| search("qqzzqqzz")).await?;
    rows.push(Row {
        read: "search: a word no row holds",
        new: new_timings,
        old: Timings(Vec::new()),
        target_ms: None,
        speedup_target: false,
    });
    for (label, word) in &words {
        let timings = time(args.requests.min(10), |_| search(word)).await?;
        writeln!(
            out,
            "  search {label} ({word}): p50 {:.1} ms",
            timings.percentile(0.5)
        )?;
    }
    let sizes_sql = format!(
        "SELECT table, sum(data_compressed_bytes) FROM system.parts WHERE active AND database = {}
         GROUP BY table FORMAT TabSeparated",
        quote(new.database())
    );
    let table_bytes: Vec<(String, f64)> = new
        .query_text(&sizes_sql)
        .await?
        .lines()
        .filter_map(|line| {
            let (table, bytes) = line.split_once('\t')?;
            Some((table.to_owned(), bytes.parse().ok()?))
        })
        .collect();
    let bytes_of = |names: &[&str]| -> f64 {
        table_bytes
            .iter()
            .filter(|(table, _)| names.contains(&table.as_str()))
            .map(|(_, bytes)| bytes)
            .sum()
    };
    let index = bytes_of(&["search_postings"]);
    let event_tables: Vec<&str> = Table::events()
        .filter(|t| *t != Table::Metrics)
        .map(Table::name)
        .collect();
    let events = bytes_of(&event_tables);
    let postings: u64 = new
        .query_text("SELECT count() FROM search_postings FORMAT TabSeparated")
        .await?
        .trim()
        .parse()?;
    writeln!(
        out,
        "search index: {postings} postings, {:.1} MB compressed; the event tables {:.1} MB: {:.0}% of them",
        index / 1e6,
        events / 1e6,
        100.0 * index / events.max(1.0)
    )?;

    // Late events and replays touch 24 hours of the month: those are read raw.
    new.execute(&format!(
        "INSERT INTO observations SELECT * FROM observations WHERE project_id = {project}
         AND id IN (SELECT any(id) FROM observations_by_time WHERE project_id = {project} AND type = 'generation'
                    AND start_time_us >= {month_ago} GROUP BY intDiv(start_time_us, {hour}) ORDER BY rand() LIMIT 24)",
        hour = hourly::HOUR_US
    ))
    .await?;
    let new_timings = time(args.requests, |_| {
        get(format!(
            "/v1/metrics?from={}&to={}&bucket=day&dimensions=model&type=generation",
            iso(month_ago),
            iso(now_us + DAY_US)
        ))
    })
    .await?;
    rows.push(Row {
        read: "30 days by day and model, 24 h touched",
        new: new_timings,
        old: Timings(Vec::new()),
        speedup_target: true,
        target_ms: Some((300.0, 0.5)),
    });

    // Every answer above equals a full deduplicated scan of the same rows.
    let mut compared = 0;
    for (from_us, shape) in std::iter::once((month_ago, "bucket=day&dimensions=model&type=generation"))
        .chain(panels.iter().map(|p| (quarter_ago, *p)))
    {
        let pairs: serde_json::Map<String, serde_json::Value> = shape
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .map(|(k, v)| (k.to_owned(), serde_json::Value::String(v.to_owned())))
            .collect();
        let mut params: metrics::MetricsParams = serde_json::from_value(pairs.into())?;
        params.from = Some(iso(from_us));
        params.to = Some(iso(now_us + DAY_US));
        let query = metrics::MetricsQuery::from_params(&params).map_err(|e| anyhow::anyhow!("{e}"))?;
        let through_rollups = metrics::metrics(&new, largest, &query)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let scanned = metrics::metrics_from(&new, largest, &query, &[])
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        same_answer(shape, &through_rollups.data, &scanned.data)?;
        compared += 1;
    }
    writeln!(
        out,
        "{compared} metrics answers equal a full deduplicated scan (counts, costs, tokens and rates exactly; latency estimates within 10%)"
    )?;

    server.shutdown().await?;
    let rss = peak_rss_mb();

    writeln!(
        out,
        "\n{} observations, {} projects; the largest has {} ({} traces)",
        args.observations,
        args.projects,
        sizes[0],
        sizes[0].div_ceil(TRACE_SIZE)
    )?;
    writeln!(
        out,
        "{:<34} {:>9} {:>9} {:>10} {:>10} {:>9} {:>8}  target",
        "read", "p50 ms", "p95 ms", "old p50", "old p95", "p50 ×", "p95 ×"
    )?;
    for row in &rows {
        let (p50, p95) = (row.new.percentile(0.5), row.new.percentile(0.95));
        let (old50, old95) = (row.old.percentile(0.5), row.old.percentile(0.95));
        let target = match row.target_ms {
            Some((ms, at)) if row.old.0.is_empty() || !row.speedup_target => {
                let measured = row.new.percentile(at);
                let met = if measured < ms { "met" } else { "MISSED" };
                format!("p{} < {ms} ms: {met}", (at * 100.0) as u32)
            }
            Some((ms, _)) => {
                let met = p50 < ms && old50 / p50 >= 10.0;
                format!("p50 < {ms} ms, ≥10×: {}", if met { "met" } else { "MISSED" })
            }
            None => String::new(),
        };
        writeln!(
            out,
            "{:<34} {:>9.1} {:>9.1} {:>10.1} {:>10.1} {:>9.1} {:>8.1}  {target}",
            row.read,
            p50,
            p95,
            old50,
            old95,
            old50 / p50,
            old95 / p95
        )?;
    }
    writeln!(
        out,
        "peak RSS of this process (the ETL serving the reads): {rss:.0} MB"
    )?;
    if !args.reuse {
        let databases = if args.old_requests > 0 {
            vec![&new, &old]
        } else {
            vec![&new]
        };
        for database in databases {
            clickhouse
                .execute_on_server(&format!(
                    "DROP DATABASE IF EXISTS {}",
                    quote_identifier(database.database())
                ))
                .await?;
        }
    }
    Ok(())
}

/// Two metrics answers agree: every number exactly (to rounding), latency percentiles (estimates
/// in both paths) within 10%.
fn same_answer(label: &str, a: &[serde_json::Value], b: &[serde_json::Value]) -> anyhow::Result<()> {
    ensure!(
        a.len() == b.len(),
        "{label}: {} groups through the rollups, {} scanned",
        a.len(),
        b.len()
    );
    for (x, y) in a.iter().zip(b) {
        for (key, expected) in y.as_object().into_iter().flatten() {
            let got = &x[key];
            let close = match (got.as_f64(), expected.as_f64()) {
                (Some(g), Some(e)) if key.starts_with("latency_") => (g - e).abs() <= 0.1 * e.abs().max(1.0),
                (Some(g), Some(e)) => (g - e).abs() <= 1e-9 * e.abs().max(1.0),
                _ => got == expected,
            };
            ensure!(
                close,
                "{label}: {key} is {got} through the rollups, {expected} scanned\n{x}\n{y}"
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_add_up_with_a_fifth_in_the_largest_project() {
        let sizes = project_sizes(100_000_000, 10);
        assert_eq!(sizes.len(), 10);
        assert_eq!(sizes.iter().sum::<u64>(), 100_000_000);
        assert_eq!(sizes[0], 20_000_000);
        assert_eq!(project_sizes(1003, 4).iter().sum::<u64>(), 1003);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let timings = Timings((1..=100).map(f64::from).collect());
        assert_eq!(timings.percentile(0.5), 50.0);
        assert_eq!(timings.percentile(0.95), 95.0);
    }
}
