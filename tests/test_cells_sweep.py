"""The two-input DC path (kchip.cells.sweep): serpentine order, sub-step sweep line, reading the grid points."""
import numpy as np
import pytest

from kchip.cells import sweep as SW


def test_serpentine_moves_one_input_one_step_at_a_time():
    r, c = SW.serpentine(4)
    assert list(zip(r[:9], c[:9])) == [(0, 0), (0, 1), (0, 2), (0, 3), (1, 3), (1, 2), (1, 1), (1, 0), (2, 0)]
    steps = np.abs(np.diff(r)) + np.abs(np.diff(c))
    assert np.all(steps == 1)                                   # every move: one grid step of one input
    assert len(set(zip(r, c))) == 16                            # every grid point once


def test_path_sources_and_analysis():
    g = [0.6, 0.9, 1.2]
    lines = SW.path_sources(g, g)
    assert lines[0] == "Vt t 0 dc 0"
    # s follows the columns of the serpentine, d its rows: t = 0..8 -> (vs, vd)
    assert lines[1].startswith("Bs s 0 V = pwl(v(t), 0, 0.600000, 1, 0.900000, 2, 1.200000, 3, 1.200000, ")
    assert lines[2].startswith("Bd d 0 V = pwl(v(t), 0, 0.600000, 1, 0.600000, 2, 0.600000, 3, 0.900000, ")
    assert SW.path_analysis(3, 20) == ".dc Vt 0 8.025000 0.050000000"
    assert SW.path_points(3, 20) == 161 and SW.path_points(9, 1) == 81
    with pytest.raises(ValueError, match="sub"):
        SW.path_analysis(3, 0)
    with pytest.raises(ValueError, match="same length"):
        SW.path_sources(g, g[:2])


def test_at_grid_reads_the_integer_sweep_values():
    n, sub = 3, 4
    t = np.arange(SW.path_points(n, sub)) / sub
    got = SW.at_grid({"v(t)": t, "i(x)": 10 * t}, n, sub)
    np.testing.assert_allclose(got["v(t)"], np.arange(9))
    np.testing.assert_allclose(got["i(x)"], 10 * np.arange(9))
    with pytest.raises(ValueError, match="not the path points"):
        SW.at_grid({"v(t)": t * 1.01}, n, sub)


def test_surface_puts_path_points_on_the_vd_vs_grid():
    n = 3
    r, c = SW.serpentine(n)
    vs, vd = np.array([0.6, 0.9, 1.2])[c], np.array([0.6, 0.9, 1.2])[r]     # what the path sources drive
    f = 10 * vs + vd                                                         # a function of (vs, vd)
    got = SW.surface(f, n)
    g = np.array([0.6, 0.9, 1.2])
    np.testing.assert_allclose(got, 10 * g[None, :] + g[:, None])           # rows: vd, columns: vs
