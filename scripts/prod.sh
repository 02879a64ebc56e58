#!/usr/bin/env bash
# A production-shaped AgentTrace on this machine, started step by step as docs/deploy.md says,
# so the guide is exercised and cannot rot (tests/tests/production.rs runs it in the test
# command). What differs from `./dev.sh up`:
#   - optimized binaries (the release profile; PROD_PROFILE=debug reuses the tests' build),
#   - the edge in workerd itself (no wrangler dev proxy),
#   - HTTPS between the edge and the ETL, with a certificate from a local CA,
#   - two ETL replicas, which the edge fails over between,
#   - ClickHouse reads through the separate read-only user,
#   - the scheduler as its own process.
# Its data, logs and certificates live in $AGENTTRACE_HOME/prod, its ClickHouse on ports
# 8125/9125 and its PostgreSQL database is agenttrace_prod, so it runs beside `./dev.sh up`.
#
#   scripts/prod.sh up     build, set up and start everything; prints where to look
#   scripts/prod.sh demo   send the demo agent's sessions through the edge and wait for them
#   scripts/prod.sh roll   restart the ETL replicas one at a time, as an upgrade does
#   scripts/prod.sh backup DIR   the scheduled backup's command, into DIR
#   scripts/prod.sh env    the environment to run `agenttrace` commands against it
#   scripts/prod.sh down   stop it (the data stays)
# An upgrade from an earlier release, step by step (docs/deploy.md "Upgrades"):
#   scripts/prod.sh release REF   build git REF's binary and Worker apart from this checkout's;
#                                 prints the PROD_BIN and PROD_EDGE_BUILD that run them
#   PROD_BIN=… PROD_EDGE_BUILD=… scripts/prod.sh up   the stack on that build
#   scripts/prod.sh migrate | roll | scheduler | edge   each step of the upgrade, on this build
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOG_TAG=prod LOG_COLOR=36
PROD_HOME="${AGENTTRACE_HOME:-$ROOT/.local}/prod"
export AGENTTRACE_HOME="$PROD_HOME"
export CLICKHOUSE_HTTP_PORT="${PROD_CLICKHOUSE_HTTP_PORT:-8125}" CLICKHOUSE_TCP_PORT="${PROD_CLICKHOUSE_TCP_PORT:-9125}"
export CLICKHOUSE_URL="http://127.0.0.1:$CLICKHOUSE_HTTP_PORT"
export DATABASE_URL="${PROD_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/agenttrace_prod}"
export CLICKHOUSE_DATABASE=agenttrace
unset CLICKHOUSE_USER CLICKHOUSE_PASSWORD CLICKHOUSE_CLUSTER CLICKHOUSE_CLUSTER_URLS
# shellcheck source=scripts/env.sh
source "$ROOT/scripts/env.sh"

PROFILE="${PROD_PROFILE:-release}"
case "$PROFILE" in
  release | debug) ;;
  *) die "PROD_PROFILE is release or debug, not $PROFILE" ;;
esac
# The binary and the built Worker the stack runs: this checkout's, or an earlier release's
# (`release REF`), which nothing here builds.
BIN="${PROD_BIN:-$CARGO_TARGET_DIR/$PROFILE/agenttrace}"
EDGE_BUILD="${PROD_EDGE_BUILD:-$ROOT/edge/build}"
read -ra ETL_PORTS <<<"${PROD_ETL_PORTS:-8443 8444}"
EDGE_PORT="${PROD_EDGE_PORT:-8790}"
TLS="$PROD_HOME/tls"
# Beside the build (`embed` paths are relative to the config), one per edge port so two runs
# on different ports do not overwrite each other's.
EDGE_CONFIG="$EDGE_BUILD/prod-$EDGE_PORT.capnp"
EDGE_CA="prod-$EDGE_PORT-ca.pem"

etl_url() { printf 'https://localhost:%s' "$1"; }
edge_url() { printf 'http://127.0.0.1:%s' "$EDGE_PORT"; }

