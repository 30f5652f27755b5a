#!/bin/bash
# Issue 28's measurement: ESMM and MMoE on the raw Ali-CCP layout (simulated, pooled behaviour
# lists) with mean pooling, DIN target attention, DCN-v2 cross layers and both, with and without
# the hand-made crosses 508/509/702/853; 5 seeds each; plus PyTorch's attention ESMM of the same
# shape. Usage: bench/attention.sh FUNNEL OUTDIR [PYTHON]   (PYTHON: a python with torch, e.g. .venv-bench/bin/python)
set -euo pipefail
F=$(realpath "$1"); OUT=$2; PY=${3:+$(cd "$(dirname "$3")" && pwd)/$(basename "$3")}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$OUT"; cd "$OUT"
r=raw
[ -f $r/sample_skeleton_test.csv ] || "$F" simulate --layout ali-ccp-raw --rows 600000 --seed 7 --out $r > /dev/null
for s in train test; do
  [ -f $r/$s.fcache ] || "$F" prepare --layout ali-ccp --data $r/sample_skeleton_$s.csv --common $r/common_features_$s.csv --out $r/$s.fcache > /dev/null
  [ -f $r/$s-nocross.fcache ] || "$F" prepare --layout ali-ccp --data $r/sample_skeleton_$s.csv --common $r/common_features_$s.csv \
    --ignore 508,509,702,853 --out $r/$s-nocross.fcache > /dev/null
done
Q=109_14=206,110_14=207,127_14=216,150_14=210
ATT=(--pooling attention --attention-query $Q)
run() {  # name, cache suffix, flags…
  local name=$1 suffix=$2; shift 2
  [ -f $name/results.json ] || "$F" experiment --train $r/train$suffix.fcache --test $r/test$suffix.fcache \
    --truth $r/sample_skeleton_test_truth.csv --models esmm,mmoe --runs 5 --threads 2 --out $name "$@" > $name.txt
}
run mean "" --pooling mean
run attention "" "${ATT[@]}"
run dcn "" --pooling mean --cross-layers 3
run attention+dcn "" "${ATT[@]}" --cross-layers 3
run mean-nocross -nocross --pooling mean
run attention-nocross -nocross "${ATT[@]}"
python3 "$HERE/variants.py" auc_ctr,auc_cvr,auc_ctcvr,auc_cvr_entire_space mean=mean attention=attention dcn=dcn attention+dcn=attention+dcn \
  "mean, no crosses=mean-nocross" "attention, no crosses=attention-nocross" | tee table.md
if [ -n "$PY" ]; then
  # Side by side with PyTorch (bench/torch_esmm_bag.py, the same shapes): ESMM, one seed, 2 threads each, one at a time.
  for pooling in mean attention; do
    flags=(--pooling $pooling); [ $pooling = attention ] && flags=("${ATT[@]}")
    "$F" train --train $r/train.fcache --model esmm --threads 2 --seed 1 --out f-$pooling --json "${flags[@]}" > f-$pooling.json
    "$F" eval --model f-$pooling --data $r/test.fcache --truth $r/sample_skeleton_test_truth.csv --json > f-$pooling-eval.json
    "$PY" "$HERE/torch_esmm_bag.py" --train-skeleton $r/sample_skeleton_train.csv --train-common $r/common_features_train.csv \
      --test-skeleton $r/sample_skeleton_test.csv --test-common $r/common_features_test.csv --truth $r/sample_skeleton_test_truth.csv \
      --pooling $pooling --attention-query $Q --threads 2 --seed 1 > torch-$pooling.json
  done
  python3 - <<'PY' | tee side-by-side.md
import json
print("| pooling | peer | train samples/s | AUC CTR | AUC CVR | AUC CTCVR | AUC CVR-ES |")
print("|---|---|---|---|---|---|---|")
for pooling in ("mean", "attention"):
    f, e, t = (json.load(open(n)) for n in ("f-%s.json" % pooling, "f-%s-eval.json" % pooling, "torch-%s.json" % pooling))
    m = e["results"][0] if "results" in e else e
    get = lambda d, k: d.get(k) if k in d else d.get("metrics", {}).get(k)
    print("| %s | Funnel | %.0f | %.4f | %.4f | %.4f | %.4f |" % (pooling, f["train_samples_per_second"], get(m, "auc_ctr"), get(m, "auc_cvr"),
          get(m, "auc_ctcvr"), get(m, "auc_cvr_entire_space")))
    print("| %s | PyTorch %s | %.0f | %.4f | %.4f | %.4f | %.4f |" % (pooling, t["torch"], t["train_samples_per_second"], t["auc_ctr"],
          t["auc_cvr"], t["auc_ctcvr"], t["auc_cvr_entire_space"]))
PY
fi
