#!/usr/bin/env bash
# Runs the built edge Worker in workerd directly (no wrangler dev: no dev proxy, no inspector),
# as production runs it, on 127.0.0.1:${EDGE_DIRECT_PORT:-8790}, forwarding to the local ETL.
# For `agenttrace bench edge --edge-url http://127.0.0.1:8790`; stop it with Ctrl-C.
# FLUSH_MAX_EVENTS and FLUSH_MAX_AGE_MS override the buffers' flush policy (as in wrangler.toml).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=scripts/env.sh
. "$ROOT/scripts/env.sh"
eval "$("$ROOT/scripts/edge-tools.sh")"
"$ROOT/scripts/build-edge.sh"
signing_key="$(cut -d, -f1 "$AGENTTRACE_HOME/signing-keys")"
state="$AGENTTRACE_HOME/workerd-direct"
mkdir -p "$state"
edge_workerd_config "127.0.0.1:${EDGE_DIRECT_PORT:-8790}" "$state" 'allow = ["public", "private", "local"]' \
  "(name = \"ETL_URL\", text = \"http://${AGENTTRACE_LISTEN:-127.0.0.1:8080}\")" \
  '(name = "EDGE_ID", text = "workerd-direct")' \
  "(name = \"FLUSH_MAX_EVENTS\", text = \"${FLUSH_MAX_EVENTS:-1000}\")" \
  "(name = \"FLUSH_MAX_AGE_MS\", text = \"${FLUSH_MAX_AGE_MS:-1000}\")" \
  "(name = \"EDGE_SIGNING_KEY\", text = \"$signing_key\")" \
  >"$ROOT/edge/build/workerd.capnp"
exec workerd serve "$ROOT/edge/build/workerd.capnp" --experimental
