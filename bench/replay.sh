#!/usr/bin/env bash
# Does continuous training pay? (docs/continuous-training.md) — 30 simulated days with drifting
# effects and 5% of users and items replaced a day; `funnel replay` of ESMM with the continuous,
# 7-day window and frozen modes (rows of ids unseen for 7 days evicted), then the continuous mode
# without eviction. About 3 minutes on 2 cores.
#   bench/replay.sh [FUNNEL] [OUT]
set -euo pipefail
FUNNEL=${1:-.build/release/funnel}
OUT=${2:-/tmp/funnel-replay}
mkdir -p "$OUT"
[ -f "$OUT/sim/data_truth.csv" ] || "$FUNNEL" simulate --days 30 --rows 1800000 --churn 0.05 --out "$OUT/sim" >/dev/null
common=(--data "$OUT/sim/data.csv" --truth "$OUT/sim/data_truth.csv" --model esmm --threads 2)
time "$FUNNEL" replay "${common[@]}" --out "$OUT/evict" --window 7 --evict-unseen-days 7 2>/dev/null | tail -6
time "$FUNNEL" replay "${common[@]}" --out "$OUT/plain" --modes continuous 2>/dev/null | tail -3
echo "per-day tables and plots: $OUT/evict/report.html, $OUT/plain/report.html"
