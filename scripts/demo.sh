#!/usr/bin/env bash
# Run a pi-ring of N nodes on this machine and watch it compute pi.
#
#   scripts/demo.sh                 # 5 nodes until Ctrl-C
#   scripts/demo.sh -n 3 -t 30      # 3 nodes for 30 seconds
#   scripts/demo.sh -- --hold-ms 200 --target-digits 100000   # extra node flags
#   scripts/demo.sh --story         # the fault story: kill the holder, watch the
#                                   # recovery, restart it, verify the digits;
#                                   # recorded, for pi-ring-monitor --replay
#
# Nodes listen on 127.0.0.2, 127.0.0.3, ... and broadcast on 127.255.255.255,
# so nothing leaves the machine. Works as root or as a normal user, with no
# setup. Ctrl-C stops every node the script started.
#
# Exit status: 0 when the demo ran, 2 for bad options, 1 when something
# kept it from running (a port in use, a node or the monitor that died at
# start: the script prints the reason from its log).
set -euo pipefail

usage() {
    sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
    cat <<USAGE

Options:
  -n N          number of nodes (default 5, at most 250)
  -t SECS       stop after SECS seconds (default: run until Ctrl-C)
  -p PORT       base UDP port; TCP uses PORT+1, monitoring PORT+2 (default 23912)
  --story       tell the fault story (uses curl to read the monitor's API),
                recorded to pi-ring-story.jsonl (replaced) unless --record says
  --record FILE record what the monitor hears to FILE, for replays
  --http A:P    address of the monitor page (default 127.0.0.1:8080)
  --no-build    use the binaries already in target/release
  --keep        keep the node logs and saved digits (removed at exit otherwise)
  -h, --help    this help
  -- FLAGS      pass FLAGS to every pi-ring-node (see target/release/pi-ring-node --help)
USAGE
}

fail_usage() { echo "demo.sh: $*" >&2; exit 2; }
# need_value OPTION ARGS...: OPTION must be followed by a value.
need_value() { [ $# -ge 2 ] && [ -n "$2" ] || fail_usage "$1 needs a value (see --help)"; }

nodes=5 duration="" base_port=23912 build=1 node_flags=() story=0 http=127.0.0.1:8080 keep=0 record=
while [ $# -gt 0 ]; do
    case "$1" in
        -n) need_value "$@"; nodes="$2"; shift 2 ;;
        -t) need_value "$@"; duration="$2"; shift 2 ;;
        -p) need_value "$@"; base_port="$2"; shift 2 ;;
        --no-build) build=0; shift ;;
        --story) story=1; shift ;;
        --keep) keep=1; shift ;;
        --record) need_value "$@"; record="$2"; shift 2 ;;
        --http) need_value "$@"; http="$2"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        --) shift; node_flags=("$@"); break ;;
        *) fail_usage "unknown option $1 (see --help)" ;;
    esac
done
if [ -n "$duration" ] && ! [[ "$duration" =~ ^[0-9]+$ && "$duration" -gt 0 ]]; then
    fail_usage "-t takes a whole number of seconds, 1 or more (got '$duration')"
fi
if ! [[ "$base_port" =~ ^[0-9]+$ ]] || [ "$base_port" -lt 1024 ] || [ "$base_port" -gt 65533 ]; then
    fail_usage "-p takes a port from 1024 to 65533 (got '$base_port')"
fi
if ! [[ "$http" =~ ^[0-9.]+:[0-9]+$ ]]; then
    fail_usage "--http takes ADDRESS:PORT, e.g. 127.0.0.1:8080 (got '$http')"
fi
if [ "$story" = 1 ] && ! command -v curl >/dev/null; then
    echo "demo.sh: --story reads the monitor's API with curl; install curl first" >&2; exit 2
fi
if [ "$story" = 1 ] && [ -z "$record" ]; then
    record=pi-ring-story.jsonl
