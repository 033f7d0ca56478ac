#!/usr/bin/env bash
# A streaming read replica of the machine's PostgreSQL (the one ops/services.sh runs) on a
# loopback port, for the read-replica test and `npm run bench:replica`. Debian tooling: a second
# cluster made by pg_createcluster, its data replaced by a pg_basebackup of the primary.
#
# Idempotent and quick when the replica already streams (two psql round trips); a replica left
# paused (pg_wal_replay_pause) is resumed; one that is stopped is started; one that cannot
# catch up (its WAL was recycled on the primary while it was down) is rebuilt. No replication
# slot: a replica that is gone must never make the primary keep WAL without bound, and a
# rebuild of a test database takes seconds. Needs root; prints what it does.
set -euo pipefail

PRIMARY_HOST="${ENGRAM_PG_HOST:-127.0.0.1}"
PRIMARY_PORT="${ENGRAM_PG_PORT:-5432}"
PG_USER="${ENGRAM_PG_USER:-postgres}"
REPLICA_PORT="${ENGRAM_REPLICA_PORT:-5433}"
CLUSTER="${ENGRAM_REPLICA_CLUSTER:-engram_replica}"

log() { printf '[ops/replica] %s\n' "$*"; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
as_postgres() { as_root runuser -u postgres -- "$@"; }
sql() { # sql <port> <statement>: one value, or nothing when the server does not answer
  psql -h 127.0.0.1 -p "$1" -U "$PG_USER" -d postgres -v ON_ERROR_STOP=1 -Atq -c "$2" 2>/dev/null || true
}
primary_sql() { psql -h "$PRIMARY_HOST" -p "$PRIMARY_PORT" -U "$PG_USER" -d postgres -v ON_ERROR_STOP=1 -Atq -c "$1"; }

# In recovery, and its WAL receiver streams from the primary: a replica serving current data.
streaming() {
  [ "$(sql "$REPLICA_PORT" "select pg_is_in_recovery() and exists (select 1 from pg_stat_wal_receiver where status = 'streaming')")" = "t" ]
}
resume_if_paused() {
  if [ "$(sql "$REPLICA_PORT" "select pg_is_in_recovery() and pg_get_wal_replay_pause_state() <> 'not paused'")" = "t" ]; then
    log "replica: replay was paused (a test stopped halfway?); resuming"
    sql "$REPLICA_PORT" "select pg_wal_replay_resume()" >/dev/null
  fi
}
wait_streaming() { # wait_streaming <seconds>
  for _ in $(seq 1 $(($1 * 2))); do streaming && return 0; sleep 0.5; done
  return 1
}

# --- Fast path ----------------------------------------------------------------------------
if pg_isready -h 127.0.0.1 -p "$REPLICA_PORT" -q && streaming; then
  resume_if_paused
  log "replica: streaming on 127.0.0.1:$REPLICA_PORT from $PRIMARY_HOST:$PRIMARY_PORT"
  exit 0
fi

pg_isready -h "$PRIMARY_HOST" -p "$PRIMARY_PORT" -q || {
  log "ERROR: the primary $PRIMARY_HOST:$PRIMARY_PORT is not up (run ops/services.sh first)"
  exit 1
}
PG_MAJOR=$(primary_sql "show server_version_num" | cut -c1-2)
PRIMARY_CLUSTER=$(pg_lsclusters -h | awk -v v="$PG_MAJOR" -v p="$PRIMARY_PORT" '$1 == v && $3 == p { print $2 }')

# --- The primary: WAL for replicas, and a replication connection from loopback -----------------
wal_level=$(primary_sql "show wal_level")
senders=$(primary_sql "show max_wal_senders")
if [ "$wal_level" = "minimal" ] || [ "$senders" -lt 2 ]; then
  [ -n "$PRIMARY_CLUSTER" ] || {
    log "ERROR: wal_level=$wal_level, max_wal_senders=$senders; set replica/10 and restart the primary"
    exit 1
  }
  log "primary: wal_level=$wal_level max_wal_senders=$senders; setting replica/10 and restarting it"
  primary_sql "alter system set wal_level = 'replica'"
  primary_sql "alter system set max_wal_senders = 10"
  as_root pg_ctlcluster --skip-systemctl-redirect "$PG_MAJOR" "$PRIMARY_CLUSTER" restart
fi
can_replicate() {
  psql "host=$PRIMARY_HOST port=$PRIMARY_PORT user=$PG_USER replication=true" -Atq -c "IDENTIFY_SYSTEM" >/dev/null 2>&1
}
if ! can_replicate; then
  hba=$(primary_sql "show hba_file")
  log "primary: allowing replication connections from $PRIMARY_HOST (trust) in $hba"
  # First: rules match in order, and a stock file may already hold a stricter replication rule.
  as_root sed -i "1i host replication all $PRIMARY_HOST/32 trust # engram ops/replica.sh" "$hba"
  primary_sql "select pg_reload_conf()" >/dev/null
  for _ in $(seq 1 20); do can_replicate && break; sleep 0.25; done
  can_replicate || { log "ERROR: the primary still refuses replication connections (see $hba)"; exit 1; }
fi

# --- The replica cluster ------------------------------------------------------------------
conf_dir="/etc/postgresql/$PG_MAJOR/$CLUSTER"
if ! pg_lsclusters -h | awk -v v="$PG_MAJOR" -v c="$CLUSTER" '$1 == v && $2 == c { found = 1 } END { exit !found }'; then
  owner=$(ss -Hltnp "sport = :$REPLICA_PORT" | head -n 1)
  [ -z "$owner" ] || { log "ERROR: port $REPLICA_PORT is taken: $owner (set ENGRAM_REPLICA_PORT)"; exit 1; }
  log "replica: creating cluster $PG_MAJOR/$CLUSTER on port $REPLICA_PORT"
  as_root pg_createcluster --start-conf=manual -p "$REPLICA_PORT" "$PG_MAJOR" "$CLUSTER" >/dev/null
fi
data_dir=$(awk -F"'" '/^data_directory/ { print $2 }' "$conf_dir/postgresql.conf")
as_root tee "$conf_dir/conf.d/90-engram-replica.conf" >/dev/null <<CONF
listen_addresses = '127.0.0.1'
port = $REPLICA_PORT
hot_standby = on
# The primary keeps rows a replica's running query still reads: tests and benchmarks read on
# the replica while other suites vacuum and drop schemas on the primary.
hot_standby_feedback = on
CONF
as_root tee "$conf_dir/pg_hba.conf" >/dev/null <<HBA
# The primary's rules (ops/services.sh): local trust, for tests and benchmarks.
local all all trust
host all all 127.0.0.1/32 trust
host all all ::1/128 trust
HBA

# online, down, online,recovery, down,recovery...: whether it runs.
status() { pg_lsclusters -h | awk -v v="$PG_MAJOR" -v c="$CLUSTER" '$1 == v && $2 == c { split($4, s, ","); print s[1] }'; }
rebuild() {
  log "replica: copying the primary with pg_basebackup into $data_dir"
  [ "$(status)" = "down" ] || as_root pg_ctlcluster --skip-systemctl-redirect "$PG_MAJOR" "$CLUSTER" stop -m fast
  as_root rm -rf "$data_dir"
  as_root install -d -o postgres -g postgres -m 700 "$data_dir"
  # -R writes standby.signal and primary_conninfo; -X stream brings the WAL of the copy along.
  as_postgres pg_basebackup -h "$PRIMARY_HOST" -p "$PRIMARY_PORT" -U "$PG_USER" -D "$data_dir" \
    -X stream -R -c fast --no-sync
  as_root pg_ctlcluster --skip-systemctl-redirect "$PG_MAJOR" "$CLUSTER" start
}

if [ ! -f "$data_dir/standby.signal" ]; then
  rebuild # a fresh cluster from pg_createcluster: its own empty database, not a copy
elif [ "$(status)" = "down" ]; then
  log "replica: starting"
  as_root pg_ctlcluster --skip-systemctl-redirect "$PG_MAJOR" "$CLUSTER" start || rebuild
else
  # Up but not streaming: settings changed (above), or it lost the primary; a restart reconnects.
  as_root pg_ctlcluster --skip-systemctl-redirect "$PG_MAJOR" "$CLUSTER" restart -m fast || rebuild
fi
if ! wait_streaming 20; then
  log "replica: not streaming after 20 s (the WAL it needs may be gone from the primary); rebuilding"
  rebuild
  wait_streaming 60 || {
    log "ERROR: the replica does not stream; see /var/log/postgresql/postgresql-$PG_MAJOR-$CLUSTER.log"
    exit 1
  }
fi
resume_if_paused
log "replica: streaming on 127.0.0.1:$REPLICA_PORT from $PRIMARY_HOST:$PRIMARY_PORT (cluster $PG_MAJOR/$CLUSTER)"
