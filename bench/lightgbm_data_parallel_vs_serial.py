"""LightGBM's own data-parallel learner against its serial learner, without Funnel.

Why this exists: `mpirun -np N funnel gbdt train` gives every rank one machine's features, bins
and bags (the model directory's checksums prove it), yet its trees are not byte-equal to one
process's. This script shows the same with LightGBM alone — the Python package, its own socket
network, two local processes, identical bins (integer features with fewer distinct values than
bins), no bagging, no feature sampling: the first tree agrees, later trees part. The data-parallel
learner sums each rank's histogram and then the ranks' sums (another floating-point order than
one machine's row-by-row sums) and keeps leaf counts estimated from hessians, so near-tied splits
go the other way from then on.

    python3 bench/lightgbm_data_parallel_vs_serial.py
"""
import multiprocessing as mp
import random

import lightgbm as lgb
import numpy as np

rng = np.random.default_rng(0)
N, D = 20480, 12
X = rng.integers(0, 40, size=(N, D)).astype(np.float64)
X[:, :4] = (rng.random((N, 4)) < 0.2) * rng.integers(1, 30, size=(N, 4))  # sparse columns
logit = -1.5 + 0.05 * X[:, 4] - 0.04 * X[:, 5] + 0.1 * (X[:, 0] > 0) + 0.02 * X[:, 6]
y = (rng.random(N) < 1 / (1 + np.exp(-logit))).astype(np.float64)
BASE = dict(objective="binary", num_leaves=63, min_data_in_leaf=20, learning_rate=0.1, verbosity=-1,
            deterministic=True, force_col_wise=True, num_threads=1, seed=1, bagging_fraction=1.0,
            feature_fraction=1.0, max_bin=63)
ROUNDS = 5
PORT = random.randint(20000, 60000)


def worker(rank, queue):
    params = dict(BASE, tree_learner="data", num_machines=2, machines=f"127.0.0.1:{PORT},127.0.0.1:{PORT + 1}",
                  local_listen_port=PORT + rank, pre_partition=True, time_out=2)
    lo, hi = (0, N // 2) if rank == 0 else (N // 2, N)
    booster = lgb.train(params, lgb.Dataset(X[lo:hi], y[lo:hi]), num_boost_round=ROUNDS)
    queue.put((rank, booster.model_to_string()))


def trees(text):
    out = []
    for line in text.splitlines():
        if line.startswith("Tree="):
            out.append({})
        elif "=" in line and out:
            key, value = line.split("=", 1)
            out[-1][key] = value
    return out


def main():
    serial = lgb.train(BASE, lgb.Dataset(X, y), num_boost_round=ROUNDS).model_to_string()
    queue = mp.Queue()
    processes = [mp.Process(target=worker, args=(r, queue)) for r in range(2)]
    for p in processes:
        p.start()
    parallel = dict(queue.get() for _ in processes)[0]
    for p in processes:
        p.join()
    info = lambda t: [l for l in t.splitlines() if l.startswith("feature_infos")]
    print(f"lightgbm {lgb.__version__}: bins equal: {info(serial) == info(parallel)}")
    for i, (a, b) in enumerate(zip(trees(serial), trees(parallel))):
        differs = next((k for k in ("split_feature", "threshold", "split_gain", "leaf_value") if a.get(k) != b.get(k)), None)
        if differs is None:
            print(f"tree {i}: serial and data-parallel equal")
        else:
            x, z = a[differs].split(), b[differs].split()
            j = next((j for j in range(min(len(x), len(z))) if x[j] != z[j]), min(len(x), len(z)))
            print(f"tree {i}: {differs} differs from entry {j} of {len(x)}")


if __name__ == "__main__":
    main()
