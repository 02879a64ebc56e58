//! Realistic coding-agent sessions: what `agenttrace demo` sends and `agenttrace bench` loads.
//!
//! A session is one trace: the user's task, then turns of an agent loop. Each turn is an
//! `agent_step` span holding an LLM generation (with usage and cache tokens) and tool calls;
//! shell tools produce terminal commands, edit tools file operations; the session ends with a
//! commit (git link) and scores.

use agenttrace_schemas::event::{
    FileOperation, FileOperationKind, GitLink, Json, Level, Metadata, Observation, ObservationType, Score,
    ScoreSource, ScoreValue, TerminalCommand, Text, Trace, Usage,
};
use agenttrace_schemas::{Event, Payload, Timestamp};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde_json::json;

const TASKS: &[&str] = &[
    "Fix the failing checkout test",
    "Add pagination to the orders API",
    "Refactor the auth middleware to use sessions",
    "Upgrade tokio and fix the breaking changes",
    "Écrire la documentation du module de paiement",
    "Investigate the flaky integration test in CI",
    "添加用户设置页面",
    "Remove dead code from the billing service",
];
const AGENTS: &[(&str, &str)] = &[
    ("claude-code", "claude-sonnet-4-5-20250929"),
    ("claude-code", "claude-opus-4-5-20251101"),
    ("codex", "gpt-5-codex"),
    ("in-house", "gpt-4.1-mini"),
];
const FILES: &[(&str, &str)] = &[
    ("src/checkout/cart.rs", "rust"),
    ("src/api/orders.ts", "typescript"),
    ("app/middleware/auth.py", "python"),
    ("docs/payments.md", "markdown"),
    ("tests/integration/orders_test.go", "go"),
    ("Cargo.toml", "toml"),
];
const COMMANDS: &[(&str, i32)] = &[
    ("cargo test --workspace", 0),
    ("cargo test checkout::", 101),
    ("npm run lint", 0),
    ("pytest -x tests/", 1),
    ("git status --short", 0),
    ("rg -n \"TODO\" src/", 0),
    ("go test ./...", 0),
];

/// The demo dataset: questions a coding agent is asked, with the expected answers.
pub const DATASET_ITEMS: &[(&str, &str)] = &[
    (
        "Which flag makes `git status` print one line per file?",
        "--short",
    ),
    (
        "Which cargo command runs the tests of every workspace member?",
        "cargo test --workspace",
    ),
    (
        "What HTTP status means the request body is too large?",
        "413 Payload Too Large",
    ),
    (
        "Which Rust trait turns a value into a String for display?",
        "Display",
    ),
    ("What does `ls -la` add over `ls -l`?", "hidden files"),
    ("Which SQL clause filters groups after aggregation?", "HAVING"),
    (
        "Which HTTP method should be idempotent and replace a resource?",
        "PUT",
    ),
    ("What is the exit code of a successful shell command?", "0"),
    (
        "Which tokio macro starts an async main function?",
        "#[tokio::main]",
    ),
    (
        "Which npm command installs exactly what the lockfile says?",
        "npm ci",
    ),
    ("Which Python tool runs the tests in tests/?", "pytest"),
    (
        "What does HMAC stand for?",
        "hash-based message authentication code",
    ),
];

/// One dataset item as an experiment run sees it.
#[derive(Debug, Clone)]
pub struct DatasetItem {
    pub id: String,
    pub question: String,
    pub answer: String,
}

/// Generates sessions from a seed, so benchmarks load the same data every run.
pub struct SessionGenerator {
    rng: StdRng,
}

impl SessionGenerator {
    pub fn new(seed: u64) -> Self {
        SessionGenerator {
            rng: StdRng::seed_from_u64(seed),
        }
    }

