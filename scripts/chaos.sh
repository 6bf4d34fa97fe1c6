#!/usr/bin/env bash
# The long fault-tolerance runs (needs root): the deterministic simulation
# over many seeds, then the network-namespace tests with 20 kills of the
# holder, repeated partitions and longer packet loss. Prints the figures.
#
#   sudo scripts/chaos.sh            # 5000 simulation seeds
#   sudo scripts/chaos.sh 20000      # more seeds
set -euo pipefail
cd "$(dirname "$0")/.."
seeds="${1:-5000}"
if [ "$(id -u)" != 0 ]; then
    echo "chaos.sh: the namespace tests need root (sudo scripts/chaos.sh)" >&2; exit 2
fi
for tool in ip nft; do
    command -v "$tool" >/dev/null || { echo "chaos.sh: $tool is missing (apt-get install iproute2 nftables)" >&2; exit 2; }
done
echo "== simulation, $seeds seeds"
PI_RING_SIM_SEEDS="$seeds" cargo test --release --test core simulation -- --nocapture
echo "== network namespaces, long runs"
PI_RING_CHAOS=1 cargo test --release --test ring network_faults -- --ignored --nocapture --test-threads 1 2>&1 | grep -E "FIGURES|^test |test result|panicked"
