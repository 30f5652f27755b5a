#!/bin/bash
# "Does debiasing remove the bias?" (docs/experiments.md): eight CVR models on simulated data at
# two selection-bias levels, at defaults and tuned with the same budget, plus the raw Ali-CCP
# layout; 5 seeds each, judged on the entire space against the simulator's counterfactual truth.
# Usage: bench/debiasing.sh FUNNEL OUTDIR   (about 25 minutes on 2 cores)
set -euo pipefail
F=$(realpath "$1"); OUT=$2
mkdir -p "$OUT"; cd "$OUT"
MODELS=esmm,esmm-ns,ipsp,multi-ipw,multi-dr,escm2-ipw,escm2-dr,dcmt
COMMON=(--models $MODELS --runs 5 --primary auc_cvr_entire_space --baseline esmm --threads 2)
cat > space.yaml <<'Y'
lr: {min: 0.0003, max: 0.004, log: true}
epochs: [1, 2]
counterfactual-weight: {min: 0.1, max: 1.5}
imputation-weight: {min: 0.1, max: 2.0}
propensity-clip: [0.02, 0.0667, 0.15]
Y
for bias in 0.2 0.8; do
  d=d$bias
  [ -f $d/test.csv ] || "$F" simulate --rows 600000 --seed 11 --selection-bias $bias --out $d > /dev/null
  if [ ! -f $d/fit.csv ]; then  # the last 20% of the training rows validate the tuning trials
    n=$(($(wc -l < $d/train.csv) - 1)); k=$((n * 4 / 5))
    head -n $((k + 1)) $d/train.csv > $d/fit.csv
    (head -n 1 $d/train.csv; tail -n $((n - k)) $d/train.csv) > $d/valid.csv
  fi
  "$F" experiment --train $d/fit.csv --test $d/test.csv --truth $d/test_truth.csv "${COMMON[@]}" --out defaults-$bias
  "$F" experiment --train $d/fit.csv --valid $d/valid.csv --test $d/test.csv --truth $d/test_truth.csv "${COMMON[@]}" \
    --tune-trials 8 --tune-space space.yaml --out tuned-$bias
done
r=raw0.8
[ -f $r/sample_skeleton_test.csv ] || "$F" simulate --layout ali-ccp-raw --rows 600000 --seed 7 --selection-bias 0.8 --out $r > /dev/null
for s in train test; do
  [ -f $r/$s.fcache ] || "$F" prepare --layout ali-ccp --data $r/sample_skeleton_$s.csv --common $r/common_features_$s.csv --out $r/$s.fcache > /dev/null
done
"$F" experiment --train $r/train.fcache --test $r/test.fcache --truth $r/sample_skeleton_test_truth.csv "${COMMON[@]}" --out raw-0.8
echo "tables: $OUT/{defaults,tuned}-{0.2,0.8}/results.md, $OUT/raw-0.8/results.md"
