#!/usr/bin/env bash
# Soak run: the service in dev mode with the example policy, h2load driving gRPC Check calls that
# carry a valid token, the process's RSS sampled every 10 s. Ends with a summary: requests, rate,
# RSS first/median/max/last, and the service's own decision counters (h2load counts a gRPC error
# as a success, so correctness comes from /metrics: every Check must be an allow).
#   DURATION=600 CONNS=4 STREAMS=8 [RPS=250] bash tests/load/soak.sh   (RPS: per connection; unset = as fast as possible)
# Needs h2load (Debian nghttp2-client). Binds 127.0.0.1 only; stops by itself.
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${DURATION:-600}
CONNS=${CONNS:-4}
STREAMS=${STREAMS:-8}
RPS=${RPS:-}
GRPC_PORT=${GRPC_PORT:-19191}
HTTP_PORT=${HTTP_PORT:-19192}
OUT=${OUT:-$(mktemp -d /tmp/envoy-authz-soak.XXXXXX)}
mkdir -p "$OUT"
command -v h2load >/dev/null || { echo "h2load missing: apt-get install nghttp2-client" >&2; exit 2; }

dotnet build src/EnvoyAuthz -c Release -v q -nologo >/dev/null
BIN="dotnet src/EnvoyAuthz/bin/Release/net10.0/envoy-authz.dll"
KEY="$OUT/dev-key.json"
SAMPLER=""
env EnvoyAuthz__Server__GrpcPort=$GRPC_PORT EnvoyAuthz__Server__HttpPort=$HTTP_PORT EnvoyAuthz__Dev__KeyFile=$KEY \
  "Logging__LogLevel__EnvoyAuthz.Pipeline.CheckPipeline=Warning" \
  $BIN serve --dev --config envoy/envoy-authz.dev.yaml >"$OUT/service.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true; [ -n "$SAMPLER" ] && kill $SAMPLER 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$HTTP_PORT/readyz" >/dev/null && break; sleep 0.2; done
curl -sf "http://127.0.0.1:$HTTP_PORT/readyz" >/dev/null || { echo "service not ready" >&2; cat "$OUT/service.log" >&2; exit 1; }

TOKEN=$($BIN token --key "$KEY" --sub soak-user --groups viewers --ttl 2h)
$BIN call --addr 127.0.0.1:$GRPC_PORT --token "$TOKEN" --path /api/v1/dags --host airflow.example.com | head -1 | grep -q ALLOW
$BIN call --token "$TOKEN" --path /api/v1/dags --host airflow.example.com --write-frame "$OUT/check.bin" >/dev/null

( while kill -0 $PID 2>/dev/null; do echo "$(date +%s) $(ps -o rss= -p $PID | tr -d ' ')"; sleep 10; done ) >"$OUT/rss.txt" &
SAMPLER=$!

h2load -D "$DURATION" -c "$CONNS" -m "$STREAMS" -t 1 ${RPS:+--rps "$RPS"} -d "$OUT/check.bin" \
  -H 'content-type: application/grpc' -H 'te: trailers' \
  "http://127.0.0.1:$GRPC_PORT/envoy.service.auth.v3.Authorization/Check" >"$OUT/h2load.txt" 2>&1 || true
kill $SAMPLER 2>/dev/null || true

curl -s "http://127.0.0.1:$HTTP_PORT/metrics" >"$OUT/metrics.txt"
allow=$(awk '/^envoy_authz_checks_total\{decision="allow",reason="allowed"\}/ {print $2}' "$OUT/metrics.txt")
deny=$(awk '/^envoy_authz_checks_total\{decision="deny"/ {s+=$2} END {print s+0}' "$OUT/metrics.txt")
python3 - "$OUT" "$allow" "$deny" <<'PY'
import re, statistics, sys
out, allow, deny = sys.argv[1], float(sys.argv[2] or 0), float(sys.argv[3] or 0)
h2 = open(f"{out}/h2load.txt").read()
reqs = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored", h2)
rate = re.search(r"finished in [^,]+, ([\d.]+) req/s", h2)
rss = [int(l.split()[1]) / 1024 for l in open(f"{out}/rss.txt") if len(l.split()) == 2 and l.split()[1].isdigit()]
print(f"soak: {reqs.group(3) if reqs else '?'} requests done, {reqs.group(5) if reqs else '?'} failed, {reqs.group(6) if reqs else '?'} errored, {rate.group(1) if rate else '?'} req/s")
if rss:
    half = rss[len(rss) // 2:]
    print(f"rss MiB: first {rss[0]:.0f}, median {statistics.median(rss):.0f}, max {max(rss):.0f}, last {rss[-1]:.0f} "
          f"(second-half spread {max(half) - min(half):.0f} MiB over {len(rss)} samples)")
print(f"decisions: {allow:.0f} allow, {deny:.0f} deny (every Check carried a valid token: deny must be 0)")
sys.exit(0 if deny == 0 and allow > 0 and reqs and reqs.group(5) == "0" and reqs.group(6) == "0" else 1)
PY
echo "artifacts: $OUT"
