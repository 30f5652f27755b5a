#!/usr/bin/env bash
# The demo: simulate a funnel with selection bias, train ESMM and BASE, compare them on the
# three sample spaces plus the entire-space CVR only a simulator can measure.
set -euo pipefail
FUNNEL=${1:-.build/release/funnel}
DIR=${2:-demo-out}
ROWS=${DEMO_ROWS:-300000}
mkdir -p "$DIR"
"$FUNNEL" simulate --rows "$ROWS" --seed 7 --out "$DIR/data"
for m in esmm base; do
  "$FUNNEL" train --train "$DIR/data/train.csv" --model "$m" --out "$DIR/$m" --seed 1
done
echo
"$FUNNEL" eval --model "$DIR/esmm" --model "$DIR/base" --data "$DIR/data/test.csv" --truth "$DIR/data/test_truth.csv"
