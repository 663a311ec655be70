#!/usr/bin/env bash
# Installs what the service and the tests need when it is missing: redis-server,
# Chromium (the console's browser test), promtool (the alert rules' check),
# jq (the CI recipe of the redis_replica_of documentation, which a test runs),
# make and gcc, all Debian packages, and checks for Go and Terraform. Sourced by the other scripts.
set -euo pipefail

need_apt=()
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || need_apt+=(redis-tools)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium fonts-liberation)
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
command -v jq >/dev/null 2>&1 || need_apt+=(jq)
# make runs the tests (scripts/test.sh); gcc is what go test -race needs
# (cgo), which .ci/run uses.
command -v make >/dev/null 2>&1 || need_apt+=(make)
command -v gcc >/dev/null 2>&1 || need_apt+=(gcc libc6-dev)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "missing: ${need_apt[*]} — install them (for example: sudo apt-get install -y --no-install-recommends ${need_apt[*]})" >&2
    exit 1
  fi
  echo "installing ${need_apt[*]} with apt-get" >&2
  apt-get update -qq >/dev/null
  # Without recommends: Chromium's and Prometheus's pull in desktop services.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
# Debian's packages start a redis-server on 6379 and a Prometheus on 9090
# where systemd runs; nothing here needs them, and the tests pick their own ports.

command -v go >/dev/null 2>&1 || { echo "missing: Go 1.26+ (https://go.dev/dl)" >&2; exit 1; }
command -v terraform >/dev/null 2>&1 || { echo "missing: terraform 1.11+ on PATH" >&2; exit 1; }
