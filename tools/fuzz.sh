#!/usr/bin/env bash
# tools/fuzz.sh [SECONDS] [BUILD_DIR]: fuzzes the executor for SECONDS
# (default 60) with libFuzzer (tests/fuzz/executor_fuzz.cpp), built by the
# asan preset (clang, AddressSanitizer + UBSan, WEFT_BUILD_FUZZERS) in
# build/asan, or in an existing BUILD_DIR configured with clang++ and
# -DWEFT_BUILD_FUZZERS=ON. Starts from the seed corpus tests/fuzz/corpus/
# (left untouched: new inputs go to a temporary directory). A failing input
# is saved to BUILD_DIR/fuzz-artifacts/; replay it with
# `WEFT_FUZZ_TRACE=1 build/asan/tests/fuzz/executor_fuzz FILE`, which
# prints the decoded program.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source tools/lib/deps.sh
weft_require_packages "${WEFT_BUILD_PACKAGES[@]}" clang libclang-rt-14-dev

seconds=${1:-60}
build=${2:-build/asan}
if [ ! -f "$build/CMakeCache.txt" ]; then
    cmake --preset asan >/dev/null
fi
cmake --build "$build" -j 2 --target executor_fuzz

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$build/fuzz-artifacts"
# Programs of up to 100 operations; one input may take at most 60 s (a
# hang is a failure too).
"$build/tests/fuzz/executor_fuzz" -max_total_time="$seconds" -max_len=300 -timeout=60 \
    -artifact_prefix="$build/fuzz-artifacts/" -print_final_stats=1 "$work" tests/fuzz/corpus
