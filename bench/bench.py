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
    ap.add_argument("--raw-rows", type=int, default=500_000,
                    help="impressions of the raw Ali-CCP scenario (pooled multi-valued fields vs PyTorch EmbeddingBag); 0 skips it")
    ap.add_argument("--only-raw", action="store_true", help="run the raw Ali-CCP scenario only")
    ap.add_argument("--distributed", action="store_true",
                    help="also run the data-parallel scenario: 1 process vs mpirun -np 2, one thread each")
    ap.add_argument("--only-distributed", action="store_true", help="run the data-parallel scenario only")
    ap.add_argument("--only-onnx", action="store_true",
                    help="run the ONNX scenario only (ONNX Runtime on the exported ESMM vs funnel predict vs PyTorch)")
    ap.add_argument("--request-sharing", action="store_true",
                    help="also run the request-sharing scenario (raw layout, shared vs --no-request-sharing; bench/request_sharing.py)")
    ap.add_argument("--only-request-sharing", action="store_true", help="run the request-sharing scenario only")
    ap.add_argument("--sharing-rows", type=int, default=1_000_000, help="impressions of the request-sharing scenario")
    ap.add_argument("--sharing-ratios", default="12,50", help="impressions per common-feature record, one data set each")
    ap.add_argument("--only-sharded", action="store_true",
                    help="run the row-sharded tables scenario only (replicated vs --embedding-sharding row; bench/sharded.py)")
    ap.add_argument("--sharded-buckets", type=int, default=7_000_000,
                    help="hash buckets of each of two fields for the large-table run of --only-sharded (0: skip it)")
    ap.add_argument("--sharded-ranks", default="2,3", help="rank counts of --only-sharded")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    if a.only_sharded:
        from sharded import sharded_scenario
        with open(os.path.join(a.out, "sharded.json"), "w") as fh:
            json.dump(sharded_scenario(a), fh, indent=1)
        return
    if a.only_request_sharing:
        from request_sharing import request_sharing_scenario
        with open(os.path.join(a.out, "request-sharing.json"), "w") as fh:
            json.dump(request_sharing_scenario(a), fh, indent=1)
        return
    only = a.only_raw or a.only_distributed or a.only_onnx
    scales = [] if only else [float(v) for v in str(a.vocab_scale).split(",") if v]
    everything = {}
    for scale in scales:
        everything[f"{scale:g}"] = scenario(a, scale)
    if not a.only_raw and not a.only_distributed:
        everything["onnx"] = onnx_scenario(a)
    if a.raw_rows > 0 and not a.only_distributed and not a.only_onnx:
        everything["raw-ali-ccp"] = raw_scenario(a)
    if a.distributed or a.only_distributed:
        everything["distributed"] = distributed_scenario(a)
    if a.request_sharing:
        from request_sharing import request_sharing_scenario
        everything["request-sharing"] = request_sharing_scenario(a)
    with open(os.path.join(a.out, "bench.json"), "w") as fh:
        json.dump({"config": vars(a), "scenarios": everything}, fh, indent=1)


def onnx_scenario(a):
    """Batch prediction of one trained ESMM three ways, same test rows, same threads, one run:
    funnel predict (forward only, after encoding), ONNX Runtime on `funnel export`'s graph (the
    graph encodes raw ids itself) and PyTorch's eval forward (torch_esmm.py, encoded ids)."""
    data = os.path.join(a.out, f"data-{a.rows}-1")
    if not os.path.exists(os.path.join(data, "test_truth.csv")):
        subprocess.run([a.funnel, "simulate", "--rows", str(a.rows), "--seed", "7", "--vocab-scale", "1", "--out", data], check=True)
    train, test, truth = (os.path.join(data, f) for f in ("train.csv", "test.csv", "test_truth.csv"))
    model = os.path.join(a.out, "onnx-esmm")
    run_json([a.funnel, "train", "--train", train, "--model", "esmm", "--out", model, "--threads", str(a.threads),
              "--seed", "1", "--json", "--force"])
    exported = os.path.join(a.out, "esmm.onnx")
    subprocess.run([a.funnel, "export", "--model", model, "--format", "onnx", "--out", exported, "--force"],
                   check=True, stdout=subprocess.DEVNULL)
    funnel = [run_json([a.funnel, "predict", "--model", model, "--data", test, "--out", os.path.join(a.out, "pred.csv"),
                        "--threads", str(a.threads), "--json"])["predict_rows_per_second"] for _ in range(a.runs)]
    # ONNX Runtime and PyTorch each at their faster batch of 1,024 and 4,096 rows.
    ort = [max(run_json([sys.executable, os.path.join(HERE, "onnx_predict.py"), "--model", exported, "--data", test,
                         "--threads", str(a.threads), "--batch", str(b)])["predict_rows_per_second"] for b in (1024, 4096))
           for _ in range(a.runs)]
    torch = [run_json([sys.executable, os.path.join(HERE, "torch_esmm.py"), "--train", train, "--test", test, "--truth", truth,
                       "--optimizer", "sparse-adam", "--threads", str(a.threads), "--seed", str(s + 1),
                       "--predict-batches", "1024,4096"])["predict_rows_per_second"]
             for s in range(a.runs)]
    rates = {"funnel predict": mean(funnel), "onnxruntime (exported)": mean(ort), "pytorch eval": mean(torch)}
    print(f"\n== batch predict, ESMM, {a.threads} threads, mean of {a.runs} runs (funnel: {FUNNEL_PREDICT_BATCH} rows per "
          f"forward per worker; ONNX Runtime and PyTorch: the faster of batches of 1024 and 4096) ==")
    for name, r in rates.items():
        print(f"{name:24s} {r:12.0f} rows/s   funnel / this: {rates['funnel predict'] / r:5.2f}x")
    return {"rows_per_second": rates, "runs": {"funnel": funnel, "onnxruntime": ort, "pytorch": torch}}


