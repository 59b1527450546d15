"""kchip.cells: subcircuit text, code tables (JSON/NPZ), and no silent holes in characterization tables."""
import re

import numpy as np
import pytest

from kchip.cells import library as L
from kchip.cells.tables import CellTable, CodeParam, CodeTable, TableError
from kchip.pdk import load_pdk


def test_tanh_subckt_uses_pdk_devices_and_pins():
    p = load_pdk()
    sub = L.tanh_diff(p, bits=4)
    assert sub.pins == ["s", "d", "en", "b0", "b1", "b2", "b3", "vbn", "vcp", "vcn", "vdd", "vss"]
    head = sub.text.splitlines()[0].split()
    assert head[0] == ".subckt" and head[2:] == sub.pins
    devs = set(re.findall(r"sky130_fd_pr__\w+", sub.text))
    assert devs <= {p.device(k)["name"] for k in ("nfet", "pfet", "pfet_lvt", "nfet_lvt")}
    # binary-weighted DAC: 1 + 2 + 4 + 8 unit devices on the bias line
    assert len(re.findall(r"^XDU\d+_\d+ \S+ vbn vss", sub.text, re.M)) == 15
    assert ".lib" not in sub.text and ".include" not in sub.text       # no model paths in cells
    neg = L.tanh_diff(p, sign=-1)
    assert re.search(r"^XM1 na d tail", neg.text, re.M) and re.search(r"^XM1 na s tail", sub.text, re.M)


def test_tanh_enable_steers_the_outputs():
    """Default tanh_diff: en gates the four output branches (current steering into the rails), not the tail;
    each branch reaches d / s through one switch; a cascode per DAC leg. enable="tail" keeps the old gating."""
    p = load_pdk()
    t = L.tanh_diff(p).text
    assert not re.search(r"^XSEN ", t, re.M)
    assert re.search(r"^XMIP enb en vdd vdd ", t, re.M) and re.search(r"^XMIN enb en vss vss ", t, re.M)
    out = {ln.split()[1] for ln in t.splitlines() if re.match(r"^X\w+SO ", ln)}
    assert out == {"d", "s"} and len(re.findall(r"^X\w+SO ", t, re.M)) == 4
    assert len(re.findall(r"^X\w+SD (vss|vdd) ", t, re.M)) == 4       # dumps into the rails when en = 0
    assert len(re.findall(r"^XDC\d \S+ vcn ", t, re.M)) == 4            # per-leg DAC cascodes
    old = L.tanh_diff(p, enable="tail", dac_cascode=False)
    assert re.search(r"^XSEN tail en dac ", old.text, re.M) and "enb" not in old.text
    assert sorted(L.tanh_diff(p).pins) == sorted(old.pins) == sorted(L.edge_pins(4))


def test_relu_enable_steers_the_outputs():
    """Default relu_diff: the cell stays biased (tails, bias legs, clamp, keep-alive switches gated by vdd) and
    en only steers the outputs: the s legs sink from s (ESO) or vdd (DSO); the y -> d mirror output reaches d
    through EDO (gate enb) or vss (DDO); the keep-alive cancel sink sits before EDO. enable="bias" keeps the
    bias-gated cell with its pfet dumps."""
    from kchip.cells.relu import relu_diff_subckt
    p = load_pdk()
    t = relu_diff_subckt(p).text
    gated = {ln.split()[0][1:] for ln in t.splitlines() if ln.startswith("X") and " en " in f" {ln} "}
    assert gated == {"ESO", "DSO", "IVN", "IVP"}
    assert re.search(r"^XESO s en so vss ", t, re.M) and re.search(r"^XDSO so en vdd vdd ", t, re.M)
    assert re.search(r"^XEDO d enb do vdd ", t, re.M) and re.search(r"^XDDO do enb vss vss ", t, re.M)
    assert re.search(r"^XKDC do vcn ", t, re.M) and re.search(r"^XPYDC do vcp ", t, re.M)
    assert all(re.search(rf"^X{n} \S+ vdd ", t, re.M) for n in ("SEA", "SEB", "BEA", "BEB", "SK"))
    assert not re.search(r"^XD[TB][AB] ", t, re.M)
    old = relu_diff_subckt(p, enable="bias").text
    assert re.search(r"^XSEA sa en ta ", old, re.M) and re.search(r"^XDTA ta en vdd vdd ", old, re.M)
    assert "enb" not in old and "ESO" not in old


