#!/usr/bin/env bash
# A local Redis Cluster of three masters (no replicas) on 127.0.0.1:7001-7003, for
# `npm run test:cluster` and `npm run bench:cluster`. Data and configs in /tmp/engram-redis-cluster.
#
# Idempotent and quick when the cluster is up (one CLUSTER INFO); a node that is down is
# started again from its own nodes.conf and rejoins with its slots (no reset); only a cluster
# that never formed is created. AOF on, as engram asks of any Redis (invariant 2). Prints what
# it does.
set -euo pipefail

HOST=127.0.0.1
PORTS=(${ENGRAM_CLUSTER_PORTS:-7001 7002 7003})
DIR="${ENGRAM_CLUSTER_DIR:-/tmp/engram-redis-cluster}"

log() { printf '[ops/redis-cluster] %s\n' "$*"; }
cli() { redis-cli -h "$HOST" -p "$1" "${@:2}"; }
up() { [ "$(cli "$1" ping 2>/dev/null)" = "PONG" ]; }
field() { cli "$1" cluster info 2>/dev/null | tr -d '\r' | awk -F: -v f="$2" '$1 == f { print $2 }'; }
# ok only when every node says so: a restarted node says fail until it has heard from the others.
state() {
  for port in "${PORTS[@]}"; do [ "$(field "$port" cluster_state)" = "ok" ] || { echo "not ok on $port"; return; }; done
  echo ok
}
known() { field "${PORTS[0]}" cluster_known_nodes; }

command -v redis-server >/dev/null || {
  log "ERROR: redis-server is not installed (apt-get install redis-server)"
  exit 1
}

# --- Fast path ----------------------------------------------------------------------------
all_up=1
for port in "${PORTS[@]}"; do up "$port" || all_up=0; done
if [ "$all_up" = 1 ] && [ "$(state)" = "ok" ] && [ "$(known)" = "${#PORTS[@]}" ]; then
  log "cluster ok on $HOST:${PORTS[0]}-${PORTS[-1]}"
  exit 0
fi

# --- Nodes: start any that is down, from its own folder (its nodes.conf keeps its slots) -------
for port in "${PORTS[@]}"; do
  up "$port" && continue
  mkdir -p "$DIR/$port"
  log "starting node $port"
  redis-server --port "$port" --bind "$HOST" --dir "$DIR/$port" \
    --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 5000 \
    --appendonly yes --appendfsync everysec --maxmemory-policy noeviction \
    --stream-node-max-bytes 256 --hash-max-listpack-value 1024 \
    --save '' --protected-mode no --daemonize yes --logfile "$DIR/$port/redis.log" \
    --pidfile "$DIR/$port/redis.pid"
done
for port in "${PORTS[@]}"; do
  for _ in $(seq 1 50); do up "$port" && break; sleep 0.1; done
  up "$port" || {
    log "ERROR: node $port did not start (see $DIR/$port/redis.log)"
    exit 1
  }
done

# --- Form the cluster once: a node that knows only itself and owns no slot never joined ---------
if [ "$(known)" = "1" ] && [ "$(field "${PORTS[0]}" cluster_slots_assigned)" = "0" ]; then
  log "creating the cluster"
  nodes=()
  for port in "${PORTS[@]}"; do nodes+=("$HOST:$port"); done
  redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes >/dev/null
fi

for _ in $(seq 1 100); do
  if [ "$(state)" = "ok" ] && [ "$(known)" = "${#PORTS[@]}" ]; then
    log "cluster ok on $HOST:${PORTS[0]}-${PORTS[-1]}"
    exit 0
  fi
  sleep 0.1
done
log "ERROR: cluster state $(state) after 10 s; see $DIR/*/redis.log"
exit 1
