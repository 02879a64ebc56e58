#!/usr/bin/env bash
# The chaos run (tests/tests/chaos.rs): six coding agents load the stack through the edge while
# the ETL, ClickHouse, PostgreSQL and the edge are each killed and restarted in turn; it fails
# on any acknowledged event not stored, any row visible twice, any dead letter.
#
#   scripts/chaos.sh [SECONDS]     default 600 (the 10-minute run); ./dev.sh test runs 60 s
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=scripts/env.sh
source "$ROOT/scripts/env.sh"
cd "$ROOT"
scripts/stack.sh up >/dev/null # installs the database servers the run starts privately
eval "$(scripts/edge-tools.sh)"
bash scripts/build-edge.sh
bash scripts/build-ui.sh
export AGENTTRACE_EDGE_PREBUILT=1 AGENTTRACE_CHAOS_SECS="${1:-600}"
exec cargo test -p agenttrace-tests --test chaos -- --nocapture
