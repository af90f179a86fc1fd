#!/usr/bin/env bash
# Make sure PostgreSQL and Redis answer on loopback and Chromium is installed, for the test suite.
# Already running: nothing to do. Installed but stopped: start them. Absent: install them from
# Debian's packages (apt-get), configure trust auth on 127.0.0.1 and create the `test` database.
# Chromium (Debian's package) drives the browser tests through Playwright.
set -euo pipefail

PG_PORT=${PG_PORT:-5432}
REDIS_PORT=${REDIS_PORT:-6379}
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

log() { echo "ensure-services: $*" >&2; }

answers() {  # answers PORT: something accepts TCP connections on 127.0.0.1:PORT
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

wait_for() {  # wait_for NAME PORT
  for _ in $(seq 1 60); do
    if answers "$2"; then return 0; fi
    sleep 0.5
  done
  log "$1 did not answer on 127.0.0.1:$2 within 30 s"
  return 1
}

apt_install() {
  log "installing $* with apt-get"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi
}

ensure_postgres() {
  if answers "$PG_PORT"; then return 0; fi
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    apt_install postgresql
  fi
  local version hba
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  hba="/etc/postgresql/$version/main/pg_hba.conf"
  # The tests connect as `postgres` over TCP without a password (trust, loopback only).
  if ! $SUDO grep -qE '^host\s+all\s+all\s+127\.0\.0\.1/32\s+trust' "$hba"; then
    log "allowing trust auth from 127.0.0.1 in $hba"
    $SUDO sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
  fi
  log "starting PostgreSQL $version"
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  wait_for PostgreSQL "$PG_PORT"
  if ! as_postgres psql -h 127.0.0.1 -p "$PG_PORT" -tAc \
      "SELECT 1 FROM pg_database WHERE datname = 'test'" | grep -q 1; then
    as_postgres createdb -h 127.0.0.1 -p "$PG_PORT" test
  fi
}

ensure_redis() {
  if answers "$REDIS_PORT"; then return 0; fi
  if ! command -v redis-server >/dev/null 2>&1; then
    apt_install redis-server
  fi
  log "starting Redis"
  $SUDO redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" \
    --save "" --appendonly no
  wait_for Redis "$REDIS_PORT"
}

ensure_chromium() {
  if [ -x /usr/bin/chromium ]; then return 0; fi
  apt_install chromium
}

ensure_postgres
ensure_redis
ensure_chromium
log "PostgreSQL (127.0.0.1:$PG_PORT) and Redis (127.0.0.1:$REDIS_PORT) answer; Chromium is installed"
