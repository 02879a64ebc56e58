#!/usr/bin/env bash
# Builds the web UI (ui/ → ui/dist), which the ETL embeds at compile time (etl/build.rs).
# Installs its npm packages from ui/package-lock.json when they changed (npm ci), and rebuilds
# only when a source changed, so the ETL is not recompiled for nothing.
#
#   scripts/build-ui.sh           build
#   scripts/build-ui.sh --check   type-check (tsc), lint (eslint) and unit-test (vitest) first,
#                                 and check that src/api-schema.ts (the API's TypeScript types) is
#                                 what openapi-typescript makes of etl/api/openapi.json
#
# After the API changed (etl/api/openapi.json rewritten), regenerate the types with
# `npm run generate-api` in ui/.
#
# Node comes from the edge toolchain (scripts/edge-tools.sh: Node 22 from npm).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
LOG_TAG=ui LOG_COLOR=36
# shellcheck source=scripts/env.sh
source "$ROOT/scripts/env.sh"
UI="$ROOT/ui"

eval "$("$ROOT/scripts/edge-tools.sh")"
cd "$UI"
lock_hash="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [ "$(cat node_modules/.lock-hash 2>/dev/null)" != "$lock_hash" ]; then
  log "npm ci (ui/package-lock.json)"
  npm ci --silent --no-audit --no-fund
  echo "$lock_hash" >node_modules/.lock-hash
fi
if [ "${1:-}" = "--check" ]; then
  log "src/api-schema.ts up to date with etl/api/openapi.json"
  generated="$(mktemp --suffix=.ts)"
  trap 'rm -f "$generated"' EXIT
  npx openapi-typescript ../etl/api/openapi.json -o "$generated" >/dev/null 2>&1
  if ! cmp -s "$generated" src/api-schema.ts; then
    log "ui/src/api-schema.ts is stale: run \`npm run generate-api\` in ui/ and commit it"
    exit 1
  fi
  log "tsc --noEmit and eslint"
  npm run --silent check
  log "vitest"
  npm run --silent test
fi
# Unit tests (*.test.ts) are not in the bundle: changing one does not rebuild it.
source_hash="$({ cat package-lock.json index.html vite.config.ts tsconfig.json; find src -type f ! -name '*.test.ts' -print0 | sort -z | xargs -0 cat; } | sha256sum | cut -d' ' -f1)"
if [ "$(cat dist/.source-hash 2>/dev/null)" = "$source_hash" ] && [ -f dist/index.html ]; then
  exit 0
fi
log "vite build"
npx vite build --logLevel warn
echo "$source_hash" >dist/.source-hash
