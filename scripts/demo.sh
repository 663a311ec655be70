#!/usr/bin/env bash
# The main job, on one machine. Two redis-replicad instances stand for two
# locations, "us" and "eu", and a plain redis-server for a legacy database.
# Terraform applies examples/geo-replication with the provider built here:
# orders (us) is replicated to orders-replica (eu), and orders plus the legacy
# server are replicated into inventory (eu); orders over TLS and compressed.
# Then keys written to the sources are read at the destinations, and each
# source's status, lag and compression is printed.
# Everything is stopped at the end; nothing is left behind but a temp dir.
#
# Environment:
#   DEMO_US_PORT, DEMO_EU_PORT      API ports of the two instances (default: the
#                                   first free ports from 19443)
#   DEMO_LEGACY_PORT                port of the legacy redis-server (default:
#                                   the first free port from 19380)
#   DEMO_US_PORTS, DEMO_EU_PORTS    port ranges of their databases
#                                   (default 19000-19099 and 19100-19199)
#   KEEP=1                          leave everything running at the end, and
#                                   print how to reach it and stop it
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
source scripts/ensure-deps.sh
echo "== building redis-replicad and terraform-provider-redis"
# Versioned as make build does (make may be missing on a fresh machine).
version=$(git describe --tags --always --dirty 2>/dev/null || echo dev)
ldflags="-X main.version=$version -X github.com/replicad/terraform-provider-redis/service/app.Version=$version"
go build -ldflags "$ldflags" -o bin/redis-replicad ./cmd/redis-replicad
go build -ldflags "$ldflags" -o bin/terraform-provider-redis .

