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
# <weft/weft.hpp>. Prints a markdown table (the one in README.md).
#
#   tools/size.sh              5 timing runs per compiler, medians
#   WEFT_SIZE_RUNS=9 tools/size.sh
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
host="$(uname -m)"

# target label, compiler triple, Debian package of its g++.
targets=(
    "x86-64 x86_64-linux-gnu g++-x86-64-linux-gnu"
    "aarch64 aarch64-linux-gnu g++-aarch64-linux-gnu"
    "armhf arm-linux-gnueabihf g++-arm-linux-gnueabihf"
)

# The host's own g++ serves its own target; the others need a cross g++.
packages=(g++ binutils)
for entry in "${targets[@]}"; do
    read -r _ triple package <<<"$entry"
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

# "<file> KiB (<loaded> KiB)": the stripped file, and the bytes it maps
# (text and data, as `size` counts them), which is what the file would be
# without the alignment padding between its segments.
stripped_size() { # compiler strip size source flags...
    local cxx="$1" strip="$2" size="$3" source="$4"
    shift 4
    "$cxx" -std=c++20 "$@" -DNDEBUG -pthread -Isingle_include "$source" -o "$work/a.out"
    "$strip" "$work/a.out"
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

echo "weft size and build cost: $(date -u +%Y-%m-%d), $(nproc) CPUs on $host, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "binaries: -std=c++20 -O2 (or -Os) -DNDEBUG -pthread, dynamic libstdc++, stripped: file size (bytes mapped: text + data)"
echo "compile: a file that only includes <weft/weft.hpp>, -std=c++20, CPU time (user + sys), median of $runs runs"
echo
echo "| target | compiler | hello -O2 | hello -Os | echo_server -O2 | echo_server -Os | empty program -O2 | include, -O0 | include, -fsyntax-only |"
echo "|---|---|---|---|---|---|---|---|---|"
for entry in "${targets[@]}"; do
    read -r label triple _ <<<"$entry"
    if ! cxx="$(tool "$triple" g++)" || ! strip="$(tool "$triple" strip)" || ! size="$(tool "$triple" size)"; then
        echo "| $label | (no compiler for $triple) | | | | | | | |"
        continue
    fi
    version="g++ $("$cxx" -dumpversion)"
    hello_o2="$(stripped_size "$cxx" "$strip" "$size" examples/hello.cpp -O2)"
    hello_os="$(stripped_size "$cxx" "$strip" "$size" examples/hello.cpp -Os)"
    echo_o2="$(stripped_size "$cxx" "$strip" "$size" examples/echo_server.cpp -O2)"
    echo_os="$(stripped_size "$cxx" "$strip" "$size" examples/echo_server.cpp -Os)"
    empty="$(stripped_size "$cxx" "$strip" "$size" "$work/empty.cpp" -O2)"
    compile="$(median_seconds "$cxx" -std=c++20 -O0 -Isingle_include -c "$work/include_only.cpp" -o "$work/include_only.o")"
    syntax="$(median_seconds "$cxx" -std=c++20 -fsyntax-only -Isingle_include "$work/include_only.cpp")"
    echo "| $label | $version | $hello_o2 | $hello_os | $echo_o2 | $echo_os | $empty | $compile | $syntax |"
done
