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
# Tools installed by the scripts (cargo installs, npm packages) live outside the clone too.
TOOLS="${AGENTTRACE_TOOLS:-$HOME/.cache/agenttrace/tools}"

# log MESSAGE, die MESSAGE: to stderr, under the calling script's tag (LOG_TAG, set before
# sourcing this file) in its colour (LOG_COLOR, an ANSI colour number); die then exits 1.
LOG_TAG="${LOG_TAG:-agenttrace}"
LOG_COLOR="${LOG_COLOR:-34}"
log() { printf '\033[1;%sm[%s]\033[0m %s\n' "$LOG_COLOR" "$LOG_TAG" "$*" >&2; }
die() { printf '\033[1;31m[%s] error:\033[0m %s\n' "$LOG_TAG" "$*" >&2; exit 1; }

# wait_for SECONDS WHAT COMMAND...: runs COMMAND (which prints nothing) every 0.2 s until it
# succeeds; dies naming WHAT after SECONDS.
wait_for() {
  local secs=$1 what=$2
  shift 2
  local deadline=$((SECONDS + secs))
  until "$@"; do
    [ $SECONDS -lt $deadline ] || die "$what did not become ready within $secs s"
    sleep 0.2
  done
}

# cargo_tool CRATE VERSION BINARY: installs CRATE at exactly VERSION into $TOOLS unless
# $TOOLS/bin/BINARY already reports that version.
cargo_tool() {
  local crate=$1 version=$2 binary=$3
  if [ -x "$TOOLS/bin/$binary" ] && "$TOOLS/bin/$binary" --version 2>/dev/null | grep -q "$version"; then
    return 0
  fi
  LOG_TAG=tools LOG_COLOR=35 log "cargo install $crate@$version (a few minutes, once)"
  # --locked when the registry still serves every locked dependency; otherwise resolve anew.
  cargo install --quiet --locked --root "$TOOLS" --version "=$version" "$crate" >&2 2>/dev/null \
    || cargo install --quiet --root "$TOOLS" --version "=$version" "$crate" >&2
}

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

# clickhouse_config_xml DIR HTTP_PORT TCP_PORT USERS_XML [EXTRA_XML]: a ClickHouse 18.16
# config.xml for a server with its data, logs and temp files under DIR, on loopback; EXTRA_XML
# (a cluster node's interserver port, remote servers, ZooKeeper, macros) goes in as is.
clickhouse_config_xml() {
  local dir=$1 http=$2 tcp=$3 users=$4 extra=${5:-}
  cat <<XML
<?xml version="1.0"?>
<yandex>
    <logger>
        <level>warning</level>
        <log>$dir/log/clickhouse-server.log</log>
        <errorlog>$dir/log/clickhouse-server.err.log</errorlog>
        <size>100M</size>
        <count>2</count>
    </logger>
    <http_port>$http</http_port>
    <tcp_port>$tcp</tcp_port>
    <listen_host>127.0.0.1</listen_host>
    <path>$dir/data/</path>
    <tmp_path>$dir/tmp/</tmp_path>
    <user_files_path>$dir/user_files/</user_files_path>
    <format_schema_path>$dir/format_schemas/</format_schema_path>
    <users_config>$users</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mark_cache_size>268435456</mark_cache_size>
    <max_concurrent_queries>200</max_concurrent_queries>
    $extra
</yandex>
XML
}

# The ClickHouse user callers' reads run as (docs/security.md): its password is made once per
# machine, outside the clone, so every checkout's stack and the cluster agree on it.
CLICKHOUSE_READER_USER="${CLICKHOUSE_READER_USER:-agenttrace_reader}"
clickhouse_reader_password() {
  local file="$HOME/.cache/agenttrace/clickhouse-reader-password"
  if [ ! -s "$file" ]; then
    mkdir -p "$(dirname "$file")"
    (umask 077 && head -c 24 /dev/urandom | base64 | tr -d '/+=\n' >"$file")
  fi
  cat "$file"
}

