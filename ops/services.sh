#!/usr/bin/env bash
# Make Redis 7 and PostgreSQL 15 with pgvector available on a Debian bookworm machine.
# Idempotent: every step checks first and is skipped when already done, so CI and developers
# can run it on every start. Needs root (apt-get, make install); prints what it does.
set -euo pipefail
# apt-get waits up to 10 minutes for the package lock (DPkg::Lock::Timeout) rather than failing
# at once: another install, or unattended-upgrades on a fresh machine, may hold it.

PGHOST_ADDR="${ENGRAM_PG_HOST:-127.0.0.1}"
PGPORT_NUM="${ENGRAM_PG_PORT:-5432}"
PGUSER_NAME="${ENGRAM_PG_USER:-postgres}"
PG_DATABASES="${ENGRAM_PG_DATABASES:-test postgres}"
REDIS_PORT_NUM="${ENGRAM_REDIS_PORT:-6379}"
PGVECTOR_SRC_DIR="${ENGRAM_PGVECTOR_SRC:-/usr/local/src/engram-pgvector}"

log() { printf '[ops/services] %s\n' "$*"; }
psql_q() { psql -h "$PGHOST_ADDR" -p "$PGPORT_NUM" -U "$PGUSER_NAME" -v ON_ERROR_STOP=1 -Atq "$@"; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

wait_for() { # wait_for <what> <command...>: up to 30 s
  local what=$1; shift
  for _ in $(seq 1 60); do "$@" >/dev/null 2>&1 && return 0; sleep 0.5; done
  log "ERROR: $what did not come up within 30 s"; return 1
}

# --- Redis --------------------------------------------------------------------------------
if redis-cli -p "$REDIS_PORT_NUM" ping >/dev/null 2>&1; then
  log "redis: up on port $REDIS_PORT_NUM"
else
  command -v redis-server >/dev/null || { log "installing redis-server"; as_root apt-get -o DPkg::Lock::Timeout=600 install -y -q redis-server; }
  log "redis: starting on port $REDIS_PORT_NUM"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT_NUM" --save "" \
    --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_for redis redis-cli -p "$REDIS_PORT_NUM" ping
fi
# BullMQ needs noeviction: an evicted job key is a lost turn (docs/prior-art.md: BullMQ).
policy=$(redis-cli -p "$REDIS_PORT_NUM" config get maxmemory-policy | tail -n 1)
if [ "$policy" != "noeviction" ]; then
  log "redis: setting maxmemory-policy noeviction (was $policy)"
  redis-cli -p "$REDIS_PORT_NUM" config set maxmemory-policy noeviction >/dev/null
fi
# What compose and the embedded redis-server ship: a pending thread costs about a third
# (docs/operations.md, "Redis"); a process warns at start of a Redis without them.
redis-cli -p "$REDIS_PORT_NUM" config set stream-node-max-bytes 256 >/dev/null
redis-cli -p "$REDIS_PORT_NUM" config set hash-max-listpack-value 1024 >/dev/null

# --- PostgreSQL ---------------------------------------------------------------------------
if pg_isready -h "$PGHOST_ADDR" -p "$PGPORT_NUM" -q; then
  log "postgres: up on $PGHOST_ADDR:$PGPORT_NUM"
else
  log "postgres: starting"
  as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n 1)" main start
  wait_for postgres pg_isready -h "$PGHOST_ADDR" -p "$PGPORT_NUM" -q
fi
PG_MAJOR=$(psql_q -d postgres -c "show server_version_num" | cut -c1-2)

# --- pgvector -----------------------------------------------------------------------------
# Bookworm ships no pgvector package; trixie's source package (0.8.x) builds against PG 15.
has_vector() { [ "$(psql_q -d postgres -c "select count(*) from pg_available_extensions where name = 'vector'")" = "1" ]; }
if has_vector; then
  log "pgvector: available"
else
  log "pgvector: building from Debian trixie's source package"
  src_list=/etc/apt/sources.list.d/engram-trixie-src.sources
  if [ ! -f "$src_list" ]; then
    as_root tee "$src_list" >/dev/null <<SRC
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  fi
  # Update only the lists we need: other configured repositories may be unreachable here.
  as_root apt-get -o DPkg::Lock::Timeout=600 update -q -o Dir::Etc::sourcelist="$src_list" -o Dir::Etc::sourceparts=- \
    -o APT::Get::List-Cleanup=0
  as_root apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "postgresql-server-dev-$PG_MAJOR" make gcc dpkg-dev \
    || { as_root apt-get -o DPkg::Lock::Timeout=600 update -q || true; as_root apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "postgresql-server-dev-$PG_MAJOR" make gcc dpkg-dev; }
  as_root mkdir -p "$PGVECTOR_SRC_DIR"
  cd "$PGVECTOR_SRC_DIR"
  if ! ls -d pgvector-*/ >/dev/null 2>&1; then
    as_root apt-get -o DPkg::Lock::Timeout=600 source -q pgvector
  fi
  cd "$(ls -d pgvector-*/ | sort -V | tail -n 1)"
  as_root make -s PG_CONFIG="/usr/lib/postgresql/$PG_MAJOR/bin/pg_config" OPTFLAGS=""
  as_root make -s install PG_CONFIG="/usr/lib/postgresql/$PG_MAJOR/bin/pg_config"
  cd - >/dev/null
  has_vector || { log "ERROR: pgvector built but postgres does not list it"; exit 1; }
fi

for db in $PG_DATABASES; do
  if [ "$(psql_q -d postgres -c "select count(*) from pg_database where datname = '$db'")" = "0" ]; then
    log "postgres: creating database $db"
    psql_q -d postgres -c "create database \"$db\""
  fi
  psql_q -d "$db" -c "set client_min_messages = warning; create extension if not exists vector" >/dev/null
done
log "pgvector $(psql_q -d "$(echo $PG_DATABASES | cut -d' ' -f1)" -c "select extversion from pg_extension where extname='vector'") ready in: $PG_DATABASES"
