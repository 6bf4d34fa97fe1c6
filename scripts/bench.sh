#!/usr/bin/env bash
# Benchmark pi-ring with real node processes on 127.0.0.0/8 and print a
# table of figures (median, min, max over repeated runs); JSON goes to
# target/bench/results.json. About 16 minutes on 2 cores, 10 of them the
# healthy-ring soak (--soak-secs shortens it, --quick skips it).
#
#   scripts/bench.sh                  # everything
#   scripts/bench.sh --quick          # skip growth to 1M digits and the idle check
#   scripts/bench.sh --only handoff,passes --runs 3
#
# Scenarios include scale (5/50/250 nodes) and lengths (passes per second
# at 1k to 1M digits). Any option is passed to pi-ring-bench (see target/release/pi-ring-bench --help).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
echo "Building (release)..." >&2
cargo build --release --quiet --workspace --bins
echo "pi-ring bench, $(date -u +%Y-%m-%d), $(nproc) cores, commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
RUST_LOG=warn exec "$root/target/release/pi-ring-bench" "$@"
