"""Structural L2 surrogate of tanh_lin (kchip.cells.tanh_lin_surrogate): the committed tt constants reproduce every
characterized surface to the figure they state, the held-out check, differentiability, loading from the json alone,
the L2 registry, and the fit on an ideal synthetic cell."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from kchip.cells.tanh_lin_surrogate import TanhLinStructSurrogate, fit_tanh_lin
from surfaces import worst_per_combo

ROOT = Path(__file__).resolve().parents[1] / "characterization" / "tanh_lin"
pytestmark = pytest.mark.skipif(not (ROOT / "tt.json").is_file(), reason="no committed tanh_lin table")


@pytest.fixture(scope="module")
def sur():
    return TanhLinStructSurrogate.from_json(ROOT / "tt.json")


def _worst(sur, combos, t):
    return worst_per_combo(sur, combos, t["vs"], t["vd"], t["i_d"])


def test_committed_tt_surfaces(sur):
    """Every characterized (cs, cd, o) surface within the stored figure, which is <= 0.5 % FS (the issue's target;
    0.09 % at tt since session 12)."""
    t = np.load(ROOT / "tt.npz")
    meta = json.loads((ROOT / "tt.json").read_text())["meta"]
    const, combos = meta["surrogate"], meta["summary"]["combos"]
    dev = 100 * _worst(sur, combos, t) / const["i_fs_A"]
    assert dev.max() == pytest.approx(const["max_dev_pct_fs"], abs=1e-6)
    assert dev.max() <= 0.5
    assert len(combos) == 57 and const["format"] == 2
    assert list(combos[int(np.argmax(dev))]) == const["max_dev_at"]["combo"]
    for c, d in zip(combos, dev):
        assert d == pytest.approx(const["max_dev_per_combo_pct_fs"][",".join(map(str, c))], abs=1e-6)
    # the old table law is ~50x further off (summary max_dev_surrogate_pct_fs, 7 %)
    assert meta["summary"]["max_dev_surrogate_pct_fs"] > 20 * dev.max()
    # the front-end sweep is in the constants: per input and sign, zero at v_cm, ~0.1-0.2 mV at the range ends
    fr = np.array(const["fine_residual_V"])
    assert fr.shape[:2] == (2, 2) and np.abs(fr).max() < 0.3e-3 and np.abs(fr).max() > 0.05e-3


@pytest.mark.parametrize("corner", sorted(p.stem for p in ROOT.glob("*.json")))
def test_every_committed_corner_reproduces_its_surfaces(corner):
    """Each committed corner's constants (loaded from its json alone) reproduce that corner's measured surfaces
    to the stored figure, within the issue's 0.5 % FS at every corner (docs/results.md)."""
    sur_c = TanhLinStructSurrogate.from_json(ROOT / f"{corner}.json")
    t = np.load(ROOT / f"{corner}.npz")
    meta = json.loads((ROOT / f"{corner}.json").read_text())["meta"]
    dev = 100 * _worst(sur_c, meta["summary"]["combos"], t) / meta["surrogate"]["i_fs_A"]
    assert dev.max() == pytest.approx(meta["surrogate"]["max_dev_pct_fs"], abs=1e-6)
    assert dev.max() <= 0.5


def test_held_out_check_stored(sur):
    """The fit without the 8 fixed two-input combos below full code predicts them within the stored figure (0.31 %
    FS at tt, was 1.65 % before the seeded mixed draws and the loading and shape terms); the fit set stays within
    0.5 %."""
    h = sur.const["held_out_check"]
    assert len(h["held_out"]) == 8 and [5, -10, 9] in h["held_out"] and [-8, 8, 10] in h["held_out"]
    assert h["max_dev_pct_fs"] <= 0.5 and h["max_dev_held_out_pct_fs"] <= 0.5
    assert h["max_dev_held_out_at"]["combo"] in h["held_out"]


