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