work=$(mktemp -d /tmp/redis-replicad-demo.XXXXXX)
pids=()
keep=${KEEP:-0}
cleanup() {
  if [ "$keep" = 1 ]; then return; fi
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

# free_port N: the first port from N up that nothing listens on.
free_port() {
  local p=$1
  while (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do p=$((p + 1)); done
  echo "$p"
}

# start_instance NAME PORT RANGE: runs redis-replicad with its data in $work/NAME.
start_instance() {
  local name=$1 port=$2 range=$3
  bin/redis-replicad serve --name "$name" --data-dir "$work/$name" --listen "127.0.0.1:$port" \
    --port-range "$range" >"$work/$name.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do
    if command -v curl >/dev/null 2>&1; then
      curl -fsk "https://127.0.0.1:$port/healthz" >/dev/null 2>&1 && return 0
    else
      (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    fi
    sleep 0.1
  done
  echo "redis-replicad $name did not start; its log:" >&2; cat "$work/$name.log" >&2; exit 1
}

us_port=${DEMO_US_PORT:-$(free_port 19443)}
eu_port=${DEMO_EU_PORT:-$(free_port $((us_port + 1)))}
legacy_port=${DEMO_LEGACY_PORT:-$(free_port 19380)}
us_ports=${DEMO_US_PORTS:-19000-19099}
eu_ports=${DEMO_EU_PORTS:-19100-19199}
echo "== starting redis-replicad us (:$us_port), eu (:$eu_port) and a legacy redis-server (:$legacy_port)"
start_instance us "$us_port" "$us_ports"
start_instance eu "$eu_port" "$eu_ports"
mkdir -p "$work/legacy"
# repl-diskless-sync-delay 0: start the full sync at once (Redis waits 5 s
# by default, for more replicas to share one transfer).
redis-server --port "$legacy_port" --bind 127.0.0.1 --requirepass legacy-secret --save "" --appendonly no \
  --repl-diskless-sync-delay 0 --dir "$work/legacy" --logfile "$work/legacy.log" &
pids+=($!)
legacy() { REDISCLI_AUTH=legacy-secret redis-cli -p "$legacy_port" "$@"; }
for _ in $(seq 1 50); do legacy PING >/dev/null 2>&1 && break; sleep 0.1; done
legacy SET sku:42 "blue mug" >/dev/null
echo "legacy          SET sku:42 \"blue mug\"   (before Terraform: part of the initial load)"

# Terraform uses the provider just built, not one from a registry.
cat >"$work/terraformrc" <<RC
provider_installation {
  dev_overrides { "replicad/redis" = "$root/bin" }
  direct {}
}
RC
export TF_CLI_CONFIG_FILE="$work/terraformrc" TF_IN_AUTOMATION=1
export TF_VAR_us_endpoint="https://127.0.0.1:$us_port" TF_VAR_eu_endpoint="https://127.0.0.1:$eu_port"
TF_VAR_us_password="$(cat "$work/us/admin-password")" TF_VAR_eu_password="$(cat "$work/eu/admin-password")"
TF_VAR_us_ca_cert="$(cat "$work/us/ca.pem")" TF_VAR_eu_ca_cert="$(cat "$work/eu/ca.pem")"
export TF_VAR_us_password TF_VAR_eu_password TF_VAR_us_ca_cert TF_VAR_eu_ca_cert
export TF_VAR_legacy_redis_url="redis://:legacy-secret@127.0.0.1:$legacy_port"

cp -r examples/geo-replication "$work/tf"
tf() { terraform -chdir="$work/tf" "$@"; }
echo "== terraform apply examples/geo-replication (log: $work/apply.log)"
if ! tf apply -auto-approve -no-color >"$work/apply.log" 2>&1; then
  cat "$work/apply.log" >&2; exit 1
fi
# The warnings of the plan made at apply time, which know the databases.
grep -E "^Warning: Replica Of|Creation complete|^Apply complete" "$work/apply.log" |
  grep -v "the destination database$" | sed 's/^/  /'

# json_field NAME: the string value of "NAME" in the JSON object on stdin.
json_field() { sed -E "s/.*\"$1\":\"([^\"]*)\".*/\1/"; }
endpoints=$(tf output -json endpoints)
passwords=$(tf output -json passwords)
# db NAME ARGS...: redis-cli on the database NAME of the example.
db() {
  local name=$1; shift
  local ep; ep=$(json_field "$name" <<<"$endpoints")
  REDISCLI_AUTH="$(json_field "$name" <<<"$passwords")" redis-cli -h "${ep%:*}" -p "${ep##*:}" "$@"
}

echo "== writing to the sources"
db orders SET order:1001 '{"sku":42,"qty":3}' >/dev/null
echo "orders (us)     SET order:1001 '{\"sku\":42,\"qty\":3}'"
shipment='{"order":1001,"status":"shipped","carrier":"ocean freight","warehouse":"eu-west"}'
for i in $(seq 1 2000); do echo "SET shipment:$i '$shipment'"; done | db orders >/dev/null
echo "orders (us)     SET shipment:1 ... shipment:2000 (for the compression figures below)"
legacy SET stock:42 17 >/dev/null
echo "legacy          SET stock:42 17"

echo "== reading at the destinations (eu)"
# read_at NAME KEY WANT: waits up to 10 s for KEY to reach NAME.
read_at() {
  local got=""
  for _ in $(seq 1 100); do
    got=$(db "$1" GET "$2" 2>/dev/null || true)
    [ "$got" = "$3" ] && break
    sleep 0.1
  done
  printf '%-15s GET %-11s -> %s\n' "$1" "$2" "$got"
  [ "$got" = "$3" ] || { echo "expected $3" >&2; exit 1; }
}
read_at orders_replica order:1001 '{"sku":42,"qty":3}'
read_at inventory order:1001 '{"sku":42,"qty":3}'
read_at inventory sku:42 "blue mug"
read_at inventory stock:42 17
read_at orders_replica shipment:2000 "$shipment"
refused=$(db orders_replica SET order:1002 x 2>&1)
printf '%-15s SET %-11s -> %s\n' orders_replica order:1002 "$(head -c 60 <<<"$refused")..."
case $refused in
NOPERM*) ;;
*) echo "demo: the destination orders_replica took a write from its application user" >&2; exit 1 ;;
esac

echo "== status of each source (terraform output replication, after a refresh)"
tf apply -refresh-only -auto-approve -no-color >/dev/null 2>&1
tf output -raw replication
echo
if command -v curl >/dev/null 2>&1; then
  echo "== bytes sent by the replication gateway of us (terraform set compression = 3)"
  metrics=$(curl -fsS --cacert "$work/us/ca.pem" -u "admin:$TF_VAR_us_password" "https://127.0.0.1:$us_port/metrics")
  # sum NAME: the sum of a counter over its databases.
  sum() { awk -v m="$1" 'index($1, m "{") == 1 { s += $2 } END { printf "%d", s }' <<<"$metrics"; }
  plain=$(sum replicad_gateway_sent_bytes_total) wire=$(sum replicad_gateway_sent_wire_bytes_total)
  if [ "$plain" -gt 0 ]; then
    echo "orders -> eu    $plain bytes replicated, $wire bytes on the wire ($((100 * wire / plain))%)"
  fi
fi
echo "== terraform plan -detailed-exitcode (0: no drift)"
rc=0; tf plan -detailed-exitcode -no-color >"$work/plan.log" 2>&1 || rc=$?
[ "$rc" = 0 ] && echo "no changes" || { cat "$work/plan.log"; echo "plan exit code $rc" >&2; exit 1; }
if [ "$keep" = 1 ]; then
  cat <<EOF
== done; everything is left running (KEEP=1)
  us      https://127.0.0.1:$us_port  user admin, password in $work/us/admin-password, CA $work/us/ca.pem
  eu      https://127.0.0.1:$eu_port  user admin, password in $work/eu/admin-password, CA $work/eu/ca.pem
  legacy  redis://:legacy-secret@127.0.0.1:$legacy_port
  terraform: TF_CLI_CONFIG_FILE=$work/terraformrc terraform -chdir=$work/tf output
stop them (the instances stop their databases) with: kill ${pids[*]}
EOF
  exit 0
fi
echo "== done; stopping everything"
