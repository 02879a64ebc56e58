//! Every detector on what agents really leak, and on what merely looks like it.

use serde_json::{Value, json};

use super::*;

const KEY: &[u8] = b"the deployment's secret";

fn all() -> Redactor {
    Redactor::new(
        &Rules {
            detectors: Detector::ALL.to_vec(),
            ..Rules::default()
        },
        KEY,
    )
    .unwrap()
}

fn redacted(redactor: &Redactor, text: &str) -> String {
    redactor
        .redact_text(text, &mut Counts::default())
        .unwrap_or_else(|| text.to_owned())
}

#[test]
fn each_detector_finds_its_secrets() {
    let r = all();
    for (text, kind) in [
        (
            "OPENAI_API_KEY=sk-proj-Abc123def456ghi789jkl012mno345",
            "llm_api_key",
        ),
        (
            "key sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGH here",
            "llm_api_key",
        ),
        (
            "GOOGLE_API_KEY=AIzaSyA1234567890abcdefghijklmnopqrstuv",
            "llm_api_key",
        ),
        ("sk-at-0123456789abcdef0123456789abcdef", "llm_api_key"),
        ("aws_access_key_id = AKIAIOSFODNN7EXAMPLE", "cloud_key"),
        (
            "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "cloud_key",
        ),
        (
            "git clone https://ghp_abcdefghijklmnopqrstuvwxyz0123456789@github.com/x/y",
            "cloud_key",
        ),
        ("SLACK=xoxb-1234567890-abcdefghij", "cloud_key"),
        ("stripe sk_live_abcdefghijklmnopqrstuvwx", "cloud_key"),
        (
            "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
            "jwt",
        ),
        (
            "curl -H 'Authorization: Bearer abcdef0123456789abcdef'",
            "bearer_token",
        ),
        (
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----",
            "private_key",
        ),
        (
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA",
            "private_key",
        ),
        (
            "DATABASE_URL=postgres://app:hunter2secret@db.internal:5432/app",
            "url_password",
        ),
        ("mail jane.doe+test@example.co.uk now", "email"),
        ("call +44 20 7946 0958 today", "phone"),
        ("call (415) 555-2671", "phone"),
        ("card 4111 1111 1111 1111 exp 12/29", "card_number"),
        ("IBAN GB82 WEST 1234 5698 7654 32", "iban"),
        ("from 192.168.10.23 and 2001:db8::8a2e:370:7334", "ip_address"),
    ] {
        let mut counts = Counts::default();
        let out = r.redact_text(text, &mut counts);
        let out = out.unwrap_or_else(|| panic!("{kind} not found in {text:?}"));
        assert!(out.contains(&format!("[REDACTED:{kind}]")), "{text:?} → {out:?}");
        assert!(counts.0.contains_key(kind), "{text:?}: {counts:?}");
    }
}

#[test]
fn only_the_secret_part_is_replaced() {
    let r = all();
    assert_eq!(
        redacted(&r, "postgres://app:hunter2secret@db:5432/app"),
        "postgres://app:[REDACTED:url_password]@db:5432/app"
    );
    assert_eq!(
        redacted(&r, "Authorization: Bearer abcdef0123456789abcdef"),
        "Authorization: Bearer [REDACTED:bearer_token]"
    );
}

#[test]
fn look_alikes_are_left_alone() {
    let r = all();
    for text in [
        "task-management-system-design-document",
        "the risk-assessment for sk-learn",
        "version 2026-12-06 build 20261206",
        "at 12:30:45 on 06.12.2026",
        "use std::io::Read; a::b",
        "card 4111 1111 1111 1112 fails Luhn",
        "order 1234567890123",
        "DE89370400440532013001 fails mod 97",
        "Bearer of bad news",
        "https://example.com/path?q=1",
        "user@host without a domain",
        "0000 0000 0000 0000",
    ] {
        assert_eq!(redacted(&r, text), text, "{text:?}");
    }
}

#[test]
fn secrets_by_default_and_personal_data_on_request() {
    let default = Redactor::new(&Rules::default(), KEY).unwrap();
    let text = "jane@example.com sent sk-proj-Abc123def456ghi789jkl012mno345";
    assert_eq!(
        redacted(&default, text),
        "jane@example.com sent [REDACTED:llm_api_key]"
    );
    assert_eq!(
        redacted(&all(), text),
        "[REDACTED:email] sent [REDACTED:llm_api_key]"
    );
}

