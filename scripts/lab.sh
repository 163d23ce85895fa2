#!/usr/bin/env bash
# The embedded lab, on a Docker network of its own, with `chronos-s3` serving the S3 API over TLS as
# s3.chronos.lab. Two layouts of `chronos-db`:
#   host       a Debian container playing a database host; Ansible manages it over the docker connection.
#   container  production's layout: PostgreSQL is the container's main process (official-image style
#              entrypoint), pgBackRest is inside, /etc/pgbackrest is bind-mounted from this machine,
#              which is the Docker host Ansible manages.
# Usage: scripts/lab.sh up [host|container] | down | status
# CHRONOS_LAB_DB, CHRONOS_LAB_S3 and CHRONOS_LAB_NETWORK rename the containers and the network (molecule).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DB=${CHRONOS_LAB_DB:-chronos-db}
S3=${CHRONOS_LAB_S3:-chronos-s3}
NETWORK=${CHRONOS_LAB_NETWORK:-chronos-lab}
BASE_IMAGE=chronos-pgbackrest/base:bookworm
S3_IMAGE=chronos-pgbackrest/s3:bookworm
POSTGRES_IMAGE=chronos-pgbackrest/postgres:bookworm
# What the container layout bind-mounts from this machine.
HOST_DIR=$ROOT/.build/lab/$DB

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

refuse_other_lab() {  # layout wanted
  local serving image
  serving=$(docker inspect -f '{{ range .Mounts }}{{ .Source }}{{ end }}' "$S3" 2>/dev/null || true)
  if [[ -n "$serving" && "$serving" != "$ROOT/.build/tls" ]]; then
    echo "The lab was started from another checkout ($serving), with another certificate authority." >&2
    echo "Run 'make lab-down' there (or here) first." >&2
    exit 1
  fi
  image=$(docker inspect -f '{{ .Config.Image }}' "$DB" 2>/dev/null || true)
  if [[ -n "$image" && "$image" != "$([[ $1 == host ]] && echo "$BASE_IMAGE" || echo "$POSTGRES_IMAGE")" ]]; then
    echo "$DB runs the other lab layout (image $image). Run 'make lab-down' first." >&2
    exit 1
  fi
}

up() {  # layout
  refuse_other_lab "$1"
  docker network inspect "$NETWORK" >/dev/null 2>&1 || docker network create "$NETWORK" >/dev/null
  start "$S3" --network-alias s3.chronos.lab -v "$ROOT/.build/tls:/etc/s3-tls:ro" "$S3_IMAGE"
  if [[ "$1" == host ]]; then
    start "$DB" "$BASE_IMAGE"
    return
  fi
  eval "$("$ROOT/scripts/lab-env.sh")"
  mkdir -p "$HOST_DIR/pgbackrest" "$HOST_DIR/metrics"
  # The official image's variables: the superuser and database the guide's commands use.
  POSTGRES_PASSWORD=$CHRONOS_LAB_DB_PASSWORD start "$DB" \
    -e POSTGRES_USER=prometheus -e POSTGRES_DB=chronos_db -e POSTGRES_PASSWORD \
    -v "$DB-data:/var/lib/postgresql" \
    -v "$HOST_DIR/pgbackrest:/etc/pgbackrest" \
    -v "$HOST_DIR/metrics:/var/lib/prometheus/node-exporter" \
    "$POSTGRES_IMAGE"
  echo "==> waiting for PostgreSQL in $DB"
  for _ in $(seq 60); do
    docker exec -u postgres "$DB" pg_isready -q 2>/dev/null && return
    sleep 1
  done
  docker logs --tail 20 "$DB" >&2
  echo "PostgreSQL in $DB did not start within a minute." >&2
  exit 1
}

down() {
  docker rm -f "$DB" "$S3" >/dev/null 2>&1 || true
  docker volume rm "$DB-data" >/dev/null 2>&1 || true
  docker network rm "$NETWORK" >/dev/null 2>&1 || true
  rm -rf "$HOST_DIR"
  # The container layout's cron entries on this machine (site.yml installs them), when they are this lab's.
  if grep -qs -- "docker exec $DB " /etc/cron.d/pgbackrest-chronos-v2; then
    rm -f /etc/cron.d/pgbackrest-chronos-v2
  fi
  echo "==> lab removed"
}

case "${1:-}" in
  up) up "${2:-host}" ;;
  down) down ;;
  status) docker ps -a --filter "network=$NETWORK" --format 'table {{.Names}}\t{{.Status}}\t{{.Image}}' ;;
  *) echo "usage: $0 up [host|container] | down | status" >&2; exit 2 ;;
esac
