"""`kchip train` / `kchip sample` end to end on tiny runs; digits model uses NE/Proj edges only."""
import json

import numpy as np
import torch

from kchip.cli import main
from kchip.model.topology import _mix_connect
from kchip.tasks import classify as C


def test_train_writes_checkpoint_metrics_model_and_resumes(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--task", "diabetes", "--epochs", "1", "-o", str(out), "--no-progress"]) == 0
    for f in ("checkpoint.pt", "metrics.json", "model.pt"):
        assert (out / f).exists()
    # a second run into the same directory is refused unless resumed
    assert main(["train", "--task", "diabetes", "--epochs", "2", "-o", str(out), "--no-progress"]) == 2
    assert "resume" in capsys.readouterr().err
    assert main(["train", "--task", "diabetes", "--epochs", "2", "-o", str(out), "--no-progress", "--resume"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert len(m["train_loss"]) == 2 and m["params"] == 528
    # same seed from scratch: the identical curve
    out2 = tmp_path / "run2"
    assert main(["train", "--task", "diabetes", "--epochs", "2", "-o", str(out2), "--no-progress"]) == 0
    assert json.loads((out2 / "metrics.json").read_text())["train_loss"] == m["train_loss"]


def test_unknown_task_is_a_clean_error(capsys):
    assert main(["train", "--task", "mnist", "--epochs", "1"]) == 2
    assert "unknown" in capsys.readouterr().err


def test_train_flow_and_sample(tmp_path):
    out = tmp_path / "tm"
    assert main(["train", "--task", "twomoon", "--epochs", "1", "--iters", "1", "--batch", "64", "--periods", "2",
                 "--repeat", "2", "-o", str(out), "--no-progress"]) == 0
    assert (out / "samples.png").exists()
    png, npy = tmp_path / "s.png", tmp_path / "s.npy"
    assert main(["sample", str(out / "model.pt"), "-n", "500", "-o", str(png), "--npy", str(npy)]) == 0
    a = np.load(npy)
    assert a.shape == (500, 2) and png.stat().st_size > 1000
    # seeded: the same samples again, from the checkpoint too
    assert main(["sample", str(out / "checkpoint.pt"), "-n", "500", "-o", str(png), "--npy", str(npy)]) == 0
    np.testing.assert_array_equal(np.load(npy), a)


def test_sample_refuses_a_non_flow_model(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["train", "--task", "diabetes", "--epochs", "1", "-o", str(out), "--no-progress"]) == 0
    assert main(["sample", str(out / "model.pt"), "-o", str(tmp_path / "x.png")]) == 2
    assert "2-D flow" in capsys.readouterr().err


def test_digits_model_is_ne_proj_only():
    m = C.build_classifier(layers=2, kernel=3, extra=20)
    ref = _mix_connect(1, 8, 8, 3, 20, repeat=[1, 1])[:, :2]
    for p in m.periods:
        assert torch.equal(p.edges, torch.as_tensor(ref))
    # the only trainable tensors are the edge parameters of the periods (no conventional layer)
    names = [n for n, _ in m.named_parameters()]
    assert names == [f"periods.{i}.param" for i in range(2)]
    assert m.projector == "last10"
    x, y, xt, yt = C.load_digits_data()
    assert x.shape == (1437, 64) and xt.shape == (360, 64) and float(x.max()) == 1.0 and float(x.min()) == 0.0
    assert m(x[:3], rtol=1e-3, atol=1e-3).shape == (3, 10)


def test_init_fine_tunes_from_a_trained_model(tmp_path, capsys):
    a = tmp_path / "a"
    assert main(["train", "--task", "diabetes", "--epochs", "1", "-o", str(a), "--no-progress"]) == 0
    b = tmp_path / "b"
    assert main(["train", "--task", "diabetes", "--epochs", "1", "-o", str(b), "--no-progress", "--seed", "9",
                 "--init", str(a / "model.pt"), "--clip", "1.0"]) == 0
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (a, b))
    assert mb["train_loss"][0] < ma["train_loss"][0] and mb["clip"] == 1.0
    # a model of another structure is refused
    assert main(["train", "--task", "friedman", "--epochs", "1", "-o", str(tmp_path / "c"), "--no-progress",
                 "--init", str(a / "model.pt")]) == 2
    assert "structure differs" in capsys.readouterr().err
