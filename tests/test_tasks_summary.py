"""kchip.tasks.summary: the markdown tables of docs/results.md built from metrics.json files."""
import json

from kchip.tasks import summary


def _write(root, name, **m):
    d = root / name
    d.mkdir()
    (d / "metrics.json").write_text(json.dumps(dict(name=name, **m)))


def _gen(root, name, data, epochs, lr, nll, init=None, wall=60.0):
    _write(root, name, data=data, dataset=data, init=init, epochs_run=epochs, iters_per_epoch=8, batch=512, lr=lr,
           test_nll=nll, n_test=10000, params=3600, epoch_s_mean=wall / epochs, train_s_total=wall)


def test_generation_table_follows_init_chains(tmp_path):
    _gen(tmp_path, "circle-s0", "circle", 100, 5e-3, 1.0)
    _gen(tmp_path, "circle-ft", "circle", 60, 1e-3, 0.9, init="build/train/circle-s0/model.pt")
    _gen(tmp_path, "pinwheel-s0", "pinwheel", 100, 5e-3, 2.5, wall=120.0)
    runs = summary.load_runs(tmp_path)
    rows = [r for r in summary.generation_table(runs).splitlines()[2:]]
    assert len(rows) == 2                                   # one row per chain end, sorted by data set
    assert rows[0].startswith("| circle | circle-ft | 0.9000 |")
    assert "circle-s0 (100, 0.005, 1.0000); circle-ft (60, 0.001, 0.9000)" in rows[0]
    assert "| 1280 x 512 | 2.0 |" in rows[0]                # (100 + 60) x 8 iterations, 2 x 60 s
    assert rows[1].startswith("| pinwheel | pinwheel-s0 | 2.5000 |") and rows[1].endswith("| 800 x 512 | 2.0 |")


def test_regression_table_rows(tmp_path):
    for s, v in enumerate((1e-3, 2e-3, 3e-3)):
        _write(tmp_path, f"friedman-large-s{s}", size="large", seed=s, test_mse=v, params=672, epoch_s_mean=1.5,
               train_s_total=600.0)
    table = summary.regression_table(summary.load_runs(tmp_path))
    row = next(r for r in table.splitlines() if r.startswith("| friedman | large |"))
    assert "| 672 | 2.000e-03 ± 8.2e-04 | 0,1,2 |" in row and "| 1.50 | 10.0 |" in row
    assert "| diabetes | small | - | not run |" in table
