#!/usr/bin/env bash
# Tools the benchmarks need beyond npm: wrk, the HTTP load generator of `npm run bench:enqueue`
# (bench/http-load.ts says why not a Node client). Idempotent; installs from Debian's packages.
set -euo pipefail
log() { echo "[ops/bench-tools] $*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

command -v wrk >/dev/null && exit 0
if ! command -v apt-get >/dev/null; then
  log "wrk not found and no apt-get here: install wrk (https://github.com/wg/wrk) and run again" >&2
  exit 1
fi
log "installing wrk"
as_root apt-get install -y -q wrk || { as_root apt-get update -q && as_root apt-get install -y -q wrk; }
