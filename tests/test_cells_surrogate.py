"""L2 surrogate from the committed tanh_diff tt table: reproduces the table, interpolates held-out points,
is differentiable, plugs in like Law.fn on edge-major (E, B) tensors."""
from pathlib import Path

import numpy as np
import pytest
import torch

from kchip.cells.surrogate import CellSurrogate
from kchip.cells.tables import CellTable, CodeTable

ROOT = Path(__file__).resolve().parents[1] / "characterization" / "tanh_diff"
pytestmark = pytest.mark.skipif(not (ROOT / "tt.npz").is_file(), reason="no committed tanh_diff table")


@pytest.fixture(scope="module")
def tabs():
    return CellTable.load(ROOT / "tt.npz"), CodeTable.from_json(ROOT / "tt.json")


def test_reproduces_table_at_grid_points(tabs):
    t, ct = tabs
    sur = CellSurrogate(t, ct)
    VS, VD = np.meshgrid(t.vs, t.vd)
    K = len(t.codes)
    codes = torch.arange(K)[:, None].expand(K, VS.size)
    vs = torch.tensor(np.broadcast_to(VS.ravel(), (K, VS.size)).copy())
    vd = torch.tensor(np.broadcast_to(VD.ravel(), (K, VS.size)).copy())
    i = sur.current_hw(codes, vs, vd).numpy().reshape(t.i_d.shape)
    i_fs = 1e-6
    assert np.max(np.abs(i - t.i_d)) / i_fs < 0.005 * 0.01    # exact up to float rounding


def test_held_out_points_within_half_percent(tabs):
    """Build the surrogate from every other grid point; predict the dropped ones (independent data)."""
    t, ct = tabs
    sub = CellTable(t.cell, t.corner, t.codes, t.vs[::2], t.vd[::2], t.i_d[:, ::2, ::2], t.i_s[:, ::2, ::2])
    sur = CellSurrogate(sub, ct)
    VS, VD = np.meshgrid(t.vs[1:-1:2], t.vd[1:-1:2])
    ref = t.i_d[:, 1:-1:2, 1:-1:2]
    K = len(t.codes)
    codes = torch.arange(K)[:, None].expand(K, VS.size)
    vs = torch.tensor(np.broadcast_to(VS.ravel(), (K, VS.size)).copy())
    vd = torch.tensor(np.broadcast_to(VD.ravel(), (K, VS.size)).copy())
    i = sur.current_hw(codes, vs, vd).numpy().reshape(ref.shape)
    err = np.max(np.abs(i - ref)) / 1e-6
    assert err < 0.005, f"held-out error {100 * err:.3f} % FS"


def test_differentiable_gradcheck(tabs):
    sur = CellSurrogate(*tabs)
    torch.manual_seed(0)
    vs = (0.75 + 0.3 * torch.rand(5, 3, dtype=torch.float64)).requires_grad_()
    vd = (0.75 + 0.3 * torch.rand(5, 3, dtype=torch.float64)).requires_grad_()
    codes = torch.tensor([1, 4, 15, -7, 0])
    assert torch.autograd.gradcheck(lambda a, b: sur.current_hw(codes, a, b) * 1e6, (vs, vd), eps=1e-6, atol=1e-5)
    # slope sign: more vs -> more current for a positive code, less for a negative code
    g = torch.autograd.grad(sur.current_hw(codes, vs, vd).sum(), vs)[0]
    assert (g[:3] > 0).all() and (g[3] < 0).all()


def test_law_fn_edge_major_sw_units(tabs):
    sur = CellSurrogate(*tabs)
    fn = sur.law(i_u=1e-6, v_u=0.05, v_cm=0.9)
    E, B = 4, 6
    vs = torch.linspace(-3, 3, E * B, dtype=torch.float64).reshape(E, B)
    vd = torch.zeros(E, B, dtype=torch.float64)
    codes = torch.tensor([15, 8, -15, 0])
    i = fn(codes, vs, vd)
    assert i.shape == (E, B)
    # independent reference: the ideal tanh of the cell (amp = code/15 I_u, slope ~ kappa/2U_T)
    k = tabs[1].meta["slope_cell_per_V"]
    ideal = (codes[:, None] / 15.0) * torch.tanh(k * 0.05 * vs)
    assert torch.max(torch.abs(i - ideal)) < 0.05
    assert torch.all(i[3] == 0) or torch.max(torch.abs(i[3])) < 1e-3
    # float parameter rows (1, E) like Law params are accepted
    assert torch.allclose(fn(codes.double()[None], vs, vd), i)
