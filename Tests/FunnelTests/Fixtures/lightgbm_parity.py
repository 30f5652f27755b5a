"""Trains and predicts with the Python lightgbm package on the matrices the Swift test wrote,
so the test can compare Funnel's LightGBM binding with the reference package.

argv: DIR ROWS COLS TEST_ROWS ITERATIONS PARAMS
DIR holds train.f32 (ROWS x COLS, row-major float32), labels.f32, test.f32 and model.txt (Funnel's).
Writes python_trained.f64 (predictions of a model trained here) and python_loaded.f64
(predictions of Funnel's model.txt loaded here) for the test rows.
"""
import sys
import numpy as np
import lightgbm as lgb

d, rows, cols, test_rows, iterations, params_text = sys.argv[1], *map(int, sys.argv[2:6]), sys.argv[6]
params = dict(kv.split("=", 1) for kv in params_text.split())
x = np.fromfile(f"{d}/train.f32", dtype=np.float32).reshape(rows, cols)
y = np.fromfile(f"{d}/labels.f32", dtype=np.float32)
t = np.fromfile(f"{d}/test.f32", dtype=np.float32).reshape(test_rows, cols)
booster = lgb.train(params, lgb.Dataset(x, label=y, params=params), num_boost_round=iterations)
booster.predict(t).astype(np.float64).tofile(f"{d}/python_trained.f64")
lgb.Booster(model_file=f"{d}/model.txt").predict(t).astype(np.float64).tofile(f"{d}/python_loaded.f64")
print(lgb.__version__)
