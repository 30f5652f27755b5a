#!/usr/bin/env python3
"""PyTorch ESMM on raw Ali-CCP files (sample skeleton + common features) with pooled
multi-valued fields: one nn.EmbeddingBag(mode="sum") over every field, each value weighted by
its feature value (per_sample_weights), SparseAdam on the table and Adam on the towers — the
shape of Funnel's pooled ESMM, for `make bench`.

Encoding mirrors Funnel's: every field id is a field (sorted by name); per field, a
vocabulary of the values seen in training (ids 1..n in ascending order, 0 = unseen or empty);
a single-valued field is a bag of one value with weight 1; a row's bag of a field is its own
values plus its md5's common values. Towers, loss and optimiser as in torch_esmm.py.
Towers, loss and optimiser step are torch_esmm.py's (`esmm_step`). Preprocessing (parsing, encoding, CSR build) is not timed; the training loop (per-epoch
shuffle gather included) and prediction are. Prints one JSON object.
"""
import argparse, json, resource, time
import numpy as np
import torch
import torch.nn as nn

from torch_esmm import add_shape_arguments, auc, esmm_step, logloss


def parse(line):
    out = []
    if line:
        for feat in line.split("\x01"):
            field, rest = feat.split("\x02", 1)
            fid, value = rest.split("\x03", 1)
            out.append((field, int(fid), float(value)))
    return out


def read_raw(skeleton, common):
    records, index = [], {}
    with open(common) as f:
        for line in f:
            md5, _, feats = line.rstrip("\n").split(",", 2)
            index[md5] = len(records)
            records.append(parse(feats))
    rows, click, buy, rec = [], [], [], []
    with open(skeleton) as f:
        for line in f:
            _, c, b, md5, _, feats = line.rstrip("\n").split(",", 5)
            rows.append(parse(feats))
            click.append(float(c)); buy.append(float(b)); rec.append(index[md5])
    return records, rows, np.array(click, np.float32), np.array(buy, np.float32), np.array(rec, np.int64)


def grouped(features, field_index, vocabs, offsets):
    """(field, global id, weight, rank within field) arrays of one feature list, plus counts per field."""
    F = len(field_index)
    counts = np.zeros(F, np.int64)
    fs, ids, ws, ranks = [], [], [], []
    for field, fid, w in features:
        k = field_index.get(field)
        if k is None:
            continue
        v = vocabs[k]
        pos = np.searchsorted(v, fid)
        local = pos + 1 if pos < len(v) and v[pos] == fid else 0
        fs.append(k); ids.append(offsets[k] + local); ws.append(w); ranks.append(counts[k]); counts[k] += 1
    return (np.array(fs, np.int64), np.array(ids, np.int64), np.array(ws, np.float32), np.array(ranks, np.int64)), counts


def csr(rows_part, records_part, rec, F):
    """Per (row, field) bags: a row's values of a field are its own, then its record's."""
    R = len(rows_part)
    row_counts = np.stack([c for _, c in rows_part]) if R else np.zeros((0, F), np.int64)
    rec_counts = np.stack([c for _, c in records_part])
    total = row_counts + rec_counts[rec]
    offsets = np.zeros(R * F + 1, np.int64)
    np.cumsum(total.reshape(-1), out=offsets[1:])
    ids = np.zeros(offsets[-1], np.int64)
    ws = np.zeros(offsets[-1], np.float32)

    def place(parts, owner, extra):
        lens = np.array([len(p[0][0]) for p in parts], np.int64)
        cat = [np.concatenate([p[0][j] for p in parts]) if len(parts) else np.zeros(0) for j in range(4)]
        starts = np.concatenate([[0], np.cumsum(lens)[:-1]])
        own_lens = lens[owner]
        flat = np.repeat(starts[owner] - np.concatenate([[0], np.cumsum(own_lens)[:-1]]), own_lens) + np.arange(own_lens.sum())
        row = np.repeat(np.arange(len(owner)), own_lens)
        f = cat[0][flat].astype(np.int64)
        pos = offsets[row * F + f] + extra(row, f) + cat[3][flat].astype(np.int64)
        ids[pos] = cat[1][flat]
        ws[pos] = cat[2][flat]

    place(rows_part, np.arange(R), lambda r, f: 0)
    place(records_part, rec, lambda r, f: row_counts[r, f])
    return offsets, ids, ws