def gap_se(a_runs, b_runs, key):
    """Standard error of the difference of two means (Welch)."""
    def var(xs):
        m = mean(xs)
        return sum((x - m) ** 2 for x in xs) / max(len(xs) - 1, 1)
    a = [r[key] for r in a_runs if r[key] is not None]
    b = [r[key] for r in b_runs if r[key] is not None]
    return (var(a) / len(a) + var(b) / len(b)) ** 0.5


def print_table(summary, columns, keys, name_width):
    """One line per run: its name, the (field, title, width) columns as integers, then the AUC keys."""
    head = (f"{'':{name_width}}" + "".join(f"{title:>{w}}" for _, title, w in columns)
            + "".join(f"{k.replace('auc_', 'AUC ').replace('_entire_space', '-ES'):>12}" for k in keys))
    print(head)
    print("-" * len(head))
    for name, s in summary.items():
        print(f"{name:{name_width}}" + "".join(f"{s[f]:>{w}.0f}" for f, _, w in columns)
              + "".join(f"{s[k]:>12.4f}" if s[k] is not None else f"{'undefined':>12}" for k in keys))


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

    # Funnel on its default GEMM engine (oneDNN) and on OpenBLAS, same seeds.
    for name, engine, precision in [("funnel", "onednn", "fp32"), ("funnel-openblas", "openblas", "fp32"),
                                    ("funnel-bf16", "onednn", "bf16")]:
        rows = []
        for seed in range(1, a.runs + 1):
            model = os.path.join(a.out, f"esmm-{seed}" if name == "funnel" else f"{name}-{seed}")
            t = run_json([a.funnel, "train", "--train", train, "--model", "esmm", "--out", model, "--gemm", engine,
                          "--precision", precision, "--threads", str(a.threads), "--seed", str(seed), "--json", "--force"])
            p = run_json([a.funnel, "predict", "--model", model, "--data", test, "--out", os.path.join(a.out, "pred.csv"),
                          "--threads", str(a.threads), "--gemm", engine, "--precision", precision, "--json"])
            e = run_json([a.funnel, "eval", "--model", model, "--data", test, "--truth", truth,
                          "--threads", str(a.threads), "--json"])
            rows.append({"train": t["train_samples_per_second"], "predict": p["predict_rows_per_second"],
                         "rss": t["peak_rss_mb"], **{k: e.get(k) for k in keys}})
            print(f"{name} seed {seed}: {t['train_samples_per_second']:.0f} samples/s", file=sys.stderr)
        results[name] = rows

    # PyTorch: each optimizer in FP32, and SparseAdam under bf16 autocast.
    for peer in [p for p in a.peers.split(",") if p] + ["sparse-adam-bf16"]:
        rows = []
        for seed in range(1, a.runs + 1):
            optimizer = peer.replace("-bf16", "")
            r = run_json([sys.executable, os.path.join(HERE, "torch_esmm.py"), "--train", train, "--test", test,
                          "--truth", truth, "--optimizer", optimizer, "--threads", str(a.threads), "--seed", str(seed),
                          "--predict-batches", "1024,4096"]
                         + (["--autocast-bf16"] if peer.endswith("-bf16") else []))
            rows.append({"train": r["train_samples_per_second"], "predict": r["predict_rows_per_second"],
                         "predict_batch": r["predict_batch"], "rss": r["peak_rss_mb"], **{k: r.get(k) for k in keys}})
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
    peers = [n for n in summary if not n.startswith("funnel") and not n.endswith("-bf16")]
    best_train = max(peers, key=lambda n: summary[n]["train"]) if peers else None
    best_predict = max(peers, key=lambda n: summary[n]["predict"]) if peers else None
    print(f"\nESMM, {a.rows} simulated rows (vocab scale {a.vocab_scale:g}), {a.threads} threads, "
          f"mean of {a.runs} seeds; AUCs on the test split (CVR-ES: entire space vs. counterfactual truth)")
    print_table(summary, [("train", "train/s", 10), ("predict", "predict/s", 11), ("rss", "RSS MB", 8)], keys, 22)
    if best_train:
        f = summary["funnel"]
        print(f"\ntraining ratio funnel / {best_train}: {f['train'] / summary[best_train]['train']:.2f}x")
        print(f"predict ratio  funnel / {best_predict}: {f['predict'] / summary[best_predict]['predict']:.2f}x")
        train_ratio, predict_ratio = f['train'] / summary[best_train]['train'], f['predict'] / summary[best_predict]['predict']
        print(f"FP32 targets: training >= 2.5x best PyTorch: {'met' if train_ratio >= 2.5 else 'NOT met'} ({train_ratio:.2f}x); "
              f"predict >= 3x: {'met' if predict_ratio >= 3 else 'NOT met'} ({predict_ratio:.2f}x)")
        batches = sorted({r["predict_batch"] for r in results[best_predict]})
        print(f"  predict batches: funnel {FUNNEL_PREDICT_BATCH} rows per forward per worker; PyTorch timed at 1024 and 4096 "
              f"per seed, its faster one kept (chosen: {', '.join(map(str, batches))})")
        if "funnel-bf16" in summary and "pytorch-sparse-adam-bf16" in summary:
            b, tb = summary["funnel-bf16"], summary["pytorch-sparse-adam-bf16"]
            r = b["train"] / summary[best_train]["train"]
            auc = max(abs(b[k] - f[k]) for k in ["auc_ctr", "auc_ctcvr"] if b[k] is not None and f[k] is not None)
            print(f"bf16 targets: training >= 3.5x best PyTorch FP32: {'met' if r >= 3.5 else 'NOT met'} ({r:.2f}x); "
                  f"ahead of PyTorch bf16 autocast: {'yes' if b['train'] > tb['train'] else 'NO'} ({b['train'] / tb['train']:.2f}x train, "
                  f"{b['predict'] / tb['predict']:.2f}x predict); CTR/CTCVR AUCs within 0.003 of Funnel FP32: "
                  f"{'yes' if auc <= 0.003 else 'NO'} (max gap {auc:.4f}; all gaps: "
                  + ", ".join(f"{k} {b[k] - f[k]:+.4f}" for k in keys if b[k] is not None and f[k] is not None) + ")")
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
    peaks = measure_peaks(a.threads, a.out)
    print(f"GEMM work: {fwd / 1e6:.3f} MFLOP/sample forward; measured peak at {a.threads} threads (oneDNN {peaks['onednn']} "
          f"matmul loop, 2000x274x200, one worker per thread): FP32 {peaks['fp32']:.0f} GFLOP/s, bf16 {peaks['bf16']:.0f} GFLOP/s "
          f"(one call on all threads: {peaks['fp32_one_call']:.0f} / {peaks['bf16_one_call']:.0f}; dnnl_sgemm {peaks['sgemm_workers']:.0f})")
    if best_predict:
        need = 3 * fwd * summary[best_predict]["predict"] / 1e9
        print(f"  FP32 predict >= 3x {best_predict} needs {need:.0f} GFLOP/s of forward GEMMs alone: "
              f"{100 * need / peaks['fp32']:.0f}% of the measured FP32 peak, before any gather, activation or sigmoid")
    for name in [n for n in summary if n.startswith("funnel")]:
        f = summary[name]
        kind = "bf16" if name.endswith("bf16") else "fp32"
        print(f"  {name}: training {3 * fwd * f['train'] / 1e9:.0f} GFLOP/s ({3 * fwd * f['train'] / 1e7 / peaks[kind]:.0f}% of the "
              f"{kind.upper()} peak), predict {fwd * f['predict'] / 1e9:.0f} GFLOP/s ({fwd * f['predict'] / 1e7 / peaks[kind]:.0f}%)")
    return {"runs": results, "summary": summary, "parity": parity, "forward_flops_per_sample": fwd, "peaks_gflops": peaks}


