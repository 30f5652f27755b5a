#!/usr/bin/env python3
"""Compare experiment directories run with different flags (variants of the same models): per
model and variant, mean ± std over seeds of each metric, and a two-sided Welch t-test of every
variant against the first on one metric. `funnel experiment` compares models within one run;
this compares runs. Usage: variants.py METRIC[,METRIC…] NAME=DIR [NAME=DIR …] (the first is the
reference; bold: p < 0.01)."""
import json, math, sys


def betacf(a, b, x):
    """Continued fraction of the regularised incomplete beta function (Numerical Recipes §6.4)."""
    qab, qap, qam = a + b, a + 1, a - 1
    c, d = 1.0, 1 - qab * x / qap
    d = 1 / (d if abs(d) > 1e-300 else 1e-300)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        for aa in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1 + aa * d
            d = 1 / (d if abs(d) > 1e-300 else 1e-300)
            c = 1 + aa / c
            c = c if abs(c) > 1e-300 else 1e-300
            h *= d * c
        if abs(d * c - 1) < 1e-12:
            break
    return h


def betai(a, b, x):
    if x <= 0 or x >= 1:
        return 0.0 if x <= 0 else 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log(1 - x))
    return front * betacf(a, b, x) / a if x < (a + 1) / (a + b + 2) else 1 - front * betacf(b, a, 1 - x) / b


def welch(x, y):
    """Two-sided p-value of Welch's t-test."""
    mx, my = sum(x) / len(x), sum(y) / len(y)
    vx = sum((v - mx) ** 2 for v in x) / (len(x) - 1)
    vy = sum((v - my) ** 2 for v in y) / (len(y) - 1)
    se2 = vx / len(x) + vy / len(y)
    if se2 == 0:
        return 1.0 if mx == my else 0.0
    t = (mx - my) / math.sqrt(se2)
    df = se2 ** 2 / ((vx / len(x)) ** 2 / (len(x) - 1) + (vy / len(y)) ** 2 / (len(y) - 1))
    return betai(df / 2, 0.5, df / (df + t * t))


def main():
    """Per model and variant: each metric's mean ± std over seeds; for every variant but the
    first, each metric's difference of means to the first and its Welch p-value."""
    metrics, pairs = sys.argv[1].split(","), [a.split("=", 1) for a in sys.argv[2:]]
    runs = {}
    for name, path in pairs:
        for r in json.load(open(path + "/results.json"))["runs"]:
            runs.setdefault((r["model"], name), []).append(r)
    models = sorted({m for m, _ in runs}, key=lambda m: [mm for mm, _ in runs].index(m))
    print("| model | variant | " + " | ".join(metrics) + " | samples/s |")
    print("|---|---|" + "---|" * (len(metrics) + 1))
    for m in models:
        for name, _ in pairs:
            rs, ref = runs[(m, name)], runs[(m, pairs[0][0])]
            cells = []
            for k in metrics:
                v = [r["report"][k] for r in rs]
                mean = sum(v) / len(v)
                std = math.sqrt(sum((x - mean) ** 2 for x in v) / max(1, len(v) - 1))
                cell = "%.4f ± %.4f" % (mean, std)
                if name != pairs[0][0]:
                    base = [r["report"][k] for r in ref]
                    p = welch(v, base)
                    cell += " (%+.4f, p %s)" % (mean - sum(base) / len(base), "< 0.001" if p < 0.001 else "= %.3f" % p)
                    if p < 0.01:
                        cell = "**" + cell + "**"
                cells.append(cell)
            speed = sum(r["trainSamplesPerSecond"] for r in rs) / len(rs)
            print("| `%s` | %s | %s | %.0f |" % (m, name, " | ".join(cells), speed))


if __name__ == "__main__":
    main()