#[test]
fn digests_tell_equal_secrets_apart_from_others_without_keeping_them() {
    let rules = Rules {
        hash: true,
        ..Rules::default()
    };
    let r = Redactor::new(&rules, KEY).unwrap();
    let one = redacted(&r, "sk-proj-Abc123def456ghi789jkl012mno345");
    let again = redacted(&r, "sk-proj-Abc123def456ghi789jkl012mno345");
    let other = redacted(&r, "sk-proj-Zzz123def456ghi789jkl012mno345");
    assert!(one.starts_with("[REDACTED:llm_api_key:") && one.len() == "[REDACTED:llm_api_key:]".len() + 12);
    assert_eq!(one, again);
    assert_ne!(one, other);
    let elsewhere = Redactor::new(&rules, b"another deployment").unwrap();
    assert_ne!(
        redacted(&elsewhere, "sk-proj-Abc123def456ghi789jkl012mno345"),
        one
    );
}

#[test]
fn custom_patterns_name_their_kind() {
    let rules = Rules {
        custom: vec![CustomPattern {
            name: "employee_id".into(),
            pattern: r"EMP-\d{6}".into(),
        }],
        ..Rules::default()
    };
    let r = Redactor::new(&rules, KEY).unwrap();
    let mut counts = Counts::default();
    let out = r
        .redact_text(
            "EMP-123456 and EMP-654321 used sk-proj-Abc123def456ghi789jkl012mno345",
            &mut counts,
        )
        .unwrap();
    assert_eq!(
        out,
        "[REDACTED:employee_id] and [REDACTED:employee_id] used [REDACTED:llm_api_key]"
    );
    assert_eq!(counts.0["employee_id"], 2);
    assert_eq!(counts.total(), 3);
}