# Rows a Funnel worker runs through the network at once in `funnel predict` (TrainedModel.predictionBatch).
FUNNEL_PREDICT_BATCH = 1024


def measure_peaks(threads, out_dir):
    """This machine's GEMM peak in the same run: `bench/gemm_peak.c` (compiled here with gcc
    against oneDNN) loops oneDNN matmul primitives on the towers' largest shape, FP32 and bf16
    inputs, both on all threads in one call and as one single-threaded worker per thread (Funnel's
    arrangement), plus `dnnl_sgemm` as Funnel calls it."""
    exe = os.path.join(out_dir, "gemm_peak")
    subprocess.run(["gcc", "-O2", "-fopenmp", os.path.join(HERE, "gemm_peak.c"), "-o", exe, "-ldnnl"], check=True)
    r = run_json([exe, str(threads), "1.5"])
    return {"fp32": r["fp32_workers"], "bf16": r["bf16_workers"], "fp32_one_call": r["fp32_one_call"],
            "bf16_one_call": r["bf16_one_call"], "sgemm_workers": r["sgemm_workers"], "onednn": r["onednn"]}


def raw_scenario(a):
    """Raw Ali-CCP (skeleton + common features, behaviour lists with weights): Funnel's pooled
    ESMM on its prepared cache vs a PyTorch ESMM with nn.EmbeddingBag(mode="sum",
    per_sample_weights) + SparseAdam on the same rows; and Funnel fed one value per field (each
    list's last value, as processed copies keep it) to show what pooling gains."""
    data = os.path.join(a.out, f"raw-{a.raw_rows}")
    if not os.path.exists(os.path.join(data, "test_truth.csv")):
        subprocess.run([a.funnel, "simulate", "--layout", "ali-ccp-raw", "--rows", str(a.raw_rows), "--seed", "7",
                        "--out", data], check=True)
    f = lambda name: os.path.join(data, name)
    prep = {}
    for part in ("train", "test"):
        prep[part] = run_json([a.funnel, "prepare", "--layout", "ali-ccp", "--data", f(f"sample_skeleton_{part}.csv"),
                               "--common", f(f"common_features_{part}.csv"), "--out", f(f"{part}.fcache"), "--force", "--json"])
    keys = ["auc_ctr", "auc_cvr", "auc_ctcvr", "auc_cvr_entire_space"]
    poolings = ["sum", "mean"]
    results = {**{f"funnel-pooled-{p}": [] for p in poolings}, "funnel-last-value": [],
               **{f"pytorch-embeddingbag-{p}": [] for p in poolings}}
    for seed in range(1, a.runs + 1):
        runs = [(f"funnel-pooled-{p}", f("train.fcache"), f("test.fcache"), ["--pooling", p]) for p in poolings]
        for name, train, test, extra in runs + [("funnel-last-value", f("train_last_value.csv"), f("test_last_value.csv"), [])]:
            model = os.path.join(a.out, f"raw-{name}-{seed}")
            t = run_json([a.funnel, "train", "--train", train, "--model", "esmm", "--out", model,
                          "--threads", str(a.threads), "--seed", str(seed), "--json"] + extra)
            e = run_json([a.funnel, "eval", "--model", model, "--data", test, "--truth", f("sample_skeleton_test_truth.csv"),
                          "--threads", str(a.threads), "--json"])
            results[name].append({"train": t["train_samples_per_second"], "rss": t["peak_rss_mb"], **{k: e.get(k) for k in keys}})
        for p in poolings:
            r = run_json([sys.executable, os.path.join(HERE, "torch_esmm_bag.py"), "--train-skeleton", f("sample_skeleton_train.csv"),
                          "--train-common", f("common_features_train.csv"), "--test-skeleton", f("sample_skeleton_test.csv"),
                          "--test-common", f("common_features_test.csv"), "--truth", f("sample_skeleton_test_truth.csv"),
                          "--threads", str(a.threads), "--seed", str(seed), "--pooling", p])
            results[f"pytorch-embeddingbag-{p}"].append({"train": r["train_samples_per_second"], "rss": r["peak_rss_mb"],
                                                         **{k: r.get(k) for k in keys}})
            print(f"raw seed {seed} ({p}): funnel {results[f'funnel-pooled-{p}'][-1]['train']:.0f}, "
                  f"pytorch {r['train_samples_per_second']:.0f} samples/s", file=sys.stderr)
    summary = {name: {k: mean([x[k] for x in rs]) for k in ["train", "rss"] + keys} for name, rs in results.items()}
    p = prep["train"]
    print(f"\nraw Ali-CCP ESMM, {a.raw_rows} simulated impressions ({p['shared_records']} common-feature lines in train), "
          f"{a.threads} threads, mean of {a.runs} seeds")
    print(f"prepare (train): {p['source_bytes'] / 1e6:.1f} MB in {p['seconds']:.1f} s = {p['source_mb_per_second']:.1f} MB/s, "
          f"peak RSS {p['peak_rss_mb']:.0f} MB")
    print_table(summary, [("train", "train/s", 10), ("rss", "RSS MB", 8)], keys, 24)
    lv = summary["funnel-last-value"]
    for p in poolings:
        fn, tn = f"funnel-pooled-{p}", f"pytorch-embeddingbag-{p}"
        fp, tp = summary[fn], summary[tn]
        print(f"\n{p} pooling: training ratio funnel / pytorch-embeddingbag: {fp['train'] / tp['train']:.2f}x")
        print("  AUC gaps funnel - pytorch: " + ", ".join(
            f"{k} {fp[k] - tp[k]:+.4f} ± {1.96 * gap_se(results[fn], results[tn], k):.4f}"
            for k in keys if fp[k] is not None and tp[k] is not None))
        print("  AUC gains of pooling (funnel pooled - funnel last value): " + ", ".join(
            f"{k} {fp[k] - lv[k]:+.4f}" for k in keys if fp[k] is not None and lv[k] is not None))
    return {"runs": results, "summary": summary, "prepare": prep}


