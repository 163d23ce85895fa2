#!/usr/bin/env bash
# Run molecule scenarios in two lanes side by side (the machine has two cores, and much of a scenario's time is
# spent waiting on PostgreSQL, pgBackRest and the S3 endpoint). Each lane runs its scenarios one after another; the
# container scenarios share one lane because they all manage this machine as their Docker host (its cron file,
# settings and metrics for stanza chronos-v2). Every scenario runs even when one fails; the summary names each with
# its time, and the log of a failed one is printed.
# Usage: scripts/molecule.sh "host host-trixie" "container container18 container-trixie monitoring"
#        scripts/molecule.sh host            (one lane)
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
LOGS=$ROOT/.build/molecule
mkdir -p "$LOGS"

lane() {  # scenarios
  local scenario start failed=0
  for scenario in "$@"; do
    start=$(date +%s)
    if (cd "$ROOT" && molecule test --scenario-name "$scenario") >"$LOGS/$scenario.log" 2>&1; then
      echo "==> molecule $scenario passed in $(($(date +%s) - start)) s"
    else
      echo "==> molecule $scenario FAILED after $(($(date +%s) - start)) s; its log follows ($LOGS/$scenario.log)"
      sed -e 's/\x1b\[[0-9;]*m//g' "$LOGS/$scenario.log" | grep -v '^\s*$' | tail -n 300
      failed=1
    fi
  done
  return "$failed"
}

pids=()
for scenarios in "$@"; do
  # shellcheck disable=SC2086  # a lane is a space-separated list of scenario names
  lane $scenarios &
  pids+=("$!")
done
status=0
for pid in "${pids[@]}"; do
  wait "$pid" || status=1
done
exit "$status"