def test_node_cap_and_switch():
    p = load_pdk()
    c = L.node_cap(p, 200e-15)
    assert c.params["c"] == pytest.approx(200e-15, rel=0.02)
    assert "sky130_fd_pr__cap_mim_m3_1" in c.text
    assert "sky130_fd_pr__nfet_01v8" in L.switch(p).text


def _ct():
    codes = np.arange(4)
    return CodeTable("tanh_diff", "tt", {"amp": CodeParam(codes, codes * 1e-7, np.full(4, 1e-9)),
                                          "offset": CodeParam(codes, np.zeros(4))},
                     {"amp": "A", "offset": "V"}, {"bits": 2})


@pytest.mark.parametrize("fmt", ["json", "npz"])
def test_codetable_roundtrip(tmp_path, fmt):
    ct = _ct()
    f = tmp_path / f"t.{fmt}"
    getattr(ct, f"to_{fmt}")(f)
    back = getattr(CodeTable, f"from_{fmt}")(f)
    assert back.cell == "tanh_diff" and back.units == ct.units and back.meta["bits"] == 2
    np.testing.assert_array_equal(back.params["amp"].codes, [0, 1, 2, 3])
    np.testing.assert_allclose(back.params["amp"].values, [0, 1e-7, 2e-7, 3e-7])
    np.testing.assert_allclose(back.params["amp"].sigma, 1e-9)
    assert back.params["amp"].nearest(1.4e-7) == 1


def test_codetable_rejects_nan():
    with pytest.raises(TableError):
        CodeParam([0, 1], [0.0, np.nan])


def _table(i_d):
    g = np.linspace(0.6, 1.2, 4)
    return CellTable("tanh_diff", "tt", np.arange(3), g, g, i_d, i_d.copy())


def test_celltable_hole_is_named(tmp_path):
    i = np.random.default_rng(0).normal(size=(3, 4, 4)) * 1e-7
    i[1, 2, 3] = np.nan
    with pytest.raises(TableError, match=r"hole at code 1, vd=1\.000 V, vs=1\.200 V"):
        _table(i).save(tmp_path / "x.npz")
    assert not (tmp_path / "x.npz").exists()


def test_celltable_silent_zero_surface_rejected(tmp_path):
    i = np.random.default_rng(0).normal(size=(3, 4, 4)) * 1e-7
    i[2] = 0.0
    with pytest.raises(TableError, match="code 2 is all zeros"):
        _table(i).save(tmp_path / "x.npz")


def test_celltable_roundtrip_and_csv(tmp_path):
    i = np.random.default_rng(1).normal(size=(3, 4, 4)) * 1e-7
    t = _table(i)
    t.scalars = {"a": 1}
    t.save(tmp_path / "x.npz")
    t.to_csv(tmp_path / "x.csv")
    b = CellTable.load(tmp_path / "x.npz")
    np.testing.assert_array_equal(b.i_d, i)
    rows = np.loadtxt(tmp_path / "x.csv", delimiter=",", skiprows=1)
    assert rows.shape == (48, 5)
    # row order: code, vd, vs (vs fastest) -> first rows are code 0, vd[0]
    np.testing.assert_allclose(rows[:4, 3], i[0, 0], rtol=1e-5)


def test_characterize_cli_registered_and_validates(capsys):
    from kchip.cli import main
    assert main(["characterize", "--cell", "nope", "--corner", "tt"]) == 2
    assert "unknown cell kind 'nope'" in capsys.readouterr().err
    assert main(["characterize", "--cell", "tanh_diff", "--corner", "xx"]) == 2
    assert "unknown corner" in capsys.readouterr().err
