"""ONNX Runtime's batch prediction rate on a model `funnel export` wrote, on the rows of a
CSV: the graph's inputs are built once (not timed, as Funnel's and PyTorch's rates exclude
reading), then `session.run` over batches of `--batch` rows (the bench times 1,024 and 4,096 and keeps the faster)
is timed after one warm-up pass. The graph does the vocabulary lookup and standardisation itself,
so its rate includes the encoding Funnel's `predict_rows_per_second` leaves out. Prints JSON.

    python3 bench/onnx_predict.py --model esmm.onnx --data test.csv --threads 2
"""
import argparse
import csv
import json
import os
import sys
import time

import onnxruntime as ort

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "FunnelCLITests", "Fixtures"))
from onnx_parity import build_feed  # noqa: E402  (one input builder for the parity tests and the bench)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=4096)
    a = ap.parse_args()
    options = ort.SessionOptions()
    options.intra_op_num_threads = a.threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(a.model, options, providers=["CPUExecutionProvider"])
    with open(a.data, newline="") as f:
        rows = list(csv.reader(f))
    header, rows = rows[0], [r for r in rows[1:] if r]
    batches = [build_feed(session, header, rows[s:s + a.batch]) for s in range(0, len(rows), a.batch)]
    for feed in batches:  # warm-up
        session.run(None, feed)
    start = time.perf_counter()
    for feed in batches:
        session.run(None, feed)
    seconds = time.perf_counter() - start
    print(json.dumps({"rows": len(rows), "predict_rows_per_second": len(rows) / seconds, "threads": a.threads,
                      "onnxruntime": ort.__version__}))


if __name__ == "__main__":
    main()