class TargetAttention(nn.Module):
    """DIN's activation unit and pooling, the shapes of Funnel's `TargetAttention`: z = [e, q,
    e − q, e ⊙ q] → Linear(4d, h) → ReLU → Linear(h, 1) = s; a = s (unnormalised) or softmax of s
    within the row's list; p = Σ w·a·e. Every value of the batch in one matrix."""

    def __init__(self, dim, hidden, normalize):
        super().__init__()
        self.unit = nn.Sequential(nn.Linear(4 * dim, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        self.normalize = normalize

    def forward(self, e, q, w, row, rows):
        qv = q[row]
        s = self.unit(torch.cat([e, qv, e - qv, e * qv], dim=1)).squeeze(1)
        if self.normalize:
            top = torch.full((rows,), -float("inf")).scatter_reduce(0, row, s, reduce="amax", include_self=True)
            x = torch.exp(s - top[row])
            s = x / torch.zeros(rows).index_add(0, row, x)[row]
        return torch.zeros(rows, e.shape[1]).index_add(0, row, (w * s).unsqueeze(1) * e)


class ESMM(nn.Module):
    def __init__(self, rows, fields, dim, hidden, attention=None, attention_hidden=36, normalize=False):
        super().__init__()
        self.embedding = nn.EmbeddingBag(rows, dim, mode="sum", sparse=True)
        nn.init.normal_(self.embedding.weight, 0.0, 0.05)
        self.fields, self.dim = fields, dim
        # list field index → query field index; each list its own unit.
        self.attention = dict(attention or {})
        self.units = nn.ModuleDict({str(f): TargetAttention(dim, attention_hidden, normalize) for f in self.attention})

        def tower():
            layers, w = [], fields * dim
            for h in hidden:
                layers += [nn.Linear(w, h), nn.ReLU()]
                w = h
            layers.append(nn.Linear(w, 1))
            return nn.Sequential(*layers)

        self.ctr, self.cvr = tower(), tower()

    def forward(self, ids, offsets, weights):
        x = self.embedding(ids, offsets, per_sample_weights=weights).view(-1, self.fields, self.dim)
        if self.attention:
            # Attended lists: their pooled sum is replaced by the attention pooling of their values.
            rows = x.shape[0]
            ends = torch.cat([offsets[1:], torch.tensor([ids.shape[0]])])
            lens = ends - offsets
            parts = list(x.unbind(1))
            for f, qf in self.attention.items():
                bags = torch.arange(rows) * self.fields + f
                n = lens[bags]
                pos = torch.repeat_interleave(offsets[bags] - torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(n, 0)[:-1]]), n) \
                    + torch.arange(int(n.sum()))
                row = torch.repeat_interleave(torch.arange(rows), n)
                e = nn.functional.embedding(ids[pos], self.embedding.weight, sparse=True)
                parts[f] = self.units[str(f)](e, x[:, qf], weights[pos], row, rows)
            x = torch.stack(parts, dim=1)
        x = x.reshape(-1, self.fields * self.dim)
        return self.ctr(x).squeeze(1), self.cvr(x).squeeze(1)


def batch(offsets, ids, ws, rows, F):
    """The bags of `rows` (in that order) as EmbeddingBag inputs."""
    b = (rows[:, None] * F + np.arange(F)[None, :]).reshape(-1)
    starts, lens = offsets[b], offsets[b + 1] - offsets[b]
    flat = np.repeat(starts - np.concatenate([[0], np.cumsum(lens)[:-1]]), lens) + np.arange(lens.sum())
    bag_offsets = np.concatenate([[0], np.cumsum(lens)[:-1]])
    return torch.from_numpy(ids[flat]), torch.from_numpy(bag_offsets), torch.from_numpy(ws[flat])


