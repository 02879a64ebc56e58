#!/usr/bin/env bash
# AgentTrace developer entry point. Installs what is missing; safe to run again.
#
#   ./dev.sh up      the whole local stack, then the demo agent sending real events
#   ./dev.sh test    every check and test (what CI runs)
#   ./dev.sh down    stop what `up` started
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"
# shellcheck source=scripts/env.sh
source "$ROOT/scripts/env.sh"

log() { printf '\033[1;32m[dev]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31m[dev] error:\033[0m %s\n' "$*" >&2; exit 1; }

ensure_rust() {
  command -v cargo >/dev/null || die "cargo is missing: install Rust with rustup (https://rustup.rs)"
  local installed
  installed="$(rustup component list --installed 2>/dev/null || true)"
  for component in rustfmt clippy; do
    grep -q "^$component" <<<"$installed" || { log "rustup component add $component"; rustup component add "$component"; }
  done
  mkdir -p "$CARGO_TARGET_DIR"
}

# Python packages the tests use (chDB: modern ClickHouse in-process).
ensure_python_test_deps() {
  command -v python3 >/dev/null || die "python3 is missing"
  if ! python3 -c 'import chdb' 2>/dev/null; then
    log "pip install chdb (modern ClickHouse engine for compatibility tests, ~2 min)"
    python3 -m pip install --quiet --disable-pip-version-check chdb
  fi
}

stack_up() {
  # stack.sh prints `export ...` lines for the databases it brought up.
  eval "$("$ROOT/scripts/stack.sh" up)"
}

agenttrace() { "$CARGO_TARGET_DIR/debug/agenttrace" "$@"; }

cmd_up() {
  ensure_rust
  stack_up
  log "building"
  cargo build --quiet -p agenttrace-cli
  log "migrating"
  agenttrace migrate
  local keyfile="$AGENTTRACE_HOME/demo-key.json"
  if [ ! -s "$keyfile" ]; then
    log "creating the demo project and its API key ($keyfile)"
    agenttrace project create demo --json >"$keyfile.tmp"
    mv "$keyfile.tmp" "$keyfile"
  fi
  log "stack is up"
  cat <<EOF

  PostgreSQL  $DATABASE_URL
  ClickHouse  $CLICKHOUSE_URL (database $CLICKHOUSE_DATABASE)
  Demo key    $keyfile

EOF
}

cmd_test() {
  ensure_rust
  ensure_python_test_deps
  stack_up
  log "cargo fmt --check"
  cargo fmt --all -- --check
  log "cargo clippy"
  cargo clippy --workspace --all-targets --quiet -- -D warnings
  log "cargo test"
  cargo test --workspace
}

cmd_down() {
  "$ROOT/scripts/stack.sh" down
}

case "${1:-}" in
  up) cmd_up ;;
  test) cmd_test ;;
  down) cmd_down ;;
  *) die "usage: ./dev.sh up|test|down" ;;
esac
