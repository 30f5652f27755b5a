#!/usr/bin/env bash
# Load time and memory of a model with millions of ids: vocabularies listed in model.json (the
# format before vocabularies.bin, written and read by an older funnel) against vocabularies.bin
# (mapped), the same model trained by each binary on the same data.
#   bench/vocabularies.sh OLD_FUNNEL NEW_FUNNEL OUT [IDS ...]   (default IDS: 4000000 40000000)
# For each id count: one CSV whose `user` column holds that many distinct ids; train with each
# binary (tiny towers: the vocabulary, not the weights, is what grows); then predict 1,000 rows
# (wall time and peak RSS from /usr/bin/time) and start `funnel serve` (seconds until /readyz
# answers 200, VmRSS and VmHWM then).
set -euo pipefail
OLD=${1:?usage: vocabularies.sh OLD_FUNNEL NEW_FUNNEL OUT [IDS ...]}
NEW=${2:?}
OUT=${3:?}
shift 3
[ $# -gt 0 ] && IDS=("$@") || IDS=(4000000 40000000)
mkdir -p "$OUT"
train_args=(--model esmm --embedding-dim 4 --hidden 8 --batch-size 20000 --threads 2 --seed 1)

serve_probe() {  # binary model port → "seconds rss_mb hwm_mb"
  local bin=$1 model=$2 port=$3 start pid
  start=$(date +%s.%N)
  "$bin" serve --model "$model" --port "$port" --threads 2 >/dev/null 2>&1 &
  pid=$!
  until curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; do
    kill -0 "$pid" 2>/dev/null || { echo "serve died" >&2; return 1; }
    sleep 0.05
  done
  local ready rss hwm
  ready=$(echo "$(date +%s.%N) - $start" | bc)
  rss=$(awk '/VmRSS/ {print $2/1024}' /proc/$pid/status)
  hwm=$(awk '/VmHWM/ {print $2/1024}' /proc/$pid/status)
  kill "$pid"; wait "$pid" 2>/dev/null || true
  printf '%.2f %.0f %.0f\n' "$ready" "$rss" "$hwm"
}

printf '%-10s %-22s %10s %12s %12s %10s %10s %10s\n' ids format model.json_MB vocab_MB predict_s predict_MB serve_s serve_MB
for n in "${IDS[@]}"; do
  data="$OUT/ids-$n.csv"
  if [ ! -f "$data" ]; then
    python3 - "$n" "$data" <<'PY'
import sys
n, path = int(sys.argv[1]), sys.argv[2]
with open(path, "w", buffering=1 << 24) as f:
    f.write("click,purchase,user,item\n")
    x = 12345
    for i in range(n):
        x = (x * 6364136223846793005 + 1442695040888963407) & ((1 << 64) - 1)
        r = x >> 40
        click = 1 if r % 20 == 0 else 0
        buy = 1 if click and (r >> 8) % 10 == 0 else 0
        f.write(f"{click},{buy},{1000003 + i * 7},{r % 1000}\n")
PY
    head -1001 "$data" > "$OUT/sample.csv"
  fi
  for fmt in json binary; do
    bin=$OLD; [ $fmt = binary ] && bin=$NEW
    model="$OUT/model-$n-$fmt"
    [ -f "$model/model.json" ] || "$bin" train --train "$data" --out "$model" "${train_args[@]}" >/dev/null 2>&1
    json_mb=$(du -m "$model/model.json" | cut -f1)
    vocab_mb=0; [ -f "$model/vocabularies.bin" ] && vocab_mb=$(du -m "$model/vocabularies.bin" | cut -f1)
    read -r secs kb < <(/usr/bin/time -f '%e %M' "$bin" predict --model "$model" --data "$OUT/sample.csv" --out "$OUT/p-$fmt.csv" --threads 2 2>&1 >/dev/null | tail -1)
    read -r ready rss hwm < <(serve_probe "$bin" "$model" $((18000 + RANDOM % 1000)))
    printf '%-10s %-22s %10s %12s %12s %10.0f %10s %10s\n' "$n" "$fmt" "$json_mb" "$vocab_mb" "$secs" "$((kb / 1024))" "$ready" "$hwm"
  done
  cmp -s "$OUT/p-json.csv" "$OUT/p-binary.csv" && echo "  same predictions from both formats" || echo "  PREDICTIONS DIFFER"
done
