#!/usr/bin/env bash
# Make Debian's Chromium available at /usr/bin/chromium for the admin pages' browser test
# (test/admin-memories.test.ts drives it with playwright-core, which cannot download a browser
# on a closed network). Idempotent: installs only when the binary is missing. Needs root.
set -euo pipefail
# apt-get waits up to 10 minutes for the package lock (DPkg::Lock::Timeout) rather than failing
# at once: another install, or unattended-upgrades on a fresh machine, may hold it.

log() { printf '[ops/browser] %s\n' "$*"; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if [ -x /usr/bin/chromium ]; then
  log "chromium: present ($(/usr/bin/chromium --version 2>/dev/null || echo 'version unknown'))"
else
  log "installing chromium"
  as_root apt-get -o DPkg::Lock::Timeout=600 update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q chromium
fi
