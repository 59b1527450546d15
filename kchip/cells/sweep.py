"""Two-input DC surfaces as one continuation path: a serpentine over the vs x vd grid, walked in sub-steps.

A nested 2-D `.dc` restarts its inner sweep at every outer step (a full-span jump at which Newton failed and
ngspice fell back to gmin stepping for the whole deck). The serpentine only ever moves one input by one grid
step, and the sub-steps cut that step into `sub` pieces along the same straight segment (the sources are
piecewise-linear in the sweep variable), so every Newton solve starts from a nearby solution. The surfaces are
read at the integer sweep values only; the sub-step points are discarded.

Measured (tanh_lin, 3 instances at full gain codes, tt, 27 path points; docs/cells.md): one step per grid
step: 17 gmin-stepping fallbacks, 13,179 Newton iterations, 28 s; 5 sub-steps: 7, 5,861, 12.5 s; 10: 2, 2,238,
5.8 s; 20: 1 (the operating point), 1,740, 4.9 s - results equal at the grid points within 0.01 % of FS.
"""
from __future__ import annotations

from typing import Dict, List, Sequence

import numpy as np

SUBSTEPS = 20


def serpentine(n: int):
    """Path over an n x n grid, one grid step at a time: row r (vd index) left to right when r is even, right to
    left when odd -> (row, col) of path point k = 0 .. n^2 - 1."""
    k = np.arange(n * n)
    r = k // n
    return r, np.where(r % 2 == 0, k % n, n - 1 - k % n)


def path_sources(grid_s: Sequence[float], grid_d: Sequence[float], s: str = "s", d: str = "d") -> List[str]:
    """Sweep variable t (the `.dc` source Vt, node t) and behavioural sources that put nets s and d on the
    serpentine path: at t = k (integer) they sit on path point k, in between they move linearly."""
    r, c = serpentine(len(grid_s)) if len(grid_s) == len(grid_d) else (None, None)
    if r is None:
        raise ValueError(f"path_sources: the grids must have the same length ({len(grid_s)} vs {len(grid_d)})")
    pwl = lambda v: "pwl(v(t), " + ", ".join(f"{k}, {x:.6f}" for k, x in enumerate(v)) + ")"
    return ["Vt t 0 dc 0", f"Bs {s} 0 V = {pwl(np.asarray(grid_s)[c])}", f"Bd {d} 0 V = {pwl(np.asarray(grid_d)[r])}"]


def path_analysis(n: int, sub: int = SUBSTEPS) -> str:
    """`.dc` over the n x n path in `sub` sub-steps per grid step (the stop value has half a step of margin so
    that the last grid point is not lost to rounding in ngspice's accumulated sweep value)."""
    if int(sub) < 1:
        raise ValueError(f"path_analysis: sub = {sub!r}; it must be an integer >= 1")
    step = 1.0 / int(sub)
    return f".dc Vt 0 {n * n - 1 + step / 2:.6f} {step:.9f}"


def path_points(n: int, sub: int = SUBSTEPS) -> int:
    """Number of sweep points `path_analysis(n, sub)` returns."""
    return (n * n - 1) * int(sub) + 1


def at_grid(vectors: Dict[str, np.ndarray], n: int, sub: int = SUBSTEPS) -> Dict[str, np.ndarray]:
    """The vectors at the integer sweep values (path points 0 .. n^2 - 1), checked against the sweep vector."""
    idx = np.arange(n * n) * int(sub)
    out = {k: np.asarray(v)[idx] for k, v in vectors.items()}
    t = np.real(out.get("v(t)", out.get("v-sweep", idx / sub)))
    if np.max(np.abs(t - np.arange(n * n))) > 1e-6:
        raise ValueError(f"at_grid: sweep values at the picked points are not the path points "
                         f"(max offset {np.max(np.abs(t - np.arange(n * n))):.3g})")
    return out



def surface(path_values, n: int) -> np.ndarray:
    """A vector in path order (n^2 values at the grid points, `at_grid`) as the (vd, vs) surface of n x n."""
    r, c = serpentine(n)
    out = np.zeros((n, n))
    out[r, c] = np.real(np.asarray(path_values))
    return out
