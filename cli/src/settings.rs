//! The environment the `agenttrace` commands read, checked before any command starts: an
//! `AGENTTRACE_*` variable nothing reads is a misspelt setting, and a service that silently ran
//! on its default instead would be wrong in production without a word. `docs/configuration.md`
//! is the reference table of every variable; a test keeps it equal to what is defined here and in
//! the commands' arguments.

use std::collections::BTreeSet;

use clap::CommandFactory;

/// `AGENTTRACE_*` variables read outside the commands' arguments: by the libraries, the scripts
/// (`dev.sh`, `scripts/`) and the tests. They may be set in any command's environment (the
/// scripts export theirs), so they are known, not unknown.
pub const OTHER_VARIABLES: &[&str] = &[
    // Libraries.
    "AGENTTRACE_ALLOW_PRIVATE_ALERT_URLS",
    "RUST_LOG",
    // Scripts.
    "CARGO_TARGET_DIR",
    "AGENTTRACE_CLICKHOUSE_XML",
    "AGENTTRACE_CLUSTER",
    "AGENTTRACE_EDGE_PORT",
    "AGENTTRACE_FUZZ_HOME",
    "AGENTTRACE_FUZZ_JOBS",
    "AGENTTRACE_HOME",
    "AGENTTRACE_TOOLS",
    "AGENTTRACE_ZK_PORT",
    // Tests.
    "AGENTTRACE_BLESS",
    "AGENTTRACE_BYSTANDER_SESSION",
    "AGENTTRACE_CHAOS_SECS",
    "AGENTTRACE_EDGE_KEY",
    "AGENTTRACE_EDGE_PREBUILT",
    "AGENTTRACE_GUARD_CORPUS",
    "AGENTTRACE_MCP_KEY",
    "AGENTTRACE_SCHEMATHESIS_ARGS",
    "AGENTTRACE_SCREENSHOTS",
    "AGENTTRACE_SESSION",
    "AGENTTRACE_SIGN_OUT_SESSION",
    "AGENTTRACE_UPGRADE_FROM",
    "AGENTTRACE_WRITE_OPENAPI",
];

/// Every environment variable a command's arguments read (`env = ...`), any subcommand.
pub fn argument_variables() -> BTreeSet<String> {
    fn walk(command: &clap::Command, out: &mut BTreeSet<String>) {
        for arg in command.get_arguments() {
            if let Some(name) = arg.get_env() {
                out.insert(name.to_string_lossy().into_owned());
            }
        }
        for sub in command.get_subcommands() {
            walk(sub, out);
        }
    }
    let mut out = BTreeSet::new();
    walk(&crate::Cli::command(), &mut out);
    out
}

/// Refuses an environment with an `AGENTTRACE_*` variable nothing reads, naming it and the
/// known name it is closest to.
pub fn check_environment(names: impl IntoIterator<Item = String>) -> Result<(), String> {
    let known: BTreeSet<String> = argument_variables()
        .into_iter()
        .chain(OTHER_VARIABLES.iter().map(|name| name.to_string()))
        .collect();
    let unknown: Vec<String> = names
        .into_iter()
        .filter(|name| name.starts_with("AGENTTRACE_") && !known.contains(name) && !is_service_link(name))
        .collect();
    let Some(first) = unknown.first() else {
        return Ok(());
    };
    let nearest = known
        .iter()
        .map(|name| (strsim::levenshtein(first, name), name))
        .min()
        .filter(|(distance, _)| *distance <= 3)
        .map(|(_, name)| format!(" (did you mean {name}?)"))
        .unwrap_or_default();
    let others = match unknown.len() {
        1 => String::new(),
        n => format!(" and {} more ({})", n - 1, unknown[1..].join(", ")),
    };
    Err(format!(
        "the environment sets {first}{others}, which no setting reads{nearest}: \
         unset it or correct its name (docs/configuration.md lists every setting)"
    ))
}

/// Whether `name` is one of the variables Kubernetes (service links) and Docker (links) give a
/// process for a service named like ours (`agenttrace`, `agenttrace-etl`): `…_SERVICE_HOST`,
/// `…_SERVICE_PORT[_NAME]`, `…_PORT`, `…_PORT_8443_TCP[_PROTO|_PORT|_ADDR]`. Set by the platform,
/// not by a person, so never a misspelt setting.
fn is_service_link(name: &str) -> bool {
    if name.contains("_SERVICE_HOST") || name.contains("_SERVICE_PORT") || name.ends_with("_PORT") {
        return true;
    }
    let Some((_, after)) = name.rsplit_once("_PORT_") else {
        return false;
    };
    let mut parts = after.split('_');
    let number = parts
        .next()
        .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let protocol = parts.next().is_some_and(|p| matches!(p, "TCP" | "UDP" | "SCTP"));
    let rest = parts
        .next()
        .is_none_or(|p| matches!(p, "PROTO" | "PORT" | "ADDR"));
    number && protocol && rest && parts.next().is_none()
}