def main():
    ap = argparse.ArgumentParser()
    for k in ("train-skeleton", "train-common", "test-skeleton", "test-common"):
        ap.add_argument("--" + k, required=True)
    ap.add_argument("--truth")
    add_shape_arguments(ap)
    ap.add_argument("--pooling", choices=["sum", "mean", "attention"], default="sum",
                    help="mean: each bag's weights divided by their sum (Funnel's weighted mean), still mode='sum'; "
                         "attention: DIN's target attention on the --attention-query lists (others: sum)")
    ap.add_argument("--attention-query", default="", help="LIST=QUERY pairs, comma-separated (Funnel's flag)")
    ap.add_argument("--attention-hidden", type=int, default=36)
    ap.add_argument("--attention-normalize", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)

    tr_records, tr_rows, click, buy, tr_rec = read_raw(a.train_skeleton, a.train_common)
    te_records, te_rows, te_click, te_buy, te_rec = read_raw(a.test_skeleton, a.test_common)
    # Funnel's default --inconsistent drop: buy=1 without a click leaves the training rows.
    keep = ~((click == 0) & (buy == 1))
    fields = sorted({f for r in tr_rows for f, _, _ in r} | {f for r in tr_records for f, _, _ in r})
    field_index = {f: k for k, f in enumerate(fields)}
    values = [set() for _ in fields]
    used = set(tr_rec[keep].tolist())
    for r, k in zip(tr_rows, keep):
        if k:
            for f, fid, _ in r:
                values[field_index[f]].add(fid)
    for e in used:
        for f, fid, _ in tr_records[e]:
            values[field_index[f]].add(fid)
    vocabs = [np.array(sorted(v), np.int64) for v in values]
    offsets, total = [], 0
    for v in vocabs:
        offsets.append(total)
        total += len(v) + 1
    F = len(fields)

    def encode(rows, records, rec):
        return csr([grouped(r, field_index, vocabs, offsets) for r in rows],
                   [grouped(r, field_index, vocabs, offsets) for r in records], rec, F)

    idx = np.flatnonzero(keep)
    tr = encode([tr_rows[i] for i in idx], tr_records, tr_rec[idx])
    te = encode(te_rows, te_records, te_rec)
    if a.pooling == "mean":
        # Weighted mean = weighted sum with each weight divided by its bag's weight sum (bags
        # whose weights sum to 0 pool to zeros, as in Funnel).
        for offsets_, _, ws in (tr, te):
            lens = np.diff(offsets_)
            sums = np.bincount(np.repeat(np.arange(len(lens)), lens), weights=ws, minlength=len(lens))
            per_value = np.repeat(sums, lens)
            ws[:] = np.where(per_value != 0, ws / np.where(per_value != 0, per_value, 1), 0).astype(np.float32)
    click_t, ctcvr_t = torch.from_numpy(click[idx]), torch.from_numpy(click[idx] * buy[idx])

    hidden = [int(h) for h in a.hidden.split(",")]
    attention = {}
    if a.pooling == "attention":
        for pair in a.attention_query.split(","):
            lst, q = pair.split("=")
            attention[field_index[lst]] = field_index[q]
    model = ESMM(total, F, a.embedding_dim, hidden, attention, a.attention_hidden, a.attention_normalize)
    opts = [torch.optim.SparseAdam([model.embedding.weight], lr=a.lr),
            torch.optim.Adam(list(model.ctr.parameters()) + list(model.cvr.parameters()) + list(model.units.parameters()), lr=a.lr)]
    bce_logits = nn.BCEWithLogitsLoss()
    n = len(idx)
    start = time.perf_counter()
    samples = 0
    for _ in range(a.epochs):
        perm = rng.permutation(n)
        for s in range(0, n, a.batch_size):
            rows = perm[s:s + a.batch_size]
            lc, lv = model(*batch(*tr, rows, F))
            esmm_step(lc, lv, click_t[rows], ctcvr_t[rows], opts, bce_logits)
            samples += len(rows)
    train_seconds = time.perf_counter() - start

    model.eval()
    start = time.perf_counter()
    pctr, pcvr = [], []
    m = len(te_rows)
    with torch.no_grad():
        for s in range(0, m, 4096):
            lc, lv = model(*batch(*te, np.arange(s, min(s + 4096, m)), F))
            pctr.append(torch.sigmoid(lc)); pcvr.append(torch.sigmoid(lv))
    predict_seconds = time.perf_counter() - start
    pctr = torch.cat(pctr).numpy().astype(np.float64); pcvr = torch.cat(pcvr).numpy().astype(np.float64)
    clicked = te_click == 1
    out = {
        "peer": "pytorch-embeddingbag-sparse-adam", "pooling": a.pooling, "torch": torch.__version__, "threads": a.threads,
        "train_samples_per_second": samples / train_seconds, "train_seconds": train_seconds,
        "predict_rows_per_second": m / predict_seconds,
        "auc_ctr": auc(pctr, te_click), "auc_cvr": auc(pcvr[clicked], te_buy[clicked]),
        "auc_ctcvr": auc(pctr * pcvr, te_click * te_buy),
        "logloss_ctcvr": logloss(pctr * pcvr, te_click * te_buy),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "embedding_rows": total, "fields": F, "values_per_row": float(tr[1].size) / max(n, 1),
    }
    if a.truth:
        cf = np.loadtxt(a.truth, delimiter=",", skiprows=1, usecols=2)
        out["auc_cvr_entire_space"] = auc(pcvr, cf)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
