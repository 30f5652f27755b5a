#!/usr/bin/env python3
"""PyTorch ESMM of the same shape as Funnel's, for side-by-side benchmarks and AUC parity.

Encoding mirrors Funnel's FeatureSchema exactly: integer columns are categorical with a
per-field vocabulary of the training values (ids 1..n in ascending order, 0 = unseen), decimal
columns are standardised with the training mean and population std (empty -> 0). The network:
one shared embedding table (N(0, 0.05) init, like Funnel), CTR and CVR towers
Linear-ReLU-...-Linear(1) with PyTorch's default Linear init, loss BCE(click, pCTR) +
BCE(click*conversion, pCTR*pCVR) averaged over the batch, Adam(lr, 0.9, 0.999, 1e-8).

--optimizer adam:        dense Adam on everything (updates the whole table every step)
--optimizer sparse-adam: SparseAdam on the embedding (sparse gradients), Adam on the towers

Prints one JSON object.
"""
import argparse, json, os, resource, time
import numpy as np
import torch
import torch.nn as nn


def read_csv(path):
    with open(path) as f:
        header = f.readline().strip().split(",")
    data = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64)
    return header, data


def is_integer_column(col):
    return np.all(np.floor(col) == col)


def auc(scores, labels):
    """Exact ROC-AUC with mid-rank ties (Mann-Whitney)."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels) > 0.5
    npos, nneg = labels.sum(), (~labels).sum()
    if npos == 0 or nneg == 0:
        return None
    order = np.argsort(scores, kind="mergesort")
    s = scores[order]
    ranks = np.empty(len(s))
    i = 0
    n = len(s)
    # mid-ranks for ties
    boundaries = np.flatnonzero(np.diff(s)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [n]])
    mid = (starts + ends - 1) / 2.0 + 1
    ranks_sorted = np.repeat(mid, ends - starts)
    ranks[order] = ranks_sorted
    return float((ranks[labels].sum() - npos * (npos + 1) / 2) / (npos * nneg))


def logloss(p, y):
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-7, 1 - 1e-7)
    y = np.asarray(y, dtype=np.float64)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))) if len(y) else None


def add_shape_arguments(ap):
    """The hyperparameters both PyTorch peers share, with Funnel's defaults (the bench compares
    models of the same shape)."""
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=2000)
    ap.add_argument("--predict-batches", default="4096",
                    help="comma-separated predict batch sizes; each is timed, the fastest is reported")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--embedding-dim", type=int, default=18)
    ap.add_argument("--hidden", default="200,80")
    ap.add_argument("--seed", type=int, default=1)


def esmm_step(lc, lv, click, ctcvr, opts, bce_logits):
    """One ESMM optimiser step on a batch's tower logits: BCE(click, pCTR) + BCE(click*conversion,
    pCTR*pCVR), batch means; every optimiser steps. Returns the loss tensor."""
    p = torch.clamp(torch.sigmoid(lc) * torch.sigmoid(lv), 1e-7, 1 - 1e-7)
    loss = bce_logits(lc, click) - torch.mean(ctcvr * torch.log(p) + (1 - ctcvr) * torch.log(1 - p))
    for o in opts:
        o.zero_grad(set_to_none=True)
    loss.backward()
    for o in opts:
        o.step()
    return loss


class ESMM(nn.Module):
    def __init__(self, rows, fields, dense, dim, hidden, sparse):
        super().__init__()
        self.embedding = nn.Embedding(rows, dim, sparse=sparse)
        nn.init.normal_(self.embedding.weight, 0.0, 0.05)
        width = fields * dim + dense

        def tower():
            layers, w = [], width
            for h in hidden:
                layers += [nn.Linear(w, h), nn.ReLU()]
                w = h
            layers.append(nn.Linear(w, 1))
            return nn.Sequential(*layers)

        self.ctr = tower()
        self.cvr = tower()

    def forward(self, ids, dense):
        x = torch.cat([self.embedding(ids).flatten(1), dense], dim=1)
        return self.ctr(x).squeeze(1), self.cvr(x).squeeze(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", required=True)
    ap.add_argument("--test", required=True)
    ap.add_argument("--truth")
    ap.add_argument("--optimizer", choices=["adam", "sparse-adam"], default="sparse-adam")
    add_shape_arguments(ap)
    ap.add_argument("--no-shuffle", action="store_true")
    ap.add_argument("--autocast-bf16", action="store_true",
                    help='forward passes under torch.autocast("cpu", dtype=torch.bfloat16) (bf16 matmuls, FP32 weights and optimizer)')
    ap.add_argument("--init-from", help="Funnel model directory whose weights initialise the network (parity checks)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)

    header, train = read_csv(a.train)
    _, test = read_csv(a.test)
    ci, vi = header.index("click"), header.index("purchase")
    feats = [j for j in range(len(header)) if j not in (ci, vi)]
    cat = [j for j in feats if is_integer_column(train[:, j])]
    den = [j for j in feats if j not in cat]

    offsets, vocabs, total = [], [], 0
    for j in cat:
        values = np.unique(train[:, j])
        vocabs.append(values)
        offsets.append(total)
        total += len(values) + 1

    def encode(data):
        ids = np.zeros((len(data), len(cat)), dtype=np.int64)
        for k, j in enumerate(cat):
            pos = np.searchsorted(vocabs[k], data[:, j])
            pos_clipped = np.minimum(pos, len(vocabs[k]) - 1)
            found = vocabs[k][pos_clipped] == data[:, j]
            ids[:, k] = offsets[k] + np.where(found, pos_clipped + 1, 0)
        return ids

    mean = train[:, den].mean(axis=0)
    std = train[:, den].std(axis=0)
    std[std < 1e-12] = 1
    tr_ids, te_ids = torch.from_numpy(encode(train)), torch.from_numpy(encode(test))
    tr_dense = torch.from_numpy(((train[:, den] - mean) / std).astype(np.float32))
    te_dense = torch.from_numpy(((test[:, den] - mean) / std).astype(np.float32))
    click = torch.from_numpy(train[:, ci].astype(np.float32))
    ctcvr = torch.from_numpy((train[:, ci] * train[:, vi]).astype(np.float32))

    hidden = [int(h) for h in a.hidden.split(",")]
    sparse = a.optimizer == "sparse-adam"
    model = ESMM(total, len(cat), len(den), a.embedding_dim, hidden, sparse)
    if a.init_from:
        from safetensors.numpy import load_file
        w = load_file(os.path.join(a.init_from, "weights.safetensors"))
        sd = {"embedding.weight": w["embedding"]}
        for t in ("ctr", "cvr"):
            for i in range(len(hidden) + 1):
                sd[f"{t}.{2 * i}.weight"] = w[f"{t}.tower.{i}.weight"]
                sd[f"{t}.{2 * i}.bias"] = w[f"{t}.tower.{i}.bias"]
        model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in sd.items()})
    if sparse:
        opts = [torch.optim.SparseAdam([model.embedding.weight], lr=a.lr),
                torch.optim.Adam(list(model.ctr.parameters()) + list(model.cvr.parameters()), lr=a.lr)]
    else:
        opts = [torch.optim.Adam(model.parameters(), lr=a.lr)]
    bce_logits = nn.BCEWithLogitsLoss()

    n = len(train)
    start = time.perf_counter()
    samples = 0
    loss_sum = 0.0
    for _ in range(a.epochs):
        loss_sum = 0.0
        perm = torch.arange(n) if a.no_shuffle else torch.from_numpy(rng.permutation(n))
        for s in range(0, n, a.batch_size):
            idx = perm[s:s + a.batch_size]
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.autocast_bf16):
                lc, lv = model(tr_ids[idx], tr_dense[idx])
            loss = esmm_step(lc.float(), lv.float(), click[idx], ctcvr[idx], opts, bce_logits)
            samples += len(idx)
            loss_sum += float(loss.detach()) * len(idx)
    train_seconds = time.perf_counter() - start

    model.eval()
    predict_rates = {}
    for pb in [int(b) for b in a.predict_batches.split(",")]:
        start = time.perf_counter()
        pctr, pcvr = [], []
        with torch.no_grad():
            for s in range(0, len(test), pb):
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.autocast_bf16):
                    lc, lv = model(te_ids[s:s + pb], te_dense[s:s + pb])
                pctr.append(torch.sigmoid(lc.float())); pcvr.append(torch.sigmoid(lv.float()))
        predict_rates[pb] = len(test) / (time.perf_counter() - start)
    predict_batch = max(predict_rates, key=predict_rates.get)
    pctr = torch.cat(pctr).numpy(); pcvr = torch.cat(pcvr).numpy()
    pctcvr = pctr * pcvr
    c, v = test[:, ci], test[:, vi]
    clicked = c == 1
    out = {
        "peer": "pytorch-" + a.optimizer, "torch": torch.__version__, "threads": a.threads,
        "train_samples_per_second": samples / train_seconds, "train_seconds": train_seconds,
        "predict_rows_per_second": predict_rates[predict_batch], "predict_batch": predict_batch,
        "predict_rows_per_second_by_batch": {str(b): r for b, r in predict_rates.items()},
        "auc_ctr": auc(pctr, c), "auc_cvr": auc(pcvr[clicked], v[clicked]), "auc_ctcvr": auc(pctcvr, c * v),
        "logloss_ctr": logloss(pctr, c), "logloss_cvr": logloss(pcvr[clicked], v[clicked]),
        "logloss_ctcvr": logloss(pctcvr, c * v),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "embedding_rows": total,
        "final_loss": loss_sum / n,
    }
    if a.truth:
        cf = np.loadtxt(a.truth, delimiter=",", skiprows=1, usecols=2)
        out["auc_cvr_entire_space"] = auc(pcvr, cf)
        out["logloss_cvr_entire_space"] = logloss(pcvr, cf)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
