#!/usr/bin/env bash
# Coverage-guided fuzzing of the input parsers (fuzz/README.md): cargo fuzz with libFuzzer on
# the stable toolchain (`--sanitizer none`: Rust's own bounds and overflow checks, plus the
# targets' assertions, are the oracle).
#
#   scripts/fuzz.sh smoke [SECONDS]       every target for SECONDS (default 15) from the seeds,
#                                         then every recorded regression input; ./dev.sh test runs this
#   scripts/fuzz.sh run TARGET [RUNS]     one target for RUNS executions (default 10,000,000)
#   scripts/fuzz.sh long [RUNS]           every target for RUNS executions, two at a time
#   scripts/fuzz.sh list                  the targets
#
# The growing corpus lives in ~/.cache/agenttrace/fuzz/corpus/TARGET (outside the clone); the
# committed seeds in fuzz/seeds/TARGET; inputs that once failed in fuzz/regressions/TARGET. A
# failing input is written to ~/.cache/agenttrace/fuzz/artifacts/TARGET/.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
LOG_TAG=fuzz LOG_COLOR=34
# shellcheck source=scripts/env.sh
source "$ROOT/scripts/env.sh"

TARGETS=(edge_intake etl_batch native_decode sql_guard)
FUZZ_HOME="${AGENTTRACE_FUZZ_HOME:-$HOME/.cache/agenttrace/fuzz}"
# One build cache per checkout: cargo names the fuzz workspace's path dependencies relative to
# it, so two checkouts sharing a cache mixed their crates (a CI clone's edge linked against this
# checkout's schemas).
CARGO_TARGET_DIR="$HOME/.cache/agenttrace/fuzz-target/$(printf '%s' "$ROOT" | sha256sum | cut -c1-12)"
export CARGO_TARGET_DIR

cargo_tool cargo-fuzz 0.13.2 cargo-fuzz
export PATH="$TOOLS/bin:$PATH"
bash "$ROOT/scripts/build-ui.sh" >&2 # the ETL embeds the UI

build() {
  log "cargo fuzz build (instrumented, release)"
  (cd "$ROOT" && cargo fuzz build --sanitizer none --fuzz-dir fuzz >&2)
}

binary() { printf '%s/x86_64-unknown-linux-gnu/release/%s' "$CARGO_TARGET_DIR" "$1"; }

# fuzz TARGET LIBFUZZER_FLAGS...: runs TARGET from its corpus and seeds; prints libFuzzer's
# final statistics (executions, speed) to stdout.
fuzz() {
  local target=$1
  shift
  local corpus="$FUZZ_HOME/corpus/$target" artifacts="$FUZZ_HOME/artifacts/$target"
  mkdir -p "$corpus" "$artifacts"
  local log="$FUZZ_HOME/$target.log"
  if ! "$(binary "$target")" "$corpus" "$ROOT/fuzz/seeds/$target" \
    -artifact_prefix="$artifacts/" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
    -max_len=262144 "$@" >"$log" 2>&1; then
    tail -40 "$log" >&2
    log "$target FAILED; the input is in $artifacts/ (add it to fuzz/regressions/$target/)"
    return 1
  fi
  local runs speed
  runs="$(awk '/stat::number_of_executed_units/ {print $2}' "$log")"
  speed="$(awk '/stat::average_exec_per_sec/ {print $2}' "$log")"
  printf '%-14s %12s executions  %8s/s  corpus %s inputs\n' "$target" "$runs" "$speed" \
    "$(find "$corpus" -type f | wc -l)"
}

# regressions TARGET: every recorded failing input must now pass.
regressions() {
  local dir="$ROOT/fuzz/regressions/$1"
  [ -d "$dir" ] && [ -n "$(ls -A "$dir")" ] || return 0
  "$(binary "$1")" "$dir"/* -runs=1 >/dev/null 2>&1 || {
    log "$1: a regression input fails again"
    "$(binary "$1")" "$dir"/* -runs=1 2>&1 | tail -30 >&2
    return 1
  }
}

case "${1:-}" in
  list) printf '%s\n' "${TARGETS[@]}" ;;
  smoke)
    build
    for target in "${TARGETS[@]}"; do
      regressions "$target"
      fuzz "$target" -max_total_time="${2:-15}"
    done
    ;;
  run)
    [ -n "${2:-}" ] || { echo "usage: $0 run TARGET [RUNS]" >&2; exit 2; }
    build
    regressions "$2"
    fuzz "$2" -runs="${3:-10000000}"
    ;;
  long)
    build
    failed="$(mktemp)"
    running=0
    for target in "${TARGETS[@]}"; do
      regressions "$target"
      (fuzz "$target" -runs="${2:-10000000}" || echo "$target" >>"$failed") &
      running=$((running + 1))
      # One per core, or AGENTTRACE_FUZZ_JOBS at a time.
      if [ "$running" -ge "${AGENTTRACE_FUZZ_JOBS:-2}" ]; then wait -n; running=$((running - 1)); fi
    done
    wait
    if [ -s "$failed" ]; then die "failed: $(tr '\n' ' ' <"$failed")"; fi
    ;;
  *) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
