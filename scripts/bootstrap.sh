#!/usr/bin/env bash
# Prepare this machine for the lab and the tests, skipping every step that is already done:
# Debian packages, the Python virtualenv, a Docker engine, the locally built images, the lab's
# TLS certificates, the collection link Ansible loads chronos.pgbackrest from, and promtool.
# Usage: scripts/bootstrap.sh [packages|venv|docker|images|lab-images|container-lab-images|monitoring|tls|collection|
#        promtool ...]  (default: all; images is every image the tests use; lab-images only what `make lab` starts,
#        container-lab-images what `make lab-container` starts, monitoring the monitoring lab's image alone)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD="$ROOT/.build"
VENV="$ROOT/.venv"
BASE_IMAGE=chronos-pgbackrest/base:bookworm
TRIXIE_BASE_IMAGE=chronos-pgbackrest/base:trixie
S3_IMAGE=chronos-pgbackrest/s3:bookworm
# The users' chronos-db, in the official postgres image's two layouts (lab/images/postgres/Dockerfile), on both
# Debian releases the lab tests: together they bracket production's PostgreSQL 16.4 and pgBackRest 2.51.
POSTGRES_IMAGE=chronos-pgbackrest/postgres:bookworm
POSTGRES18_IMAGE=chronos-pgbackrest/postgres:bookworm-18-layout
TRIXIE_POSTGRES_IMAGE=chronos-pgbackrest/postgres:trixie
# Prometheus, Alertmanager and a webhook receiver for the monitoring lab (lab/images/monitoring/Dockerfile).
MONITORING_IMAGE=chronos-pgbackrest/monitoring:bookworm
LAB_S3_HOST=s3.chronos.lab

log() { printf '==> %s\n' "$*"; }

