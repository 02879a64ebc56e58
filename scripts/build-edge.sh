#!/usr/bin/env bash
# Builds the edge Worker (edge/build/worker/shim.mjs) with worker-build; wrangler runs this as
# its build command. AGENTTRACE_EDGE_PREBUILT=1 skips the build when one exists (tests build
# once, then start many `wrangler dev` instances).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
if [ "${AGENTTRACE_EDGE_PREBUILT:-}" = 1 ] && [ -f "$ROOT/edge/build/worker/shim.mjs" ]; then
  exit 0
fi
# Callers that ran edge-tools.sh already (dev.sh, the test harness) have its environment.
[ -n "${WASM_BINDGEN_BIN:-}" ] || eval "$("$ROOT/scripts/edge-tools.sh")"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/agenttrace/target}"
cd "$ROOT/edge"
worker-build --release >&2
