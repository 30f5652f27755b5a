#!/usr/bin/env python3
"""Writes body-1.json and body-100.json: rows of the test CSV as /v1/predict requests."""
import csv, json, sys

path, out = sys.argv[1], sys.argv[2]
with open(path) as f:
    rows = []
    for i, r in enumerate(csv.DictReader(f)):
        rows.append({k: (int(v) if v.lstrip("-").isdigit() else float(v)) for k, v in r.items() if k not in ("click", "purchase")})
        if i == 99:
            break
for n in (1, 100):
    with open(f"{out}/body-{n}.json", "w") as f:
        json.dump({"rows": rows[:n]}, f)
