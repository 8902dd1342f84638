"""scikit-learn's defaults on a regression split, the peers of `modelsmith auto` on it:
RidgeCV, MLPRegressor and HistGradientBoostingRegressor, each with default settings behind the
usual preprocessing (numbers standardized, categories one-hot encoded; the gradient boosting
takes the categories natively). Prints one JSON line per model: test RMSE, MAE, R², seconds.

Usage: python bench/regression_peers.py TRAIN.csv TEST.csv TARGET
"""
import json
import sys
import time

import numpy as np
import pandas as pd
from sklearn.compose import make_column_transformer
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import RidgeCV
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler


def main(train_path, test_path, target):
    train, test = pd.read_csv(train_path), pd.read_csv(test_path)
    y_train, y_test = train.pop(target).to_numpy(float), test.pop(target).to_numpy(float)
    categorical = [c for c in train.columns if not pd.api.types.is_numeric_dtype(train[c])]
    numeric = [c for c in train.columns if c not in categorical]
    one_hot = make_column_transformer(
        (StandardScaler(), numeric), (OneHotEncoder(handle_unknown="ignore"), categorical)
    )
    ordinal = make_column_transformer(
        ("passthrough", numeric),
        (OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1), categorical),
    )
    native = list(range(len(numeric), len(numeric) + len(categorical)))
    models = {
        "RidgeCV": make_pipeline(one_hot, RidgeCV()),
        "MLPRegressor": make_pipeline(one_hot, MLPRegressor(random_state=0)),
        "HistGradientBoostingRegressor": make_pipeline(
            ordinal, HistGradientBoostingRegressor(categorical_features=native, random_state=0)
        ),
    }
    for name, model in models.items():
        started = time.perf_counter()
        model.fit(train, y_train)
        seconds = time.perf_counter() - started
        p = model.predict(test)
        print(json.dumps({
            "model": name,
            "rmse": float(np.sqrt(mean_squared_error(y_test, p))),
            "mae": float(mean_absolute_error(y_test, p)),
            "r2": float(r2_score(y_test, p)),
            "fit_seconds": round(seconds, 1),
        }), flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
