#!/usr/bin/env bash
# Local stack: installs what is missing and runs PostgreSQL and ClickHouse on loopback,
# with data under $AGENTTRACE_HOME (default ./.local). Safe to run twice.
#
#   scripts/stack.sh up      install + start + wait for readiness, print the env to use
#   scripts/stack.sh down    stop what this script started
#   scripts/stack.sh env     print the env (DATABASE_URL, CLICKHOUSE_URL, ...)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOG_TAG=stack LOG_COLOR=34
# shellcheck source=scripts/env.sh
source "$ROOT/scripts/env.sh"

# ---------------------------------------------------------------- PostgreSQL
pg_admin_url() { # same server as DATABASE_URL, maintenance database
  printf '%s' "${DATABASE_URL%/*}/postgres"
}

# The newest PostgreSQL installed (Debian keeps each major version apart).
pg_bindir() { find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin | sort -V | tail -1; }

pg_answers() { psql "$(pg_admin_url)" -qAtc 'select 1' >/dev/null 2>&1; }

pg_up() {
  command -v psql >/dev/null || apt_ensure postgresql-client
  if pg_answers; then
    log "PostgreSQL answers at ${DATABASE_URL%/*} (using it)"
  else
    apt_ensure postgresql
    local bindir datadir="$AGENTTRACE_HOME/postgres"
    bindir="$(pg_bindir)"
    mkdir -p "$datadir"
    local as=()
    if [ "$(id -u)" -eq 0 ]; then
      chown -R postgres:postgres "$datadir"
      as=(runuser -u postgres --)
    fi
    if [ ! -f "$datadir/PG_VERSION" ]; then
      log "initdb $datadir"
      "${as[@]}" "$bindir/initdb" -D "$datadir" -U postgres --auth=trust -E UTF8 >/dev/null
    fi
    log "starting PostgreSQL on 127.0.0.1:$PGPORT_LOCAL"
    "${as[@]}" "$bindir/pg_ctl" -D "$datadir" -l "$datadir/server.log" -w \
      -o "-c listen_addresses=127.0.0.1 -p $PGPORT_LOCAL -k /tmp" start >/dev/null
    wait_for 30 PostgreSQL pg_answers
  fi
  local db="${DATABASE_URL##*/}"
  db="${db%%\?*}"
  if [ "$(psql "$(pg_admin_url)" -qAtc "select 1 from pg_database where datname = '$db'")" != 1 ]; then
    log "creating database $db"
    psql "$(pg_admin_url)" -qc "create database \"$db\"" >/dev/null
  fi
}

pg_down() {
  local datadir="$AGENTTRACE_HOME/postgres"
  [ -f "$datadir/postmaster.pid" ] || return 0
  local bindir
  bindir="$(pg_bindir)"
  local as=()
  [ "$(id -u)" -eq 0 ] && as=(runuser -u postgres --)
  log "stopping PostgreSQL ($datadir)"
  "${as[@]}" "$bindir/pg_ctl" -D "$datadir" -m fast stop >/dev/null || true
}

# ---------------------------------------------------------------- ClickHouse
ch_answers() { curl -fsS "$CLICKHOUSE_URL/ping" >/dev/null 2>&1; }

ch_write_config() {
  local dir="$AGENTTRACE_HOME/clickhouse"
  mkdir -p "$dir"/{data,tmp,user_files,format_schemas,log}
  # AGENTTRACE_CLICKHOUSE_XML: server settings for a run that needs them (a benchmark's
  # `<merge_tree>` or `<compression>`), put into config.xml as is.
  clickhouse_config_xml "$dir" "$CLICKHOUSE_HTTP_PORT" "$CLICKHOUSE_TCP_PORT" "$dir/users.xml" \
    "${AGENTTRACE_CLICKHOUSE_XML:-}" >"$dir/config.xml"
  clickhouse_users_xml 4000000000 >"$dir/users.xml"
}

# Whether the reader user can sign in (a server started before it existed cannot).
ch_reader_answers() {
  curl -fsS -u "$CLICKHOUSE_READER_USER:$(clickhouse_reader_password)" "$CLICKHOUSE_URL/?query=SELECT%201" >/dev/null 2>&1
}

ch_up() {
  if ch_answers; then
    log "ClickHouse answers at $CLICKHOUSE_URL (using it)"
    local users="$AGENTTRACE_HOME/clickhouse/users.xml"
    if ! ch_reader_answers && [ -f "$users" ]; then
      # Our own server from before the reader user: ClickHouse reloads users.xml by itself.
      log "adding the reader user to $users"
      clickhouse_users_xml 4000000000 >"$users"
      wait_for 30 "the ClickHouse reader user" ch_reader_answers
    fi
    ch_reader_answers || log "warning: the reader user $CLICKHOUSE_READER_USER cannot sign in to $CLICKHOUSE_URL; add it as docs/security.md shows"
    return 0
  fi
  apt_ensure clickhouse-server clickhouse-client curl
  ch_write_config
  local dir="$AGENTTRACE_HOME/clickhouse"
  log "starting ClickHouse on 127.0.0.1:$CLICKHOUSE_HTTP_PORT (data in $dir)"
  # setsid: the server must outlive this script and the shell that ran it.
  setsid /usr/sbin/clickhouse-server --config-file="$dir/config.xml" \
    >"$dir/log/stdout.log" 2>&1 </dev/null &
  echo $! >"$dir/server.pid"
  wait_for 60 ClickHouse ch_answers
}

ch_down() {
  local pidfile="$AGENTTRACE_HOME/clickhouse/server.pid"
  [ -f "$pidfile" ] && log "stopping ClickHouse (pid $(cat "$pidfile"))"
  stop_pidfile "$pidfile"
}

print_env() {
  cat <<EOF
export DATABASE_URL='$DATABASE_URL'
export CLICKHOUSE_URL='$CLICKHOUSE_URL'
export CLICKHOUSE_DATABASE='$CLICKHOUSE_DATABASE'
export CLICKHOUSE_READER_USER='$CLICKHOUSE_READER_USER'
export CLICKHOUSE_READER_PASSWORD='$(clickhouse_reader_password)'
export AGENTTRACE_ENCRYPTION_KEY='$(encryption_key)'
export AGENTTRACE_ALLOW_PRIVATE_MODEL_URLS=1
EOF
}

case "${1:-up}" in
  up)
    mkdir -p "$AGENTTRACE_HOME"
    pg_up
    ch_up
    print_env
    ;;
  down)
    ch_down
    pg_down
    ;;
  env) print_env ;;
  *) die "usage: $0 up|down|env" ;;
esac
