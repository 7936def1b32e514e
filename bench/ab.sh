#!/usr/bin/env bash
# Compares a commit with the working tree on one workload, alternating runs so
# that drift in the machine's speed hits both alike.
#
#   bench/ab.sh REF [RUNS] [WORKLOAD]     e.g. bench/ab.sh HEAD~1 5 independent
set -euo pipefail
cd "$(dirname "$0")/.."
ref="$1"; runs="${2:-5}"; only="${3:-independent}"
dir="$(mktemp -d)/weft-ab"
git worktree add -q "$dir" "$ref"
ln -s "$PWD/node_modules" "$dir/node_modules"
trap 'git worktree remove --force "$dir"' EXIT
rate() { (cd "$1" && timeout 600 node --import tsx bench/graph-bench.ts --json --only "$only" | grep -o '"tasks_per_s":[0-9]*' | cut -d: -f2); }
a=(); b=()
for _ in $(seq "$runs"); do
  a+=("$(rate "$dir")")
  b+=("$(rate "$PWD")")
done
mean() { printf '%s\n' "$@" | awk '{ s += $1 } END { printf "%d", s / NR }'; }
echo "A ($ref): ${a[*]}  mean $(mean "${a[@]}")"
echo "B (working tree): ${b[*]}  mean $(mean "${b[@]}")"
