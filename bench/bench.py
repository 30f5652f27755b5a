#!/usr/bin/env python3
"""Side-by-side ESMM benchmark: Funnel vs PyTorch (dense Adam and SparseAdam), same data,
same shapes and hyperparameters, same thread count, in one run. Prints training samples/s,
predict rows/s, peak RSS and test AUCs (mean over --runs seeds) and the ratios."""
import argparse, json, os, subprocess, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))


def run_json(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def mean(xs):
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--funnel", default=".build/release/funnel")
    ap.add_argument("--rows", type=int, default=500_000)
    ap.add_argument("--vocab-scale", default="1,50",
                    help="comma-separated id-space scales, one scenario each (1: ~150k ids; 50: Ali-CCP-like, millions)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--out", default="bench-out")
    ap.add_argument("--peers", default="sparse-adam,adam")
    a = ap.parse_args()
    scales = [float(v) for v in str(a.vocab_scale).split(",") if v]
    everything = {}
    for scale in scales:
        everything[f"{scale:g}"] = scenario(a, scale)
    with open(os.path.join(a.out, "bench.json"), "w") as fh:
        json.dump({"config": vars(a), "scenarios": everything}, fh, indent=1)


def gap_se(a_runs, b_runs, key):
    """Standard error of the difference of two means (Welch)."""
    def var(xs):
        m = mean(xs)
        return sum((x - m) ** 2 for x in xs) / max(len(xs) - 1, 1)
    a = [r[key] for r in a_runs if r[key] is not None]
    b = [r[key] for r in b_runs if r[key] is not None]
    return (var(a) / len(a) + var(b) / len(b)) ** 0.5


def flops_per_sample(model_dir):
    """Forward FLOPs of one ESMM sample's towers (2 per multiply-add), from the saved model."""
    m = json.load(open(os.path.join(model_dir, "model.json")))
    c, s = m["config"], m["schema"]
    widths = [len(s["fields"]) * c["embedding_dim"] + len(s["dense"])] + list(c["hidden"]) + [1]
    return 2 * 2 * sum(i * o for i, o in zip(widths, widths[1:]))  # two towers


def scenario(a, scale):
    a.vocab_scale = scale
    data = os.path.join(a.out, f"data-{a.rows}-{a.vocab_scale:g}")
    if not os.path.exists(os.path.join(data, "test_truth.csv")):
        subprocess.run([a.funnel, "simulate", "--rows", str(a.rows), "--seed", "7",
                        "--vocab-scale", str(a.vocab_scale), "--out", data], check=True)
    train, test, truth = (os.path.join(data, f) for f in ("train.csv", "test.csv", "test_truth.csv"))
    keys = ["auc_ctr", "auc_cvr", "auc_ctcvr", "auc_cvr_entire_space"]
    results = {}

    rows = []
    for seed in range(1, a.runs + 1):
        model = os.path.join(a.out, f"esmm-{seed}")
        t = run_json([a.funnel, "train", "--train", train, "--model", "esmm", "--out", model,
                      "--threads", str(a.threads), "--seed", str(seed), "--json"])
        p = run_json([a.funnel, "predict", "--model", model, "--data", test, "--out",
                      os.path.join(a.out, "pred.csv"), "--threads", str(a.threads), "--json"])
        e = run_json([a.funnel, "eval", "--model", model, "--data", test, "--truth", truth,
                      "--threads", str(a.threads), "--json"])
        rows.append({"train": t["train_samples_per_second"], "predict": p["predict_rows_per_second"],
                     "rss": t["peak_rss_mb"], **{k: e.get(k) for k in keys}})
        print(f"funnel seed {seed}: {t['train_samples_per_second']:.0f} samples/s", file=sys.stderr)
    results["funnel"] = rows

    for peer in [p for p in a.peers.split(",") if p]:
        rows = []
        for seed in range(1, a.runs + 1):
            r = run_json([sys.executable, os.path.join(HERE, "torch_esmm.py"), "--train", train, "--test", test,
                          "--truth", truth, "--optimizer", peer, "--threads", str(a.threads), "--seed", str(seed)])
            rows.append({"train": r["train_samples_per_second"], "predict": r["predict_rows_per_second"],
                         "rss": r["peak_rss_mb"], **{k: r.get(k) for k in keys}})
            print(f"pytorch-{peer} seed {seed}: {r['train_samples_per_second']:.0f} samples/s", file=sys.stderr)
        results["pytorch-" + peer] = rows

    # Parity: both start from the same (untrained) Funnel weights and read rows in file order, so
    # the only differences left are floating-point summation orders.
    init = os.path.join(a.out, "init")
    run_json([a.funnel, "train", "--train", train, "--model", "esmm", "--out", init, "--lr", "1e-30",
              "--threads", str(a.threads), "--seed", "1", "--no-shuffle", "--json"])
    same = os.path.join(a.out, "esmm-parity")
    run_json([a.funnel, "train", "--train", train, "--model", "esmm", "--out", same, "--init-from", init,
              "--threads", str(a.threads), "--no-shuffle", "--json"])
    fe = run_json([a.funnel, "eval", "--model", same, "--data", test, "--truth", truth, "--json"])
    te = run_json([sys.executable, os.path.join(HERE, "torch_esmm.py"), "--train", train, "--test", test,
                   "--truth", truth, "--optimizer", "sparse-adam", "--threads", str(a.threads),
                   "--init-from", init, "--no-shuffle"])
    parity = {k: (fe.get(k), te.get(k)) for k in keys}

    summary = {name: {k: mean([r[k] for r in rs]) for k in ["train", "predict", "rss"] + keys}
               for name, rs in results.items()}
    peers = [n for n in summary if n != "funnel"]
    best_train = max(peers, key=lambda n: summary[n]["train"]) if peers else None
    best_predict = max(peers, key=lambda n: summary[n]["predict"]) if peers else None
    print(f"\nESMM, {a.rows} simulated rows (vocab scale {a.vocab_scale:g}), {a.threads} threads, "
          f"mean of {a.runs} seeds; AUCs on the test split (CVR-ES: entire space vs. counterfactual truth)")
    head = f"{'':22}{'train/s':>10}{'predict/s':>11}{'RSS MB':>8}" + "".join(f"{k.replace('auc_', 'AUC ').replace('_entire_space', '-ES'):>12}" for k in keys)
    print(head)
    print("-" * len(head))
    for name, s in summary.items():
        print(f"{name:22}{s['train']:>10.0f}{s['predict']:>11.0f}{s['rss']:>8.0f}"
              + "".join(f"{s[k]:>12.4f}" if s[k] is not None else f"{'undefined':>12}" for k in keys))
    if best_train:
        f = summary["funnel"]
        print(f"\ntraining ratio funnel / {best_train}: {f['train'] / summary[best_train]['train']:.2f}x")
        print(f"predict ratio  funnel / {best_predict}: {f['predict'] / summary[best_predict]['predict']:.2f}x")
        gaps = {k: f[k] - summary[best_train][k] for k in keys if f[k] is not None and summary[best_train][k] is not None}
        print("AUC gaps vs " + best_train + ": " + ", ".join(f"{k} {v:+.4f}" for k, v in gaps.items()))
        # Seed-to-seed spread: the CVR AUCs rest on a few hundred test conversions, so a gap is
        # only meaningful against its standard error (Welch; ±1.96 SE ≈ 95%).
        print("  ± 1.96 standard errors over seeds: " + ", ".join(
            f"{k} {gaps[k]:+.4f} ± {1.96 * gap_se(results['funnel'], results[best_train], k):.4f}" for k in gaps))
    print("\nparity, same initial weights and row order (funnel vs pytorch-sparse-adam): "
          + ", ".join(f"{k} {f:.4f} vs {t:.4f} ({f - t:+.4f})" for k, (f, t) in parity.items() if f is not None and t is not None))
    # Achieved GEMM throughput: training ≈ 3 × the forward FLOPs (forward, input and weight gradients).
    fwd = flops_per_sample(os.path.join(a.out, "esmm-1"))
    f = summary["funnel"]
    print(f"GEMM work: {fwd / 1e6:.3f} MFLOP/sample forward; funnel training {3 * fwd * f['train'] / 1e9:.0f} GFLOP/s, "
          f"predict {fwd * f['predict'] / 1e9:.0f} GFLOP/s (this CPU's FP32 peak at 2 cores ≈ 190 GFLOP/s)")
    return {"runs": results, "summary": summary, "parity": parity, "forward_flops_per_sample": fwd}


if __name__ == "__main__":
    main()
