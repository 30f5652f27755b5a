#!/usr/bin/env bash
# Load test of `funnel serve` with wrk on loopback: 1-row and 100-row requests, then a soak
# while resident memory is sampled. Everything stays on 127.0.0.1 and every loop is bounded.
set -euo pipefail
FUNNEL=${FUNNEL:-.build/release/funnel}
OUT=${OUT:-bench-out/serve}
PORT=${PORT:-18181}
DURATION=${DURATION:-20}
SOAK=${SOAK:-60}
source bench/serve/common.sh
python3 bench/serve/make_bodies.py "$OUT/data/test.csv" "$OUT"
start_server
rss() { awk '/VmRSS/ {print $2}' /proc/$PID/status; }
for n in 1 100; do
  echo "== $n-row requests, ${DURATION}s, 2 wrk threads, 16 connections"
  BODY="$OUT/body-$n.json" wrk -t2 -c16 -d"${DURATION}s" --latency -s bench/serve/post.lua "http://127.0.0.1:$PORT/v1/predict" \
    | grep -E "Requests/sec|50%|99%|Non-2xx|Socket errors|requests in"
done
echo "== soak: ${SOAK}s of 100-row requests; RSS (KiB) every 5s"
BODY="$OUT/body-100.json" wrk -t2 -c16 -d"${SOAK}s" -s bench/serve/post.lua "http://127.0.0.1:$PORT/v1/predict" > "$OUT/soak.txt" &
WRK=$!
samples=()
for _ in $(seq 1 $((SOAK / 5))); do sleep 5; samples+=("$(rss)"); done
wait $WRK
grep -E "Requests/sec|Non-2xx|Socket errors|requests in" "$OUT/soak.txt"
echo "RSS KiB: ${samples[*]}"
curl -s "http://127.0.0.1:$PORT/metrics" | grep -E "^funnel_request_errors_total|^funnel_requests_total" || true
