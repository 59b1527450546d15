"""Bad input gives clear errors that name the file, the field and the value; import/CLI round trips."""
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

from kchip.model import KirchhoffNet, Period, import_official, load_model, save_model, topology as T
from reference import ref_forward

CFG = {
    "network": {"model": {"name": "ShiftTanh2", "args": {}}, "fill": "zeros", "projector": None,
                "net_struct": [{"name": "_fully_connect", "args": {"num_node": 3, "repeat": [2, 1]}},
                               {"name": "_fully_connect", "args": {"num_node": 4, "repeat": [1, 1]}}]},
    "simulation": {"t_end": [0.0, 0.5, 1.0], "tol": 1e-5, "method": "dopri5"},
}


def _write_official(tmp_path, cfg=CFG, state=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    if state is None:
        state = {}
        for i, st in enumerate(cfg["network"]["net_struct"]):
            n_edges = len(T.generate(st["name"], st["args"]))
            state[f"circuit.layer_list.{i}.model.param"] = 0.5 * torch.randn(3, n_edges, generator=g)
    torch.save(state, tmp_path / "model.pth")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    return tmp_path / "model.pth", tmp_path / "config.yaml"


def test_official_import_matches_reference_and_roundtrips(tmp_path):
    mp, cp = _write_official(tmp_path)
    model = import_official(mp, cp).double()
    assert [p.num_nodes for p in model.periods] == [2, 3]          # node count grows
    state = torch.load(mp)
    specs = [dict(edges=T.generate(st["name"], st["args"])[:, :2], law="ShiftTanh2", t_len=0.5,
                  param=state[f"circuit.layer_list.{i}.model.param"].numpy(),
                  num_nodes=[2, 3][i]) for i, st in enumerate(CFG["network"]["net_struct"])]
    x = np.random.default_rng(2).uniform(-1, 1, (5, 2))
    with torch.no_grad():
        got = model(torch.tensor(x), rtol=1e-10, atol=1e-12).numpy()
    assert np.max(np.abs(got - ref_forward(specs, x))) <= 1e-5
    save_model(model, tmp_path / "m.kchip")
    again = load_model(tmp_path / "m.kchip").double()
    with torch.no_grad():
        assert torch.equal(again(torch.tensor(x)), model(torch.tensor(x)))


def _bad_cfg(mutate):
    cfg = yaml.safe_load(yaml.safe_dump(CFG))
    mutate(cfg)
    return cfg


def test_unknown_law(tmp_path):
    cfg = _bad_cfg(lambda c: c["network"]["model"].update(name="Sigmoid7"))
    mp, cp = _write_official(tmp_path, cfg, state={})
    with pytest.raises(ValueError, match=r"config\.yaml: network\.model\.name: unknown i-v law 'Sigmoid7'"):
        import_official(mp, cp)


@pytest.mark.parametrize("key", ["network.model", "network.net_struct", "simulation.t_end"])
def test_missing_config_keys(tmp_path, key):
    def drop(c):
        a, b = key.split(".")
        del c[a][b]
    mp, cp = _write_official(tmp_path, _bad_cfg(drop), state={})
    with pytest.raises(ValueError, match=rf"config\.yaml: missing config key '{key}'"):
        import_official(mp, cp)


def test_parameter_shape_mismatch(tmp_path):
    state = {"circuit.layer_list.0.model.param": torch.zeros(3, 17),
             "circuit.layer_list.1.model.param": torch.zeros(3, 24)}
    mp, cp = _write_official(tmp_path, state=state)
    with pytest.raises(ValueError, match=r"model\.pth: circuit\.layer_list\.0\.model\.param\.param: shape \(3, 17\) "
                                         r"does not match law 'ShiftTanh2' with 18 edges: expected \(3, 18\)"):
        import_official(mp, cp)


def test_nan_parameters(tmp_path):
    p0 = torch.zeros(3, 18)
    p0[1, 4] = float("nan")
    state = {"circuit.layer_list.0.model.param": p0, "circuit.layer_list.1.model.param": torch.zeros(3, 24)}
    mp, cp = _write_official(tmp_path, state=state)
    with pytest.raises(ValueError, match=r"model\.pth: circuit\.layer_list\.0\.model\.param\.param\[1, 4\]: "
                                         r"parameter is nan"):
        import_official(mp, cp)


def test_missing_state_key_and_period_count(tmp_path):
    mp, cp = _write_official(tmp_path, state={"circuit.layer_list.0.model.param": torch.zeros(3, 18)})
    with pytest.raises(ValueError, match=r"missing state-dict key 'circuit\.layer_list\.1\.model\.param'"):
        import_official(mp, cp)
    cfg = _bad_cfg(lambda c: c["simulation"].update(t_end=[0.0, 1.0]))
    mp, cp = _write_official(tmp_path, cfg, state={})
    with pytest.raises(ValueError, match=r"simulation\.t_end has 2 boundaries but network\.net_struct has 2"):
        import_official(mp, cp)


def test_edge_index_past_node_count():
    with pytest.raises(ValueError, match=r"periods\[0\]\.edges\[2\]: node index \[1, 5\] is past the node count 3"):
        Period([[0, 1], [1, 2], [1, 5]], "relu_diff", 1.0, num_nodes=3, where="periods[0]")


def test_model_file_errors(tmp_path):
    m = KirchhoffNet([Period(T.fc(2)[:, :2], "relu_diff", 1.0)])
    save_model(m, tmp_path / "ok.kchip")
    d = torch.load(tmp_path / "ok.kchip")
    d["periods"][0]["law"] = "nope"
    torch.save(d, tmp_path / "bad.kchip")
    with pytest.raises(ValueError, match=r"bad\.kchip: periods\[0\]\.law: unknown i-v law 'nope'"):
        load_model(tmp_path / "bad.kchip")
    del d["periods"][0]["t_len"]
    torch.save(d, tmp_path / "bad2.kchip")
    with pytest.raises(ValueError, match=r"bad2\.kchip: periods\[0\]: missing required field 't_len'"):
        load_model(tmp_path / "bad2.kchip")
    with pytest.raises(FileNotFoundError, match="nothere.kchip: model file not found"):
        load_model(tmp_path / "nothere.kchip")


def test_input_wider_than_first_period():
    m = KirchhoffNet([Period(T.fc(2)[:, :2], "relu_diff", 1.0)])
    with pytest.raises(ValueError, match="input: 3 values per sample but the first period has only 2 nodes"):
        m(torch.zeros(1, 3))


def _kchip(*args):
    return subprocess.run([sys.executable, "-m", "kchip.cli", *map(str, args)], capture_output=True, text=True)


def test_cli_help_and_import_forward(tmp_path):
    r = _kchip("--help")
    assert r.returncode == 0
    for cmd in ("import-official", "forward", "info", "flow"):
        assert cmd in r.stdout
    mp, cp = _write_official(tmp_path)
    r = _kchip("import-official", mp, cp, "-o", tmp_path / "m.kchip")
    assert r.returncode == 0, r.stderr
    x = np.random.default_rng(0).uniform(-1, 1, (4, 2))
    np.save(tmp_path / "x.npy", x)
    r = _kchip("forward", tmp_path / "m.kchip", "--inputs", tmp_path / "x.npy", "-o", tmp_path / "y.npy",
               "--rtol", "1e-9", "--atol", "1e-11")
    assert r.returncode == 0, r.stderr
    with torch.no_grad():
        want = import_official(mp, cp).double()(torch.tensor(x), rtol=1e-9, atol=1e-11).numpy()
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), want, atol=1e-9)
    bad = _kchip("import-official", mp, tmp_path / "missing.yaml", "-o", tmp_path / "z.kchip")
    assert bad.returncode == 2 and "missing.yaml: file not found" in bad.stderr