#[test]
fn events_are_walked_and_their_structure_kept() {
    let rules = Rules {
        detectors: Detector::ALL.to_vec(),
        ..Rules::default()
    };
    let r = Redactor::new(&rules, KEY).unwrap();
    let event = json!({
        "id": "jane@example.com-1", "type": "observation", "timestamp": "2026-12-06T00:00:00Z",
        "body": {
            "id": "o1", "trace_id": "jane@example.com", "user_id": "jane@example.com",
            "input": {"messages": [{"role": "user", "content": "my key is sk-proj-Abc123def456ghi789jkl012mno345"}]},
            "output": "done",
            "metadata": {"env": "AWS=AKIAIOSFODNN7EXAMPLE", "cwd": "/home/jane@example.com/repo"},
            "command": "curl -u admin:pw https://admin:s3cret-pass@internal.example.com/x",
            "stdout": "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEI\n-----END EC PRIVATE KEY-----\nok"
        }
    });
    let mut counts = Counts::default();
    let out: Value = serde_json::from_str(&r.redact_event(&event.to_string(), &mut counts).unwrap()).unwrap();
    let body = &out["body"];
    assert_eq!(out["id"], "jane@example.com-1", "ids are structure");
    assert_eq!(body["trace_id"], "jane@example.com");
    assert_eq!(body["user_id"], "[REDACTED:email]", "a user id is personal data");
    assert_eq!(
        body["input"]["messages"][0]["content"],
        "my key is [REDACTED:llm_api_key]"
    );
    assert_eq!(body["metadata"]["env"], "AWS=[REDACTED:cloud_key]");
    assert_eq!(
        body["metadata"]["cwd"], "/home/jane@example.com/repo",
        "paths only when asked"
    );
    assert_eq!(
        body["command"],
        "curl -u admin:pw https://admin:[REDACTED:url_password]@internal.example.com/x"
    );
    assert_eq!(body["stdout"], "[REDACTED:private_key]\nok");
    assert_eq!(counts.total(), 5, "{counts:?}");

    let with_paths = Redactor::new(&Rules { paths: true, ..rules }, KEY).unwrap();
    let out: Value = serde_json::from_str(
        &with_paths
            .redact_event(&event.to_string(), &mut Counts::default())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(out["body"]["metadata"]["cwd"], "/home/[REDACTED:email]/repo");
}

#[test]
fn events_without_a_trigger_are_not_parsed_and_escapes_do_not_hide_secrets() {
    let r = Redactor::new(&Rules::default(), KEY).unwrap();
    let clean = json!({"id": "e", "body": {"input": "nothing to see"}}).to_string();
    assert_eq!(r.redact_event(&clean, &mut Counts::default()), None);
    let escaped = r#"{"id":"e","body":{"input":"\u0073k-proj-Abc123def456ghi789jkl012mno345"}}"#;
    let out = r.redact_event(escaped, &mut Counts::default()).unwrap();
    assert!(out.contains("[REDACTED:llm_api_key]"), "{out}");
    let not_json = "raw sk-proj-Abc123def456ghi789jkl012mno345 text";
    assert_eq!(
        r.redact_event(not_json, &mut Counts::default()).unwrap(),
        r#""raw [REDACTED:llm_api_key] text""#,
        "what was not JSON leaves as a JSON string: the buffer's deliveries stay JSON"
    );
}

#[test]
fn markers_are_counted_back() {
    let counts = count_markers(
        r#"{"a":"[REDACTED:email] [REDACTED:email:0a1b2c3d4e5f] [REDACTED:jwt]","b":"[REDACTED:"}"#,
    );
    assert_eq!(counts.0["email"], 2);
    assert_eq!(counts.0["jwt"], 1);
    assert_eq!(counts.total(), 3);
}

#[test]
fn nothing_on_redacts_nothing() {
    let r = Redactor::new(
        &Rules {
            detectors: Vec::new(),
            ..Rules::default()
        },
        KEY,
    )
    .unwrap();
    assert!(r.is_empty());
    assert_eq!(
        r.redact_event(
            r#"{"x":"sk-proj-Abc123def456ghi789jkl012mno345"}"#,
            &mut Counts::default()
        ),
        None
    );
}

/// Found by the attack review: what the first version let through.
#[test]
fn what_the_review_found_is_redacted() {
    let r = all();
    // A file an agent read, under `file` (Claude Code's Read result), and a path key holding
    // an object.
    let read = json!({"id": "e", "type": "observation", "body": {"id": "o", "output": {
        "file": {"filePath": "/repo/.env", "content": "OPENAI_API_KEY=sk-proj-Abc123def456ghi789jkl012mno345"}},
        "metadata": {"path": {"query": "token=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N"}}}});
    let out = r.redact_event(&read.to_string(), &mut Counts::default()).unwrap();
    assert!(!out.contains("sk-proj-") && !out.contains("eyJzdWIi"), "{out}");
    assert!(out.contains("/repo/.env"), "the path itself stays: {out}");
    // Names ending in Id inside a payload are payload, not structure.
    let ids = json!({"id": "e", "type": "observation", "body": {"id": "o", "trace_id": "t", "metadata": {
        "AccessKeyId": "AKIAIOSFODNN7EXAMPLE", "customer_id": "jane@example.com"}}});
    let out = r.redact_event(&ids.to_string(), &mut Counts::default()).unwrap();
    assert!(
        !out.contains("AKIAIOSFODNN7EXAMPLE") && !out.contains("jane@example.com"),
        "{out}"
    );
    assert!(out.contains(r#""trace_id":"t""#), "{out}");
    // AWS credentials as the CLI prints them: JSON, in a command's output or as an object.
    let sts = r#"{"Credentials": {"AccessKeyId": "ASIAIOSFODNN7EXAMPLE", "SecretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "SessionToken": "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQD6mAYvEXAMPLETOKEN0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUV"}}"#;
    let as_text = redacted(&r, sts);
    assert!(
        !as_text.contains("wJalrXUtnFEMI")
            && !as_text.contains("IQoJb3JpZ2lu")
            && !as_text.contains("ASIAIOSFODNN7"),
        "{as_text}"
    );
    let as_object = json!({"id": "e", "type": "observation", "body": {"id": "o", "output": serde_json::from_str::<Value>(sts).unwrap()}});
    let out = r
        .redact_event(&as_object.to_string(), &mut Counts::default())
        .unwrap();
    assert!(
        !out.contains("wJalrXUtnFEMI") && !out.contains("IQoJb3JpZ2lu"),
        "{out}"
    );
    // A secret behind a match another detector does not confirm.
    assert_eq!(
        redacted(&r, "DE00 AKIAIOSFODNN7EXAMPLE"),
        "DE00 [REDACTED:cloud_key]"
    );
    // Many phone-like numbers cost linear time (this took seconds before).
    let numbers = "415 555 2671, ".repeat(20_000);
    let started = std::time::Instant::now();
    let _ = redacted(&r, &numbers);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    // An empty match of a custom pattern replaces nothing.
    let rules = Rules {
        custom: vec![CustomPattern {
            name: "edge".into(),
            pattern: r"\b".into(),
        }],
        ..Rules::default()
    };
    let custom = Redactor::new(&rules, KEY).unwrap();
    assert_eq!(redacted(&custom, "plain words"), "plain words");
    // Slash escapes are parsed, not skipped.
    let escaped = r#"{"id":"e","body":{"input":"postgres:\/\/app:hunter2pass@db"}}"#;
    let out = Redactor::new(&Rules::default(), KEY)
        .unwrap()
        .redact_event(escaped, &mut Counts::default())
        .unwrap();
    assert!(!out.contains("hunter2pass"), "{out}");
}
