#!/usr/bin/env bash
# Serving a ranking request (docs/serving.md): one user, N candidate items, sent flat (the user's
# fields repeated in every row) or in the ranking form ({"request": {user}, "rows": [items]}, the
# request part computed once). wrk on loopback, 2 threads, 16 connections, per N in 1, 100, 200:
# requests/s, candidate rows/s, p50, p99.
#   bench/serve/ranking.sh [FUNNEL] [OUT]
set -euo pipefail
FUNNEL=${1:-.build/release/funnel}
OUT=${2:-bench-out/ranking}
PORT=${PORT:-18182}
DURATION=${DURATION:-10}
source bench/serve/common.sh
python3 bench/serve/make_ranking_bodies.py "$OUT/data/test.csv" "$OUT" 101,121,122,124,125,126,127,128,129 1 100 200
start_server
printf '| candidates | form | requests/s | rows/s | p50 | p99 |\n|---|---|---|---|---|---|\n'
for n in 1 100 200; do
  for form in flat ranking; do
    r=$(BODY="$OUT/$form-$n.json" wrk -t2 -c16 -d"${DURATION}s" --latency -s bench/serve/post.lua "http://127.0.0.1:$PORT/v1/predict")
    rps=$(echo "$r" | awk '/Requests\/sec/ {print $2}')
    p50=$(echo "$r" | awk '$1 == "50%" {print $2}')
    p99=$(echo "$r" | awk '$1 == "99%" {print $2}')
    bad=$(echo "$r" | awk '/Non-2xx/ {print $NF}')
    [ -z "$bad" ] || { echo "non-2xx responses: $bad" >&2; exit 1; }
    printf '| %d | %s | %.0f | %.0f | %s | %s |\n' "$n" "$form" "$rps" "$(awk -v r="$rps" -v n="$n" 'BEGIN { printf "%.0f", r * n }')" "$p50" "$p99"
  done
done