def distributed_scenario(a):
    """Data-parallel training on this machine: one process vs `mpirun -np 2`, one thread per rank,
    same data, seed and global batch; samples/s, bytes per step rank 0 sends (dense, sparse), time
    in collectives, peak RSS, test AUCs."""
    data = os.path.join(a.out, f"data-{a.rows}-1")
    if not os.path.exists(os.path.join(data, "test_truth.csv")):
        subprocess.run([a.funnel, "simulate", "--rows", str(a.rows), "--seed", "7", "--out", data], check=True)
    train, test = os.path.join(data, "train.csv"), os.path.join(data, "test.csv")
    rows = []
    for ranks in (1, 2):
        model = os.path.join(a.out, f"dp-{ranks}")
        cmd = [a.funnel, "train", "--train", train, "--model", "esmm", "--out", model, "--threads", "1", "--seed", "1", "--json"]
        if ranks > 1:
            cmd = ["mpirun", "--allow-run-as-root", "--oversubscribe", "--bind-to", "none", "-np", str(ranks)] + cmd
        t = run_json(cmd)
        e = run_json([a.funnel, "eval", "--model", model, "--data", test, "--json"])
        d = t.get("distributed") or {}
        rows.append({"ranks": ranks, "train": t["train_samples_per_second"], "seconds": t["seconds"], "rss": t["peak_rss_mb"],
                     "dense": d.get("dense_bytes_per_step"), "sparse": d.get("sparse_bytes_per_step"), "comm": d.get("seconds"),
                     "auc_ctr": e.get("auc_ctr"), "auc_ctcvr": e.get("auc_ctcvr")})
    print(f"\ndata-parallel ESMM, {a.rows} simulated rows, one thread per rank (mpirun -np 2 vs one process)")
    print(f"{'ranks':>6}{'train/s':>10}{'dense B/step':>14}{'sparse B/step':>15}{'comm s':>8}{'of s':>7}{'RSS MB':>8}{'AUC ctr':>9}{'AUC ctcvr':>10}")
    for r in rows:
        f = lambda v, spec: format(v, spec) if v is not None else "-".rjust(len(format(0, spec)))
        print(f"{r['ranks']:>6}{r['train']:>10.0f}{f(r['dense'], '14.0f')}{f(r['sparse'], '15.0f')}{f(r['comm'], '8.2f')}"
              f"{r['seconds']:>7.1f}{r['rss']:>8.0f}{r['auc_ctr']:>9.4f}{r['auc_ctcvr']:>10.4f}")
    print(f"speed-up of 2 ranks: {rows[1]['train'] / rows[0]['train']:.2f}x")
    return {"runs": rows}


if __name__ == "__main__":
    main()
