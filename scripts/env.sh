# Defaults shared by the scripts; every value can be overridden from the environment.
# shellcheck shell=bash
AGENTTRACE_HOME="${AGENTTRACE_HOME:-$ROOT/.local}"
PGPORT_LOCAL="${PGPORT_LOCAL:-5432}"
DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:$PGPORT_LOCAL/agenttrace}"
CLICKHOUSE_HTTP_PORT="${CLICKHOUSE_HTTP_PORT:-8123}"
CLICKHOUSE_TCP_PORT="${CLICKHOUSE_TCP_PORT:-9000}"
CLICKHOUSE_URL="${CLICKHOUSE_URL:-http://127.0.0.1:$CLICKHOUSE_HTTP_PORT}"
CLICKHOUSE_DATABASE="${CLICKHOUSE_DATABASE:-agenttrace}"
# Build artifacts live outside the clone so repeated runs (and CI) build incrementally.
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/agenttrace/target}"
export AGENTTRACE_HOME DATABASE_URL CLICKHOUSE_URL CLICKHOUSE_DATABASE CARGO_TARGET_DIR

# stop_pidfile FILE: stops the process whose pid FILE holds (TERM, then KILL after 10 s) and
# removes FILE. Does nothing when FILE is missing.
stop_pidfile() {
  [ -f "$1" ] || return 0
  local pid
  pid="$(cat "$1")"
  if kill -0 "$pid" 2>/dev/null; then
    # Services start under setsid: stop the whole group (wrangler's workerd too).
    kill -- "-$pid" 2>/dev/null || kill "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 -- "-$pid" 2>/dev/null || kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$1"
}
