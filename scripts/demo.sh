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

# Raw Ali-CCP (sample skeleton + common features, as the ESMM paper released it): the same ESMM
# fed the whole behaviour lists (pooled, each value weighted by its count) and fed one value
# per field (each list's last value, as processed copies of Ali-CCP keep it).
echo
"$FUNNEL" simulate --layout ali-ccp-raw --rows "${DEMO_RAW_ROWS:-600000}" --seed 7 --out "$DIR/raw"
for part in train test; do
  "$FUNNEL" prepare --layout ali-ccp --data "$DIR/raw/sample_skeleton_$part.csv" --common "$DIR/raw/common_features_$part.csv" \
    --out "$DIR/raw/$part.fcache"
done
"$FUNNEL" train --train "$DIR/raw/train.fcache" --model esmm --out "$DIR/esmm-pooled" --seed 1 --pooling mean
"$FUNNEL" train --train "$DIR/raw/train_last_value.csv" --model esmm --out "$DIR/esmm-last-value" --seed 1
echo
"$FUNNEL" eval --model "$DIR/esmm-pooled" --data "$DIR/raw/test.fcache" --truth "$DIR/raw/sample_skeleton_test_truth.csv"
"$FUNNEL" eval --model "$DIR/esmm-last-value" --data "$DIR/raw/test_last_value.csv" --truth "$DIR/raw/sample_skeleton_test_truth.csv"

# The two-stage LightGBM pipeline on RecSys-Challenge-2023-layout data: train on days 45–65,
# validate (early stopping, calibration) on 66, report Table 5 on the test day 67.
echo
"$FUNNEL" simulate --layout recsys2023 --rows "${DEMO_GBDT_ROWS:-230000}" --seed 7 --out "$DIR/recsys"
"$FUNNEL" gbdt train --train "$DIR/recsys/train.tsv" --config configs/gbdt-recsys2023.yaml --out "$DIR/gbdt"
echo
"$FUNNEL" gbdt eval --model "$DIR/gbdt" --data "$DIR/recsys/test.tsv"
