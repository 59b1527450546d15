"""An initial state for the operating point of a transistor-level chip, handed to Newton as pulls.

ngspice's direct Newton does not find the operating point of a chip of session-12 tanh_lin cells from its
default start, and its searches are slow at chip scale (source stepping: 27 min on the 568-cell twomoon chip;
docs/netlist.md, "Operating point of large transistor chips"). At t = 0 the edge cells do not load the chip:
their outputs are steered to the rails (enable low) and their inputs are gates. So the chip's state is found in
two small steps:

1. the *skeleton*: the testbench with every edge-cell instance taken out of the core (bias generator, sequencer,
   switches, capacitors) gets a `.op`: the voltage of every chip net;
2. the *cells*: one deck per cell subcircuit holds a single cell with each pin on an ideal source; for each
   distinct pin-voltage vector of the chip's instances (read from step 1), ngspice alters the sources and runs
   `.op` (source stepping: a lone cell needs it too), all in one ngspice run: the voltage of every internal
   node. A merged cell (`kchip.sim.merge`, `<cell>__x<k>`) gets its own deck: its repeated resistors have
   internal nodes of their own names.

`pulls` turns the cells' node voltages into elements that hold them until a release time (ngspice's `.nodeset`
costs nodesets x matrix non-zeroes per iteration, far too much for 26,000 nodes; `.ic` with `uic` starts every
MOSFET from its device initial conditions instead):

    text, info = pulls(testbench_deck, chip_deck_path, release_s)     # lines to add before `.end`
"""
from __future__ import annotations

import re
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from .hierarchy import core_path, flat_name, instance_call, node_voltages, subckts
from .merge import core_lines
from .ngspice import ConvergenceError, run_deck, run_parallel

# a lone cell's operating point: source stepping (direct Newton fails on a session-12 tanh_lin cell), tighter
# than the chip's own tolerances (reltol 1e-3 lets a node stop 0.4 mV off) so the pulls start where the chip is
# (reltol 1e-6 / abstol 1e-15 made a lone cell's source stepping fail, and ngspice's fallback, a transient
# ramp, then stopped with vbl at 0.03 V instead of 0.41 V: a failed search step is an error here, see require_converged)
TIGHT_OPTIONS = ".options reltol=1e-5 abstol=1e-14 vntol=1e-8"
CELL_OPTIONS = f"{TIGHT_OPTIONS} gmin=1e-12 noopiter gminsteps=0"


def require_converged(res, what: str):
    """A run whose operating-point search fell back past a failed step may end on ngspice's transient ramp,
    which stops wherever its time runs out (measured: a lone tanh_lin cell's vbl at 0.03 V instead of 0.41 V),
    not at the point: no initial state from it."""
    if res.extra.get("op_search"):
        raise ConvergenceError(f"opinit: the operating point of {what} was not found by Newton or source "
                               f"stepping ({res.extra['op_search']}); no initial state from it", res.log)
    return res


def skeleton_text(chip: str, core: str = "kchip_core") -> str:
    """The deck `chip` with every edge-cell instance taken out of subcircuit `core` (bias generator, sequencer,
    switches and capacitors stay)."""
    return "\n".join(ln for ln, _, cell in core_lines(chip, core) if not cell) + "\n"


def _skeleton(tb: str, chip_path: Path, chip: str, core: str, wd: Path, timeout: float) -> Dict[str, float]:
    """Step 1: every chip net's voltage at t = 0 with the edge cells taken out of `core`."""
    skel = wd / "skeleton.spice"
    skel.write_text(skeleton_text(chip, core))
    deck = re.sub(r"^\.include\s+\S*" + re.escape(chip_path.name) + r"\s*$", f".include {skel}", tb, flags=re.M)
    deck = re.sub(r"^\.tran\b.*$", ".op", deck, flags=re.M)
    deck = re.sub(r"^\.save\b.*$", "", deck, flags=re.M)
    deck = deck.replace("\n.end\n", "\n" + TIGHT_OPTIONS + "\n.end\n")       # later .options override earlier ones
    res = require_converged(run_deck(deck, cell="chip skeleton (no edge cells)", point="operating point at t = 0",
                            keep=wd / "skeleton", timeout=timeout), "the chip skeleton")
    return node_voltages(res.plots[0])


def lone_cell_ops(chip_path: Path, cell: str, pins: List[str], vectors: List[Tuple[float, ...]], wd: Path,
                  timeout: float, what: str = "operating points"):
    """The operating-point plots of a lone `cell` (subcircuit of the deck `chip_path`, pins `pins`, each on an
    ideal source `Vp_<pin>`) at each pin-voltage vector, in one ngspice run (`alter`, `op`); kept in `wd`. A
    search that fell back past a failed step is an error (`require_converged`)."""
    deck = [f"* kchip: lone {cell} at {len(vectors)} pin-voltage vectors", f".include {chip_path}",
            CELL_OPTIONS, *[f"Vp_{p} p_{p} 0 {vectors[0][i]!r}" for i, p in enumerate(pins)],
            "X1 " + " ".join(f"p_{p}" for p in pins) + f" {cell}", ".control", "set filetype=binary"]
    for k, vec in enumerate(vectors):
        deck += [f"alter vp_{p} dc = {vec[i]!r}" for i, p in enumerate(pins) if k and vectors[k - 1][i] != vec[i]]
        deck += ["op", "write {RAW}", "set appendwrite"]
    deck += ["quit", ".endc", ".end"]
    return require_converged(run_deck("\n".join(deck) + "\n", cell=cell, point=f"{len(vectors)} {what}", keep=wd,
                             timeout=timeout, expect_points=[1] * len(vectors)), f"a lone {cell}").plots


