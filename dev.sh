#!/usr/bin/env bash
# AgentTrace developer entry point. Installs what is missing; safe to run again.
#
#   ./dev.sh up      the whole local stack, then the demo agent sending real events
#   ./dev.sh test    every check and test (what CI runs)
#   ./dev.sh down    stop what `up` started
#   ./dev.sh prod    a production-shaped stack beside it (scripts/prod.sh, docs/deploy.md):
#                    release build, two ETLs over HTTPS, the edge in workerd; then the demo
#   ./dev.sh upgrade-check REF   the production-shaped run started on git REF's build (an
#                    earlier release) and upgraded to this checkout under load, as the guide
#                    says; nothing lost or stored twice (tests/tests/production.rs). Not in
#                    `test`: it builds the workspace a second time.
#
# AGENTTRACE_CLUSTER=1 before `up` or `test` puts ClickHouse on the local cluster
# (scripts/cluster.sh: 2 shards × 2 replicas and ZooKeeper) instead of one server.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"
LOG_TAG=dev LOG_COLOR=32
# shellcheck source=scripts/env.sh
source "$ROOT/scripts/env.sh"

ensure_rust() {
  command -v cargo >/dev/null || die "cargo is missing: install Rust with rustup (https://rustup.rs)"
  local installed
  installed="$(rustup component list --installed 2>/dev/null || true)"
  for component in rustfmt clippy; do
    grep -q "^$component" <<<"$installed" || { log "rustup component add $component"; rustup component add "$component"; }
  done
  mkdir -p "$CARGO_TARGET_DIR"
}

