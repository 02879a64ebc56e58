//! `agenttrace bench redaction`: the edge's CPU per 100-event request with redaction on, against
//! the same requests without it, in this process.
//!
//! Each request is what the Worker does to a `POST /v1/ingest` body before buffering it: decode,
//! parse and validate every event (`request::intake`), then, when on, redact every event
//! (`ingest::redact`). The bodies are demo coding-agent sessions (prompts, completions, tool
//! calls, commands) in which one event in fifty carries a secret (an API key pasted into a
//! prompt, an AWS key in a command's output), so the slow path (parse, walk, rewrite) is
//! measured as well as the fast one (a literal scan). Native code, not wasm: the ratio is the
//! figure, the absolute times are this machine's.

use std::io::Write;
use std::time::Instant;

use agenttrace_edge::ingest::redact;
use agenttrace_edge::limits::Limits;
use agenttrace_edge::request::{Route, intake};
use agenttrace_edge::score_configs::ConfigCheck;
use agenttrace_redact::{Detector, Redactor, Rules};
use agenttrace_schemas::Timestamp;
use anyhow::ensure;
use clap::Args;
use serde_json::{Value, json};

use crate::agent::SessionGenerator;

#[derive(Debug, Clone, Args)]
pub struct RedactionBenchArgs {
    /// Timed requests per variant (each variant runs them all, interleaved in rounds).
    #[arg(long, default_value_t = 2_000)]
    pub requests: usize,
}

/// 100-event bodies of demo sessions, one event in fifty holding a secret.
fn bodies() -> anyhow::Result<Vec<Vec<u8>>> {
    let mut generator = SessionGenerator::new(11);
    let mut events: Vec<Value> = Vec::new();
    while events.len() < 100 * 64 {
        for event in generator.session(Timestamp::now(), 6) {
            events.push(serde_json::to_value(&event)?);
        }
    }
    for (index, event) in events.iter_mut().enumerate().filter(|(i, _)| i % 50 == 7) {
        let leak = if index % 100 == 7 {
            json!(format!("use OPENAI_API_KEY=sk-proj-{index:0>40} for this"))
        } else {
            json!(format!(
                "AWS_ACCESS_KEY_ID=AKIA{index:0>16}\naws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCY{index:0>10}"
            ))
        };
        if let Some(body) = event.get_mut("body").and_then(Value::as_object_mut) {
            body.insert("metadata".into(), json!({ "leak": leak }));
        }
    }
    events
        .chunks(100)
        .filter(|chunk| chunk.len() == 100)
        .map(|chunk| Ok(serde_json::to_vec(&json!({ "events": chunk }))?))
        .collect()
}

/// One request's work: the intake, then the redaction when given; how many events it redacted.
fn request(body: &[u8], now: Timestamp, limits: &Limits, redactor: Option<&Redactor>) -> u64 {
    let (mut intake, _) = intake(
        Route::Native,
        Some("application/json"),
        None,
        body,
        now,
        limits,
        &mut ConfigCheck::unknown(),
    )
    .expect("the demo bodies are valid");
    redactor.map_or(0, |redactor| {
        redact(&mut intake.events, redactor, limits.max_event_bytes).total()
    })
}

pub fn run_redaction(args: RedactionBenchArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let bodies = bodies()?;
    let average = bodies.iter().map(Vec::len).sum::<usize>() / bodies.len();
    let key = b"bench digest key";
    let default = Redactor::new(&Rules::default(), key)?;
    let everything = Redactor::new(
        &Rules {
            detectors: Detector::ALL.to_vec(),
            hash: true,
            ..Rules::default()
        },
        key,
    )?;
    let variants: [(&str, Option<&Redactor>); 3] = [
        ("redaction off (today's edge)", None),
        ("default rules (secrets)", Some(&default)),
        ("every detector, digests", Some(&everything)),
    ];
    writeln!(
        out,
        "edge intake of {} requests of 100 events (~{} KB each), one event in 50 holding a secret",
        args.requests,
        average / 1024
    )?;
    let now = Timestamp::now();
    let limits = Limits::default();
    // Warm up, and check that the leaks are found.
    for (name, redactor) in &variants {
        let found: u64 = bodies.iter().map(|b| request(b, now, &limits, *redactor)).sum();
        ensure!(redactor.is_none() || found > 0, "{name}: no secret was found");
    }
    // Rounds of a few requests per variant, interleaved, so drift hits every variant alike.
    let mut spent = [0.0f64; 3];
    let rounds = args.requests.div_ceil(10);
    for round in 0..rounds {
        for (index, (_, redactor)) in variants.iter().enumerate() {
            let started = Instant::now();
            for i in 0..10 {
                let body = &bodies[(round * 10 + i) % bodies.len()];
                std::hint::black_box(request(body, now, &limits, *redactor));
            }
            spent[index] += started.elapsed().as_secs_f64();
        }
    }
    let per_request = |index: usize| spent[index] * 1000.0 / (rounds * 10) as f64;
    let baseline = per_request(0);
    for (index, (name, _)) in variants.iter().enumerate() {
        let ms = per_request(index);
        writeln!(
            out,
            "  {name:<30} {ms:>7.3} ms/request   {:>5.2}x{}",
            ms / baseline,
            match index {
                1 if ms / baseline <= 1.5 => "   target <= 1.5x: met",
                1 => "   target <= 1.5x: NOT met",
                _ => "",
            }
        )?;
    }
    Ok(())
}