# Step 1: the binaries. The ETL, the scheduler and the CLI are one binary; the edge is wasm.
build() {
  if [ -n "${PROD_BIN:-}" ]; then
    [ -x "$PROD_BIN" ] && [ -s "$EDGE_BUILD/index_bg.wasm" ] \
      || die "PROD_BIN=$PROD_BIN and PROD_EDGE_BUILD=$EDGE_BUILD: build them first (scripts/prod.sh release REF)"
    return 0
  fi
  "$ROOT/scripts/build-ui.sh" # embedded in the binary; does nothing when up to date
  if [ "$PROFILE" = release ]; then
    log "cargo build --release -p agenttrace-cli (~17 min the first time on 2 cores)"
    (cd "$ROOT" && cargo build --quiet --release -p agenttrace-cli)
  else
    (cd "$ROOT" && cargo build --quiet -p agenttrace-cli)
  fi
  eval "$("$ROOT/scripts/edge-tools.sh")"
  "$ROOT/scripts/build-edge.sh"
}

# Step 2: PostgreSQL and ClickHouse, with ClickHouse's read-only user (scripts/stack.sh writes
# the users.xml docs/deploy.md shows).
databases() {
  eval "$("$ROOT/scripts/stack.sh" up)"
  # The local stack lets model connections reach this machine (a local Ollama); production does not.
  unset AGENTTRACE_ALLOW_PRIVATE_MODEL_URLS
}

# Step 3: the ETL's certificate. A team uses its own CA or a public one; here a local CA signs
# a certificate for localhost, and the edge trusts that CA.
certificate() {
  [ -s "$TLS/etl.pem" ] && [ -s "$TLS/etl-key.pem" ] && [ -s "$TLS/ca.pem" ] && return 0
  apt_ensure openssl
  mkdir -p "$TLS"
  log "making a local CA and the ETL's certificate ($TLS)"
  (
    cd "$TLS"
    umask 077
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
      -subj "/CN=AgentTrace local CA" -keyout ca-key.pem -out ca.pem 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
      -subj "/CN=localhost" -keyout etl-key.pem -out etl.csr 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >etl.ext
    openssl x509 -req -in etl.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 825 \
      -extfile etl.ext -out etl.pem 2>/dev/null
    rm -f etl.csr etl.ext
  )
}

# Step 4: secrets. The edge's signing key (the edge gets it with `wrangler secret put`), the
# metrics token, the provider-key encryption key (scripts/env.sh keeps one per machine) and the
# owner's password.
secret() { # secret FILE [PREFIX]: the secret FILE holds, made (PREFIX and 32 random bytes) the first time
  [ -s "$1" ] || (umask 077 && printf '%s%s' "${2:-}" "$(head -c 32 /dev/urandom | base64 | tr -d '/+=\n')" >"$1")
  cat "$1"
}

secrets() {
  AGENTTRACE_SIGNING_KEYS="$(secret "$PROD_HOME/signing-keys" prod-1:)"
  # What Prometheus sends to read GET /metrics (they name every project).
  AGENTTRACE_METRICS_TOKEN="$(secret "$PROD_HOME/metrics-token")"
  export AGENTTRACE_SIGNING_KEYS AGENTTRACE_METRICS_TOKEN
}

service() { # service NAME ARGS...: starts the binary in its own session, pid in NAME.pid
  local name=$1
  shift
  stop_pidfile "$PROD_HOME/$name.pid"
  setsid "$BIN" "$@" >>"$PROD_HOME/$name.log" 2>&1 </dev/null &
  echo $! >"$PROD_HOME/$name.pid"
}

alive() { kill -0 "$(cat "$PROD_HOME/$1.pid" 2>/dev/null)" 2>/dev/null; }

etl_ready() { # etl_ready N: replica N answers /readyz over HTTPS with the local CA
  curl -fsS --cacert "$TLS/ca.pem" "$(etl_url "${ETL_PORTS[$1]}")/readyz" >/dev/null 2>&1 && return 0
  alive "etl-$1" || die "ETL replica $1 exited; see $PROD_HOME/etl-$1.log"
  return 1
}

