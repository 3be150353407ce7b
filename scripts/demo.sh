#!/usr/bin/env bash
# The offline demo: the Sentinel Hub simulator (cmd/shsim) with a small trial-like
# quota, one worker on an embedded in-memory Redis, and `enqueue submit --watch`
# downloading the sample AOI in examples/. Needs only Go. Outputs go to ./out/demo.
set -euo pipefail
cd "$(dirname "$0")/.."

SIM_ADDR="${SIM_ADDR:-127.0.0.1:18090}"
REDIS_ADDR="${REDIS_ADDR:-127.0.0.1:16379}"
OPS_ADDR="${OPS_ADDR:-127.0.0.1:18080}"
OUT="${OUT:-$PWD/out/demo}"
POLICIES=(--policy requests:20:PT1M --policy pu:20:PT1M)
BIN="$PWD/bin"

echo "==> building shsim, worker and enqueue into $BIN"
mkdir -p "$BIN" "$OUT"
go build -o "$BIN/" ./cmd/shsim ./cmd/worker ./cmd/enqueue

LOGS="$(mktemp -d)"
# wait_port HOST:PORT waits until something listens there (bash only, no curl).
wait_port() {
  local host="${1%:*}" port="${1##*:}"
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "nothing listens on $1; see the logs in $LOGS" >&2
  return 1
}
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

export SH_CLIENT_ID=demo-client SH_CLIENT_SECRET=demo-secret
export SH_BASE_URL="http://$SIM_ADDR"
export SH_TOKEN_URL="http://$SIM_ADDR/auth/realms/main/protocol/openid-connect/token"
export REDIS_URL="redis://$REDIS_ADDR/0"

echo "==> Sentinel Hub simulator on $SIM_ADDR (20 requests/min, 20 PU/min)"
"$BIN/shsim" -addr "$SIM_ADDR" "${POLICIES[@]}" -latency 150ms -jitter 100ms >"$LOGS/shsim.log" 2>&1 &
pids+=($!)

wait_port "$SIM_ADDR"

echo "==> worker with an embedded Redis on $REDIS_ADDR, ops on http://$OPS_ADDR (logs: $LOGS/worker.log)"
echo "    (no --policy: the worker reads the account's policies from the simulator's /aux/ratelimit/contract)"
"$BIN/worker" --embedded-redis "$REDIS_ADDR" --ops-addr "$OPS_ADDR" --concurrency 8 \
  --log-format json >"$LOGS/worker.log" 2>&1 &
pids+=($!)
wait_port "$OPS_ADDR"

echo "==> enqueue submit examples/aoi.geojson (3 weeks of Sentinel-2 L2A, utm-10km tiles at 60 m)"
echo "    job page while it runs: http://$OPS_ADDR/jobs"
"$BIN/enqueue" submit examples/aoi.geojson \
  --from 2025-06-01 --to 2025-06-22 --max-cloud 80 \
  --evalscript examples/evalscript-truecolor.js \
  --grid utm-10km --resolution 60 --output "$OUT" --name demo --cog --watch

# A job reads DONE only once its end files (manifest, STAC, VRTs) are written:
# this run's catalog is the one newer than this run's simulator log.
catalog="$(find "$OUT" -path '*/stac/catalog.json' -newer "$LOGS/shsim.log" | head -1)"
if [ -z "$catalog" ]; then
  echo "no STAC catalog appeared under $OUT; see $LOGS/worker.log" >&2
  exit 1
fi
job_dir="$(dirname "$(dirname "$catalog")")"
echo "==> outputs in $job_dir"
echo "    $(find "$job_dir" -name '*.tif' | wc -l) Cloud Optimized GeoTIFFs; manifest: $job_dir/manifest.json"
echo "==> STAC catalog: $catalog"
vrt="$(find "$job_dir/mosaic" -name '*.vrt' | sort | head -1)"
echo "==> VRT mosaic: $vrt"
if command -v gdalinfo >/dev/null 2>&1; then
  echo "==> gdalinfo $vrt"
  gdalinfo "$vrt"
else
  echo "==> install gdal-bin to read the mosaic: gdalinfo $vrt"
fi
echo "==> the job page was http://$OPS_ADDR/jobs (the worker stops when this script ends)"
