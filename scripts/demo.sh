#!/usr/bin/env bash
# The main job, on one machine: start a redis-replicad instance, apply
# examples/quickstart with the locally built provider, then write and read a
# key in the database it created. Everything is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
source scripts/ensure-deps.sh
make -s build

work=$(mktemp -d /tmp/redis-replicad-demo.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

# start_instance NAME PORT: runs redis-replicad with its data in $work/NAME.
start_instance() {
  local name=$1 port=$2 range=$3
  bin/redis-replicad serve --name "$name" --data-dir "$work/$name" --listen "127.0.0.1:$port" \
    --port-range "$range" >"$work/$name.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do
    curl -fsk "https://127.0.0.1:$port/healthz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "redis-replicad $name did not start; its log:" >&2; cat "$work/$name.log" >&2; exit 1
}

echo "== starting redis-replicad (data in $work/local)"
start_instance local 19443 19000-19099

# Terraform uses the provider just built, not one from a registry.
cat >"$work/terraformrc" <<RC
provider_installation {
  dev_overrides { "replicad/redis" = "$root/bin" }
  direct {}
}
RC
export TF_CLI_CONFIG_FILE="$work/terraformrc" TF_IN_AUTOMATION=1
export REDIS_REPLICAD_ENDPOINT=https://127.0.0.1:19443
export REDIS_REPLICAD_PASSWORD="$(cat "$work/local/admin-password")"
export REDIS_REPLICAD_CA_CERT="$(cat "$work/local/ca.pem")"

cp -r examples/quickstart "$work/tf"
echo "== terraform apply examples/quickstart"
terraform -chdir="$work/tf" apply -auto-approve -no-color 2>&1 | grep -v -i -E "dev_overrides|provider development|^ *-|^╷|^╵|^│ *$|The following provider|Skip terraform init|Terraform will perform" || true

endpoint=$(terraform -chdir="$work/tf" output -raw endpoint)
password=$(terraform -chdir="$work/tf" output -raw password)
host=${endpoint%:*} port=${endpoint##*:}
echo "== writing and reading a key at $endpoint"
REDISCLI_AUTH="$password" redis-cli -h "$host" -p "$port" SET greeting "hello from terraform" >/dev/null
value=$(REDISCLI_AUTH="$password" redis-cli -h "$host" -p "$port" GET greeting)
echo "GET greeting -> $value"
[ "$value" = "hello from terraform" ] || { echo "unexpected value" >&2; exit 1; }
echo "== terraform plan -detailed-exitcode (0 means no drift)"
terraform -chdir="$work/tf" plan -detailed-exitcode -no-color >/dev/null 2>&1 && echo "no changes"
echo "== done; stopping"
