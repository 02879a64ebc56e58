//! `agenttrace search` and `agenttrace trace`: find what agents said and did, and read a trace
//! as a tree, in the terminal (JSON for a pipe or with `--json`), through the read API.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::io::Write;

use anyhow::{Context, bail};
use clap::Args;
use serde_json::Value;

use crate::commands::analyst::ApiArgs;
use crate::commands::output::json_wanted;

#[derive(Debug, Clone, Args)]
pub struct SearchArgs {
    /// Words (all must match), "exact phrases", field: prefixes (input:, output:, command:,
    /// path:, diff:, comment:, name:, metadata.key:, ...) and -exclusions.
    pub query: String,
    /// What to list: traces, observations or sessions.
    #[arg(long, default_value = "traces", value_parser = ["traces", "observations", "sessions"])]
    pub results: String,
    /// Matches at or after this time (RFC 3339).
    #[arg(long)]
    pub from: Option<String>,
    /// Matches before this time (RFC 3339).
    #[arg(long)]
    pub to: Option<String>,
    #[arg(long)]
    pub user_id: Option<String>,
    #[arg(long)]
    pub session_id: Option<String>,
    /// Comma-separated; a trace must carry every one.
    #[arg(long)]
    pub tags: Option<String>,
    #[arg(long)]
    pub environment: Option<String>,
    /// warning or error: traces with an observation at that level or above.
    #[arg(long)]
    pub level: Option<String>,
    /// Results to show (at most 100).
    #[arg(long, default_value_t = 10)]
    pub limit: usize,
    /// The next_cursor a previous search printed.
    #[arg(long)]
    pub cursor: Option<String>,
    /// Print each result's whole trace tree, not only the path to its matches.
    #[arg(long)]
    pub tree: bool,
    /// Print the API's JSON even on a terminal; a pipe always gets JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Clone, Args)]
pub struct TraceArgs {
    /// The trace's id.
    pub id: String,
    /// Print the API's JSON even on a terminal; a pipe always gets JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub api: ApiArgs,
}

async fn get(api: &ApiArgs, path: &str, query: &[(&str, String)]) -> anyhow::Result<Value> {
    let response = reqwest::Client::new()
        .get(format!("{}{path}", api.url.trim_end_matches('/')))
        .query(query)
        .header(reqwest::header::AUTHORIZATION, format!("Bearer {}", api.api_key))
        .send()
        .await
        .context("contacting the ETL")?;
    let status = response.status();
    let body = response.text().await.context("reading the ETL's answer")?;
    if !status.is_success() {
        let message = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_owned))
            .unwrap_or(body);
        bail!("{status}: {message}");
    }
    serde_json::from_str(&body).context("the ETL's answer is not JSON")
}

fn trace_path(id: &str) -> String {
    format!("/v1/traces/{}", urlencode(id))
}

/// Percent-encodes a path segment or a query value (ids are the agent's own strings).
pub(crate) fn urlencode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub async fn search(args: SearchArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let mut query = vec![
        ("q", args.query.clone()),
        ("results", args.results.clone()),
        ("limit", args.limit.to_string()),
    ];
    for (name, value) in [
        ("from", &args.from),
        ("to", &args.to),
        ("user_id", &args.user_id),
        ("session_id", &args.session_id),
        ("tags", &args.tags),
        ("environment", &args.environment),
        ("level", &args.level),
        ("cursor", &args.cursor),
    ] {
        if let Some(value) = value {
            query.push((name, value.clone()));
        }
    }
    let page = get(&args.api, "/v1/search", &query).await?;
    if json_wanted(args.json) {
        writeln!(out, "{page}")?;
        return Ok(());
    }
    let results = page["data"].as_array().cloned().unwrap_or_default();
    let color = std::io::IsTerminal::is_terminal(&std::io::stdout());
    for result in &results {
        let trace_id = result["trace"]["id"].as_str().unwrap_or_default();
        let detail = get(&args.api, &trace_path(trace_id), &[]).await.ok();
        write!(
            out,
            "{}",
            render_result(result, detail.as_ref(), args.tree, color)
        )?;
    }
    writeln!(
        out,
        "{} result{}",
        results.len(),
        if results.len() == 1 { "" } else { "s" }
    )?;
    if let Some(cursor) = page["next_cursor"].as_str() {
        writeln!(out, "more: --cursor {cursor}")?;
    }
    Ok(())
}

