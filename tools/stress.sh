#!/usr/bin/env bash
# tools/stress.sh [PRESET|BUILD_DIR] [DURATION]: the soak test
# (tests/stress/stress.cpp) on 2 and on 4 workers at once, for DURATION each
# (default 60s; 90s, 10m, 1h...). Built with PRESET (default tsan; asan, dev,
# release...) in build/PRESET, configured first if needed, or in an existing
# BUILD_DIR; only the stress target is built. Each run prints its seed;
# `--seed N` on the stress program repeats its choices. Fails if either run
# fails: a check, a sanitizer report, or the watchdog (no progress for 5 s).
#   tools/stress.sh tsan 1h
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source tools/lib/deps.sh

preset=${1:-tsan}
duration=${2:-60s}
case "$preset" in
tsan | asan) weft_require_packages "${WEFT_BUILD_PACKAGES[@]}" clang libclang-rt-14-dev ;;
*) weft_require_packages "${WEFT_BUILD_PACKAGES[@]}" ;;
esac

if [ -f "$preset/CMakeCache.txt" ]; then
    build=$preset
else
    build=build/$preset
    if [ ! -f "$build/CMakeCache.txt" ]; then
        cmake --preset "$preset" >/dev/null
    fi
fi
cmake --build "$build" -j 2 --target stress

export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1 second_deadlock_stack=1}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

logs=$(mktemp -d)
pids=()
for workers in 2 4; do
    "$build/tests/stress/stress" --duration "$duration" --workers "$workers" --report 30s \
        >"$logs/$workers.log" 2>&1 &
    pids+=($!)
done
status=0
for i in 0 1; do
    workers=$((2 + 2 * i))
    if wait "${pids[$i]}"; then
        result="passed"
    else
        result="FAILED (exit $?)"
        status=1
    fi
    echo "---- stress, $workers workers, $duration ($preset): $result"
    cat "$logs/$workers.log"
done
rm -rf "$logs"
exit $status
