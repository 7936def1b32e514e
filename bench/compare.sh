#!/usr/bin/env bash
# Runs Dask distributed's peer benchmark and weft's bench with the same N, one
# after the other on this machine, printing one JSON line per workload each.
#
#   bench/compare.sh [N]          (default 20000, the peer benchmark's default)
#
# Needs Debian's python3-distributed (apt-get install -y python3-distributed)
# and ../shared/peers/dask_graph_bench.py next to this repository.
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-20000}"
peer="../shared/peers/dask_graph_bench.py"
if [ -f "$peer" ] && /usr/bin/python3 -c 'import distributed' 2>/dev/null; then
  timeout 900 /usr/bin/python3 "$peer" "$n" 2>/dev/null
else
  echo "skipping Dask: needs $peer and python3-distributed" >&2
fi
timeout 900 node --import tsx bench/graph-bench.ts --json --n "$n"
