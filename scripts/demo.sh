#!/usr/bin/env bash
# Run a pi-ring of N nodes on this machine and watch it compute pi.
#
#   scripts/demo.sh                 # 5 nodes until Ctrl-C
#   scripts/demo.sh -n 3 -t 30      # 3 nodes for 30 seconds
#   scripts/demo.sh -- --hold-ms 200 --target-digits 100000   # extra node flags
#
# Nodes listen on 127.0.0.2, 127.0.0.3, ... and broadcast on 127.255.255.255,
# so nothing leaves the machine. Works as root or as a normal user, with no
# setup. Ctrl-C stops every node the script started.
set -euo pipefail

usage() {
    sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
    cat <<USAGE
Options:
  -n N          number of nodes (default 5, at most 250)
  -t SECS       stop after SECS seconds (default: run until Ctrl-C)
  -p PORT       base UDP port; TCP uses PORT+1, monitoring PORT+2 (default 23912)
  --no-build    use the binaries already in target/release
  -h, --help    this help
  -- FLAGS      pass FLAGS to every pi-ring-node (see target/release/pi-ring-node --help)
USAGE
}

nodes=5 duration="" base_port=23912 build=1 node_flags=()
while [ $# -gt 0 ]; do
    case "$1" in
        -n) nodes="$2"; shift 2 ;;
        -t) duration="$2"; shift 2 ;;
        -p) base_port="$2"; shift 2 ;;
        --no-build) build=0; shift ;;
        -h|--help) usage; exit 0 ;;
        --) shift; node_flags=("$@"); break ;;
        *) echo "demo.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
if ! [[ "$nodes" =~ ^[0-9]+$ ]] || [ "$nodes" -lt 1 ] || [ "$nodes" -gt 250 ]; then
    echo "demo.sh: -n must be a number from 1 to 250" >&2; exit 2
fi

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
if [ "$build" = 1 ]; then
    echo "Building (release)..."
    cargo build --release --quiet --bin pi-ring-node --bin pi-ring-monitor
fi
bin="$root/target/release"
logs="$(mktemp -d "${TMPDIR:-/tmp}/pi-ring-demo.XXXXXX")"
pids=()

stop() {
    trap - INT TERM EXIT
    if [ ${#pids[@]} -gt 0 ]; then
        kill "${pids[@]}" 2>/dev/null || true
        wait "${pids[@]}" 2>/dev/null || true
    fi
    echo
    echo "Stopped ${#pids[@]} processes. Node logs: $logs"
}
trap stop INT TERM EXIT

udp=$base_port tcp=$((base_port + 1)) mon=$((base_port + 2))
echo "Starting $nodes nodes on 127.0.0.2..127.0.0.$((nodes + 1)) (UDP $udp, TCP $tcp, monitor $mon); logs in $logs"
"$bin/pi-ring-monitor" --udp-port "$udp" --monitor-port "$mon" &
pids+=($!)
for i in $(seq 1 "$nodes"); do
    host="127.0.0.$((i + 1))"
    "$bin/pi-ring-node" --id "node$i" --bind "$host" --broadcast 127.255.255.255 \
        --udp-port "$udp" --tcp-port "$tcp" --monitor-port "$mon" ${node_flags[@]+"${node_flags[@]}"} \
        >"$logs/node$i.log" 2>&1 &
    pids+=($!)
done
echo "The first token appears after about 4 s (the nodes first search for one)."
echo "Each line: who holds the token, digits so far, token passes per second, each node's state."

if [ -n "$duration" ]; then
    sleep "$duration"
else
    wait "${pids[0]}"
fi
