//! The MCP tools' answers as text an agent reads: one line per trace, session or observation,
//! the fields that matter first (id, name, time, cost, level), payloads as one-line previews,
//! search matches with «» around what matched. Pure functions over the read API's answers.

use std::fmt::Write as _;

use serde_json::Value;

use crate::analytics::answers::{MetricsAnswer, SessionPage, TraceDetail};
use crate::control::prompts::PromptVersion;

/// Observations a trace's tree shows at most; the rest are counted.
pub const MAX_TREE_NODES: usize = 300;
/// Records of each kind (scores, commands, file operations, git links) a trace shows at most.
pub const MAX_RECORDS: usize = 50;
/// Rows a metrics table shows at most.
pub const MAX_TABLE_ROWS: usize = 100;

/// `text` cut to `max` characters, saying so and what to do.
pub fn cut(mut text: String, max: usize) -> String {
    let Some((at, _)) = text.char_indices().nth(max) else {
        return text;
    };
    text.truncate(at);
    let _ = write!(
        text,
        "\n[answer cut at {max} characters: narrow the request (a smaller limit, fewer filters' matches, a smaller preview_chars, or get_observation for one observation)]"
    );
    text
}

/// A number, whether ClickHouse wrote it as a number or a quoted 64-bit integer.
pub fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// A non-empty string field.
fn string<'v>(row: &'v Value, field: &str) -> Option<&'v str> {
    row[field].as_str().filter(|s| !s.is_empty())
}

/// Microseconds since the epoch as RFC 3339 to the second (UTC).
pub fn time(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| micros.to_string())
}

/// A duration: `850ms`, `2.31s`, `3m05s`, `2h04m`.
pub fn duration_ms(ms: f64) -> String {
    if !ms.is_finite() || ms < 0.0 {
        return "?".into();
    }
    if ms < 1_000.0 {
        return format!("{ms:.0}ms");
    }
    let seconds = ms / 1_000.0;
    if seconds < 60.0 {
        return format!("{seconds:.2}s");
    }
    let whole = seconds.round() as u64;
    if whole < 3_600 {
        return format!("{}m{:02}s", whole / 60, whole % 60);
    }
    format!("{}h{:02}m", whole / 3_600, (whole % 3_600) / 60)
}

/// US dollars: four decimals, six below a cent.
pub fn cost(usd: f64) -> String {
    if usd >= 0.01 {
        format!("${usd:.4}")
    } else {
        format!("${usd:.6}")
    }
}

/// A value as one line: a string as itself, anything else as compact JSON, whitespace runs as
/// one space, cut to `max` characters with `…`.
pub fn preview(value: &Value, max: usize) -> String {
    let text = match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &one_line[..at]),
        None => one_line,
    }
}

