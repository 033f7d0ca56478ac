#!/usr/bin/env bash
# Tools the benchmarks need beyond npm: wrk, the HTTP load generator of `npm run bench:enqueue`
# (bench/http-load.ts says why not a Node client). Installs it from Debian's packages only when
# running as root, as on this project's development and CI machines; elsewhere it says what to
# install rather than calling sudo from an npm script.
set -euo pipefail
# apt-get waits up to 10 minutes for the package lock (DPkg::Lock::Timeout) rather than failing
# at once: another install, or unattended-upgrades on a fresh machine, may hold it.
log() { echo "[ops/bench-tools] $*" >&2; }

command -v wrk >/dev/null && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  log "wrk not found: install it (Debian/Ubuntu: sudo apt-get install wrk; macOS: brew install wrk) and run again"
  exit 1
fi
log "installing wrk"
apt-get -o DPkg::Lock::Timeout=600 install -y -q wrk || { apt-get -o DPkg::Lock::Timeout=600 update -q && apt-get -o DPkg::Lock::Timeout=600 install -y -q wrk; }