/// The environment variable an invalid value came from, for a clap error about `--flag`: clap
/// names the flag, while a deployment sets the variable.
pub fn variable_behind(error: &clap::Error, argv: &[String]) -> Option<String> {
    let clap::error::ContextValue::String(invalid) = error.get(clap::error::ContextKind::InvalidArg)? else {
        return None;
    };
    let long = invalid.split_whitespace().next()?.strip_prefix("--")?;
    let given = |arg: &String| arg == &format!("--{long}") || arg.starts_with(&format!("--{long}="));
    if argv.iter().any(given) {
        return None;
    }
    // The flag as the command given defines it: `--etl-url` reads another variable in `demo`
    // than in `doctor`. Global flags are found on the way down.
    let root = crate::Cli::command();
    let mut command = &root;
    let mut variable = None;
    let mut args = argv.iter();
    loop {
        if let Some(name) = command
            .get_arguments()
            .find(|arg| arg.get_long() == Some(long))
            .and_then(|arg| arg.get_env())
        {
            variable = Some(name.to_string_lossy().into_owned());
        }
        let Some(sub) = args.find_map(|arg| command.find_subcommand(arg)) else {
            break;
        };
        command = sub;
    }
    variable.filter(|name| std::env::var_os(name).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_misspelt_setting_is_refused_with_the_name_it_is_near() {
        let error = check_environment(["PATH".into(), "AGENTTRACE_LISTN".into()]).unwrap_err();
        assert!(error.contains("AGENTTRACE_LISTN"), "{error}");
        assert!(error.contains("did you mean AGENTTRACE_LISTEN?"), "{error}");
        assert!(check_environment(["AGENTTRACE_LISTEN".into(), "AGENTTRACE_HOME".into()]).is_ok());
        let error = check_environment(["AGENTTRACE_NOTHING_LIKE_IT_AT_ALL".into(), "AGENTTRACE_X".into()])
            .unwrap_err();
        assert!(!error.contains("did you mean"), "{error}");
        assert!(error.contains("and 1 more (AGENTTRACE_X)"), "{error}");
    }

    #[test]
    fn platform_service_links_are_not_settings() {
        for name in [
            "AGENTTRACE_SERVICE_HOST",
            "AGENTTRACE_SERVICE_PORT",
            "AGENTTRACE_SERVICE_PORT_HTTPS",
            "AGENTTRACE_PORT",
            "AGENTTRACE_PORT_8443_TCP",
            "AGENTTRACE_PORT_8443_TCP_ADDR",
            "AGENTTRACE_ETL_PORT_8443_TCP_PROTO",
            "AGENTTRACE_ETL_SERVICE_HOST",
        ] {
            assert!(check_environment([name.to_owned()]).is_ok(), "{name}");
        }
        for name in [
            "AGENTTRACE_PORT_X_TCP",
            "AGENTTRACE_PORT_8443_TCP_ADDRESS",
            "AGENTTRACE_PORTS",
        ] {
            assert!(check_environment([name.to_owned()]).is_err(), "{name}");
        }
    }

    /// `docs/configuration.md` lists every variable the binary, the edge or the scripts read,
    /// each once, and no other; `wrangler.toml` sets only what the edge reads.
    #[test]
    fn the_reference_table_lists_every_setting() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/configuration.md");
        let doc = std::fs::read_to_string(&path).unwrap();
        let mut documented = BTreeSet::new();
        for line in doc.lines().filter(|line| line.starts_with("| `")) {
            let name = line.trim_start_matches("| `").split('`').next().unwrap();
            if name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            {
                assert!(documented.insert(name.to_owned()), "{name} is listed twice");
            }
        }
        // The edge's settings: the Worker's `env.var`, `env.secret` and `var_or` reads.
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let worker = std::fs::read_to_string(root.join("edge/src/worker/mod.rs")).unwrap();
        let mut edge = BTreeSet::new();
        for pattern in [".var(", ".secret(", "var_or("] {
            for (at, _) in worker.match_indices(pattern) {
                // The first string argument, within the call (`var_or(env, "NAME", …)`).
                let call = &worker[at + pattern.len()..];
                let (before, rest) = call.split_once('"').unwrap();
                if !before.contains(')') {
                    edge.insert(rest.split('"').next().unwrap().to_owned());
                }
            }
        }
        assert!(
            edge.contains("ETL_URL") && edge.contains("FLUSH_MAX_AGE_MS"),
            "{edge:?}"
        );
        let wrangler = std::fs::read_to_string(root.join("wrangler.toml")).unwrap();
        let vars = wrangler
            .split("[vars]")
            .nth(1)
            .unwrap()
            .split("\n[")
            .next()
            .unwrap();
        for line in vars.lines().filter(|l| l.contains(" = ")) {
            let name = line.split(" = ").next().unwrap().trim();
            assert!(
                edge.contains(name),
                "wrangler.toml sets {name}, which the edge does not read"
            );
        }
        let defined: BTreeSet<String> = argument_variables()
            .into_iter()
            .chain(OTHER_VARIABLES.iter().map(|name| name.to_string()))
            .chain(edge)
            .collect();
        let missing: Vec<_> = defined.difference(&documented).collect();
        let extra: Vec<_> = documented.difference(&defined).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "docs/configuration.md: not listed {missing:?}; listed but read by nothing {extra:?}"
        );
    }
}