# Step 6: an ETL replica, serving HTTPS itself.
etl_start() {
  local n=$1
  service "etl-$n" serve --listen "127.0.0.1:${ETL_PORTS[$n]}" \
    --tls-cert "$TLS/etl.pem" --tls-key "$TLS/etl-key.pem"
  wait_for 60 "ETL replica $n ($(etl_url "${ETL_PORTS[$n]}"))" etl_ready "$n"
}

edge_ready() {
  curl -fsS "$(edge_url)/healthz" >/dev/null 2>&1 && return 0
  alive edge || die "the edge exited; see $PROD_HOME/edge.log"
  return 1
}

# Step 8: the edge in workerd, as Cloudflare runs it: the same Worker, a Durable Object
# namespace on local disk, ETL_URL naming both replicas, and the local CA trusted.
edge_start() {
  mkdir -p "$PROD_HOME/edge-buffers"
  cp "$TLS/ca.pem" "$EDGE_BUILD/$EDGE_CA"
  local etl_urls="" n
  for n in "${!ETL_PORTS[@]}"; do
    etl_urls+="${etl_urls:+,}$(etl_url "${ETL_PORTS[$n]}")"
  done
  edge_workerd_config "127.0.0.1:$EDGE_PORT" "$PROD_HOME/edge-buffers" \
    "allow = [\"public\", \"private\", \"local\"], tlsOptions = (trustBrowserCas = true, trustedCertificates = [embed \"$EDGE_CA\"])" \
    "(name = \"ETL_URL\", text = \"$etl_urls\")" \
    '(name = "EDGE_ID", text = "prod-local")' \
    '(name = "EDGE_SIGNING_KEY", fromEnvironment = "EDGE_SIGNING_KEY")' \
    >"$EDGE_CONFIG"
  stop_pidfile "$PROD_HOME/edge.pid"
  # The secret reaches workerd in its environment, never in a file (Cloudflare: `wrangler secret put`).
  EDGE_SIGNING_KEY="${AGENTTRACE_SIGNING_KEYS%%,*}" \
    setsid workerd serve "$EDGE_CONFIG" --experimental >>"$PROD_HOME/edge.log" 2>&1 </dev/null &
  echo $! >"$PROD_HOME/edge.pid"
  wait_for 60 "the edge ($(edge_url))" edge_ready
}

cmd_up() {
  mkdir -p "$PROD_HOME"
  build
  databases
  certificate
  secrets
  log "step 5: agenttrace migrate"
  "$BIN" migrate
  local n
  for n in "${!ETL_PORTS[@]}"; do
    log "step 6: ETL replica $n on $(etl_url "${ETL_PORTS[$n]}") (log: $PROD_HOME/etl-$n.log)"
    etl_start "$n"
  done
  log "step 7: the scheduler (one active per deployment; a second would wait on the job locks)"
  service scheduler jobs schedule
  log "step 8: the edge in workerd on $(edge_url), forwarding to both replicas over HTTPS"
  eval "$("$ROOT/scripts/edge-tools.sh")"
  edge_start
  log "step 9: the first project, its key and the owner"
  first_project "$BIN" prod-demo "$PROD_HOME/demo-key.json"
  local owner_file="$PROD_HOME/owner-password"
  first_owner "$BIN" prod owner@prod.agenttrace.local "$owner_file"
  log "step 10: agenttrace doctor"
  "$BIN" doctor --etl-url "$(etl_url "${ETL_PORTS[0]}")" --ca-cert "$TLS/ca.pem" --edge-url "$(edge_url)"
  cat <<EOF

  Production-shaped stack is up ($PROFILE build).
  Web UI      $(etl_url "${ETL_PORTS[0]}")/  (the local CA: $TLS/ca.pem)
  Sign in     owner@prod.agenttrace.local with the password in $owner_file
  Edge        $(edge_url)  (workerd; ETL_URL names $(for n in "${!ETL_PORTS[@]}"; do printf '%s ' "$(etl_url "${ETL_PORTS[$n]}")"; done))
  Key         $PROD_HOME/demo-key.json
  Logs        $PROD_HOME/{etl-0,etl-1,scheduler,edge}.log
  Next        scripts/prod.sh demo; scripts/prod.sh roll; scripts/prod.sh down

EOF
}