# Python packages the tests use: chDB (modern ClickHouse in-process), the readers analysts use
# on exports (pyarrow, Polars, DuckDB), the OpenTelemetry SDK with its OTLP/HTTP exporter, the
# Langfuse SDK (v5) that real users point at the edge, Schemathesis (over the OpenAPI document),
# and the `openai` client with two instrumentations of it that users run (tests/tests/clients.rs):
# the official OpenTelemetry one and OpenInference's.
ensure_python_test_deps() {
  command -v python3 >/dev/null || die "python3 is missing"
  local missing=() pair
  for pair in chdb:chdb pyarrow:pyarrow polars:polars duckdb:duckdb \
    opentelemetry.sdk:opentelemetry-sdk \
    opentelemetry.exporter.otlp.proto.http:opentelemetry-exporter-otlp-proto-http \
    langfuse:langfuse==5.0.4; do
    python3 -c "import ${pair%%:*}" 2>/dev/null || missing+=("${pair#*:}")
  done
  # Pinned: the instrumentations' output is what the tests read. opentelemetry-util-genai is held
  # at 0.4b0: from 1.0b0 on it puts openai-v2 on the newer GenAI conventions whatever the
  # environment says, and from 1.2b0 on openai-v2 2.4b0 no longer imports with it.
  local pinned
  for pinned in openai==3.63.0 opentelemetry-instrumentation-openai-v2==2.4b0 \
    opentelemetry-util-genai==0.4b0 openinference-instrumentation-openai==0.1.66; do
    python3 -c "import importlib.metadata as m, sys; n, v = sys.argv[1].split('=='); sys.exit(m.version(n) != v)" \
      "$pinned" 2>/dev/null || missing+=("$pinned")
  done
  # The official MCP client (tests/tests/mcp.rs), pinned: the test reads what this version sends.
  python3 -c "import importlib.metadata as m, sys; sys.exit(m.version('mcp') != '2.3.0')" 2>/dev/null || missing+=("mcp==2.3.0")
  # Schemathesis (tests/tests/schemathesis.rs), pinned: a new version generates other cases.
  local schemathesis=4.32.5
  python3 -c "import schemathesis, sys; sys.exit(schemathesis.__version__ != '$schemathesis')" 2>/dev/null ||
    missing+=("schemathesis==$schemathesis")
  if [ ${#missing[@]} -gt 0 ]; then
    log "pip install ${missing[*]} (chdb takes ~2 min)"
    python3 -m pip install --quiet --disable-pip-version-check "${missing[@]}"
  fi
}

# The Langfuse JS SDK, installed from tests/js/package-lock.json as a user would (npm ci).
ensure_js_test_deps() {
  local dir="$ROOT/tests/js"
  if [ ! -d "$dir/node_modules/@langfuse/otel" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    log "npm ci in tests/js (the Langfuse JS SDK)"
    (cd "$dir" && npm ci --silent --no-audit --no-fund)
  fi
}

# The edge's toolchain (wasm target, wasm-bindgen, worker-build, Node 22, wrangler, wasm-opt,
# esbuild), installed once into ~/.cache/agenttrace/tools, and the Worker built.
edge_build() {
  eval "$("$ROOT/scripts/edge-tools.sh")"
  log "building the edge Worker (worker-build)"
  "$ROOT/scripts/build-edge.sh"
  export AGENTTRACE_EDGE_PREBUILT=1
}

# The web UI (ui/dist), which the ETL binary embeds; --check also type-checks and lints it.
ui_build() {
  "$ROOT/scripts/build-ui.sh" "$@"
}

# Debian's Chromium for the UI's end-to-end tests (driven by playwright-core from tests/js).
ensure_browser() {
  apt_ensure chromium fonts-dejavu-core
}

stack_up() {
  # stack.sh prints `export ...` lines for the databases it brought up.
  eval "$("$ROOT/scripts/stack.sh" up)"
  # AGENTTRACE_CLUSTER=1: ClickHouse is the 2-shard × 2-replica cluster (scripts/cluster.sh).
  if [ "${AGENTTRACE_CLUSTER:-0}" = 1 ]; then
    eval "$("$ROOT/scripts/cluster.sh" up)"
  fi
}

# The stack runs the `stack` profile (Cargo.toml: every crate at opt-level 1), the tests `dev`.
AGENTTRACE_BIN="$CARGO_TARGET_DIR/stack/agenttrace"
agenttrace() { "$AGENTTRACE_BIN" "$@"; }

# The secret the edge and the ETL share for signing batches; made once per machine.
ensure_signing_keys() {
  local file="$AGENTTRACE_HOME/signing-keys"
  if [ ! -s "$file" ]; then
    printf 'local:%s' "$(head -c 32 /dev/urandom | base64 | tr -d '/+=\n')" >"$file"
    chmod 600 "$file"
  fi
  AGENTTRACE_SIGNING_KEYS="$(cat "$file")"
  export AGENTTRACE_SIGNING_KEYS
}

etl_url() { printf 'http://%s' "${AGENTTRACE_LISTEN:-127.0.0.1:8080}"; }

# start_service NAME COMMAND...: runs an agenttrace command in the background (restarting it
# if it runs already), with its pid and log under $AGENTTRACE_HOME.
start_service() {
  local name=$1; shift
  stop_service "$name"
  log "starting $name (log: $AGENTTRACE_HOME/$name.log)"
  setsid "$AGENTTRACE_BIN" "$@" >>"$AGENTTRACE_HOME/$name.log" 2>&1 </dev/null &
  echo $! >"$AGENTTRACE_HOME/$name.pid"
}

stop_service() { stop_pidfile "$AGENTTRACE_HOME/$1.pid"; }

# service_answers NAME URL: whether URL answers; dies when service NAME has exited, so a
# wait_for on it fails early.
service_answers() {
  curl -fsS "$2" >/dev/null 2>&1 && return 0
  kill -0 "$(cat "$AGENTTRACE_HOME/$1.pid")" 2>/dev/null || die "the $1 exited; see $AGENTTRACE_HOME/$1.log"
  return 1
}

etl_up() {
  start_service etl serve
  wait_for 30 "the etl (log: $AGENTTRACE_HOME/etl.log)" service_answers etl "$(etl_url)/readyz"
}

edge_url() { printf 'http://127.0.0.1:%s' "${AGENTTRACE_EDGE_PORT:-8787}"; }

# The edge Worker in workerd (`wrangler dev`), forwarding to the local ETL.
edge_up() {
  edge_build
  # The edge signs batches with the key the ETL verifies them with.
  (umask 077 && printf 'EDGE_SIGNING_KEY=%s\n' "${AGENTTRACE_SIGNING_KEYS%%,*}" >"$ROOT/.dev.vars")
  stop_service edge
  log "starting the edge on $(edge_url) (log: $AGENTTRACE_HOME/edge.log)"
  # Started directly (not in a subshell) so that the pid file names wrangler's own process
  # group, which stop_service ends with workerd in it.
  pushd "$ROOT" >/dev/null
  setsid wrangler dev --local --ip 127.0.0.1 --port "${AGENTTRACE_EDGE_PORT:-8787}" \
    --show-interactive-dev-session=false --persist-to "$AGENTTRACE_HOME/edge-state" \
    --var "ETL_URL:$(etl_url)" >>"$AGENTTRACE_HOME/edge.log" 2>&1 </dev/null &
  echo $! >"$AGENTTRACE_HOME/edge.pid"
  popd >/dev/null
  wait_for 60 "the edge (log: $AGENTTRACE_HOME/edge.log)" service_answers edge "$(edge_url)/healthz"
}

cmd_up() {
  ensure_rust
  stack_up
  ui_build
  log "building (the stack profile: optimized, ~9 min the first time on 2 cores)"
  cargo build --quiet --profile stack -p agenttrace-cli
  log "migrating"
  agenttrace migrate
  local keyfile="$AGENTTRACE_HOME/demo-key.json"
  first_project "$AGENTTRACE_BIN" demo "$keyfile"
  # The first owner, so a person can sign in (POST /v1/auth/sign-in); made once per machine.
  first_owner "$AGENTTRACE_BIN" default owner@agenttrace.local "$AGENTTRACE_HOME/owner-password"
  ensure_signing_keys
  etl_up
  edge_up
  start_service scheduler jobs schedule
  local project
  project="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["project_id"])' "$keyfile")"
  agenttrace evaluator add --project "$project" --name fast-llm-calls --kind latency_threshold --config '{"max_ms": 6000}' >/dev/null
  agenttrace evaluator add --project "$project" --name tools-succeed --kind tool_call_failure >/dev/null
  agenttrace evaluator add --project "$project" --name cheap-generations --kind cost_threshold --config '{"max_usd": 0.05}' >/dev/null
  agenttrace evaluator add --project "$project" --name mentions-tool --kind regex --config '{"pattern": "(Bash|Edit|Read|Grep)"}' >/dev/null
  agenttrace evaluator add --project "$project" --name answer-exact --kind exact_match >/dev/null
  agenttrace evaluator add --project "$project" --name answer-close --kind fuzzy_match --config '{"threshold": 0.5}' \
    --schedule '15 * * * * *' >/dev/null
  log "demo agent: sending coding-agent sessions and two experiments over a dataset, through the edge"
  agenttrace demo --edge-url "$(edge_url)" --key-file "$keyfile" --sessions "${DEMO_SESSIONS:-20}" --experiments
  log "evaluating the new observations and rolling up the experiments (the scheduler does this too)"
  sleep 1 # the job reads completed ingest seconds only
  agenttrace jobs run evaluate
  agenttrace jobs run experiment_rollups
  local analyst_keyfile="$AGENTTRACE_HOME/demo-analyst-key.json"
  if [ ! -s "$analyst_keyfile" ]; then
    agenttrace key create --project "$project" --scope query --scope export --note "demo analyst" --json \
      >"$analyst_keyfile.tmp"
    mv "$analyst_keyfile.tmp" "$analyst_keyfile"
  fi
  log "experiment rollups (agenttrace query, through the ETL's read-only SQL API):"
  agenttrace query --url "$(etl_url)" \
    --api-key "$(python3 -c 'import json,sys; k=json.load(open(sys.argv[1])); print(k["public_key"]+":"+k["secret_key"])' "$analyst_keyfile")" \
    "SELECT e.score_name, e.items, round(e.pass_rate, 2) AS pass_rate, round(e.paired_mean_difference, 2) AS vs_baseline, \
            round(e.paired_ci_low, 2) AS ci_low, round(e.paired_ci_high, 2) AS ci_high, round(e.latency_p50_ms) AS p50_ms \
     FROM experiment_rollups AS e ORDER BY e.experiment_id, e.score_name" || true
  cat <<EOF

  Stack is up.
  Web UI      $(etl_url)/
  Sign in     owner@agenttrace.local with the password in $AGENTTRACE_HOME/owner-password
              ($(cat "$AGENTTRACE_HOME/owner-password" 2>/dev/null || echo "see that file"))
  Edge        $(edge_url)  (agents' one base URL: /v1/ingest, /v1/{traces,logs,metrics},
              Langfuse's /api/public/* — OTLP, ingestion, scores, prompts, datasets)
  ETL API     $(etl_url)/v1/*  (control plane and read API, /readyz, /metrics; etl/api/openapi.json)
  Scheduler   evaluate, judge and annotation_rules every minute, experiment_rollups every 5 minutes,
              judge_calibration every 10 minutes, retention daily at 03:00,
              daily_costs hourly, evaluator answer-close on its own schedule (agenttrace jobs status)
  PostgreSQL  $DATABASE_URL
  ClickHouse  $CLICKHOUSE_URL (database $CLICKHOUSE_DATABASE)
  Demo key    $keyfile (project key: ingest)
  Stop with   ./dev.sh down

EOF
}

cmd_test() {
  ensure_rust
  ensure_python_test_deps
  stack_up
  # The cluster tests bring up the local cluster (scripts/cluster.sh); unless it is the stack
  # itself (AGENTTRACE_CLUSTER=1), it goes down again when the tests end, passed or not.
  if [ "${AGENTTRACE_CLUSTER:-0}" != 1 ]; then
    trap '"$ROOT/scripts/cluster.sh" down >/dev/null 2>&1 || true' EXIT
  fi
  ensure_browser
  # openssl: tests/tests/postgres_tls.rs makes a CA and a server certificate.
  apt_ensure openssl
  ui_build --check
  log "cargo fmt --check"
  cargo fmt --all -- --check
  log "cargo clippy"
  cargo clippy --workspace --all-targets --quiet -- -D warnings
  edge_build
  ensure_js_test_deps
  log "cargo clippy (edge, wasm32)"
  cargo clippy -p agenttrace-edge --target wasm32-unknown-unknown --quiet -- -D warnings
  log "cargo test (with a 60 s chaos run: tests/tests/chaos.rs)"
  cargo test --workspace
  log "fuzz smoke run (scripts/fuzz.sh smoke: every target 15 s, then the regression inputs)"
  "$ROOT/scripts/fuzz.sh" smoke 15
}

cmd_down() {
  stop_service edge
  stop_service scheduler
  stop_service etl
  "$ROOT/scripts/stack.sh" down
  "$ROOT/scripts/cluster.sh" down 2>/dev/null || true
}

cmd_upgrade_check() {
  local ref=${1:?usage: ./dev.sh upgrade-check REF (a commit or tag of an earlier release)}
  ensure_rust
  stack_up
  apt_ensure openssl
  ui_build
  edge_build
  log "the production-shaped run, upgraded from $ref (tests/tests/production.rs)"
  AGENTTRACE_UPGRADE_FROM="$ref" cargo test -p agenttrace-tests --test production -- --nocapture
}

cmd_prod() {
  ensure_rust
  ui_build
  "$ROOT/scripts/prod.sh" up
  "$ROOT/scripts/prod.sh" demo
}

case "${1:-}" in
  up) cmd_up ;;
  test) cmd_test ;;
  down) cmd_down ;;
  prod) cmd_prod ;;
  upgrade-check) cmd_upgrade_check "${2:-}" ;;
  *) die "usage: ./dev.sh up|test|down|prod|upgrade-check REF" ;;
esac
