#!/usr/bin/env bash
# tools/size.sh: what weft costs a board, for x86-64, aarch64 and armhf.
#
# For each target it builds examples/hello.cpp and examples/echo_server.cpp
# straight from the single header, strips them with the target's strip and
# prints their sizes (and that of an empty `int main() {}` built the same
# way: the floor every program pays, which on aarch64 is 64 KiB of segment
# alignment; each cell also gives the bytes the program maps, text + data,
# which is the file without that padding), then times compiling a file
# that only includes
# <weft/weft.hpp>. Prints a markdown table (the one in README.md), then
# each of issue 5's targets with its measured value:
#   - hello for aarch64 at -Os, linked for 4 KiB pages, stripped: at most
#     64 KiB. The script fails (exit 1) when it is not.
#   - the single header's include at -O0: at most 1 s. Printed only, never
#     a failure: how long a compile takes depends on the machine and on
#     what else runs on it, and CI must not depend on that.
#
# aarch64 is built twice: as Debian links it (segments aligned to 64 KiB,
# the largest page an aarch64 kernel may use, so even an empty program is
# 66 KiB) and with -Wl,-z,max-page-size=4096, the link for a kernel with
# 4 KiB pages (a kernel with 16 or 64 KiB pages may refuse such a binary).
# 4 KiB is the arm64 kernel's default page size (CONFIG_ARM64_4K_PAGES),
# which most Cortex-A board kernels keep.
#
#   tools/size.sh              5 timing runs per compiler, medians
#   WEFT_SIZE_RUNS=9 tools/size.sh
#   tools/size.sh --check      only the targets (CI): the size one, and
#                              one timing of the include with each compiler
#
# Binaries: -std=c++20 -O2 -DNDEBUG -pthread (a release build as Debian and
# Yocto make it; -Os in its own column), libstdc++ linked dynamically (the
# default), then `strip`. Compile time: -std=c++20 -O0 -c, and -fsyntax-only
# (parsing alone), CPU time of the compiler, the median of WEFT_SIZE_RUNS
# runs. Timings depend on the machine and on what else runs on it: the
# output says which machine and its load.
#
# Installs the cross compilers when run as root (tools/lib/deps.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source tools/lib/deps.sh

runs="${WEFT_SIZE_RUNS:-5}"
check_only=0
if [ "${1:-}" = "--check" ]; then
    check_only=1
    runs=1
fi
host="$(uname -m)"

# target label, compiler triple, Debian package of its g++, link flags.
page4k="-Wl,-z,max-page-size=4096"
targets=(
    "x86-64 x86_64-linux-gnu g++-x86-64-linux-gnu"
    "aarch64 aarch64-linux-gnu g++-aarch64-linux-gnu"
    "aarch64,_4_KiB_pages aarch64-linux-gnu g++-aarch64-linux-gnu $page4k"
    "armhf arm-linux-gnueabihf g++-arm-linux-gnueabihf"
)
# The size target: at most this many bytes, stripped.
hello_limit=$((64 * 1024))
# The include target, in seconds (printed, not checked).
include_limit=1.00

# The host's own g++ serves its own target; the others need a cross g++.
packages=(g++ binutils)
for entry in "${targets[@]}"; do
    read -r _ triple package _ <<<"$entry"
    if [ "$(g++ -dumpmachine 2>/dev/null || true)" != "$triple" ] && ! command -v "$triple-g++" >/dev/null; then
        packages+=("$package")
    fi
done
weft_require_packages "${packages[@]}"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
printf '#include <weft/weft.hpp>\n' >"$work/include_only.cpp"
printf 'int main() { return 0; }\n' >"$work/empty.cpp"

# The compiler and strip for a triple: "<triple>-g++", or plain g++ when
# it is the host's.
tool() { # triple name
    if command -v "$1-$2" >/dev/null; then
        echo "$1-$2"
    elif [ "$(g++ -dumpmachine)" = "$1" ]; then
        echo "$2"
    else
        return 1
    fi
}

# Builds and strips $work/a.out.
build_stripped() { # compiler strip source flags...
    local cxx="$1" strip="$2" source="$3"
    shift 3
    "$cxx" -std=c++20 "$@" -DNDEBUG -pthread -Isingle_include "$source" -o "$work/a.out"
    "$strip" "$work/a.out"
}

# "<file> KiB (<loaded> KiB)": the stripped file, and the bytes it maps
# (text and data, as `size` counts them), which is what the file would be
# without the alignment padding between its segments.
stripped_size() { # compiler strip size source flags...
    local size="$3"
    build_stripped "$1" "$2" "${@:4}"
    local file loaded
    file="$(stat -c %s "$work/a.out")"
    loaded="$("$size" -B "$work/a.out" | awk 'NR == 2 { print $1 + $2 }')"
    awk -v f="$file" -v l="$loaded" 'BEGIN { printf "%.1f KiB (%.1f)", f / 1024, l / 1024 }'
}

# Median CPU seconds (user + sys, the compiler and its children) of `runs`
# runs of a command. CPU time rather than wall-clock time: on a machine that
# other work shares it is inflated far less, and for a single-threaded
# compile on an idle machine the two are the same.
median_seconds() {
    local times=() i TIMEFORMAT='%U %S'
    for ((i = 0; i < runs; i++)); do
        times+=("$({ time "$@" >/dev/null 2>&1; } 2>&1 | awk '{ printf "%d", ($1 + $2) * 1000 }')")
    done
    printf '%s\n' "${times[@]}" | sort -n | awk '{ t[NR] = $1 } END { printf "%.2f s", t[int((NR + 1) / 2)] / 1000 }'
}

