#!/usr/bin/env bash
# Checks the tarball a user installs, not the work tree: `npm pack` (its prepack builds dist/)
# into a temporary folder, then publint (package.json against the packed files) and attw (the
# types as TypeScript resolves them). ESM only: attw's esm-only profile skips the CommonJS modes.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
npm pack --pack-destination "$out" --silent >/dev/null
tarball=$(echo "$out"/*.tgz)
npx publint run --strict "$tarball"
npx attw --profile esm-only "$tarball"