cmd_demo() {
  secrets
  "$BIN" demo --edge-url "$(edge_url)" --key-file "$PROD_HOME/demo-key.json" --sessions "${PROD_SESSIONS:-10}" "$@"
}

# An upgrade's roll (docs/deploy.md "Upgrades"): each replica in turn is stopped with SIGTERM
# (it finishes its in-flight batches and exits), started again (on a new build, in a real
# upgrade) and waited for, while the other serves; the edge retries what a stopping replica
# refused on the other.
cmd_roll() {
  secrets
  local n
  for n in "${!ETL_PORTS[@]}"; do
    log "rolling ETL replica $n: SIGTERM, then start, then wait for /readyz"
    stop_pidfile "$PROD_HOME/etl-$n.pid"
    etl_start "$n"
  done
}

# Builds git REF (an earlier release) as it was, apart from this checkout: its source in
# ~/.cache/agenttrace/releases/COMMIT and its build in a target directory of its own, both outside
# the clone (so neither build replaces the other's binary, and a second run builds nothing).
# Prints the variables that run it.
cmd_release() {
  local ref=${1:?scripts/prod.sh release REF (a commit or tag of an earlier release)}
  local commit source target
  commit="$(git -C "$ROOT" rev-parse --verify "$ref^{commit}")" \
    || die "$ref is not a commit of this clone (fetch the release's tag or history first)"
  source="$HOME/.cache/agenttrace/releases/$commit"
  target="$HOME/.cache/agenttrace/release-target"
  if [ ! -f "$source/Cargo.toml" ]; then
    log "unpacking $ref ($commit) into $source"
    mkdir -p "$source.tmp"
    git -C "$ROOT" archive "$commit" | tar -x -C "$source.tmp"
    mv "$source.tmp" "$source"
  fi
  log "building $ref: its UI, binary ($PROFILE) and Worker"
  "$source/scripts/build-ui.sh"
  local flag=""
  [ "$PROFILE" = release ] && flag=--release
  (cd "$source" && CARGO_TARGET_DIR="$target" cargo build --quiet $flag -p agenttrace-cli)
  eval "$("$ROOT/scripts/edge-tools.sh")"
  CARGO_TARGET_DIR="$target" "$source/scripts/build-edge.sh"
  printf 'PROD_BIN=%s\nPROD_EDGE_BUILD=%s\n' "$target/$PROFILE/agenttrace" "$source/edge/build"
}

# The local stack's environment for this stack's databases, without the local stack's leave
# for model connections to reach this machine.
cmd_env() {
  "$ROOT/scripts/stack.sh" env | grep -v AGENTTRACE_ALLOW_PRIVATE_MODEL_URLS
}

cmd_down() {
  local n
  stop_pidfile "$PROD_HOME/edge.pid"
  stop_pidfile "$PROD_HOME/scheduler.pid"
  for n in "${!ETL_PORTS[@]}"; do stop_pidfile "$PROD_HOME/etl-$n.pid"; done
  rm -f "$EDGE_CONFIG" "$EDGE_BUILD/$EDGE_CA"
  "$ROOT/scripts/stack.sh" down
}

case "${1:-}" in
  up) cmd_up ;;
  demo) shift; eval "$(cmd_env)"; cmd_demo "$@" ;;
  roll) eval "$(cmd_env)"; cmd_roll ;;
  backup) eval "$(cmd_env)"; "$BIN" backup --to "${2:?scripts/prod.sh backup DIR}" ;;
  env) cmd_env ;;
  down) cmd_down ;;
  release) cmd_release "${2:-}" ;;
  migrate) eval "$(cmd_env)"; "$BIN" migrate ;;
  scheduler) eval "$(cmd_env)"; secrets; service scheduler jobs schedule ;;
  edge) eval "$(cmd_env)"; secrets; eval "$("$ROOT/scripts/edge-tools.sh")"; edge_start ;;
  *) die "usage: scripts/prod.sh up|demo|roll|backup DIR|env|down|release REF|migrate|scheduler|edge" ;;
esac
