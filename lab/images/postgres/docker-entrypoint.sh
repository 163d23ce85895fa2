#!/usr/bin/env bash
# Like the official postgres image's entrypoint: an empty PGDATA is initialised with POSTGRES_USER,
# POSTGRES_PASSWORD and POSTGRES_DB, then PostgreSQL replaces this script as the container's main process,
# running as postgres. A data directory restored by pgBackRest is started as it is.
set -euo pipefail

if [[ "${1:-}" == postgres && "$(id -u)" == 0 ]]; then
  install -d -o postgres -g postgres -m 0700 "$PGDATA"
  install -d -o postgres -g postgres -m 2775 /var/run/postgresql
  exec setpriv --reuid=postgres --regid=postgres --init-groups -- "$0" "$@"
fi

if [[ "${1:-}" == postgres && ! -s "$PGDATA/PG_VERSION" ]]; then
  : "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD to initialise an empty data directory}"
  pwfile=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
  # Like the official image: local connections inside the container are trusted.
  initdb --username=postgres --pwfile="$pwfile" --auth-local=trust --auth-host=scram-sha-256 \
    --encoding=UTF8 --locale=en_US.UTF-8 -D "$PGDATA" >/dev/null
  rm -f "$pwfile"
  {
    echo "listen_addresses = '*'"
    # Within the container, local TCP connections are trusted, as in the official image.
  } >>"$PGDATA/postgresql.conf"
  sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$PGDATA/pg_hba.conf"
  echo 'host all all all scram-sha-256' >>"$PGDATA/pg_hba.conf"
  pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
  user=${POSTGRES_USER:-postgres} database=${POSTGRES_DB:-$user}
  if [[ "$user" != postgres ]]; then
    # The password comes from the environment (\getenv), never from argv.
    psql -XqAt -v ON_ERROR_STOP=1 -v user="$user" -d postgres <<'SQL'
\getenv password POSTGRES_PASSWORD
CREATE ROLE :"user" SUPERUSER LOGIN PASSWORD :'password';
SQL
  fi
  if [[ "$database" != postgres ]]; then
    psql -XqAt -v ON_ERROR_STOP=1 -d postgres -c "CREATE DATABASE \"$database\" OWNER \"$user\""
  fi
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  echo "initialised $PGDATA (superuser $user, database $database)"
fi

exec "$@"