# "pass" when value <= limit, else "over".
verdict() { # value limit
    awk -v v="$1" -v l="$2" 'BEGIN { print (v <= l ? "pass" : "over") }'
}

# Issue 5's size target is checked at -Os, the build for size (-O2 is
# printed beside it): hello for aarch64 linked for 4 KiB pages.
size_target() { # triple -> sets hello_bytes (-Os) and hello_o2_bytes
    local cxx strip
    if ! cxx="$(tool "$1" g++)" || ! strip="$(tool "$1" strip)"; then
        echo "no compiler for $1" >&2
        exit 2
    fi
    build_stripped "$cxx" "$strip" examples/hello.cpp -O2 "$page4k"
    hello_o2_bytes="$(stat -c %s "$work/a.out")"
    build_stripped "$cxx" "$strip" examples/hello.cpp -Os "$page4k"
    hello_bytes="$(stat -c %s "$work/a.out")"
}

report_targets() { # include-seconds lines ("label seconds")...
    local status=0 result
    echo
    echo "issue 5's targets:"
    size_target aarch64-linux-gnu
    result="$(verdict "$hello_bytes" "$hello_limit")"
    awk -v b="$hello_bytes" -v l="$hello_limit" -v r="$result" \
        'BEGIN { printf "  hello, aarch64, -Os, 4 KiB pages, stripped: %.1f KiB (target <= %d KiB): %s\n", b / 1024, l / 1024, r }'
    awk -v b="$hello_o2_bytes" \
        'BEGIN { printf "  (hello, aarch64, -O2, 4 KiB pages, stripped: %.1f KiB: for reference, not checked)\n", b / 1024 }'
    [ "$result" = pass ] || status=1
    local line label seconds
    for line in "$@"; do
        read -r label seconds <<<"$line"
        echo "  include <weft/weft.hpp> at -O0, $label: $seconds s CPU (target <= $include_limit s): $(verdict "$seconds" "$include_limit") (timing: printed, not checked)"
    done
    return $status
}

echo "weft size and build cost: $(date -u +%Y-%m-%d), $(nproc) CPUs on $host, load average $(cut -d' ' -f1-3 /proc/loadavg)"
include_times=()
if [ $check_only -eq 1 ]; then
    for entry in "${targets[@]}"; do
        read -r label triple _ flags <<<"$entry"
        [ -z "${flags:-}" ] || continue
        cxx="$(tool "$triple" g++)" || continue
        compile="$(median_seconds "$cxx" -std=c++20 -O0 -Isingle_include -c "$work/include_only.cpp" -o "$work/include_only.o")"
        include_times+=("$label ${compile% s}")
    done
    report_targets "${include_times[@]}"
    exit
fi

echo "binaries: -std=c++20 -O2 (or -Os) -DNDEBUG -pthread, dynamic libstdc++, stripped: file size (bytes mapped: text + data)"
echo "compile: a file that only includes <weft/weft.hpp>, -std=c++20, CPU time (user + sys), median of $runs runs"
echo
echo "| target | compiler | hello -O2 | hello -Os | echo_server -O2 | echo_server -Os | empty program -O2 | include, -O0 | include, -fsyntax-only |"
echo "|---|---|---|---|---|---|---|---|---|"
for entry in "${targets[@]}"; do
    read -r label triple _ flags <<<"$entry"
    label="${label//_/ }"
    link=()
    [ -z "${flags:-}" ] || link=("$flags")
    if ! cxx="$(tool "$triple" g++)" || ! strip="$(tool "$triple" strip)" || ! size="$(tool "$triple" size)"; then
        echo "| $label | (no compiler for $triple) | | | | | | | |"
        continue
    fi
    version="g++ $("$cxx" -dumpversion)"
    hello_o2="$(stripped_size "$cxx" "$strip" "$size" examples/hello.cpp -O2 "${link[@]}")"
    hello_os="$(stripped_size "$cxx" "$strip" "$size" examples/hello.cpp -Os "${link[@]}")"
    echo_o2="$(stripped_size "$cxx" "$strip" "$size" examples/echo_server.cpp -O2 "${link[@]}")"
    echo_os="$(stripped_size "$cxx" "$strip" "$size" examples/echo_server.cpp -Os "${link[@]}")"
    empty="$(stripped_size "$cxx" "$strip" "$size" "$work/empty.cpp" -O2 "${link[@]}")"
    if [ ${#link[@]} -ne 0 ]; then
        # Only the link differs: the compile is the row above's.
        compile="(as above)"
        syntax="(as above)"
    else
        compile="$(median_seconds "$cxx" -std=c++20 -O0 -Isingle_include -c "$work/include_only.cpp" -o "$work/include_only.o")"
        syntax="$(median_seconds "$cxx" -std=c++20 -fsyntax-only -Isingle_include "$work/include_only.cpp")"
        include_times+=("$label ${compile% s}")
    fi
    echo "| $label | $version | $hello_o2 | $hello_os | $echo_o2 | $echo_os | $empty | $compile | $syntax |"
done
report_targets "${include_times[@]}"