packages() {
  local wanted=(docker.io debootstrap rsync openssl make git shellcheck faketime)
  local missing=()
  for pkg in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  if ((${#missing[@]})); then
    log "installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

venv() {
  local stamp="$VENV/.requirements.sha256"
  local want
  want=$(sha256sum "$ROOT/requirements-dev.txt" | cut -d' ' -f1)
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    return
  fi
  log "installing Python requirements into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q -r "$ROOT/requirements-dev.txt" 2> >(grep -v "is ignored: it is neither" >&2)
  echo "$want" >"$stamp"
}

docker_engine() {
  if docker info >/dev/null 2>&1; then
    return
  fi
  log "starting dockerd (log: /var/log/dockerd.log)"
  setsid dockerd >/var/log/dockerd.log 2>&1 </dev/null &
  for _ in $(seq 60); do
    docker info >/dev/null 2>&1 && return
    sleep 1
  done
  echo "dockerd did not answer within 60 s; see /var/log/dockerd.log" >&2
  exit 1
}

# An image is rebuilt only when the files it is built from change: their hash is kept as a label.
image_current() {
  local image=$1 inputs=$2
  [[ "$(docker image inspect -f '{{ index .Config.Labels "chronos.inputs" }}' "$image" 2>/dev/null)" == "$inputs" ]]
}

base_image() {  # Debian release: bookworm (PostgreSQL 15, pgBackRest 2.45) or trixie (PostgreSQL 17, pgBackRest 2.55)
  local release=$1 image="chronos-pgbackrest/base:$1" inputs rootfs include later=()
  include=python3,python3-apt,sudo,acl,procps,ca-certificates,locales
  # trixie's cron wants a sysusers implementation, and debootstrap would pick systemd, which it cannot configure in
  # its chroot: take the standalone one first, then cron with apt.
  if [[ "$release" == bookworm ]]; then include+=,cron; else include+=,systemd-standalone-sysusers; later=(cron); fi
  inputs=$( (declare -f base_image; echo "$release") | sha256sum | cut -c1-16)
  image_current "$image" "$inputs" && return
  log "building $image with debootstrap (about a minute)"
  rootfs=$(mktemp -d /var/tmp/chronos-rootfs.XXXXXX)
  debootstrap --variant=minbase --include="$include" "$release" "$rootfs" http://deb.debian.org/debian >"$BUILD/debootstrap-$release.log" 2>&1 \
    || { echo "debootstrap failed; see $BUILD/debootstrap-$release.log" >&2; exit 1; }
  rm -f "$rootfs/etc/apt/sources.list"
  cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<SOURCES
Types: deb
URIs: http://deb.debian.org/debian
Suites: $release $release-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: $release-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
  if ((${#later[@]})); then
    chroot "$rootfs" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive chroot "$rootfs" apt-get install -y -qq --no-install-recommends "${later[@]}" >/dev/null
  fi
  echo 'en_US.UTF-8 UTF-8' >"$rootfs/etc/locale.gen"
  chroot "$rootfs" locale-gen >/dev/null
  chroot "$rootfs" apt-get clean
  tar -C "$rootfs" -c . | docker import \
    --change 'ENV LANG=en_US.UTF-8' \
    --change "LABEL chronos.inputs=$inputs" \
    --change 'CMD ["sleep", "infinity"]' - "$image" >/dev/null
  rm -rf "$rootfs"
}

s3_image() {
  local context="$ROOT/lab/images/s3" moto inputs
  moto=$(grep -E '^moto\[server\]==' "$ROOT/requirements-dev.txt")
  inputs=$( (cat "$context"/* ; echo "$moto"; docker image inspect -f '{{ .Id }}' "$BASE_IMAGE") | sha256sum | cut -c1-16)
  image_current "$S3_IMAGE" "$inputs" && return
  log "building $S3_IMAGE (moto behind stunnel)"
  local tmp
  tmp=$(mktemp -d)
  cp "$context"/* "$tmp/"
  # pip inside the build trusts the same CA bundle as this machine.
  cp /etc/ssl/certs/ca-certificates.crt "$tmp/host-ca-certificates.crt"
  docker build -q --build-arg "MOTO_REQUIREMENT=$moto" --label "chronos.inputs=$inputs" \
    -t "$S3_IMAGE" "$tmp" >/dev/null
  rm -rf "$tmp"
}

postgres_image() {  # image, base image, then build arguments
  local image=$1 base=$2 context="$ROOT/lab/images/postgres" inputs
  shift 2
  inputs=$( (cat "$context"/*; echo "$@"; docker image inspect -f '{{ .Id }}' "$base") | sha256sum | cut -c1-16)
  image_current "$image" "$inputs" && return
  log "building $image (the official postgres image's layout, pgBackRest inside, no python3)"
  docker build -q --label "chronos.inputs=$inputs" --build-arg "BASE=$base" "${@/#/--build-arg=}" -t "$image" \
    "$context" >/dev/null
}

monitoring_image() {
  local context="$ROOT/lab/images/monitoring" inputs
  inputs=$( (cat "$context"/*; docker image inspect -f '{{ .Id }}' "$BASE_IMAGE") | sha256sum | cut -c1-16)
  image_current "$MONITORING_IMAGE" "$inputs" && return
  log "building $MONITORING_IMAGE (Debian's Prometheus and Alertmanager, a webhook receiver)"
  docker build -q --label "chronos.inputs=$inputs" -t "$MONITORING_IMAGE" "$context" >/dev/null
}

tls() {
  local dir="$BUILD/tls"
  [[ -f "$dir/s3.crt" ]] && return
  log "creating the lab's certificate authority and the certificate for $LAB_S3_HOST"
  mkdir -p "$dir"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj '/CN=chronos lab CA' \
    -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=$LAB_S3_HOST" \
    -keyout "$dir/s3.key" -out "$dir/s3.csr" 2>/dev/null
  printf 'subjectAltName=DNS:%s,DNS:localhost\n' "$LAB_S3_HOST" >"$dir/s3.ext"
  openssl x509 -req -in "$dir/s3.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
    -days 3650 -extfile "$dir/s3.ext" -out "$dir/s3.crt" 2>/dev/null
  chmod 0644 "$dir/s3.key"   # read by stunnel inside the s3 container
}

# promtool checks the alerting rules; it is taken from Debian's prometheus package without installing
# the package (which would start a Prometheus server).
promtool_binary() {
  local dir="$BUILD/prometheus" tmp
  [[ -x "$dir/usr/bin/promtool" ]] && return
  log "extracting promtool from Debian's prometheus package"
  tmp=$(mktemp -d)
  if ! (cd "$tmp" && apt-get download prometheus >/dev/null 2>&1); then
    apt-get update -qq
    (cd "$tmp" && apt-get download prometheus >/dev/null 2>&1)
  fi
  dpkg-deb -x "$tmp"/prometheus_*.deb "$dir"
  rm -rf "$tmp"
}

collection() {
  local link="$BUILD/collections/ansible_collections/chronos/pgbackrest"
  [[ -L "$link" ]] && return
  mkdir -p "$(dirname "$link")"
  ln -s "$ROOT" "$link"
}

mkdir -p "$BUILD"
steps=("$@")
((${#steps[@]})) || steps=(packages venv docker images tls collection promtool)
for step in "${steps[@]}"; do
  case "$step" in
    packages) packages ;;
    venv) venv ;;
    docker) docker_engine ;;
    images)
      docker_engine; base_image bookworm; base_image trixie; s3_image
      postgres_image "$POSTGRES_IMAGE" "$BASE_IMAGE" PG_MAJOR=15 PGDATA=/var/lib/postgresql/data \
        VOLUME_PATH=/var/lib/postgresql/data
      postgres_image "$POSTGRES18_IMAGE" "$BASE_IMAGE" PG_MAJOR=15 PGDATA=/var/lib/postgresql/15/docker \
        VOLUME_PATH=/var/lib/postgresql
      postgres_image "$TRIXIE_POSTGRES_IMAGE" "$TRIXIE_BASE_IMAGE" PG_MAJOR=17 PGDATA=/var/lib/postgresql/data \
        VOLUME_PATH=/var/lib/postgresql/data
      monitoring_image
      ;;
    lab-images) docker_engine; base_image bookworm; s3_image ;;
    container-lab-images)
      docker_engine; base_image bookworm; s3_image
      postgres_image "$POSTGRES_IMAGE" "$BASE_IMAGE" PG_MAJOR=15 PGDATA=/var/lib/postgresql/data \
        VOLUME_PATH=/var/lib/postgresql/data
      ;;
    monitoring) docker_engine; base_image bookworm; monitoring_image ;;
    tls) tls ;;
    collection) collection ;;
    promtool) promtool_binary ;;
    *) echo "unknown step: $step" >&2; exit 2 ;;
  esac
done
