#!/usr/bin/env python3
"""Row-sharded embedding tables measured (docs/distributed.md): the same binary, data, seed and
global batch trained with replicated tables and with row-sharded ones under `mpirun -np 2` and
`-np 3`, one thread per rank, in one run: samples/s, embedding bytes per step rank 0 sends (the
all-gather of touched rows when replicated, the all-to-alls of rows and gradients when sharded),
time in collectives, embedding bytes, vocabulary values and peak RSS per rank, test AUCs, and
whether the weights are the same. Two tables: the simulator's vocabulary scale 50 (7.3M ids), and hashed fields large
enough that one table with Adam's state exceeds 3 GB.

    bench/run.sh FUNNEL --only-sharded [--rows N] [--sharded-buckets N] [--sharded-ranks 2,3]
"""
import hashlib, json, os, subprocess


def run_json(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def weights_digest(model):
    h = hashlib.sha256()
    for name in sorted(os.listdir(model)):
        if name.startswith("weights") and name.endswith(".safetensors"):
            h.update(open(os.path.join(model, name), "rb").read())
    return h.hexdigest()[:16]


def predictions_digest(a, model, test):
    out = model + ".predictions.csv"
    subprocess.run([a.funnel, "predict", "--model", model, "--data", test, "--out", out, "--threads", "2"], check=True, capture_output=True)
    return hashlib.sha256(open(out, "rb").read()).hexdigest()[:16]


def one(a, data, tag, ranks, mode, extra):
    model = os.path.join(a.out, f"sharded-{tag}-{ranks}-{mode}")
    cmd = ["mpirun", "--allow-run-as-root", "--oversubscribe", "--bind-to", "none", "-np", str(ranks), a.funnel, "train",
           "--train", os.path.join(data, "train.csv"), "--model", "esmm", "--out", model, "--threads", "1", "--seed", "1",
           "--embedding-sharding", mode, "--json"] + extra
    t = run_json(cmd)
    test = os.path.join(data, "test.csv")
    e = run_json([a.funnel, "eval", "--model", model, "--data", test, "--json", "--threads", "2"])
    d, s = t.get("distributed") or {}, t.get("sharding") or {}
    return {"table": tag, "ranks": ranks, "mode": mode, "train": t["train_samples_per_second"], "seconds": t["seconds"],
            "embedding_bytes_step": s.get("alltoall_bytes_per_step"), "dense_bytes_step": d.get("dense_bytes_per_step"),
            "comm": d.get("seconds"), "embedding_mb_rank": [b / 2**20 for b in s.get("embedding_bytes_per_rank", [])],
            "peak_rss_rank": s.get("peak_rss_mb_per_rank"), "layout": s.get("weights_layout"),
            "vocabulary": s.get("vocabulary"), "vocabulary_values_rank": s.get("vocabulary_values_per_rank"),
            "auc_ctr": e.get("auc_ctr"), "auc_cvr": e.get("auc_cvr"), "auc_ctcvr": e.get("auc_ctcvr"),
            "predictions": predictions_digest(a, model, test)}


def sharded_scenario(a):
    data = os.path.join(a.out, f"data-{a.rows}-50")
    if not os.path.exists(os.path.join(data, "test_truth.csv")):
        subprocess.run([a.funnel, "simulate", "--rows", str(a.rows), "--seed", "7", "--vocab-scale", "50", "--out", data], check=True,
                       capture_output=True)
    tables = [("vocab-50", [])]
    if a.sharded_buckets > 0:
        tables.append((f"hashed-{a.sharded_buckets}", ["--hash-buckets", f"101={a.sharded_buckets},205={a.sharded_buckets}"]))
    rows = []
    for tag, extra in tables:
        for ranks in [int(r) for r in a.sharded_ranks.split(",")]:
            for mode in ("replicated", "row"):
                rows.append(one(a, data, tag, ranks, mode, extra))
                print(json.dumps(rows[-1]), flush=True)
    print(f"\nESMM on {a.rows} simulated rows (vocab scale 50), one thread per rank, replicated vs row-sharded tables")
    print(f"{'table':>16}{'ranks':>6}{'mode':>11}{'train/s':>9}{'emb KB/step':>12}{'comm s':>8}{'of s':>7}"
          f"{'emb MiB/rank':>14}{'peak RSS/rank':>16}{'vocab values/rank':>24}{'AUC ctr/cvr/ctcvr':>22}  predictions")
    for r in rows:
        mb = "/".join(f"{v:.0f}" for v in r["embedding_mb_rank"][:1])
        rss = "/".join(f"{v:.0f}" for v in (r["peak_rss_rank"] or []))
        auc = f"{r['auc_ctr']:.4f}/{r['auc_cvr']:.4f}/{r['auc_ctcvr']:.4f}"
        vocab = "/".join(str(v) for v in (r["vocabulary_values_rank"] or []))
        print(f"{r['table']:>16}{r['ranks']:>6}{r['mode']:>11}{r['train']:>9.0f}{(r['embedding_bytes_step'] or 0) / 1e3:>12.1f}"
              f"{r['comm'] or 0:>8.2f}{r['seconds']:>7.1f}{mb:>14}{rss:>16}{vocab:>24}{auc:>22}  {r['predictions']}")
    for tag, _ in tables:
        for ranks in [int(r) for r in a.sharded_ranks.split(",")]:
            rep, row = [next(r for r in rows if r["table"] == tag and r["ranks"] == ranks and r["mode"] == m) for m in ("replicated", "row")]
            print(f"{tag}, {ranks} ranks: row-sharded / replicated samples/s {row['train'] / rep['train']:.2f}x, "
                  f"same predictions: {rep['predictions'] == row['predictions']}")
    overlap = overlap_scenario(a, data)
    return {"runs": rows, "overlap": overlap}


def overlap_scenario(a, data, repeats=3):
    """The dense all-reduce overlapped with the embedding exchanges (the default) against one after
    the other (`--no-overlap-collectives`), alternating runs, 2 ranks: seconds inside collectives
    (rank 0's, waiting included) and samples/s; the weights are the same bytes either way."""
    out = []
    for mode in ("replicated", "row"):
        for flag in ([], ["--no-overlap-collectives"]) * repeats:
            model = os.path.join(a.out, "overlap-model")
            t = run_json(["mpirun", "--allow-run-as-root", "--oversubscribe", "--bind-to", "none", "-np", "2", a.funnel, "train",
                          "--train", os.path.join(data, "train.csv"), "--model", "esmm", "--out", model, "--threads", "1", "--seed", "1",
                          "--embedding-sharding", mode, "--json"] + flag)
            out.append({"mode": mode, "overlap": not flag, "comm": t["distributed"]["seconds"], "train": t["train_samples_per_second"],
                        "weights": weights_digest(model)})
    print(f"\noverlap of the dense all-reduce with the embedding exchanges, 2 ranks, mean of {repeats} alternating runs")
    for mode in ("replicated", "row"):
        for on in (True, False):
            runs = [r for r in out if r["mode"] == mode and r["overlap"] == on]
            print(f"{mode:>11} {'overlapped' if on else 'one after the other':>20}: {sum(r['comm'] for r in runs) / len(runs):.3f} s in collectives, "
                  f"{sum(r['train'] for r in runs) / len(runs):.0f} samples/s, weights {sorted(set(r['weights'] for r in runs))}")
    return out


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("--funnel", default=".build/release/funnel")
    ap.add_argument("--out", default="bench-out")
    ap.add_argument("--rows", type=int, default=500_000)
    ap.add_argument("--sharded-buckets", type=int, default=7_000_000)
    ap.add_argument("--sharded-ranks", default="2,3")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "sharded.json"), "w") as fh:
        json.dump(sharded_scenario(a), fh, indent=1)