pub async fn trace(args: TraceArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let detail = get(&args.api, &trace_path(&args.id), &[]).await?;
    if json_wanted(args.json) {
        writeln!(out, "{detail}")?;
        return Ok(());
    }
    let color = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let trace = &detail["trace"];
    writeln!(out, "{}", trace_heading(trace, &args.id))?;
    for (label, field) in [("input", "input"), ("output", "output")] {
        if !trace[field].is_null() {
            writeln!(out, "  {label}: {}", preview(&trace[field], 200))?;
        }
    }
    write!(out, "{}", render_tree(&detail, &HashSet::new(), None, color))?;
    Ok(())
}

/// Stored text as a terminal may show it: control characters (escape sequences that could
/// rewrite the screen, the clipboard or links) and bidirectional overrides become U+FFFD.
fn safe(text: &str) -> String {
    text.chars()
        .map(|c| {
            if (c.is_control() && c != '\n' && c != '\t')
                || ('\u{202A}'..='\u{202E}').contains(&c)
                || ('\u{2066}'..='\u{2069}').contains(&c)
            {
                '\u{FFFD}'
            } else {
                c
            }
        })
        .collect()
}

fn text(value: &Value) -> String {
    safe(&match value {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    })
}

/// A value on one line, cut to `max` characters.
fn preview(value: &Value, max: usize) -> String {
    let one_line: String = text(value).split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > max {
        format!("{}…", one_line.chars().take(max).collect::<String>())
    } else {
        one_line
    }
}

fn trace_heading(trace: &Value, id: &str) -> String {
    let mut heading = format!("trace {}", safe(id));
    if let Some(name) = trace["name"].as_str() {
        let _ = write!(heading, "  {}", safe(name));
    }
    if let Some(at) = trace["timestamp_us"].as_i64() {
        let _ = write!(heading, "  {}", time(at));
    }
    for (label, field) in [("user", "user_id"), ("session", "session_id")] {
        if let Some(value) = trace[field].as_str().filter(|v| !v.is_empty()) {
            let _ = write!(heading, "  {label} {}", safe(value));
        }
    }
    heading
}

