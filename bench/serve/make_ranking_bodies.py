#!/usr/bin/env python3
"""Writes flat-N.json and ranking-N.json for N candidates: one user's request as /v1/predict
bodies — the flat form repeats the user's fields in every row, the ranking form sends them once
({"request": {...}, "rows": [...]}).
    make_ranking_bodies.py TEST_CSV OUT USER_FIELDS N [N ...]"""
import csv, json, sys

path, out, user_fields = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
sizes = [int(n) for n in sys.argv[4:]]
rows = []
with open(path) as f:
    for r in csv.DictReader(f):
        rows.append({k: (int(v) if v.lstrip("-").isdigit() else float(v)) for k, v in r.items() if k not in ("click", "purchase")})
        if len(rows) == max(sizes):
            break
user = {k: rows[0][k] for k in user_fields}
items = [{k: v for k, v in r.items() if k not in user} for r in rows]
for n in sizes:
    with open(f"{out}/flat-{n}.json", "w") as f:
        json.dump({"rows": [dict(i, **user) for i in items[:n]]}, f)
    with open(f"{out}/ranking-{n}.json", "w") as f:
        json.dump({"request": user, "rows": items[:n]}, f)
