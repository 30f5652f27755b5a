#!/usr/bin/env bash
# The demo. First what Funnel is for: ESMM against BASE, the ESMM paper's comparison (Table 2: CVR
# AUC on clicked impressions, CTCVR AUC on all), five seeds each on a simulated funnel with
# selection bias and enough conversions (15% of clicks) for the difference to exceed the seed
# noise, with the Welch t-test verdict and the entire-space CVR only a simulator can measure.
set -euo pipefail
FUNNEL=${1:-.build/release/funnel}
DIR=${2:-demo-out}
ROWS=${DEMO_ROWS:-500000}
mkdir -p "$DIR"
"$FUNNEL" simulate --rows "$ROWS" --seed 7 --cvr 0.15 --out "$DIR/data"
"$FUNNEL" experiment --train "$DIR/data/train.csv" --test "$DIR/data/test.csv" --truth "$DIR/data/test_truth.csv" \
  --models esmm,base --runs "${DEMO_RUNS:-5}" --baseline base --primary auc_cvr --out "$DIR/esmm-vs-base" --force > /dev/null
echo
python3 "$(dirname "$0")/demo_table.py" "$DIR/esmm-vs-base/results.json"

# Raw Ali-CCP (sample skeleton + common features, as the ESMM paper released it): the same ESMM
# fed the whole behaviour lists (pooled, each value weighted by its count) and fed one value
# per field (each list's last value, as processed copies of Ali-CCP keep it).
echo
"$FUNNEL" simulate --layout ali-ccp-raw --rows "${DEMO_RAW_ROWS:-600000}" --seed 7 --out "$DIR/raw"
for part in train test; do
  "$FUNNEL" prepare --layout ali-ccp --data "$DIR/raw/sample_skeleton_$part.csv" --common "$DIR/raw/common_features_$part.csv" \
    --out "$DIR/raw/$part.fcache"
done
# Both feedings train on shuffled rows (--no-request-sharing): batches of whole requests, the
# default on a raw cache, cost AUC at this size (docs/request-sharing.md).
"$FUNNEL" train --train "$DIR/raw/train.fcache" --model esmm --out "$DIR/esmm-pooled" --seed 1 --pooling mean --no-request-sharing
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
