#!/usr/bin/env python3
"""The demo's first table: ESMM vs BASE from `funnel experiment --out DIR` (DIR/results.json),
on the paper's metrics (esmm-sigir2018 Table 2: CVR AUC on clicked impressions, CTCVR AUC on all
impressions) plus CTR AUC and the entire-space CVR AUC only a simulator can measure, mean ± std
over the runs, the experiment's Welch t-test verdict on CVR AUC, and one line saying whether the
paper's ordering holds here and, if not, why."""
import json, sys

results = json.load(open(sys.argv[1]))
summary = results["summary"]
rows = {r["model"]: r for r in summary["rows"]}
metrics = [("auc_ctr", "AUC CTR"), ("auc_cvr", "AUC CVR"), ("auc_ctcvr", "AUC CTCVR"), ("auc_cvr_entire_space", "AUC CVR-ES")]
runs = min(r["metrics"]["auc_cvr"]["n"] for r in rows.values())
print(f"ESMM vs BASE, {runs} seeds each (mean ± std); CVR on clicked impressions, CTR and CTCVR on all, CVR-ES on all against the simulator's truth")
print(f"{'model':6}" + "".join(f"  {title:>16}" for _, title in metrics) + "  better on AUC CVR (Welch t, p<0.01)")
for name in ["esmm", "base"]:
    m = rows[name]["metrics"]
    cells = "".join(f"  {m[k]['mean']:.4f} ± {m[k]['std']:.4f}" for k, _ in metrics)
    print(f"{name:6}{cells}  {', '.join(rows[name]['betterThan']) or '-'}")
e, b = rows["esmm"]["metrics"], rows["base"]["metrics"]
d_cvr, d_ctcvr = e["auc_cvr"]["mean"] - b["auc_cvr"]["mean"], e["auc_ctcvr"]["mean"] - b["auc_ctcvr"]["mean"]
significant = "base" in rows["esmm"]["betterThan"]
if significant and d_ctcvr > 0:
    print(f"The paper's ordering holds: ESMM beats BASE on CVR AUC ({d_cvr:+.4f}, significant) and CTCVR AUC ({d_ctcvr:+.4f}).")
else:
    print(f"The paper's ordering does not show here (CVR AUC {d_cvr:+.4f}{'' if significant else ', within the seed noise'}, "
          f"CTCVR AUC {d_ctcvr:+.4f}): too few training conversions for the difference to exceed the seed noise; raise DEMO_ROWS.")