def _cell_states(chip_path: Path, cell: str, pins: List[str], vectors: List[Tuple[float, ...]], wd: Path,
                 timeout: float) -> List[Dict[str, float]]:
    """Step 2: the internal node voltages of a lone `cell` (pins `pins`) for each pin-voltage vector, in one
    ngspice run."""
    plots = lone_cell_ops(chip_path, cell, pins, vectors, wd / cell, timeout, "operating points at t = 0")
    return [node_voltages(pl, "x1.") for pl in plots]


def _group_cells(cells: List[List[str]], path, volts: Dict[str, float]) -> Dict[str, Dict[Tuple, List[str]]]:
    """{subcircuit: {pin-voltage vector: instance names}} of the edge-cell instance lines `cells`."""
    groups: Dict[str, Dict[Tuple, List[str]]] = {}
    for tok in cells:
        nets, sub = instance_call(tok)
        vec = []
        for n in nets:
            nm = flat_name(path, n)
            if nm is not None and nm not in volts:
                raise ValueError(f"opinit: net {n!r} of {tok[0]} ({sub}) is connected to edge cells only: "
                                 f"no voltage for it without them")
            vec.append(0.0 if nm is None else round(volts[nm], 7))
        groups.setdefault(sub, {}).setdefault(tuple(vec), []).append(tok[0])
    return groups


def initial_state(tb: str, chip_path, core: str = "kchip_core", keep: Optional[Path] = None,
                  timeout: float = 1800.0, jobs: int = 1) -> Tuple[Dict[str, float], Dict[str, float], Dict]:
    """(chip nets' voltages, the edge cells' internal node voltages (flat names), info) at t = 0 of testbench
    `tb`, which `.include`s the chip deck `chip_path`. info: counts and seconds per step."""
    chip_path = Path(chip_path).resolve()
    chip = chip_path.read_text()
    subs = subckts(chip)
    if core not in subs:
        raise ValueError(f"opinit: {chip_path}: no subcircuit {core!r}")
    path = core_path(tb, subs, core)
    cells = [tok for _, tok, cell in core_lines(chip, core) if cell]
    inner: Dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="kchip_opinit_") as tmp:
        wd = Path(keep) if keep is not None else Path(tmp)
        wd.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        volts = _skeleton(tb, chip_path, chip, core, wd, timeout)
        t1 = time.perf_counter()
        groups = _group_cells(cells, path, volts)
        prefix = ".".join(p[0] for p in path).lower()
        # one deck per subcircuit, the scaled copies (kchip.sim.merge) too: their repeated resistors have
        # internal nodes of their own names; the voltages are the base cell's
        subs_sorted = sorted(groups)
        states = run_parallel([lambda c=c: _cell_states(chip_path, c, subs[c][0], list(groups[c]), wd, timeout)
                               for c in subs_sorted], jobs)
        for cell, st in zip(subs_sorted, states):
            for vec, state in zip(groups[cell], st):
                for inst in groups[cell][vec]:
                    inner.update({f"{prefix}.{inst.lower()}.{k}": v for k, v in state.items()})
        t2 = time.perf_counter()
    info = {"chip_nets": len(volts), "cell_instances": len(cells), "cell_nodes": len(inner),
            "cell_states": sum(len(g) for g in groups.values()), "cell_subckts": len(groups),
            "skeleton_s": round(t1 - t0, 1), "cells_s": round(t2 - t1, 1)}
    return volts, inner, info


def pulls(tb: str, chip_path, release_s: float, g: float = 1e-3, **kw) -> Tuple[str, Dict]:
    """Elements that pull every edge cell's internal node to its initial state through `g` until `release_s`,
    then let go (a linear ramp to zero over release_s / 10): a behavioural current g (V_n - V_0) f(time) per
    node (see initial_state). f is a function of `time`, not of a shared control node: a node read by every
    pull would put one entry per pull into a single matrix column, and ngspice's pivot ordering walks that
    column (the twomoon chip, 26k pulls: no operating point in 5 min, the time inside the sparse-matrix code)."""
    _, inner, info = initial_state(tb, chip_path, **kw)
    t1, t2 = release_s, 1.1 * release_s
    f = f"min(1, max(0, ({t2:.6e} - time) / {t2 - t1:.6e}))"
    lines = [f"* kchip.sim.opinit: {len(inner)} edge-cell nodes pulled to their t = 0 state until {t1:.3e} s"]
    lines += [f"Bkchip_hint{i} {k} 0 I = {g:.6g} * (v({k}) - {v:.9g}) * {f}"
              for i, (k, v) in enumerate(sorted(inner.items()))]
    return "\n".join(lines) + "\n", info
