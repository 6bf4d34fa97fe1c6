#!/usr/bin/env bash
# Run a pi-ring of N nodes on this machine and watch it compute pi.
#
#   scripts/demo.sh                 # 5 nodes until Ctrl-C
#   scripts/demo.sh -n 3 -t 30      # 3 nodes for 30 seconds
#   scripts/demo.sh -- --hold-ms 200 --target-digits 100000   # extra node flags
#   scripts/demo.sh --story         # the fault story: kill the holder, watch the
#                                   # recovery, restart it, verify the digits
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
  --story       tell the fault story (uses curl to read the monitor's API)
  --http A:P    address of the monitor page (default 127.0.0.1:8080)
  --no-build    use the binaries already in target/release
  -h, --help    this help
  -- FLAGS      pass FLAGS to every pi-ring-node (see target/release/pi-ring-node --help)
USAGE
}

nodes=5 duration="" base_port=23912 build=1 node_flags=() story=0 http=127.0.0.1:8080
while [ $# -gt 0 ]; do
    case "$1" in
        -n) nodes="$2"; shift 2 ;;
        -t) duration="$2"; shift 2 ;;
        -p) base_port="$2"; shift 2 ;;
        --no-build) build=0; shift ;;
        --story) story=1; shift ;;
        --http) http="$2"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        --) shift; node_flags=("$@"); break ;;
        *) echo "demo.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
if [ "$story" = 1 ] && ! command -v curl >/dev/null; then
    echo "demo.sh: --story reads the monitor's API with curl; install curl first" >&2; exit 2
fi
if [ "$story" = 1 ] && [ "$nodes" -lt 2 ]; then
    echo "demo.sh: --story needs at least 2 nodes" >&2; exit 2
fi
if ! [[ "$nodes" =~ ^[0-9]+$ ]] || [ "$nodes" -lt 1 ] || [ "$nodes" -gt 250 ]; then
    echo "demo.sh: -n must be a number from 1 to 250" >&2; exit 2
fi

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
if [ "$build" = 1 ]; then
    echo "Building (release)..."
    cargo build --release --quiet --bin pi-ring-node --bin pi-ring-monitor --bin pi-ring-verify
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
if [ "$story" = 1 ] && [ ${#node_flags[@]} -eq 0 ]; then
    # Each holder keeps the token 100 ms: slow enough to kill it while it
    # holds the token, fast enough to watch the digits grow.
    node_flags=(--hold-ms 100)
fi
echo "Starting $nodes nodes on 127.0.0.2..127.0.0.$((nodes + 1)) (UDP $udp, TCP $tcp, monitor $mon); logs in $logs"
"$bin/pi-ring-monitor" --http "$http" --udp-port "$udp" --monitor-port "$mon" &
pids+=($!)
node_pid=()
start_node() { # start_node I: node I on 127.0.0.(I+1), its data in $logs/nodeI
    local i=$1
    "$bin/pi-ring-node" --id "node$i" --bind "127.0.0.$((i + 1))" --broadcast 127.255.255.255 \
        --udp-port "$udp" --tcp-port "$tcp" --monitor-port "$mon" --data-dir "$logs/node$i" \
        ${node_flags[@]+"${node_flags[@]}"} >>"$logs/node$i.log" 2>&1 &
    node_pid[$i]=$!
    pids+=($!)
    disown "$!" # no "Killed" job notices when the story kills a node
}
for i in $(seq 1 "$nodes"); do start_node "$i"; done
echo "Open http://$http/ to watch the ring. The first token appears after about 4 s"
echo "(the nodes first search for one). Each line: who holds the token, digits so far,"
echo "token passes per second, each node's state."

if [ "$story" = 0 ]; then
    if [ -n "$duration" ]; then sleep "$duration"; else wait "${pids[0]}"; fi
    exit 0
fi

# ----- the story -----------------------------------------------------------
api() { curl -s --max-time 2 "http://$http/api/$1" || true; }
holder() { api ring | { grep -o '"holder":"[^"]*"' || true; } | cut -d'"' -f4; }
recoveries() { api incidents | { grep -o '"regenerated_by":"[^"]*"' || true; } | wc -l; }
say() { printf '\n>>> %s\n\n' "$*"; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

t0=$(now)
until [ -n "$(holder)" ]; do sleep 0.1; done
say "The ring has formed: $(holder) created the first token after $(elapsed "$t0") s. Watch the digits grow."
sleep 8

victim=""
for attempt in 1 2 3; do
    v=$(holder); v=${v#node}
    [ -n "$v" ] || { sleep 0.5; continue; }
    before=$(recoveries)
    say "Killing node$v, which holds the token, with SIGKILL (no goodbye, like a power cut)."
    kill -KILL "${node_pid[$v]}" 2>/dev/null || true
    killed=$(now)
    for _ in $(seq 1 150); do
        now_count=$(recoveries)
        [ "$now_count" -gt "$before" ] && break
        sleep 0.1
    done
    if [ "$now_count" -gt "$before" ]; then
        victim=$v
        text=$(api incidents | { grep -o '"text":"token lost[^"]*regenerated[^"]*"' || true; } | tail -1 | cut -d'"' -f4)
        say "Recovered $(elapsed "$killed") s after the kill: $text."
        break
    fi
    say "node$v had already passed the token on when it died: the ring just skips it. Trying again."
    start_node "$v"
    sleep 3
done
[ -n "$victim" ] || { echo "demo.sh: could not catch a holder to kill" >&2; exit 1; }

sleep 5
say "Restarting node$victim: it reloads and verifies its saved digits, then rejoins the ring."
holdings_of() { # times node I was seen taking the token
    api ring | { grep -o "\"holdings\":[0-9]*,\"holds_token\":[a-z]*,\"host\":\"127.0.0.$(($1 + 1))\"" || true; } | cut -d: -f2 | cut -d, -f1
}
held_before=$(holdings_of "$victim")
restarted=$(now)
start_node "$victim"
for _ in $(seq 1 300); do
    held=$(holdings_of "$victim")
    [ "${held:-0}" -gt "${held_before:-0}" ] && break
    sleep 0.1
done
say "node$victim is back in the rotation: it held the token again $(elapsed "$restarted") s after its restart."
sleep 5

say "Stopping the nodes and checking every node's saved expansion against pi computed afresh:"
for i in $(seq 1 "$nodes"); do kill "${node_pid[$i]}" 2>/dev/null || true; done
sleep 0.5
"$bin/pi-ring-verify" "$logs"/node*/expansion.txt
