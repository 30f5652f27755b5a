#!/usr/bin/env python3
"""Request sharing measured (docs/request-sharing.md): raw Ali-CCP-layout data at a few
impressions per common-feature record, ESMM and MMoE, FP32 and bf16, the same binary with and
without sharing (`--no-request-sharing`), in one run: training samples/s, predict rows/s (the
forward passes) and end to end, test AUCs, and the ratios — beside the ceiling the model's
shape allows (the share of the per-impression FLOPs that are the request's).

    bench/run.sh FUNNEL --only-request-sharing [--sharing-rows N] [--sharing-ratios 12,50]
"""
import json, os, subprocess, time


def run_json(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def prepare(a, ratio):
    d = os.path.join(a.out, f"sharing-{a.sharing_rows}-{ratio}")
    if not os.path.exists(os.path.join(d, "test.fcache")):
        subprocess.run([a.funnel, "simulate", "--layout", "ali-ccp-raw", "--rows", str(a.sharing_rows), "--test-fraction", "0.2",
                        "--impressions-per-request", str(ratio), "--out", d], check=True, capture_output=True)
        for part in ("train", "test"):
            subprocess.run([a.funnel, "prepare", "--layout", "ali-ccp", "--data", f"{d}/sample_skeleton_{part}.csv",
                            "--common", f"{d}/common_features_{part}.csv", "--out", f"{d}/{part}.fcache"], check=True, capture_output=True)
    return d


def ceiling(model_dir, rows_per_request):
    """Per-impression multiply-adds of one step's forward with and without sharing, from the
    saved configuration and schema: the first layers reading the concatenation split, the rest
    stays per impression (the embedding lookups are not counted)."""
    m = json.load(open(os.path.join(model_dir, "model.json")))
    c, fields = m["config"], [f["name"] for f in m["schema"]["fields"]]
    dim = c["embedding_dim"]
    request = {"101", "121", "122", "124", "125", "126", "127", "128", "129", "109_14", "110_14", "127_14", "150_14"}
    e = len(fields) * dim + len(m["schema"].get("dense", []))
    er = sum(dim for f in fields if f in request)
    hidden = c["hidden"]
    towers = 2
    def mlp(inp, sizes):
        total, last = 0, inp
        for h in sizes:
            total += last * h
            last = h
        return total
    if c.get("trunk", "esmm") == "mmoe":
        k, eh = c["experts"], c["expert_hidden"]
        first = k * eh[0] + towers  # experts' first layers and the gates read the concatenation
        rest = k * mlp(eh[0], eh[1:]) + towers * mlp(eh[-1], hidden + [1])
    else:
        first = towers * hidden[0]
        rest = towers * mlp(hidden[0], hidden[1:] + [1])
    unshared = e * first + rest
    shared = (e - er) * first + er * first / rows_per_request + rest
    return {"request_share_of_flops": er * first / unshared, "ceiling": unshared / shared}


def request_sharing_scenario(a):
    results = []
    ratios = [int(r) for r in str(a.sharing_ratios).split(",") if r]
    for ratio in ratios:
        d = prepare(a, ratio)
        for arch in ("esmm", "mmoe"):
            for precision in ("fp32", "bf16"):
                row = {"ratio": ratio, "arch": arch, "precision": precision}
                for mode, flag in (("shared", []), ("unshared", ["--no-request-sharing"])):
                    model = os.path.join(d, f"m-{arch}-{precision}-{mode}")
                    common = ["--threads", str(a.threads), "--precision", precision] + flag
                    t = run_json([a.funnel, "train", "--train", f"{d}/train.fcache", "--model", "esmm", "--arch", arch, "--pooling", "mean",
                                  "--out", model, "--json", "--force"] + common)
                    # Predict over the training cache (800k rows at the default size): the test cache's
                    # forward passes take a fraction of a second, too short to time.
                    start = time.time()
                    p = run_json([a.funnel, "predict", "--model", model, "--data", f"{d}/train.fcache", "--out", model + ".csv", "--force",
                                  "--json"] + common)
                    wall = time.time() - start
                    e = run_json([a.funnel, "eval", "--model", model, "--data", f"{d}/test.fcache", "--truth",
                                  f"{d}/sample_skeleton_test_truth.csv", "--json", "--threads", str(a.threads)] + flag)
                    e = e[0] if isinstance(e, list) else e
                    row[mode] = {"train_samples_per_second": t["train_samples_per_second"],
                                 "predict_rows_per_second": p["predict_rows_per_second"], "predict_seconds_end_to_end": wall,
                                 "rows_per_request": (t.get("request_sharing") or {}).get("rows_per_request"),
                                 **{k: e.get(k) for k in ("auc_ctr", "auc_cvr", "auc_ctcvr", "auc_cvr_entire_space")}}
                    if mode == "shared":
                        row["ceiling"] = ceiling(model, row["shared"]["rows_per_request"] or ratio)
                row["train_ratio"] = row["shared"]["train_samples_per_second"] / row["unshared"]["train_samples_per_second"]
                row["predict_ratio"] = row["shared"]["predict_rows_per_second"] / row["unshared"]["predict_rows_per_second"]
                results.append(row)
                print_row(row)
    return results


def print_row(r):
    s, u, c = r["shared"], r["unshared"], r["ceiling"]
    print(f"| {r['ratio']} ({s['rows_per_request']:.1f}) | {r['arch']} | {r['precision']} "
          f"| {u['train_samples_per_second']:,.0f} → {s['train_samples_per_second']:,.0f} (×{r['train_ratio']:.2f}) "
          f"| {u['predict_rows_per_second']:,.0f} → {s['predict_rows_per_second']:,.0f} (×{r['predict_ratio']:.2f}) "
          f"| {u['predict_seconds_end_to_end']:.2f} → {s['predict_seconds_end_to_end']:.2f} s "
          f"| ×{c['ceiling']:.2f} ({c['request_share_of_flops']:.0%}) "
          f"| {u['auc_ctcvr']:.4f} / {s['auc_ctcvr']:.4f} | {u['auc_cvr_entire_space']:.4f} / {s['auc_cvr_entire_space']:.4f} |", flush=True)