fi
if [ -n "$record" ]; then
    # An absolute path: the replay command printed at the end works from
    # anywhere.
    case "$record" in /*) ;; *) record="$PWD/$record" ;; esac
    if ! touch "$record" 2>/dev/null; then
        echo "demo.sh: cannot write the recording $record (see --record)" >&2; exit 2
    fi
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
    # The pi engine links the system's GMP (libgmp-dev on Debian and
    # Ubuntu, gmp-devel on Fedora): say so before cargo's long error.
    if ! echo '#include <gmp.h>' | "${CC:-cc}" -E -x c - >/dev/null 2>&1; then
        echo "demo.sh: GMP's header gmp.h is missing; install libgmp-dev (Debian, Ubuntu: sudo apt-get install libgmp-dev) or gmp-devel (Fedora), then run this again" >&2
        exit 1
    fi
    echo "Building (release)..."
    cargo build --release --quiet --bin pi-ring-node --bin pi-ring-monitor --bin pi-ring-verify
fi
# PI_RING_BIN_DIR: where the binaries are (the tests use their own build).
bin="${PI_RING_BIN_DIR:-$root/target/release}"
udp=$base_port tcp=$((base_port + 1)) mon=$((base_port + 2))

# Something already listening (another demo?) would make the nodes or the
# monitor fail to start: say so before starting anything.
listening() { (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null; }
for i in $(seq 1 "$nodes"); do
    if listening "127.0.0.$((i + 1)):$tcp"; then
        echo "demo.sh: something already listens on 127.0.0.$((i + 1)):$tcp (another demo?)." >&2
        echo "  Stop it, or run this one on other ports: -p $((base_port + 10)) --http ${http%:*}:$((${http##*:} + 1))" >&2
        exit 1
    fi
done
if listening "$http"; then
    echo "demo.sh: something already listens on $http (another demo's monitor?)." >&2
    echo "  Stop it, or give this demo another page address: --http ${http%:*}:$((${http##*:} + 1))" >&2
    exit 1
fi

logs="$(mktemp -d "${TMPDIR:-/tmp}/pi-ring-demo.XXXXXX")"
pids=()
status="" # how the demo ends, once decided: 0 ran, 1 failed

# alive PID: running (not gone, not a zombie waiting to be reaped).
alive() {
    local state
    # The process may exit between any two looks: read its status once.
    if state=$(grep '^State:' "/proc/$1/status" 2>/dev/null); then
        [[ "$state" != *Z* ]]
    else
        kill -0 "$1" 2>/dev/null
    fi
}

stop() {
    local rc=$?
    status=${status:-$rc}
    trap - INT TERM EXIT
    if [ ${#pids[@]} -gt 0 ]; then
        kill "${pids[@]}" 2>/dev/null || true
        # Nodes are disowned (so `wait` does not see them): give each up to
        # 5 s to hand the token on and save, then stop it at once.
        for _ in $(seq 1 50); do
            local running=0 pid
            for pid in "${pids[@]}"; do alive "$pid" && running=1; done
            [ "$running" = 0 ] && break
            sleep 0.1
        done
        kill -KILL "${pids[@]}" 2>/dev/null || true
        wait "${pids[@]}" 2>/dev/null || true
    fi
    echo
    if [ "$keep" = 1 ] || [ "$status" != 0 ]; then
        echo "Stopped ${#pids[@]} processes. Node logs and saved digits: $logs"
    else
        rm -rf "$logs"
        echo "Stopped ${#pids[@]} processes (--keep keeps their logs)."
    fi
    exit "$status"
}
trap 'status=${status:-0}; stop' INT TERM # Ctrl-C is how a demo ends
trap stop EXIT

# started NAME PID LOG: fail loudly if the process died at start.
started() {
    if ! alive "$2"; then
        echo "demo.sh: $1 exited at start:" >&2
        tail -n 5 "$3" | sed 's/^/  /' >&2
        status=1
        exit 1
    fi
}
if [ "$story" = 1 ] && [ ${#node_flags[@]} -eq 0 ]; then
    # Each holder keeps the token 100 ms: slow enough to kill it while it
    # holds the token, fast enough to watch the digits grow.
    node_flags=(--hold-ms 100)
fi
echo "Starting $nodes nodes on 127.0.0.2..127.0.0.$((nodes + 1)) (UDP $udp, TCP $tcp, monitor $mon); logs in $logs"
recording=()
[ -z "$record" ] || recording=(--record "$record")
"$bin/pi-ring-monitor" --http "$http" --udp-port "$udp" --monitor-port "$mon" "${recording[@]}" 2> >(tee "$logs/monitor.log" >&2) &
monitor_pid=$!
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
# A process that cannot start (a port in use, a bad flag) exits at once.
sleep 1
started "the monitor" "$monitor_pid" "$logs/monitor.log"
for i in $(seq 1 "$nodes"); do started "node$i" "${node_pid[$i]}" "$logs/node$i.log"; done
echo "Open http://$http/ to watch the ring. The first token appears after about 4 s"
echo "(the nodes first search for one). Each line: who holds the token, digits so far,"
echo "token passes per second, each node's state."

# How to replay the recording, once the demo ends.
replay_hint() {
    [ -n "$record" ] || return 0
    echo
    echo "The run is recorded in $record. Replay it (page at http://$http/, with play, pause, speed and seek):"
    echo "  $bin/pi-ring-monitor --replay $record --http $http"
}

if [ "$story" = 0 ]; then
    trap 'status=${status:-0}; replay_hint; stop' INT TERM
    if [ -n "$duration" ]; then sleep "$duration"; else wait "${pids[0]}"; fi
    status=0
    replay_hint
    exit 0
fi

# ----- the story -----------------------------------------------------------
api() { curl -s --max-time 2 "http://$http/api/$1" || true; }
holder() { api ring | { grep -o '"holder":"[^"]*"' || true; } | cut -d'"' -f4; }
recoveries() { api incidents | { grep -o '"regenerated_by":"[^"]*"' || true; } | wc -l; }
say() { printf '\n>>> %s\n\n' "$*"; }

# Every figure the story gives comes from the monitor, which takes the
# times from what the nodes report of themselves (MY_STATE: when a node
# started, when its state changed): the events their logs show.
until [ -n "$(holder)" ]; do sleep 0.1; done
first=$(api incidents | { grep -o '"text":"[^"]*first token[^"]*"' || true; } | head -1 | cut -d'"' -f4)
say "The ring has formed: ${first:-$(holder) created the first token}. Watch the digits grow."
sleep 8

victim=""
for attempt in 1 2 3; do
    v=$(holder); v=${v#node}
    [ -n "$v" ] || { sleep 0.5; continue; }
    before=$(recoveries)
    say "Killing node$v, which holds the token, with SIGKILL (no goodbye, like a power cut)."
    kill -KILL "${node_pid[$v]}" 2>/dev/null || true
    for _ in $(seq 1 150); do
        now_count=$(recoveries)
        [ "$now_count" -gt "$before" ] && break
        sleep 0.1
    done
    if [ "$now_count" -gt "$before" ]; then
        victim=$v
        text=$(api incidents | { grep -o '"text":"token lost[^"]*regenerated[^"]*"' || true; } | tail -1 | cut -d'"' -f4)
        say "Recovered: $text."
        break
    fi
    say "node$v had already passed the token on when it died: the ring just skips it. Trying again."
    start_node "$v"
    sleep 3
done
[ -n "$victim" ] || { echo "demo.sh: could not catch a holder to kill" >&2; exit 1; }

sleep 5
say "Restarting node$victim: it reloads and verifies its saved digits, then rejoins the ring."
# The monitor times the node's first holding of its new life from the
# node's own start and state-change times (MY_STATE), the same event the
# node logs as "took the token for the first time since its start".
back_in_rotation() { # the monitor's "back in the rotation" figures for node I
    api incidents | { grep -o "\"after\":[0-9.e-]*,\"kind\":\"back_in_rotation\",\"node\":\"node$1\"" || true; } |
        sed 's/"after":\([0-9.e-]*\),.*/\1/'
}
seen_before=$(back_in_rotation "$victim" | wc -l)
start_node "$victim"
after=""
for _ in $(seq 1 300); do
    figures=$(back_in_rotation "$victim")
    if [ "$(printf '%s' "$figures" | grep -c .)" -gt "$seen_before" ]; then
        after=$(printf '%s\n' "$figures" | tail -1)
        break
    fi
    sleep 0.1
done
logged=$({ grep -o 'for the first time since its start, [0-9.]* s' "$logs/node$victim.log" || true; } | tail -1 | grep -o '[0-9][0-9.]*' || true)
if [ -n "$after" ]; then
    say "node$victim is back in the rotation: it held the token again $(printf '%.2f' "$after") s after its restart (its own log: ${logged:-?} s)."
else
    say "node$victim has not held the token within 30 s of its restart (its log: $logs/node$victim.log)."
fi
sleep 5

say "Stopping the nodes and checking every node's saved expansion against pi computed afresh:"
for i in $(seq 1 "$nodes"); do kill "${node_pid[$i]}" 2>/dev/null || true; done
sleep 0.5
"$bin/pi-ring-verify" "$logs"/node*/expansion.txt
replay_hint