# The key provider API keys are sealed with (AGENTTRACE_ENCRYPTION_KEY, 64 hex characters): made
# once per machine, outside the clone, like the reader's password. A local stack also lets
# model connections reach this machine (AGENTTRACE_ALLOW_PRIVATE_MODEL_URLS: a local Ollama).
encryption_key() {
  local file="$HOME/.cache/agenttrace/encryption-key"
  if [ ! -s "$file" ]; then
    mkdir -p "$(dirname "$file")"
    (umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$file")
  fi
  cat "$file"
}

# clickhouse_users_xml MAX_MEMORY_USAGE [EXTRA_SETTINGS]: a ClickHouse 18.16 users.xml with two
# users on loopback, without quotas: `default`, without a password, which the service writes
# and migrates with (EXTRA_SETTINGS, XML, goes into its profile as is), and the reader
# (CLICKHOUSE_READER_USER), confined to CLICKHOUSE_DATABASE, with the read profile's limits.
# The service sends `readonly=1` and tighter limits with every read on the URL, where the
# query's text cannot lift them; the profile itself stays at readonly=0 because 18.16 refuses
# any setting on the URL under a readonly profile.
clickhouse_users_xml() {
  local reader_hash
  reader_hash="$(printf '%s' "$(clickhouse_reader_password)" | sha256sum | cut -d' ' -f1)"
  cat <<XML
<?xml version="1.0"?>
<yandex>
    <profiles>
        <default>
            <max_memory_usage>$1</max_memory_usage>
            <allow_experimental_low_cardinality_type>1</allow_experimental_low_cardinality_type>
            ${2:-}
        </default>
        <reader>
            <max_memory_usage>2000000000</max_memory_usage>
            <max_execution_time>600</max_execution_time>
            <max_concurrent_queries_for_user>16</max_concurrent_queries_for_user>
            <allow_experimental_low_cardinality_type>1</allow_experimental_low_cardinality_type>
            ${2:-}
        </reader>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
        <$CLICKHOUSE_READER_USER>
            <password_sha256_hex>$reader_hash</password_sha256_hex>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>reader</profile>
            <quota>default</quota>
            <allow_databases><database>$CLICKHOUSE_DATABASE</database></allow_databases>
        </$CLICKHOUSE_READER_USER>
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
XML
}

# apt_ensure PACKAGE...: installs the Debian packages not installed yet (`apt-get update` at
# most once). Scripts running at once (the cluster
# tests each bring the cluster up) take turns on a lock rather than fail on apt's own.
APT_UPDATED=0
apt_missing() {
  local pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || printf '%s\n' "$pkg"
  done
}
apt_ensure() {
  local lock_fd missing=()
  mapfile -t missing < <(apt_missing "$@")
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null || die "missing packages ${missing[*]} and no apt-get to install them"
  exec {lock_fd}>"${TMPDIR:-/tmp}/agenttrace-apt.lock"
  flock "$lock_fd"
  # Another script may have installed them while this one waited.
  mapfile -t missing < <(apt_missing "$@")
  if [ ${#missing[@]} -gt 0 ]; then
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    if [ "$APT_UPDATED" -eq 0 ]; then
      log "apt-get update"
      $sudo apt-get update -qq
      APT_UPDATED=1
    fi
    log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  exec {lock_fd}>&-
}


# edge_workerd_config ADDRESS BUFFERS_DIR NETWORK BINDINGS...: the capnp config that runs the
# built edge Worker in workerd itself (no wrangler dev proxy), as Cloudflare runs it: listening on
# ADDRESS, its Durable Object buffers on disk in BUFFERS_DIR, subrequests through NETWORK (the
# fields of a `network = (...)` service), and BINDINGS (capnp binding entries) besides the
# `BUFFER` namespace. Write it beside the build: its `embed` paths are relative to it.
edge_workerd_config() {
  local address=$1 buffers=$2 network=$3 binding bindings=""
  shift 3
  for binding in "$@"; do bindings+="    $binding,"$'\n'; done
  cat <<CAPNP
using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [
    (name = "edge", worker = .edge),
    (name = "buffers", disk = (path = "$buffers", writable = true)),
    (name = "internet", network = ($network)),
  ],
  sockets = [(name = "http", address = "$address", http = (), service = "edge")],
);
const edge :Workerd.Worker = (
  modules = [
    (name = "worker/shim.mjs", esModule = embed "worker/shim.mjs"),
    (name = "index.js", esModule = embed "index.js"),
    (name = "index_bg.wasm", wasm = embed "index_bg.wasm"),
  ],
  compatibilityDate = "2025-11-01",
  bindings = [
$bindings    (name = "BUFFER", durableObjectNamespace = "Buffer"),
  ],
  durableObjectNamespaces = [(className = "Buffer", uniqueKey = "agenttrace-edge-buffer", enableSql = true)],
  durableObjectStorage = (localDisk = "buffers"),
);
CAPNP
}

# first_project BIN NAME KEYFILE: the project NAME and an API key for it, as JSON in KEYFILE,
# made once; a project that outlived its key file gets a new key.
first_project() {
  local bin=$1 name=$2 keyfile=$3 project
  [ -s "$keyfile" ] && return 0
  log "creating the project $name and its API key ($keyfile)"
  if ! "$bin" project create "$name" --json >"$keyfile.tmp" 2>/dev/null; then
    project="$("$bin" project list | awk -F '\t' -v name="$name" '$2 == name { print $1 }')"
    "$bin" key create --project "$project" --note "$name (key file recreated)" --json >"$keyfile.tmp"
  fi
  mv "$keyfile.tmp" "$keyfile"
}

# first_owner BIN ORGANIZATION EMAIL PASSWORD_FILE: the organization's first owner, so a person
# can sign in, with a password made once into PASSWORD_FILE.
first_owner() {
  local bin=$1 organization=$2 email=$3 password_file=$4
  [ -s "$password_file" ] && return 0
  (umask 077 && head -c 24 /dev/urandom | base64 | tr -d '/+=\n' >"$password_file")
  "$bin" user create-owner --organization "$organization" --email "$email" --password-stdin \
    <"$password_file" >/dev/null \
    || { rm -f "$password_file"; log "$email exists already (made before $password_file was)"; }
}