def test_differentiable_and_checks(sur):
    cs, cd, o = torch.tensor([[3, -7, 15]]), torch.tensor([[5, 2, -15]]), torch.tensor([[8, 11, 6]])
    f = lambda a, b: sur.current_hw(cs, cd, o, a, b) * 1e6
    a = (0.9 + 0.02 * torch.randn(1, 3, dtype=torch.float64)).requires_grad_()
    b = (0.9 + 0.02 * torch.randn(1, 3, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(f, (a, b))
    # uncharacterized codes are defined (bits add), saturation near the amplitude, sign of a gate swap
    vs = torch.tensor([1.2, 0.6, 0.9], dtype=torch.float64)
    i = sur.current_hw(torch.tensor([13, 13, 0]), torch.tensor([0, 0, 0]), torch.tensor([8, 8, 8]), vs, 0.9 + 0 * vs)
    assert i[0] > 0.95e-6 and i[1] < -0.95e-6 and abs(float(i[2])) < 0.02e-6
    i_neg = sur.current_hw(torch.tensor(-13), torch.tensor(0), torch.tensor(8), vs[:1], 0.9 + 0 * vs[:1])
    assert float(i_neg) < -0.95e-6
    with pytest.raises(ValueError, match="tanh_lin/tt"):
        sur.current_hw(torch.tensor(16), torch.tensor(0), torch.tensor(8), vs, vs)
    with pytest.raises(ValueError, match="offset codes"):
        sur.current_hw(torch.tensor(1), torch.tensor(0), torch.tensor(16), vs, vs)


def test_sw_law_and_l2_registry(sur):
    from kchip.sim.l2 import load_surrogate
    reg = load_surrogate("tanh_lin", "tt")
    assert isinstance(reg, TanhLinStructSurrogate)
    fn = reg.law(i_u=1e-6, v_u=0.05, v_cm=0.9)              # SW units: codes (3, E), voltages (E, B)
    vs = torch.tensor([[0.2, -0.1]], dtype=torch.float64)
    vd = torch.zeros(1, 2, dtype=torch.float64)
    out = fn(torch.tensor([[15], [0], [8]]), vs, vd)
    want = sur.current_hw(torch.tensor(15), torch.tensor(0), torch.tensor(8), 0.9 + 0.05 * vs, 0.9 + 0.05 * vd) / 1e-6
    torch.testing.assert_close(out, want)


def test_fit_recovers_an_ideal_cell():
    """On an ideal tanh_lin surface set (the characterization's combos and grid) the fitted law is exact."""
    from kchip.cells.characterize import KINDS
    from kchip.cells.tanh_lin import _tanh_combos, grid_volts
    kind = KINDS["tanh_lin"]
    combos, grid = _tanh_combos(kind), grid_volts(kind)
    VS, VD = np.meshgrid(grid, grid)
    i_d = np.stack([0.98e-6 * np.tanh(70 * cs / 15 * (VS - 0.9) + 70 * cd / 15 * (VD - 0.9) + 0.35 * (o - 8))
                    for cs, cd, o in combos])
    hold = [(5, -10, 9), (12, 6, 5)]
    const = fit_tanh_lin(grid, grid, combos, i_d, 0.98e-6, hold=hold, powers=(2,), nfev=40)
    assert const["max_dev_pct_fs"] < 0.05 and const["max_dev_held_out_pct_fs"] < 0.05
    sur = TanhLinStructSurrogate(const)
    i = sur.current_hw(torch.tensor(7), torch.tensor(-9), torch.tensor(10), torch.tensor(0.91), torch.tensor(0.905))
    want = 0.98e-6 * np.tanh(70 * 7 / 15 * 0.01 - 70 * 9 / 15 * 0.005 + 0.7)
    assert float(i) == pytest.approx(want, rel=1e-3)


@pytest.mark.skipif(shutil.which("ngspice") is None, reason="ngspice not installed")
def test_between_grid_points_against_ngspice(tmp_path):
    """Independent of the 9-point tables: ngspice surfaces on the 17-point grid (the 9 points and one between each
    pair of neighbours) of a characterized full-code triple and two triples that no fit saw. The structural
    surrogate is within 0.5 % FS on and between the grid points (measured 0.26 / 0.40 % at most over 81 triples at
    tt; before the front-end sweep, the mixed draws and the loading and shape terms it was 3.1 / 3.4 % between
    them: docs/results.md)."""
    from kchip.cells.characterize import KINDS
    from kchip.cells.code_surfaces import measure_code_surfaces
    from kchip.cells.tanh_lin import _tanh_combos
    from kchip.sim.l2 import load_surrogate
    trip = [(15, 15, 8), (-11, -9, 4), (2, 15, 15)]
    assert set(trip[1:]).isdisjoint(_tanh_combos(KINDS["tanh_lin"]))
    cs = measure_code_surfaces("tanh_lin", "tt", trip, jobs=2, cache=tmp_path, grid_points=17)
    sur = load_surrogate("tanh_lin", "tt")
    g = torch.as_tensor(cs.vs)
    VD, VS = torch.meshgrid(g, g, indexing="ij")
    on = np.zeros((17, 17), bool)
    on[::2, ::2] = True
    for t in trip:
        with torch.no_grad():
            m = sur.current_hw(*[torch.tensor(c) for c in t], VS, VD).numpy()
        e = 100 * np.abs(m - cs.i_d[cs.index(t)]) / sur.i_fs
        assert e[~on].max() <= 0.5, (t, e[~on].max())
        assert e[on].max() <= 0.5, (t, e[on].max())


def test_refit_from_the_committed_npz_reproduces_the_constants():
    """The npz alone (surfaces + the front-end sweep in its extra arrays) refits the committed tt constants: the
    same max deviation, and the same law within 0.01 % FS at every characterized point."""
    from kchip.cells.tables import CellTable, CodeTable
    from kchip.cells.tanh_lin_surrogate import fit_from_table
    table, ct = CellTable.load(ROOT / "tt.npz"), CodeTable.from_json(ROOT / "tt.json")
    assert "frontend_residual_V" in table.extra
    const = fit_from_table(table, ct)
    assert const["max_dev_pct_fs"] == pytest.approx(ct.meta["surrogate"]["max_dev_pct_fs"], abs=1e-3)
    a, b = TanhLinStructSurrogate(const), TanhLinStructSurrogate(ct.meta["surrogate"])
    VS, VD = (torch.tensor(v) for v in np.meshgrid(table.vs, table.vd))
    for cs, cd, o in ct.meta["summary"]["combos"][::7]:
        args = [torch.tensor(cs), torch.tensor(cd), torch.tensor(o), VS, VD]
        assert float((a.current_hw(*args) - b.current_hw(*args)).abs().max()) < 1e-4 * a.i_fs
