#!/usr/bin/env bash
# The embedded lab: a `chronos-db` container playing the database host and a `chronos-s3` container
# serving the S3 API over TLS as s3.chronos.lab, on their own Docker network.
# Usage: scripts/lab.sh up|down|status
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
NETWORK=chronos-lab
BASE_IMAGE=chronos-pgbackrest/base:bookworm
S3_IMAGE=chronos-pgbackrest/s3:bookworm

running() { [[ "$(docker inspect -f '{{ .State.Running }}' "$1" 2>/dev/null)" == true ]]; }

start() {  # name, then docker run arguments
  local name=$1; shift
  if running "$name"; then
    return
  elif docker inspect "$name" >/dev/null 2>&1; then
    echo "==> starting $name"
    docker start "$name" >/dev/null
  else
    echo "==> creating $name"
    docker run -d --name "$name" --hostname "$name" --network "$NETWORK" "$@" >/dev/null
  fi
}

up() {
  local serving
  serving=$(docker inspect -f '{{ range .Mounts }}{{ .Source }}{{ end }}' chronos-s3 2>/dev/null || true)
  if [[ -n "$serving" && "$serving" != "$ROOT/.build/tls" ]]; then
    echo "The lab was started from another checkout ($serving), with another certificate authority." >&2
    echo "Run 'make lab-down' there (or here) first." >&2
    exit 1
  fi
  docker network inspect "$NETWORK" >/dev/null 2>&1 || docker network create "$NETWORK" >/dev/null
  start chronos-s3 --network-alias s3.chronos.lab -v "$ROOT/.build/tls:/etc/s3-tls:ro" "$S3_IMAGE"
  start chronos-db "$BASE_IMAGE"
}

down() {
  docker rm -f chronos-db chronos-s3 >/dev/null 2>&1 || true
  docker network rm "$NETWORK" >/dev/null 2>&1 || true
  echo "==> lab removed"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) docker ps -a --filter "network=$NETWORK" --format 'table {{.Names}}\t{{.Status}}\t{{.Image}}' ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
