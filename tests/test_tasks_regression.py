"""Regression task: data definitions (independent sklearn reference), parameter counts vs the paper's Table I,
reproducibility and resume of tiny runs."""
import json

import numpy as np
import pytest

from kchip.tasks import regression as R
from kchip.tasks.common import set_seed


def test_friedman_definition_matches_sklearn_reference():
    from sklearn.datasets import make_friedman1
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import MinMaxScaler
    x, y = make_friedman1(n_samples=4096, n_features=5, noise=0.0, random_state=42)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.4, random_state=42)
    sx = MinMaxScaler().fit(xtr)
    sy = MinMaxScaler().fit(ytr.reshape(-1, 1))
    a, b, c, d = R.load_data("friedman")
    assert a.shape == (2457, 5) and b.shape == (2457, 1) and c.shape == (1639, 5) and d.shape == (1639, 1)
    np.testing.assert_allclose(a.numpy(), sx.transform(xtr), atol=1e-6)
    np.testing.assert_allclose(c.numpy(), sx.transform(xte), atol=1e-6)
    np.testing.assert_allclose(d.numpy(), sy.transform(yte.reshape(-1, 1)), atol=1e-6)
    assert float(a.min()) == 0.0 and float(a.max()) == 1.0 and float(b.min()) == 0.0 and float(b.max()) == 1.0


def test_diabetes_definition():
    a, b, c, d = R.load_data("diabetes")
    assert a.shape == (309, 10) and c.shape == (133, 10) and b.shape == (309, 1)
    assert float(a.min()) == 0.0 and float(a.max()) == 1.0
    assert float(b.min()) == 0.0 and float(b.max()) == 1.0


def test_unknown_dataset():
    with pytest.raises(ValueError, match="unknown"):
        R.load_data("nope")


@pytest.mark.parametrize("n_in,params", [(5, 168), (10, 528), (8, 360)])
def test_small_model_param_counts_match_paper(n_in, params):
    m = R.build_regression_model(n_in, "small")
    assert m.num_params() == params == R.regression_num_params(n_in, "small")
    assert m.projector == "last1" and m.periods[0].num_nodes == n_in + 1
    assert m.periods[0].law.name == "relu_diff"


def test_sizes_scale_params():
    assert R.build_regression_model(5, "medium").num_params() == 2 * 168
    assert R.build_regression_model(5, "large").num_params() == 4 * 168


def _tiny(seed, run_dir=None, epochs=2, resume=False):
    d = R.load_data("diabetes")
    set_seed(seed)
    m = R.build_regression_model(10, "small")
    return m, R.train(m, d, epochs=epochs, seed=seed, run_dir=run_dir, resume=resume, progress=False)


def test_same_seed_same_loss_curve(tmp_path):
    _, a = _tiny(3)
    _, b = _tiny(3)
    _, c = _tiny(4)
    assert a["train_loss"] == b["train_loss"]
    assert a["train_loss"] != c["train_loss"]
    assert a["test_mse"] == b["test_mse"]


def test_resume_continues_the_same_curve(tmp_path):
    _, full = _tiny(5, tmp_path / "full", epochs=3)
    _tiny(5, tmp_path / "part", epochs=2)
    m, res = _tiny(5, tmp_path / "part", epochs=3, resume=True)
    np.testing.assert_allclose(res["train_loss"], full["train_loss"], rtol=1e-6)
    assert abs(res["test_mse"] - full["test_mse"]) < 1e-6 * max(1.0, full["test_mse"])
    metrics = json.loads((tmp_path / "part" / "metrics.json").read_text())
    assert metrics["params"] == 528 and len(metrics["train_loss"]) == 3


def test_resume_without_checkpoint_is_a_clean_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        _tiny(1, tmp_path / "none", epochs=1, resume=True)
