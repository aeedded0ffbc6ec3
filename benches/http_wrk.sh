#!/usr/bin/env bash
# wrk against examples/http_hello (release build) on loopback: the figure
# the README quotes. Installs wrk when run as root.
#
#   benches/http_wrk.sh [workers] [wrk arguments...]    (default: 2, -t2 -c64 -d10s)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source tools/lib/deps.sh
weft_require_packages "${WEFT_BUILD_PACKAGES[@]}" wrk

workers=${1:-2}
shift || true
[ $# -gt 0 ] || set -- -t2 -c64 -d10s

cmake --preset release >/dev/null
cmake --build --preset release --target http_hello >/dev/null
log=$(mktemp)
build/release/examples/http_hello 0 "$workers" >"$log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
    grep -q "listening on" "$log" && break
    sleep 0.05
done
port=$(sed -n 's/.*listening on [0-9.]*:\([0-9]*\).*/\1/p' "$log")
echo "http_hello with $workers workers on port $port; wrk $*"
wrk "$@" --latency "http://127.0.0.1:$port/"
