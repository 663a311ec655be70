#!/usr/bin/env bash
# Runs every test: unit, fuzz seed corpora, integration (real redis-server)
# and acceptance (real terraform). Installs redis-server first when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-deps.sh
export REDIS_REPLICAD_TEST_QUIET=1
make test