fn time(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

/// A snippet with its highlights in bold yellow (terminal) or between `[` `]`.
fn highlighted(snippet: &str, highlights: &[Value], color: bool) -> String {
    let (open, close) = if color {
        ("\x1b[1;33m", "\x1b[0m")
    } else {
        ("[", "]")
    };
    let mut out = String::new();
    let mut at = 0;
    for range in highlights {
        let (Some(start), Some(end)) = (range[0].as_u64(), range[1].as_u64()) else {
            continue;
        };
        let (start, end) = (start as usize, end as usize);
        if start < at
            || end > snippet.len()
            || !snippet.is_char_boundary(start)
            || !snippet.is_char_boundary(end)
        {
            continue;
        }
        out.push_str(&safe(&snippet[at..start]));
        out.push_str(open);
        out.push_str(&safe(&snippet[start..end]));
        out.push_str(close);
        at = end;
    }
    out.push_str(&safe(&snippet[at..]));
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// One search result: its trace's heading, each match with its snippet, and the tree (the
/// whole tree with `tree`, else the path from the root to each matched observation).
fn render_result(result: &Value, detail: Option<&Value>, tree: bool, color: bool) -> String {
    let mut out = String::new();
    let trace = &result["trace"];
    let id = trace["id"].as_str().unwrap_or_default();
    let _ = writeln!(out, "{}", trace_heading(trace, id));
    if let Some(observation) = result["observation"].as_object() {
        let _ = writeln!(
            out,
            "  observation {} {}",
            observation.get("name").map(text).unwrap_or_default(),
            observation.get("id").map(text).unwrap_or_default()
        );
    }
    let mut marked = HashSet::new();
    for found in result["matches"].as_array().into_iter().flatten() {
        let observation = found["observation_id"].as_str().unwrap_or_default();
        if !observation.is_empty() {
            marked.insert(observation.to_owned());
        }
        let highlights = found["highlights"].as_array().cloned().unwrap_or_default();
        let _ = writeln!(
            out,
            "  {} {}: {}",
            safe(found["source"].as_str().unwrap_or_default().trim_end_matches('s')),
            safe(found["field"].as_str().unwrap_or_default()),
            highlighted(found["snippet"].as_str().unwrap_or_default(), &highlights, color)
        );
    }
    if let Some(detail) = detail {
        let only = (!tree).then_some(&marked);
        out.push_str(&render_tree(detail, &marked, only, color));
    }
    out.push('\n');
    out
}

/// A trace's observation tree, one line per observation (type, name, duration, cost, level),
/// `marked` ones flagged; with `only`, just the paths from the roots to those.
fn render_tree(
    detail: &Value,
    marked: &HashSet<String>,
    only: Option<&HashSet<String>>,
    color: bool,
) -> String {
    fn holds(node: &Value, wanted: &HashSet<String>) -> bool {
        node["id"].as_str().is_some_and(|id| wanted.contains(id))
            || node["children"]
                .as_array()
                .is_some_and(|children| children.iter().any(|c| holds(c, wanted)))
    }
    fn walk(
        nodes: &[Value],
        prefix: &str,
        marked: &HashSet<String>,
        only: Option<&HashSet<String>>,
        color: bool,
        out: &mut String,
    ) {
        let shown: Vec<&Value> = nodes
            .iter()
            .filter(|node| only.is_none_or(|wanted| holds(node, wanted)))
            .collect();
        for (i, node) in shown.iter().enumerate() {
            let last = i + 1 == shown.len();
            let id = node["id"].as_str().unwrap_or_default();
            let mut line = format!(
                "{} {}",
                safe(node["type"].as_str().unwrap_or("span")),
                safe(node["name"].as_str().unwrap_or_default())
            );
            if let (Some(start), Some(end)) = (node["start_time_us"].as_i64(), node["end_time_us"].as_i64()) {
                let _ = write!(line, "  {:.2}s", (end - start) as f64 / 1e6);
            }
            if let Some(cost) = node["total_cost"].as_f64().filter(|c| *c > 0.0) {
                let _ = write!(line, "  ${cost:.4}");
            }
            if let Some(level) = node["level"]
                .as_str()
                .filter(|l| matches!(*l, "warning" | "error"))
            {
                let _ = write!(line, "  {level}");
            }
            if marked.contains(id) {
                line.push_str(if color {
                    "  \x1b[1;33m◀ match\x1b[0m"
                } else {
                    "  ◀ match"
                });
            }
            let _ = writeln!(out, "{prefix}{}{line}", if last { "└─ " } else { "├─ " });
            if let Some(children) = node["children"].as_array() {
                let deeper = format!("{prefix}{}", if last { "   " } else { "│  " });
                walk(children, &deeper, marked, only, color, out);
            }
        }
    }
    let mut out = String::new();
    let roots = detail["observations"].as_array().cloned().unwrap_or_default();
    walk(&roots, "  ", marked, only, color, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn detail() -> Value {
        json!({
            "trace": {"id": "t1", "name": "fix billing"},
            "observations": [{
                "id": "root", "type": "span", "name": "turn", "start_time_us": 0, "end_time_us": 2_000_000,
                "children": [
                    {"id": "bash", "type": "tool", "name": "Bash", "level": "error", "children": []},
                    {"id": "llm", "type": "generation", "name": "claude", "total_cost": 0.0123, "children": []}
                ]
            }]
        })
    }

    #[test]
    fn a_result_shows_its_snippets_and_the_path_to_its_match() {
        let result = json!({
            "trace": {"id": "t1", "name": "fix billing", "user_id": "ada"},
            "matches": [{"source": "observations", "observation_id": "bash", "field": "output",
                         "snippet": "error: cannot find total", "highlights": [[0, 5]]}]
        });
        let text = render_result(&result, Some(&detail()), false, false);
        assert_eq!(
            text,
            "trace t1  fix billing  user ada\n  observation output: [error]: cannot find total\n  └─ span turn  2.00s\n     └─ tool Bash  error  ◀ match\n\n"
        );
        let whole = render_result(&result, Some(&detail()), true, false);
        assert!(whole.contains("├─ tool Bash  error  ◀ match"));
        assert!(whole.contains("└─ generation claude  $0.0123"));
    }

    #[test]
    fn stored_escape_sequences_never_reach_the_terminal() {
        let result = json!({
            "trace": {"id": "t\u{1b}]52;c;aGk=\u{7}", "name": "\u{1b}[2Jname\u{202E}"},
            "matches": [{"source": "observations", "observation_id": "", "field": "out\u{1b}put",
                         "snippet": "a \u{1b}[31mred\u{9b}", "highlights": [[0, 1]]}]
        });
        let text = render_result(&result, None, false, true);
        assert!(!text.contains(['\u{7}', '\u{9b}', '\u{202E}']), "{text:?}");
        // The only escapes left are the highlight's own.
        assert_eq!(text.matches('\u{1b}').count(), 2, "{text:?}");
    }

    #[test]
    fn highlights_out_of_range_are_ignored() {
        let text = highlighted(
            "数据库 error",
            &[json!([0, 3]), json!([1, 2]), json!([10, 99])],
            false,
        );
        assert_eq!(text, "[数]据库 error");
    }
}
