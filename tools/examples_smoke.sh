#!/usr/bin/env bash
# Runs the I/O and timer examples of a build and checks what they answer:
# timers and udp_telemetry run to completion; echo_server and http_hello are
# started on free ports and spoken to over loopback (bash's /dev/tcp, no
# other tool needed), then stopped.
#
#   tools/examples_smoke.sh [build dir]     (default build/release)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
examples=${1:-build/release}/examples

"$examples/timers"
"$examples/udp_telemetry" 40

pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT

# Starts a server (port 0: the OS picks) and prints the port it reports.
start_server() {
    local log
    log=$(mktemp)
    "$@" >"$log" 2>&1 &
    pids+=($!)
    for _ in $(seq 1 100); do
        if grep -q "listening on" "$log"; then
            sed -n 's/.*listening on [0-9.]*:\([0-9]*\).*/\1/p' "$log"
            return 0
        fi
        sleep 0.05
    done
    echo "server did not start: $*" >&2
    cat "$log" >&2
    return 1
}

port=$(start_server "$examples/echo_server" 0)
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf 'ping from the smoke test\n' >&3
read -r -t 5 line <&3
exec 3<&-
[ "$line" = "ping from the smoke test" ] || { echo "echo_server answered '$line'" >&2; exit 1; }
echo "echo_server: echoed a line"

port=$(start_server "$examples/http_hello" 0)
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf 'GET / HTTP/1.1\r\nHost: localhost\r\n\r\nGET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' >&3
answer=$(timeout 5 cat <&3)
exec 3<&-
[ "$(grep -o 'Hello, world!' <<<"$answer" | wc -l)" = 2 ] || { echo "http_hello answered: $answer" >&2; exit 1; }
echo "http_hello: answered two pipelined requests, closed on 'Connection: close'"
