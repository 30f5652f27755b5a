#!/usr/bin/env bash
# Trains every model on one small simulated funnel with a fixed seed and thread count and
# prints the sha256 of each weights.safetensors: a refactor that must not change behaviour
# compares this list before and after (same binary configuration, same machine).
#   scripts/weights-checksums.sh FUNNEL [WORKDIR]
set -euo pipefail
FUNNEL=${1:?usage: weights-checksums.sh FUNNEL [WORKDIR]}
WORK=${2:-$(mktemp -d)}
mkdir -p "$WORK"
"$FUNNEL" simulate --rows 30000 --seed 7 --out "$WORK/data" >/dev/null
"$FUNNEL" prepare --data "$WORK/data/train.csv" --out "$WORK/train.fcache" >/dev/null
run() {
  local name=$1; shift
  "$FUNNEL" train --train "$WORK/data/train.csv" --out "$WORK/m-$name" --seed 3 --threads 2 --batch-size 500 "$@" >/dev/null
  printf '%s  %s\n' "$(sha256sum "$WORK/m-$name/weights.safetensors" | cut -c1-16)" "$name"
}
for m in base aman oversampling unbias division esmm-ns esmm ip ipsp essp-split esp mlp sharedbottom mmoe ple aitm taml mtdm; do
  run "$m" --model "$m"
done
run esmm-2-epochs --model esmm --epochs 2
run unbias-2-epochs --model unbias --epochs 2 --clicked-epochs 3
run taml-2-epochs --model taml --epochs 2
run esmm-mmoe --model esmm --arch mmoe
run ipsp-shared-bottom --model ipsp --arch shared-bottom
run esmm-ple --model esmm --arch ple
name=esmm-streamed
"$FUNNEL" train --train "$WORK/train.fcache" --out "$WORK/m-$name" --model esmm --seed 3 --threads 2 --batch-size 500 --memory-budget 300 >/dev/null
printf '%s  %s\n' "$(sha256sum "$WORK/m-$name/weights.safetensors" | cut -c1-16)" "$name"
