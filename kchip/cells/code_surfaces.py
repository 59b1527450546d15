"""Measured DC surfaces of the code triples one chip uses: what refines L2 where a cell's structural surrogate is
not exact on codes it was not fitted to.

The tanh_lin surrogate (`kchip.cells.tanh_lin_surrogate`) is fitted to 41 characterized code triples: 0.52 % FS
off them, but up to 1.65 % FS on triples held out of the fit, and a chip uses whatever triples its edges need (the
twomoon chips: ~150 distinct, mostly small and mixed, none of them characterized). On such a chip the net current
into a node is a sum of ~300 cell currents of up to I_T each that nearly cancel, so a systematic error of a few
0.1 % of I_T per cell reaches the outputs (docs/results.md). Here the chip's own triples are measured with ngspice
on the characterization grid of the cell (the same deck settings, the serpentine DC path of `kchip.cells.sweep`),
and L2 (`kchip.sim.l2.surrogate_model(code_surfaces=...)`) adds each edge's measured residual (measured i_d - the
surrogate's, interpolated bilinearly) to the surrogate, and takes the s-side current of its own triple.

    cs = measure_code_surfaces("tanh_lin", "tt", [(1, -1, 8), (2, 0, 8)])      # ngspice, cached per triple
    cs.i_d[cs.index((1, -1, 8))]                                               # (len(vd), len(vs)) in A

Each triple's surfaces are cached in `<cache>/code_surfaces/<cell>/<corner>_<key>/<tag>.npz` (`KCHIP_CACHE`,
default build/cache; an explicit `cache` folder holds `<corner>_<key>/<tag>.npz`), key = a hash of the deck head (cell subcircuit, model include, grid): a chip that shares
triples with an earlier one measures only the new ones.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

__all__ = ["CodeSurfaces", "measure_code_surfaces", "SUPPORTED"]

SUPPORTED = ("tanh_lin",)
SUBSTEPS = 10           # sub-steps per grid step of the DC path (20 in the characterization; equal within 0.01 % FS)
PER_DECK = 4            # instances per ngspice deck


@dataclass
class CodeSurfaces:
    """DC surfaces of code triples on a (vs, vd) grid: i_d (current into d) and i_s (current out of s), (n, nd, ns) A."""
    cell: str
    corner: str
    vs: np.ndarray
    vd: np.ndarray
    combos: List[Tuple[int, ...]]
    i_d: np.ndarray
    i_s: np.ndarray
    info: Dict = field(default_factory=dict)

    def __post_init__(self):
        self.combos = [tuple(int(x) for x in c) for c in self.combos]
        self._idx = {c: j for j, c in enumerate(self.combos)}

    def index(self, combo: Sequence[int]) -> int:
        c = tuple(int(x) for x in combo)
        if c not in self._idx:
            raise KeyError(f"{self.cell}/{self.corner}: code triple {c} was not measured")
        return self._idx[c]

    def __contains__(self, combo) -> bool:
        return tuple(int(x) for x in combo) in self._idx


def _tag(c: Sequence[int]) -> str:
    from .relu_lin import _tag as tag
    return tag(*c)


def measure_code_surfaces(cell: str, corner: str, combos: Sequence[Sequence[int]], jobs: int = 2,
                          cache: Optional[Path] = None, pdk=None,
                          log: Optional[Callable[[str], None]] = None,
                          grid_points: Optional[int] = None) -> CodeSurfaces:
    """DC surfaces of the code triples `combos` (cs, cd, o) of cell kind `cell` at `corner` on the cell's
    characterization grid, `PER_DECK` instances per ngspice deck, `jobs` decks side by side; triples already in the
    cache are read from it. Errors name the cell, the corner and the triple.
    grid_points: points per input of the grid (`tanh_lin.grid_volts`: default the characterization grid's 9;
    2 n - 1 points hold the n-point grid and put one point between each pair of its neighbours)."""
    from ..pdk import _cache_dir, load_pdk
    from ..sim.ngspice import run_decks
    from . import sweep as SW
    from . import tanh_lin as T
    from .characterize import KINDS
    if cell not in SUPPORTED:
        raise ValueError(f"code surfaces: cell kind {cell!r} is not supported (supported: {', '.join(SUPPORTED)})")
    pdk = pdk or load_pdk()
    pdk.check_corner(corner)
    kind = KINDS[cell]
    full, ofull = 2 ** kind.bits - 1, 2 ** kind.obits - 1
    todo = sorted({tuple(int(x) for x in c) for c in combos})
    for c in todo:
        if len(c) != 3 or abs(c[0]) > full or abs(c[1]) > full or not 0 <= c[2] <= ofull:
            raise ValueError(f"code surfaces {cell}/{corner}: code triple {c} is outside the cell's codes "
                             f"(cs, cd in -{full}..{full}, o in 0..{ofull})")
    sub = kind.subckt(pdk)
    if grid_points is not None and (int(grid_points) != grid_points or grid_points < 3):
        raise ValueError(f"code surfaces {cell}/{corner}: grid_points={grid_points!r}; an integer >= 3")
    grid = T.grid_volts(kind, None if grid_points is None else int(grid_points))
    n = len(grid)
    head = T._head(pdk, kind, corner, sub, "chip code surfaces") + T._sweep_head(kind, grid)
    key = hashlib.sha256(("\n".join(head) + f"\nsubsteps={SUBSTEPS}").encode()).hexdigest()[:12]
    # the key is in the folder name: a deck that differs (grid, cell design, models) never reads another's entries
    folder = (Path(cache) if cache else _cache_dir() / "code_surfaces" / cell) / f"{corner}_{key}"
    got: Dict[Tuple[int, ...], Tuple[np.ndarray, np.ndarray]] = {}
    for c in todo:
        f = folder / f"{_tag(c)}.npz"
        if f.exists():
            z = np.load(f)
            got[c] = (z["i_d"], z["i_s"])
    new = [c for c in todo if c not in got]
    t0 = time.perf_counter()
    if new:
        if log:
            log(f"code surfaces {cell}/{corner}: measuring {len(new)} code triples ({len(todo) - len(new)} cached)")
        decks = ["\n".join(list(head) + [ln for c in new[k:k + PER_DECK]
                                         for ln in T._inst(kind, sub, _tag(c), *c)]
                           + [SW.path_analysis(n, SUBSTEPS), ".end"]) for k in range(0, len(new), PER_DECK)]
        res = run_decks(decks, jobs=max(1, int(jobs)), cell=cell,
                        point=f"DC surfaces of the chip's code triples at corner {corner}",
                        expect_points=[SW.path_points(n, SUBSTEPS)], timeout=3600)
        folder.mkdir(parents=True, exist_ok=True)
        for k, r in enumerate(res):
            vec = SW.at_grid(r.plots[0].vectors, n, SUBSTEPS)
            for c in new[k * PER_DECK:(k + 1) * PER_DECK]:
                i_d, i_s = (SW.surface(vec[f"i({p}{_tag(c)})"], n) for p in ("vmd", "vms"))
                if not (np.all(np.isfinite(i_d)) and np.all(np.isfinite(i_s))):
                    raise ValueError(f"code surfaces {cell}/{corner}: triple {c}: non-finite current in the table")
                np.savez(folder / f"{_tag(c)}.npz", i_d=i_d, i_s=i_s, combo=np.array(c), vs=grid, vd=grid)
                got[c] = (i_d, i_s)
    info = {"triples": len(todo), "measured": len(new), "cached": len(todo) - len(new),
            "wall_s": time.perf_counter() - t0, "cache": str(folder)}
    return CodeSurfaces(cell, corner, np.asarray(grid), np.asarray(grid), todo,
                        np.stack([got[c][0] for c in todo]) if todo else np.zeros((0, n, n)),
                        np.stack([got[c][1] for c in todo]) if todo else np.zeros((0, n, n)), info)
