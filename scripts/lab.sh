#!/usr/bin/env bash
# The embedded lab, on a Docker network of its own, with `chronos-s3` serving the S3 API over TLS as
# s3.chronos.lab. Three layouts of `chronos-db`:
#   host         a Debian container playing a database host; Ansible manages it over the docker connection.
#   container    production's chronos-db: the official postgres image's layout (PGDATA is the volume's root,
#                POSTGRES_USER=prometheus is the only superuser, no python3, PostgreSQL as PID 1, restart policy
#                unless-stopped) with pgBackRest inside, and /etc/pgbackrest/pgbackrest.conf bind-mounted from this
#                machine as a single file, as the guide does. This machine is the Docker host Ansible manages.
#   container18  the same with the official image's PostgreSQL 18 layout: the volume at /var/lib/postgresql,
#                PGDATA below it.
#   container-trixie  the container layout on Debian 13 (PostgreSQL 17, pgBackRest 2.55.1).
# Usage: scripts/lab.sh up [host|container|container18|container-trixie] | down | status
# CHRONOS_LAB_DB, CHRONOS_LAB_S3 and CHRONOS_LAB_NETWORK rename the containers and the network (molecule, the bench).
# CHRONOS_LAB_RELEASE (bookworm, the default, or trixie) is the Debian release of the host layout's chronos-db.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DB=${CHRONOS_LAB_DB:-chronos-db}
S3=${CHRONOS_LAB_S3:-chronos-s3}
NETWORK=${CHRONOS_LAB_NETWORK:-chronos-lab}
STANZA=${CHRONOS_LAB_STANZA:-chronos-v2}
RELEASE=${CHRONOS_LAB_RELEASE:-bookworm}
[[ "$RELEASE" == bookworm || "$RELEASE" == trixie ]] || { echo "CHRONOS_LAB_RELEASE: bookworm or trixie, not $RELEASE" >&2; exit 2; }
BASE_IMAGE=chronos-pgbackrest/base:$RELEASE
S3_IMAGE=chronos-pgbackrest/s3:bookworm
declare -A IMAGE=([host]=$BASE_IMAGE [container]=chronos-pgbackrest/postgres:bookworm
                  [container18]=chronos-pgbackrest/postgres:bookworm-18-layout
                  [container-trixie]=chronos-pgbackrest/postgres:trixie)
declare -A VOLUME_AT=([container]=/var/lib/postgresql/data [container18]=/var/lib/postgresql
                      [container-trixie]=/var/lib/postgresql/data)
# What the container layouts bind-mount from this machine.
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
  if [[ -n "$image" && "$image" != "${IMAGE[$1]}" ]]; then
    echo "$DB runs another lab layout or release (image $image, not ${IMAGE[$1]}). Run 'make lab-down' first." >&2
    exit 1
  fi
}

up() {  # layout
  [[ -n "${IMAGE[$1]:-}" ]] || { echo "unknown layout: $1 (host, container, container18, container-trixie)" >&2; exit 2; }
  refuse_other_lab "$1"
  docker network inspect "$NETWORK" >/dev/null 2>&1 || docker network create "$NETWORK" >/dev/null
  start "$S3" --network-alias s3.chronos.lab -v "$ROOT/.build/tls:/etc/s3-tls:ro" "$S3_IMAGE"
  if [[ "$1" == host ]]; then
    start "$DB" "$BASE_IMAGE"
    return
  fi
  eval "$("$ROOT/scripts/lab-env.sh")"
  # The guide mounts the configuration as a single file: it must exist first, or Docker makes a directory of it.
  mkdir -p "$HOST_DIR"
  [[ -f "$HOST_DIR/pgbackrest.conf" ]] || install -m 0600 -o 999 -g 999 /dev/null "$HOST_DIR/pgbackrest.conf"
  # The official image's variables: the superuser and database the guide's commands use.
  POSTGRES_PASSWORD=$CHRONOS_LAB_DB_PASSWORD start "$DB" --restart unless-stopped \
    -e POSTGRES_USER=prometheus -e POSTGRES_DB=chronos_db -e POSTGRES_PASSWORD \
    -v "$DB-data:${VOLUME_AT[$1]}" \
    -v "$HOST_DIR/pgbackrest.conf:/etc/pgbackrest/pgbackrest.conf" \
    "${IMAGE[$1]}"
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
  local volume
  docker rm -f "$DB" "$S3" "$DB-pgbackrest-helper" "$DB-pgbackrest-drill" "$DB-small" >/dev/null 2>&1 || true
  for volume in "$DB-data" "$DB-small-data" $(docker volume ls -q --filter "label=chronos.pgbackrest.kept-from=$DB-data"); do
    docker volume rm "$volume" >/dev/null 2>&1 || true
  done
  docker network rm "$NETWORK" >/dev/null 2>&1 || true
  rm -rf "$HOST_DIR" "$HOST_DIR-small"
  # What site.yml put on this machine for the container layouts, when it is this lab's.
  if grep -qs "\"container\": \"$DB\"" "/etc/chronos-pgbackrest/$STANZA.json"; then
    rm -f "/etc/cron.d/pgbackrest-${STANZA//./_}" "/etc/chronos-pgbackrest/$STANZA.json" \
      /var/lib/prometheus/node-exporter/pgbackrest_"$STANZA"_*.prom "/run/chronos-pgbackrest/$STANZA.lock"
  fi
  echo "==> lab removed"
}

case "${1:-}" in
  up) up "${2:-host}" ;;
  down) down ;;
  status) docker ps -a --filter "network=$NETWORK" --format 'table {{.Names}}\t{{.Status}}\t{{.Image}}' ;;
  *) echo "usage: $0 up [host|container|container18|container-trixie] | down | status" >&2; exit 2 ;;
esac