    fn id(&mut self) -> Text<'static> {
        format!("{:032x}", self.rng.random::<u128>()).into()
    }

    fn event(&mut self, timestamp: Timestamp, payload: Payload<'static>) -> Event<'static> {
        Event {
            id: self.id(),
            timestamp,
            payload,
        }
    }

    /// An experiment's run over a dataset, ending at `end`: per item a trace naming the
    /// experiment and item, holding one generation that answers. With probability `accuracy`
    /// the answer is exact; otherwise it is a near miss (right but worded differently) or wrong.
    pub fn experiment_run(
        &mut self,
        end: Timestamp,
        experiment_id: &str,
        model: &str,
        items: &[DatasetItem],
        accuracy: f64,
    ) -> Vec<Event<'static>> {
        let mut events = Vec::with_capacity(items.len() * 2);
        let mut clock = end.as_micros() - items.len() as i64 * 5_000_000;
        for item in items {
            let rng = &mut self.rng;
            let start = Timestamp::from_micros(clock);
            let latency_us = rng.random_range(400_000..4_000_000);
            clock += 5_000_000;
            let answer = if rng.random_bool(accuracy) {
                item.answer.clone()
            } else if rng.random_bool(0.5) {
                format!("The answer is {}.", item.answer)
            } else {
                "I am not sure.".to_owned()
            };
            let trace_id = self.id();
            let trace = Trace {
                id: trace_id.clone(),
                timestamp: Some(start),
                name: Some("dataset question".into()),
                user_id: None,
                session_id: None,
                release: Some("2026.11".into()),
                version: None,
                environment: "experiment".into(),
                tags: vec![format!("experiment:{experiment_id}").into()],
                input: Some(Json::from_value(&json!({ "question": item.question }))),
                output: Some(Json::from_value(&json!(answer))),
                metadata: Metadata::new(),
                experiment_id: Some(experiment_id.to_owned().into()),
                dataset_item_id: Some(item.id.clone().into()),
                public: false,
            };
            let event = self.event(start, Payload::Trace(trace));
            events.push(event);
            let rng = &mut self.rng;
            let generation = Observation {
                id: format!("{trace_id}-answer").into(),
                trace_id: trace_id.clone(),
                parent_observation_id: None,
                kind: ObservationType::Generation,
                name: "answer".into(),
                start_time: start,
                end_time: Some(Timestamp::from_micros(start.as_micros() + latency_us)),
                level: Level::Default,
                status_message: None,
                input: Some(Json::from_value(
                    &json!({"messages": [{"role": "user", "content": item.question}]}),
                )),
                output: Some(Json::from_value(&json!({"role": "assistant", "content": answer}))),
                metadata: Metadata::new(),
                model: Some(model.to_owned().into()),
                model_parameters: None,
                usage: Usage {
                    input_tokens: rng.random_range(40..200),
                    output_tokens: rng.random_range(5..60),
                    cache_read_input_tokens: 0,
                    cache_creation_input_tokens: 0,
                },
                cost: None,
                tool_name: None,
                tool_call_id: None,
                completion_start_time: None,
                prompt_name: None,
                prompt_version: None,
            };
            let event = self.event(start, Payload::Observation(generation));
            events.push(event);
        }
        events
    }

    /// One session of roughly `turns` agent steps, ending at `end`.
    pub fn session(&mut self, end: Timestamp, turns: usize) -> Vec<Event<'static>> {
        let rng = &mut self.rng;
        let task = *TASKS.choose(rng).unwrap();
        let (agent, model) = *AGENTS.choose(rng).unwrap();
        let user = format!("dev-{}", rng.random_range(1..40));
        let span_us = (turns as i64 + 2) * 20_000_000;
        let mut clock = end.as_micros() - span_us;
        let mut tick = |rng: &mut StdRng, max_ms: i64| {
            clock += rng.random_range(1_000..max_ms * 1_000);
            Timestamp::from_micros(clock)
        };
        let start = tick(rng, 10);
        let trace_id = self.id();
        let session_id = format!("session-{}", self.id());
        let mut events = Vec::with_capacity(turns * 6 + 4);
        let mut metadata = Metadata::new();
        metadata.insert("agent".into(), agent.into());
        metadata.insert("agent_version".into(), "2.0.14".into());
        metadata.insert("os".into(), "linux".into());
        let trace = Trace {
            id: trace_id.clone(),
            timestamp: Some(start),
            name: Some(task.into()),
            user_id: Some(user.clone().into()),
            session_id: Some(session_id.into()),
            release: Some("2026.11".into()),
            version: None,
            environment: "production".into(),
            tags: vec![format!("agent:{agent}").into(), "repo:acme/shop".into()],
            input: Some(Json::from_value(&json!({ "prompt": task }))),
            output: None,
            metadata,
            experiment_id: None,
            dataset_item_id: None,
            public: false,
        };
        let event = self.event(start, Payload::Trace(trace));
        events.push(event);

        let mut tests_passed = false;
        let mut total_added = 0;
        for turn in 0..turns {
            let rng = &mut self.rng;
            let step_start = tick(rng, 500);
            let step_id: Text = format!("{trace_id}-step-{turn}").into();
            let generation_start = tick(rng, 50);
            let input_tokens = rng.random_range(500..6_000);
            let cache_read = if turn == 0 {
                0
            } else {
                rng.random_range(8_000..60_000)
            };
            let output_tokens = rng.random_range(80..1_500);
            let generation_end = tick(rng, 9_000);
            let tool = *["Read", "Edit", "Bash", "Grep"].choose(rng).unwrap();
            let prompt = json!({"messages": [{"role": "user", "content": format!("{task} (turn {turn})")}]});
            let completion =
                json!({"role": "assistant", "content": format!("I'll use {tool} next."), "tool_use": tool});
            let generation = Observation {
                id: format!("{step_id}-gen").into(),
                trace_id: trace_id.clone(),
                parent_observation_id: Some(step_id.clone()),
                kind: ObservationType::Generation,
                name: "llm".into(),
                start_time: generation_start,
                end_time: Some(generation_end),
                level: Level::Default,
                status_message: None,
                input: Some(Json::from_value(&prompt)),
                output: Some(Json::from_value(&completion)),
                metadata: Metadata::new(),
                model: Some(model.into()),
                model_parameters: Some(Json::from_value(&json!({"max_tokens": 8192, "temperature": 0}))),
                usage: Usage {
                    input_tokens,
                    output_tokens,
                    cache_read_input_tokens: cache_read,
                    cache_creation_input_tokens: if turn == 0 { input_tokens * 3 } else { 0 },
                },
                cost: None,
                tool_name: None,
                tool_call_id: None,
                completion_start_time: None,
                prompt_name: None,
                prompt_version: None,
            };
            let tool_start = tick(rng, 100);
            let tool_end = tick(rng, 4_000);
            let tool_call_id = format!("toolu_{turn}_{}", &trace_id[..8]);
            let (command, exit_code) = *COMMANDS.choose(rng).unwrap();
            let failed = tool == "Bash" && exit_code != 0;
            let tool_observation = Observation {
                id: format!("{step_id}-tool").into(),
                trace_id: trace_id.clone(),
                parent_observation_id: Some(step_id.clone()),
                kind: ObservationType::ToolCall,
                name: tool.into(),
                start_time: tool_start,
                end_time: Some(tool_end),
                level: if failed { Level::Warning } else { Level::Default },
                status_message: failed.then(|| format!("exit code {exit_code}").into()),
                input: Some(Json::from_value(&json!({"command": command}))),
                output: Some(Json::from_value(&json!({"ok": !failed}))),
                metadata: Metadata::new(),
                model: None,
                model_parameters: None,
                usage: Usage::default(),
                cost: None,
                tool_name: Some(tool.into()),
                tool_call_id: Some(tool_call_id.into()),
                completion_start_time: None,
                prompt_name: None,
                prompt_version: None,
            };
            let step = Observation {
                id: step_id.clone(),
                trace_id: trace_id.clone(),
                parent_observation_id: None,
                kind: ObservationType::AgentStep,
                name: format!("turn {turn}").into(),
                start_time: step_start,
                end_time: Some(tool_end),
                level: Level::Default,
                status_message: None,
                input: None,
                output: None,
                metadata: Metadata::new(),
                model: None,
                model_parameters: None,
                usage: Usage::default(),
                cost: None,
                tool_name: None,
                tool_call_id: None,
                completion_start_time: None,
                prompt_name: None,
                prompt_version: None,
            };
            let mut side_effect = None;
            match tool {
                "Bash" => {
                    tests_passed = command.contains("test") && exit_code == 0;
                    side_effect = Some(Payload::TerminalCommand(TerminalCommand {
                        id: format!("{step_id}-cmd").into(),
                        trace_id: trace_id.clone(),
                        observation_id: Some(tool_observation.id.clone()),
                        timestamp: Some(tool_start),
                        command: command.into(),
                        cwd: Some("/home/dev/acme-shop".into()),
                        exit_code: Some(exit_code),
                        duration_ms: Some(((tool_end.as_micros() - tool_start.as_micros()) / 1000) as u64),
                        stdout: Some(
                            format!("running {command}\n{} passed", rng.random_range(3..400)).into(),
                        ),
                        stderr: (exit_code != 0).then(|| "error: test failed, to rerun pass `--lib`".into()),
                    }));
                }
                "Edit" | "Read" => {
                    let (path, language) = *FILES.choose(rng).unwrap();
                    let (added, removed) = if tool == "Edit" {
                        (rng.random_range(1..80), rng.random_range(0..30))
                    } else {
                        (0, 0)
                    };
                    total_added += added;
                    side_effect = Some(Payload::FileOperation(FileOperation {
                        id: format!("{step_id}-file").into(),
                        trace_id: trace_id.clone(),
                        observation_id: Some(tool_observation.id.clone()),
                        timestamp: Some(tool_end),
                        operation: if tool == "Edit" {
                            FileOperationKind::Edit
                        } else {
                            FileOperationKind::Read
                        },
                        path: path.into(),
                        new_path: None,
                        language: Some(language.into()),
                        lines_added: added,
                        lines_removed: removed,
                        bytes: Some(rng.random_range(200..40_000)),
                        diff: (tool == "Edit")
                            .then(|| format!("@@ -1,{removed} +1,{added} @@\n+// {task}").into()),
                    }));
                }
                _ => {}
            }
            for (time, payload) in [
                (step_start, Payload::Observation(step)),
                (generation_end, Payload::Observation(generation)),
                (tool_end, Payload::Observation(tool_observation)),
            ] {
                let event = self.event(time, payload);
                events.push(event);
            }
            if let Some(payload) = side_effect {
                let event = self.event(tool_end, payload);
                events.push(event);
            }
        }

        let rng = &mut self.rng;
        let commit_time = tick(rng, 2_000);
        let sha = format!("{:040x}", rng.random::<u128>());
        let git = GitLink {
            id: format!("{trace_id}-commit").into(),
            trace_id: trace_id.clone(),
            observation_id: None,
            timestamp: Some(commit_time),
            repository: "github.com/acme/shop".into(),
            branch: Some(format!("agent/{}", &trace_id[..8]).into()),
            commit_sha: sha.into(),
            message: Some(task.into()),
            author: Some(format!("{user} (via {agent})").into()),
            files_changed: rng.random_range(1..6),
            insertions: total_added,
            deletions: rng.random_range(0..20),
            pull_request_url: Some(
                format!("https://github.com/acme/shop/pull/{}", rng.random_range(100..999)).into(),
            ),
        };
        let helpfulness = rng.random_range(0.4..1.0);
        let event = self.event(commit_time, Payload::GitLink(git));
        events.push(event);
        let scores = [
            ("tests_passed", ScoreValue::Boolean(tests_passed)),
            ("helpfulness", ScoreValue::Numeric(helpfulness)),
            (
                "outcome",
                ScoreValue::Categorical(if tests_passed { "merged" } else { "needs_review" }.into()),
            ),
        ];
        for (name, value) in scores {
            let score = Score {
                id: format!("{trace_id}-{name}").into(),
                trace_id: trace_id.clone(),
                observation_id: None,
                timestamp: Some(commit_time),
                name: name.into(),
                value,
                source: ScoreSource::Api,
                evaluator_id: None,
                comment: None,
                metadata: Metadata::new(),
                data_type: None,
            };
            let event = self.event(commit_time, Payload::Score(score));
            events.push(event);
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agenttrace_schemas::event::TimeWindow;

    #[test]
    fn sessions_are_valid_deterministic_and_complete() {
        let end = Timestamp::parse("2026-11-25T12:00:00Z").unwrap();
        let session = SessionGenerator::new(7).session(end, 6);
        assert_eq!(session, SessionGenerator::new(7).session(end, 6));
        let window = TimeWindow::around(end);
        for event in &session {
            let text = serde_json::to_string(event).unwrap();
            Event::parse_valid(&text, &window).unwrap_or_else(|e| panic!("{e}: {text}"));
        }
        let count = |kind: &str| {
            session
                .iter()
                .filter(|e| e.payload.event_type().as_str() == kind)
                .count()
        };
        assert_eq!(count("trace"), 1);
        assert_eq!(count("observation"), 18);
        assert_eq!(count("score"), 3);
        assert_eq!(count("git_link"), 1);
    }

    #[test]
    fn experiment_runs_name_their_experiment_and_items() {
        let end = Timestamp::parse("2026-11-25T12:00:00Z").unwrap();
        let items: Vec<DatasetItem> = DATASET_ITEMS
            .iter()
            .enumerate()
            .map(|(i, (question, answer))| DatasetItem {
                id: format!("item-{i}"),
                question: (*question).to_owned(),
                answer: (*answer).to_owned(),
            })
            .collect();
        let run = SessionGenerator::new(1).experiment_run(end, "exp", "gpt-4.1-mini", &items, 0.5);
        assert_eq!(run.len(), items.len() * 2);
        let window = TimeWindow::around(end);
        for event in &run {
            let text = serde_json::to_string(event).unwrap();
            Event::parse_valid(&text, &window).unwrap_or_else(|e| panic!("{e}: {text}"));
            if let Payload::Trace(trace) = &event.payload {
                assert_eq!(trace.experiment_id.as_deref(), Some("exp"));
                assert!(trace.dataset_item_id.as_deref().unwrap().starts_with("item-"));
            }
        }
    }
}
