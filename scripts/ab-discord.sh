#!/usr/bin/env bash
# A/B of sandbot builds against the plain serenity bot, whole runs
# alternating in one script so that the machine's drift falls on every
# build alike (BENCHMARKS.md, "Against a plain serenity bot").
#
#   cp target/release/sandbot /tmp/landed     # one build per change, then
#   RUNS=3 scripts/ab-discord.sh landed=/tmp/landed change=/tmp/change
#
# Each run copies the build to target/release/sandbot (the bench starts
# that binary) and prints each round's sandbot line and the mean ratio.
# GAP (µs, default 0: back to back) and N (messages a round, default
# 1500) set PEER_GAP_US and PEER_SEQUENTIAL; ALTERNATE=1 with GAP=0
# alternates the bots with no pause instead of running them in turn.
# The build that was in target/ is put back at the end (cargo would not
# notice the swap).
set -euo pipefail
cd "$(dirname "$0")/.."
kept=$(mktemp) out=$(mktemp) err=$(mktemp)
cp target/release/sandbot "$kept"
trap 'cp "$kept" target/release/sandbot; rm -f "$kept" "$out" "$err"' EXIT
for run in $(seq 1 "${RUNS:-3}"); do
  for pair in "$@"; do
    name=${pair%%=*}
    cp "${pair#*=}" target/release/sandbot
    echo "== $name, run $run"
    # A run that fails says why, and the others go on.
    if ! PEER_ALTERNATE=${ALTERNATE:-0} PEER_GAP_US=${GAP:-0} PEER_SEQUENTIAL=${N:-1500} \
      cargo bench -q -p sandbot --bench discord >"$out" 2>"$err"; then
      echo "the bench failed:"; tail -5 "$err"
    fi
    grep -E '^discord/peer( round [0-9]+, sandbot|: mean)' "$out" | sed 's/; burst.*//' || true
  done
done
