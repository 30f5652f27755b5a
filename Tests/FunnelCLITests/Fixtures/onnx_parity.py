"""ONNX Runtime against `funnel predict`: runs an exported model on the rows of a CSV/TSV and
compares pctr/pcvr/pctcvr with the CSV `funnel predict` wrote for the same rows.

    python3 onnx_parity.py MODEL.onnx DATA.csv FUNNEL_PREDICTIONS.csv [--delimiter ,] [--value-separator '|']

Inputs are built from the graph's own input list: int64 / string inputs are categorical columns
(an empty or non-integer cell becomes a value outside any vocabulary), float inputs are dense
(empty → NaN); a multi-valued field FIELD takes its cells split on the value separator, each
`id` or `id:weight`, as FIELD, FIELD.offsets and FIELD.weights. Prints one JSON object.
"""
import argparse
import csv
import json
import math
import sys

import numpy as np
import onnx
import onnxruntime as ort

MISSING = -(2 ** 62)  # no vocabulary holds it: the field's out-of-vocabulary row, as an empty cell


def build_feed(session, header, rows, value_separator="|"):
    """The graph's inputs for `rows` (lists of cells under `header`), from its own input list."""
    col = {name: i for i, name in enumerate(header)}
    types = {i.name: i.type for i in session.get_inputs()}
    feed = {}
    for name in types:
        if name.endswith(".offsets") or name.endswith(".weights"):
            continue
        cells = [r[col[name]].strip() for r in rows]
        if name + ".offsets" in types:
            values, weights, offsets = [], [], [0]
            for c in cells:
                for item in [x for x in c.split(value_separator) if x.strip()] if c else []:
                    key, _, w = item.partition(":")
                    values.append(key.strip())
                    weights.append(float(w) if w else 1.0)
                offsets.append(len(values))
            feed[name + ".offsets"] = np.array(offsets, dtype=np.int64)
            feed[name + ".weights"] = np.array(weights, dtype=np.float32)
            cells = values
        if types[name] == "tensor(int64)":
            def as_int(c):
                try:
                    return int(c)
                except ValueError:
                    return MISSING
            feed[name] = np.array([as_int(c) for c in cells], dtype=np.int64)
        elif types[name] == "tensor(string)":
            feed[name] = np.array(cells, dtype=object)
        else:
            feed[name] = np.array([float(c) if c else math.nan for c in cells], dtype=np.float32)
    return feed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("data")
    ap.add_argument("predictions")
    ap.add_argument("--delimiter", default=None)
    ap.add_argument("--value-separator", default="|")
    a = ap.parse_args()
    model = onnx.load(a.model)
    onnx.checker.check_model(model, full_check=True)
    meta = {p.key: p.value for p in model.metadata_props}
    with open(a.data, newline="") as f:
        text = f.read()
    delimiter = a.delimiter or ("\t" if "\t" in text.splitlines()[0] else ",")
    rows = list(csv.reader(text.splitlines(), delimiter=delimiter))
    header, rows = rows[0], [r for r in rows[1:] if r]
    session = ort.InferenceSession(a.model, providers=["CPUExecutionProvider"])
    feed = build_feed(session, header, rows, a.value_separator)
    out = dict(zip([o.name for o in session.get_outputs()], session.run(None, feed)))
    with open(a.predictions, newline="") as f:
        expected = list(csv.DictReader(f))
    result = {"rows": len(rows), "model": meta.get("funnel.model"), "checker": "ok", "max_abs_diff": {}, "nan_mismatch": {}}
    for k in ("pctr", "pcvr", "pctcvr"):
        want = np.array([float(r[k]) if r[k] else math.nan for r in expected], dtype=np.float64)
        got = out[k].astype(np.float64)
        assert got.shape == want.shape, (k, got.shape, want.shape)
        nan_w, nan_g = np.isnan(want), np.isnan(got)
        result["nan_mismatch"][k] = int((nan_w != nan_g).sum())
        both = ~nan_w & ~nan_g
        result["max_abs_diff"][k] = float(np.abs(got[both] - want[both]).max()) if both.any() else 0.0
    json.dump(result, sys.stdout)
    print()


if __name__ == "__main__":
    main()