fn is_blank(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// A search snippet with «» around each highlight (UTF-8 byte ranges of the snippet, in order);
/// ranges that overlap, leave the snippet or split a character are ignored.
pub fn highlighted(snippet: &str, highlights: &Value) -> String {
    let mut out = String::new();
    let mut at = 0;
    for range in highlights.as_array().into_iter().flatten() {
        let (Some(start), Some(end)) = (range[0].as_u64(), range[1].as_u64()) else {
            continue;
        };
        let (start, end) = (start as usize, end as usize);
        if start < at
            || end <= start
            || end > snippet.len()
            || !snippet.is_char_boundary(start)
            || !snippet.is_char_boundary(end)
        {
            continue;
        }
        out.push_str(&snippet[at..start]);
        out.push('«');
        out.push_str(&snippet[start..end]);
        out.push('»');
        at = end;
    }
    out.push_str(&snippet[at..]);
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `1200→350 tok` when the row has tokens.
fn tokens(row: &Value) -> Option<String> {
    let input = number(&row["input_tokens"]).unwrap_or(0.0);
    let output = number(&row["output_tokens"]).unwrap_or(0.0);
    (input > 0.0 || output > 0.0).then(|| format!("{input:.0}→{output:.0} tok"))
}

/// A trace-list row on one line: id, time, name, user, session, size, latency, cost, tokens,
/// level when not default.
pub fn trace_line(row: &Value) -> String {
    let mut parts = vec![format!("trace {}", row["id"].as_str().unwrap_or("?"))];
    if let Some(at) = row["timestamp_us"].as_i64() {
        parts.push(time(at));
    }
    if let Some(name) = string(row, "name") {
        parts.push(format!("{name:?}"));
    }
    if let Some(user) = string(row, "user_id") {
        parts.push(format!("user {user}"));
    }
    if let Some(session) = string(row, "session_id") {
        parts.push(format!("session {session}"));
    }
    if let Some(count) = number(&row["observation_count"]) {
        parts.push(format!("{count:.0} obs"));
    }
    if let Some(latency) = number(&row["latency_ms"]).filter(|l| *l > 0.0) {
        parts.push(duration_ms(latency));
    }
    if let Some(total) = number(&row["total_cost"]).filter(|c| *c > 0.0) {
        parts.push(cost(total));
    }
    parts.extend(tokens(row));
    if let Some(level) = string(row, "level").filter(|l| matches!(*l, "warning" | "error")) {
        parts.push(level.to_uppercase());
    }
    parts.extend(tags_part(row));
    parts.join(" · ")
}

/// A row's tags as one part of a line (`tags a,b`), when it has any.
fn tags_part(row: &Value) -> Option<String> {
    let tags: Vec<&str> = row["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    (!tags.is_empty()).then(|| format!("tags {}", tags.join(",")))
}

fn more(next_cursor: Option<&str>) -> String {
    match next_cursor {
        Some(cursor) => format!("more: call again with cursor {cursor:?}\n"),
        None => String::new(),
    }
}

fn plural(count: usize, one: &str, many: &str) -> String {
    format!("{count} {}", if count == 1 { one } else { many })
}

/// A page of `/v1/traces`.
pub fn trace_list(rows: &[Value], next_cursor: Option<&str>) -> String {
    let mut out = format!("{}, newest first:\n", plural(rows.len(), "trace", "traces"));
    for row in rows {
        let _ = writeln!(out, "{}", trace_line(row));
    }
    out.push_str(&more(next_cursor));
    out
}

/// A page of `/v1/sessions`.
pub fn session_list(rows: &[Value], next_cursor: Option<&str>) -> String {
    let mut out = format!(
        "{}, most recently active first:\n",
        plural(rows.len(), "session", "sessions")
    );
    for row in rows {
        let mut parts = vec![format!("session {}", row["id"].as_str().unwrap_or("?"))];
        if let (Some(first), Some(last)) = (row["first_us"].as_i64(), row["last_us"].as_i64()) {
            parts.push(format!("{} → {}", time(first), time(last)));
        }
        if let Some(count) = number(&row["trace_count"]) {
            parts.push(plural(count as usize, "trace", "traces"));
        }
        let users: Vec<&str> = row["user_ids"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter(|u| !u.is_empty())
            .collect();
        if !users.is_empty() {
            parts.push(format!("users {}", users.join(",")));
        }
        if let Some(count) = number(&row["observation_count"]) {
            parts.push(format!("{count:.0} obs"));
        }
        if let Some(total) = number(&row["total_cost"]).filter(|c| *c > 0.0) {
            parts.push(cost(total));
        }
        parts.extend(tokens(row));
        let _ = writeln!(out, "{}", parts.join(" · "));
    }
    out.push_str(&more(next_cursor));
    out
}

/// A page of `/v1/search`: each result's trace (or observation, or session) and its matches.
pub fn search_page(query: &str, results: &str, data: &[Value], next_cursor: Option<&str>) -> String {
    let mut out = format!(
        "{} for {query:?}, newest match first:\n",
        plural(data.len(), results.trim_end_matches('s'), results)
    );
    for (i, result) in data.iter().enumerate() {
        let trace = &result["trace"];
        let at = result["matched_at_us"].as_i64().map(time).unwrap_or_default();
        let head = match results {
            "observations" => {
                let observation = &result["observation"];
                let mut head = format!(
                    "observation {} · {} {:?}",
                    observation["id"].as_str().unwrap_or("?"),
                    observation["type"].as_str().unwrap_or("span"),
                    observation["name"].as_str().unwrap_or_default()
                );
                if let Some(model) = string(observation, "model") {
                    let _ = write!(head, " · {model}");
                }
                let _ = write!(head, " · matched {at}\n   in {}", trace_line(trace));
                head
            }
            "sessions" => format!(
                "session {} · matched {at}\n   in {}",
                result["session_id"].as_str().unwrap_or("?"),
                trace_line(trace)
            ),
            _ => format!("{} · matched {at}", trace_line(trace)),
        };
        let _ = writeln!(out, "{}. {head}", i + 1);
        for found in result["matches"].as_array().into_iter().flatten() {
            let source = found["source"].as_str().unwrap_or_default().trim_end_matches('s');
            let mut place = format!("{source} {}", found["field"].as_str().unwrap_or_default());
            if let Some(observation) = string(found, "observation_id") {
                let _ = write!(place, " [obs {observation}]");
            }
            let _ = writeln!(
                out,
                "   {place}: {}",
                highlighted(
                    found["snippet"].as_str().unwrap_or_default(),
                    &found["highlights"]
                )
            );
        }
    }
    out.push_str(&more(next_cursor));
    out
}

/// The totals of a trace's observations: (count, cost, input tokens, output tokens, first
/// start, last end).
fn totals(nodes: &[Value], sums: &mut (usize, f64, f64, f64, Option<i64>, Option<i64>)) {
    for node in nodes {
        sums.0 += 1;
        sums.1 += number(&node["total_cost"]).unwrap_or(0.0);
        sums.2 += number(&node["input_tokens"]).unwrap_or(0.0);
        sums.3 += number(&node["output_tokens"]).unwrap_or(0.0);
        if let Some(start) = node["start_time_us"].as_i64() {
            sums.4 = Some(sums.4.map_or(start, |s| s.min(start)));
        }
        let end = node["end_time_us"].as_i64().or(node["start_time_us"].as_i64());
        if let Some(end) = end {
            sums.5 = Some(sums.5.map_or(end, |e| e.max(end)));
        }
        if let Some(children) = node["children"].as_array() {
            totals(children, sums);
        }
    }
}

/// One observation's line: type, name, id, model or tool, duration, cost, tokens, level.
fn observation_line(node: &Value) -> String {
    let mut parts = vec![format!(
        "{} {:?} [{}]",
        node["type"].as_str().unwrap_or("span"),
        node["name"].as_str().unwrap_or_default(),
        node["id"].as_str().unwrap_or("?")
    )];
    if let Some(model) = string(node, "model") {
        parts.push(model.to_owned());
    }
    if let Some(tool) = string(node, "tool_name").filter(|t| Some(*t) != node["name"].as_str()) {
        parts.push(format!("tool {tool}"));
    }
    if let (Some(start), Some(end)) = (node["start_time_us"].as_i64(), node["end_time_us"].as_i64()) {
        parts.push(duration_ms((end - start) as f64 / 1_000.0));
    }
    if let Some(total) = number(&node["total_cost"]).filter(|c| *c > 0.0) {
        parts.push(cost(total));
    }
    parts.extend(tokens(node));
    if let Some(level) = string(node, "level").filter(|l| matches!(*l, "warning" | "error")) {
        match string(node, "status_message") {
            Some(message) => parts.push(format!(
                "{}: {}",
                level.to_uppercase(),
                preview(&message.into(), 200)
            )),
            None => parts.push(level.to_uppercase()),
        }
    }
    parts.join(" · ")
}

/// The tree, depth first, two spaces per level; at most `budget` nodes.
fn tree(nodes: &[Value], depth: usize, preview_chars: usize, budget: &mut usize, out: &mut String) {
    for node in nodes {
        if *budget == 0 {
            return;
        }
        *budget -= 1;
        let indent = "  ".repeat(depth);
        let _ = writeln!(out, "{indent}- {}", observation_line(node));
        for (label, field) in [("in", "input"), ("out", "output")] {
            if !is_blank(&node[field]) {
                let mut text = preview(&node[field], preview_chars);
                if node[format!("{field}_truncated")] == Value::Bool(true) && !text.ends_with('…') {
                    text.push('…');
                }
                let _ = writeln!(out, "{indent}    {label}: {text}");
            }
        }
        if let Some(children) = node["children"].as_array() {
            tree(children, depth + 1, preview_chars, budget, out);
        }
    }
}

fn metadata_line(metadata: &Value, preview_chars: usize) -> Option<String> {
    let pairs: Vec<String> = metadata
        .as_object()?
        .iter()
        .map(|(key, value)| format!("{key}={}", preview(value, preview_chars.min(200))))
        .collect();
    (!pairs.is_empty()).then(|| pairs.join(", "))
}

/// A trace: its row, the observation tree with previews, then scores, terminal commands, file
/// operations and git links.
pub fn trace_detail(detail: &TraceDetail, preview_chars: usize) -> String {
    let mut out = String::new();
    let trace = detail.trace.clone().unwrap_or(Value::Null);
    let mut head = vec![format!("trace {}", detail.id)];
    if let Some(name) = string(&trace, "name") {
        head.push(format!("{name:?}"));
    }
    if let Some(at) = trace["timestamp_us"].as_i64() {
        head.push(time(at));
    }
    for (label, field) in [
        ("user", "user_id"),
        ("session", "session_id"),
        ("env", "environment"),
        ("release", "release"),
    ] {
        if let Some(value) = string(&trace, field) {
            head.push(format!("{label} {value}"));
        }
    }
    head.extend(tags_part(&trace));
    let _ = writeln!(out, "{}", head.join(" · "));
    if detail.trace.is_none() {
        out.push_str("(the trace's own row has not arrived; its observations have)\n");
    }
    for field in ["input", "output"] {
        if !is_blank(&trace[field]) {
            let _ = writeln!(out, "{field}: {}", preview(&trace[field], preview_chars));
        }
    }
    if let Some(metadata) = metadata_line(&trace["metadata"], preview_chars) {
        let _ = writeln!(out, "metadata: {metadata}");
    }
    let mut sums = (0, 0.0, 0.0, 0.0, None, None);
    totals(&detail.observations, &mut sums);
    let mut summary = vec![plural(detail.observation_count, "observation", "observations")];
    if let (Some(start), Some(end)) = (sums.4, sums.5) {
        summary.push(duration_ms((end - start) as f64 / 1_000.0));
    }
    if sums.1 > 0.0 {
        summary.push(cost(sums.1));
    }
    if sums.2 > 0.0 || sums.3 > 0.0 {
        summary.push(format!("{:.0}→{:.0} tok", sums.2, sums.3));
    }
    if detail.observations_truncated {
        summary.push("more observations than read: the tree holds the first 10,000".into());
    }
    let _ = writeln!(out, "{}", summary.join(" · "));
    if !detail.observations.is_empty() {
        out.push_str("\nobservations ([id]; in/out are previews, get_observation shows one whole):\n");
        let mut budget = MAX_TREE_NODES;
        tree(&detail.observations, 0, preview_chars, &mut budget, &mut out);
        if sums.0 > MAX_TREE_NODES {
            let _ = writeln!(
                out,
                "… {} more observations not shown (the tree is cut at {MAX_TREE_NODES})",
                sums.0 - MAX_TREE_NODES
            );
        }
    }
    records(&mut out, "scores", &detail.scores, |score| {
        let value = match score["data_type"].as_str() {
            Some("categorical") => string(score, "string_value").unwrap_or("?").to_owned(),
            Some("boolean") => {
                if number(&score["value"]).unwrap_or(0.0) > 0.0 {
                    "true".into()
                } else {
                    "false".into()
                }
            }
            _ => number(&score["value"]).map_or("?".into(), |v| format!("{v}")),
        };
        let mut line = format!(
            "{} = {value} ({}",
            score["name"].as_str().unwrap_or("?"),
            score["source"].as_str().unwrap_or("?")
        );
        if let Some(observation) = string(score, "observation_id") {
            let _ = write!(line, ", obs {observation}");
        }
        line.push(')');
        if let Some(comment) = string(score, "comment") {
            let _ = write!(line, ": {}", preview(&comment.into(), preview_chars));
        }
        line
    });
    records(
        &mut out,
        "terminal commands",
        &detail.terminal_commands,
        |command| {
            let mut line = format!("$ {}", preview(&command["command"], preview_chars));
            if let Some(code) = number(&command["exit_code"]) {
                let _ = write!(line, " · exit {code:.0}");
            }
            if let Some(ms) = number(&command["duration_ms"]) {
                let _ = write!(line, " · {}", duration_ms(ms));
            }
            if let Some(cwd) = string(command, "cwd") {
                let _ = write!(line, " · cwd {cwd}");
            }
            for stream in ["stdout", "stderr"] {
                if !is_blank(&command[stream]) {
                    let _ = write!(
                        line,
                        "\n    {stream}: {}",
                        preview(&command[stream], preview_chars)
                    );
                }
            }
            line
        },
    );
    records(
        &mut out,
        "file operations",
        &detail.file_operations,
        |operation| {
            let mut line = format!(
                "{} {}",
                operation["operation"].as_str().unwrap_or("?"),
                operation["path"].as_str().unwrap_or("?")
            );
            if let Some(new_path) = string(operation, "new_path") {
                let _ = write!(line, " → {new_path}");
            }
            let added = number(&operation["lines_added"]).unwrap_or(0.0);
            let removed = number(&operation["lines_removed"]).unwrap_or(0.0);
            if added > 0.0 || removed > 0.0 {
                let _ = write!(line, " +{added:.0} -{removed:.0}");
            }
            line
        },
    );
    records(&mut out, "git", &detail.git_links, |link| {
        let mut line = String::new();
        if let Some(sha) = string(link, "commit_sha") {
            let _ = write!(line, "commit {}", &sha[..sha.len().min(12)]);
        }
        if let Some(branch) = string(link, "branch") {
            let _ = write!(line, " on {branch}");
        }
        if let Some(repository) = string(link, "repository") {
            let _ = write!(line, " in {repository}");
        }
        if let Some(message) = string(link, "message") {
            let _ = write!(line, " {:?}", preview(&message.into(), 200));
        }
        if let Some(url) = string(link, "pull_request_url") {
            let _ = write!(line, " {url}");
        }
        line.trim().to_owned()
    });
    out
}

fn records(out: &mut String, title: &str, rows: &[Value], line: impl Fn(&Value) -> String) {
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n{title}:");
    for row in rows.iter().take(MAX_RECORDS) {
        let _ = writeln!(out, "- {}", line(row));
    }
    if rows.len() > MAX_RECORDS {
        let _ = writeln!(out, "… {} more", rows.len() - MAX_RECORDS);
    }
}

/// One observation, whole: its columns on a line, then each payload and metadata value.
pub fn observation(row: &Value) -> String {
    let mut out = format!("{}\n", observation_line(row));
    let mut facts = Vec::new();
    if let Some(trace) = string(row, "trace_id") {
        facts.push(format!("trace {trace}"));
    }
    if let Some(parent) = string(row, "parent_observation_id") {
        facts.push(format!("parent {parent}"));
    }
    if let Some(start) = row["start_time_us"].as_i64() {
        facts.push(format!("started {}", time(start)));
    }
    if let Some(prompt) = string(row, "prompt_name") {
        facts.push(format!("prompt {prompt} v{}", row["prompt_version"]));
    }
    if !facts.is_empty() {
        let _ = writeln!(out, "{}", facts.join(" · "));
    }
    for field in ["input", "output", "model_parameters"] {
        if !is_blank(&row[field]) {
            let text = match &row[field] {
                Value::String(text) => text.clone(),
                other => serde_json::to_string_pretty(other).unwrap_or_default(),
            };
            let _ = writeln!(out, "\n{field}:\n{text}");
        }
    }
    if let Some(metadata) = row["metadata"].as_object().filter(|m| !m.is_empty()) {
        out.push_str("\nmetadata:\n");
        for (key, value) in metadata {
            let _ = writeln!(
                out,
                "{key}: {}",
                value.as_str().map_or(value.to_string(), str::to_owned)
            );
        }
    }
    out
}

/// A session's traces, oldest first, each with its input and output previewed.
pub fn session_page(page: &SessionPage, preview_chars: usize) -> String {
    let mut out = format!(
        "session {}: {}, oldest first:\n",
        page.session_id,
        plural(page.data.len(), "trace", "traces")
    );
    for (i, row) in page.data.iter().enumerate() {
        let _ = writeln!(out, "{}. {}", i + 1, trace_line(row));
        for (label, field) in [("in", "input"), ("out", "output")] {
            if !is_blank(&row[field]) {
                let _ = writeln!(out, "   {label}: {}", preview(&row[field], preview_chars));
            }
        }
    }
    out.push_str(&more(page.next_cursor.as_deref()));
    out
}

/// A number as a table shows it: whole numbers without decimals, others to six significant
/// places at most; `-` where nothing was measured.
fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(text) => text.clone(),
        other => match number(other) {
            Some(n) if n.fract() == 0.0 && n.abs() < 1e15 => format!("{n:.0}"),
            Some(n) => {
                let digits = (6 - (n.abs().log10().floor() as i32 + 1)).clamp(0, 9) as usize;
                let text = format!("{n:.digits$}");
                let text = text.trim_end_matches('0').trim_end_matches('.');
                text.to_owned()
            }
            None => other.to_string(),
        },
    }
}

/// A bucket's start without what every bucket shares (`.000000`, a midnight).
fn bucket_cell(value: &Value) -> String {
    let text = value.as_str().unwrap_or("-");
    let text = text.replace(".000000", "");
    match text.strip_suffix("T00:00:00Z") {
        Some(day) => day.to_owned(),
        None => text,
    }
}

/// A metrics answer as a table: the bucket (unless `none`), the dimensions asked for, then
/// `measures`; rows as the answer orders them, or by the first measure (highest first) without
/// buckets.
pub fn metrics_table(answer: &MetricsAnswer, measures: &[&str], bucketed: bool, heading: &str) -> String {
    let mut columns: Vec<&str> = Vec::new();
    if bucketed {
        columns.push("bucket");
    }
    columns.extend(answer.dimensions.iter().copied());
    columns.extend(measures.iter().copied());
    let mut rows: Vec<&Value> = answer.data.iter().collect();
    if !bucketed && let Some(first) = measures.first() {
        rows.sort_by(|a, b| {
            let key = |row: &Value| number(&row[*first]).unwrap_or(f64::NEG_INFINITY);
            key(b).total_cmp(&key(a))
        });
    }
    let shown = rows.len().min(MAX_TABLE_ROWS);
    let cells: Vec<Vec<String>> = rows[..shown]
        .iter()
        .map(|row| {
            columns
                .iter()
                .map(|column| match *column {
                    "bucket" => bucket_cell(&row["bucket"]),
                    c if answer.dimensions.contains(&c) => match row[c].as_str() {
                        Some("") => "(none)".into(),
                        _ => cell(&row[c]),
                    },
                    c => cell(&row[c]),
                })
                .collect()
        })
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, column)| {
            cells
                .iter()
                .map(|row| row[i].chars().count())
                .chain([column.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = format!("{heading}\n");
    if rows.is_empty() {
        out.push_str("no rows: nothing was recorded in that range with those filters\n");
        return out;
    }
    let line = |values: Vec<String>| {
        let padded: Vec<String> = values
            .iter()
            .zip(&widths)
            .map(|(value, width)| format!("{value:<width$}"))
            .collect();
        padded.join("  ").trim_end().to_owned()
    };
    let _ = writeln!(out, "{}", line(columns.iter().map(|c| (*c).to_owned()).collect()));
    for row in cells {
        let _ = writeln!(out, "{}", line(row));
    }
    if rows.len() > shown {
        let _ = writeln!(
            out,
            "… {} more rows not shown: narrow the range, bucket more coarsely or drop a dimension",
            rows.len() - shown
        );
    }
    out
}

/// A prompt version: its facts, config, then the template (a chat prompt's messages by role).
pub fn prompt(version: &PromptVersion) -> String {
    let mut out = format!(
        "prompt {:?} version {} · {} · labels {}",
        version.name,
        version.version,
        version.kind.as_str(),
        if version.labels.is_empty() {
            "(none)".to_owned()
        } else {
            version.labels.join(", ")
        }
    );
    if !version.tags.is_empty() {
        let _ = write!(out, " · tags {}", version.tags.join(", "));
    }
    let _ = writeln!(out, " · created {}", version.created_at);
    if let Some(message) = version.commit_message.as_deref().filter(|m| !m.is_empty()) {
        let _ = writeln!(out, "commit message: {message}");
    }
    if !is_blank(&version.config) {
        let _ = writeln!(out, "config: {}", version.config);
    }
    out.push_str("---\n");
    match &version.prompt {
        Value::String(text) => {
            let _ = writeln!(out, "{text}");
        }
        Value::Array(messages) => {
            for message in messages {
                if message["type"].as_str() == Some("placeholder") {
                    let _ = writeln!(out, "[placeholder {}]", message["name"].as_str().unwrap_or("?"));
                    continue;
                }
                let content = match &message["content"] {
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                };
                let _ = writeln!(out, "[{}] {content}", message["role"].as_str().unwrap_or("?"));
            }
        }
        other => {
            let _ = writeln!(out, "{other}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn highlights_mark_byte_ranges_and_skip_bad_ones() {
        assert_eq!(
            highlighted("the agent touched billing.rs twice", &json!([[18, 28]])),
            "the agent touched «billing.rs» twice"
        );
        // 数 is three bytes: [0, 3] marks it; [1, 2] splits it; [10, 99] leaves the snippet.
        assert_eq!(
            highlighted("数据库 error", &json!([[0, 3], [1, 2], [10, 99]])),
            "«数»据库 error"
        );
        assert_eq!(highlighted("a  b\n c", &json!([])), "a b c");
    }

    #[test]
    fn numbers_read_as_people_read_them() {
        assert_eq!(duration_ms(850.0), "850ms");
        assert_eq!(duration_ms(2_310.0), "2.31s");
        assert_eq!(duration_ms(185_000.0), "3m05s");
        assert_eq!(duration_ms(7_440_000.0), "2h04m");
        assert_eq!(cost(0.0123), "$0.0123");
        assert_eq!(cost(0.00072), "$0.000720");
        assert_eq!(cell(&json!(12)), "12");
        assert_eq!(cell(&json!("12")), "12");
        assert_eq!(cell(&json!(0.000720)), "0.00072");
        assert_eq!(cell(&json!(850.25)), "850.25");
        assert_eq!(cell(&Value::Null), "-");
        assert_eq!(time(1_777_593_600_000_000), "2026-05-01T00:00:00Z");
    }

    #[test]
    fn previews_are_one_line_and_cut() {
        assert_eq!(preview(&json!("a\n  b"), 10), "a b");
        assert_eq!(preview(&json!("数据库连接失败"), 3), "数据库…");
        assert_eq!(preview(&json!({"q": "x"}), 100), r#"{"q":"x"}"#);
    }

    #[test]
    fn long_answers_are_cut_at_a_character_and_say_so() {
        let text = cut("é".repeat(30), 10);
        assert!(text.starts_with(&"é".repeat(10)));
        assert!(!text.contains(&"é".repeat(11)));
        assert!(text.contains("[answer cut at 10 characters"), "{text}");
        assert_eq!(cut("short".into(), 10), "short");
    }

    fn detail() -> TraceDetail {
        TraceDetail {
            id: "t1".into(),
            trace: Some(
                json!({"id": "t1", "name": "fix billing", "timestamp_us": 1_777_593_600_000_000i64,
                "user_id": "ada", "session_id": "s1", "environment": "default", "tags": ["ci"],
                "input": {"task": "fix the invoice total"}, "output": null, "metadata": {"team": "payments"}}),
            ),
            observation_count: 3,
            observations_truncated: false,
            observations: vec![json!({
                "id": "root", "type": "span", "name": "turn", "start_time_us": 0, "end_time_us": 2_000_000,
                "level": "default", "input": "", "output": null,
                "children": [
                    {"id": "bash", "type": "tool", "name": "Bash", "tool_name": "Bash", "level": "error",
                     "status_message": "exit 101", "start_time_us": 100_000, "end_time_us": 600_000,
                     "input": {"command": "cargo test"}, "output": "error: cannot find total",
                     "output_truncated": true, "children": []},
                    {"id": "llm", "type": "generation", "name": "claude", "model": "claude-sonnet-4-5",
                     "total_cost": 0.0123, "input_tokens": "1200", "output_tokens": 350,
                     "start_time_us": 700_000, "end_time_us": 1_900_000, "children": []}
                ]
            })],
            scores: vec![
                json!({"name": "helpful", "data_type": "boolean", "value": 1, "source": "api",
                "observation_id": null, "comment": "good fix"}),
            ],
            file_operations: vec![
                json!({"operation": "edit", "path": "src/billing.rs", "lines_added": 10, "lines_removed": 2}),
            ],
            terminal_commands: vec![
                json!({"command": "cargo test", "exit_code": 101, "duration_ms": 500,
                "cwd": "/repo", "stdout": "", "stderr": "error: cannot find total"}),
            ],
            git_links: vec![],
        }
    }

    #[test]
    fn a_trace_reads_as_a_tree_with_previews_and_records() {
        let text = trace_detail(&detail(), 100);
        assert_eq!(
            text,
            "trace t1 · \"fix billing\" · 2026-05-01T00:00:00Z · user ada · session s1 · env default · tags ci
input: {\"task\":\"fix the invoice total\"}
metadata: team=payments
3 observations · 2.00s · $0.0123 · 1200→350 tok

observations ([id]; in/out are previews, get_observation shows one whole):
- span \"turn\" [root] · 2.00s
  - tool \"Bash\" [bash] · 500ms · ERROR: exit 101
      in: {\"command\":\"cargo test\"}
      out: error: cannot find total…
  - generation \"claude\" [llm] · claude-sonnet-4-5 · 1.20s · $0.0123 · 1200→350 tok

scores:
- helpful = true (api): good fix

terminal commands:
- $ cargo test · exit 101 · 500ms · cwd /repo
    stderr: error: cannot find total

file operations:
- edit src/billing.rs +10 -2
"
        );
    }

    #[test]
    fn search_results_show_what_matched_where() {
        let data = vec![json!({
            "matched_at_us": 1_777_593_600_000_000i64,
            "trace": {"id": "t1", "name": "fix billing", "timestamp_us": 1_777_593_600_000_000i64,
                      "observation_count": 3, "total_cost": 0.5, "level": "error"},
            "matches": [
                {"source": "observations", "id": "bash", "observation_id": "bash", "field": "output",
                 "snippet": "error: cannot find total", "highlights": [[0, 5]]},
                {"source": "traces", "id": "t1", "observation_id": "", "field": "input",
                 "snippet": "fix the invoice", "highlights": [[8, 15]]}
            ]
        })];
        assert_eq!(
            search_page("error invoice", "traces", &data, Some("abc")),
            "1 trace for \"error invoice\", newest match first:
1. trace t1 · 2026-05-01T00:00:00Z · \"fix billing\" · 3 obs · $0.5000 · ERROR · matched 2026-05-01T00:00:00Z
   observation output [obs bash]: «error»: cannot find total
   trace input: fix the «invoice»
more: call again with cursor \"abc\"
"
        );
    }

    #[test]
    fn metrics_read_as_a_table_highest_first_without_buckets() {
        let answer = MetricsAnswer {
            view: "observations",
            dimensions: vec!["model"],
            data: vec![
                json!({"model": "small", "count": 3, "total_cost": 0.001}),
                json!({"model": "large", "count": 10, "total_cost": 1.25}),
                json!({"model": "", "count": 1, "total_cost": null}),
            ],
        };
        assert_eq!(
            metrics_table(&answer, &["count", "total_cost"], false, "observations by model"),
            "observations by model
model   count  total_cost
large   10     1.25
small   3      0.001
(none)  1      -
"
        );
        let bucketed = MetricsAnswer {
            view: "observations",
            dimensions: vec![],
            data: vec![json!({"bucket": "2026-05-01T00:00:00.000000Z", "count": 2})],
        };
        assert!(metrics_table(&bucketed, &["count"], true, "h").contains("\n2026-05-01  2\n"));
    }
}
