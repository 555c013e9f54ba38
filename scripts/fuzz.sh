#!/usr/bin/env bash
# Runs every cargo-fuzz target of fuzz/ for SECONDS each (default 60), one
# after the other, and prints the executions each reached.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# The toolchain here is stable: cargo-fuzz's instrumentation flags are
# accepted with RUSTC_BOOTSTRAP=1, and the targets run without a sanitizer
# (`--sanitizer none`: libFuzzer's coverage and comparison tracing only).
# Rust code is memory-safe without one (`unsafe` is forbidden in every
# crate); what is sought is panics, overflows (checked in these builds),
# hangs and runaway memory. A crash leaves its input in
# fuzz/artifacts/TARGET/ and fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"

seconds="${1:-60}"
shift || true

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

export RUSTC_BOOTSTRAP=1
cd fuzz
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list)
fi

nice -n 10 cargo fuzz build --sanitizer none

mkdir -p corpus logs
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target"
    if [ -d "seeds/$target" ]; then
        cp -n "seeds/$target"/* "corpus/$target/" 2>/dev/null || true
    fi
    log="logs/$target.log"
    status=0
    nice -n 10 cargo fuzz run --sanitizer none "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -print_final_stats=1 >"$log" 2>&1 || status=$?
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
    corpus=$(find "corpus/$target" -type f | wc -l)
    if [ "$status" -ne 0 ]; then
        echo "FAIL $target after ${seconds}s: see fuzz/$log and fuzz/artifacts/$target/"
        tail -n 30 "$log"
        exit "$status"
    fi
    printf '%-14s %6ss  %12s executions  %6s corpus entries\n' "$target" "$seconds" "$execs" "$corpus"
done
