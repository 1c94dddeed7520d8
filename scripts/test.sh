#!/usr/bin/env bash
# Runs the test suite on a fresh machine: scripts/test-services.sh installs and starts what the
# tests need (sshd, moto, Chromium, and the local PostgreSQL, MariaDB and Redis when they are
# down), then `cargo nextest run` runs every test. Arguments go to nextest, e.g.
# `bash scripts/test.sh -E 'test(/dashboard/)'`. Keeps an externally set CARGO_TARGET_DIR.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/test-services.sh
printf '==> running the tests: cargo nextest run %s\n' "$*"
exec cargo nextest run "$@"
