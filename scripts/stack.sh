#!/usr/bin/env bash
# Local stack: installs what is missing and runs PostgreSQL and ClickHouse on loopback,
# with data under $AGENTTRACE_HOME (default ./.local). Safe to run twice.
#
#   scripts/stack.sh up      install + start + wait for readiness, print the env to use
#   scripts/stack.sh down    stop what this script started
#   scripts/stack.sh env     print the env (DATABASE_URL, CLICKHOUSE_URL, ...)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/env.sh
source "$ROOT/scripts/env.sh"

log() { printf '\033[1;34m[stack]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31m[stack] error:\033[0m %s\n' "$*" >&2; exit 1; }

wait_for() { # wait_for <seconds> <description> <command...>
  local secs=$1 what=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || die "$what did not become ready within ${secs}s"
    sleep 0.2
  done
}

# ---------------------------------------------------------------- PostgreSQL
pg_admin_url() { # same server as DATABASE_URL, maintenance database
  printf '%s' "${DATABASE_URL%/*}/postgres"
}

pg_answers() { psql "$(pg_admin_url)" -qAtc 'select 1' >/dev/null 2>&1; }

pg_up() {
  command -v psql >/dev/null || apt_ensure postgresql-client
  if pg_answers; then
    log "PostgreSQL answers at ${DATABASE_URL%/*} (using it)"
  else
    apt_ensure postgresql
    local bindir datadir="$AGENTTRACE_HOME/postgres"
    bindir="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
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
  bindir="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
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
  clickhouse_config_xml "$dir" "$CLICKHOUSE_HTTP_PORT" "$CLICKHOUSE_TCP_PORT" "$dir/users.xml" >"$dir/config.xml"
  cat >"$dir/users.xml" <<EOF
<?xml version="1.0"?>
<yandex>
    <profiles>
        <default>
            <max_memory_usage>4000000000</max_memory_usage>
            <allow_experimental_low_cardinality_type>1</allow_experimental_low_cardinality_type>
        </default>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries><errors>0</errors><result_rows>0</result_rows>
                <read_rows>0</read_rows><execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
EOF
}

ch_up() {
  if ch_answers; then
    log "ClickHouse answers at $CLICKHOUSE_URL (using it)"
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
