"""Simulated power of a transistor-level chip: its supply current at pinned states of a forward pass (ngspice).

A full transient of a chip of hundreds of sky130 cells costs tens of minutes per inference (docs/results.md), so
the supply current of a forward pass is measured at DC, at the states the chip goes through: for each period k
and each of a few instants of it (the L1 trajectory of a few inputs, `trajectory_states`), every node is held at
its voltage (load switches on, the input drivers at the state), en_k high and the other periods' enables low;
and once with every enable low (idle). The dynamic current that charges the node capacitors is left out: it is
C dV/dt ~ 50 fF x 0.1 V / 1 us = 5 nA per node against ~15 uA per cell (the figure is in the result).

At DC the edge cells touch each other only through the shared bias lines (gates: no DC current) and the held
nodes, so the chip's operating point splits exactly (the method of `kchip.sim.opinit`):

1. the chip without its edge cells (bias generator, switches, inverters) at every state, in one ngspice run
   (`alter`): the supply current of that skeleton and the voltage of every net a cell pin touches;
2. every cell subcircuit alone, its pins on ideal sources at each distinct pin-voltage vector of its instances,
   in one ngspice run per subcircuit: the current each instance draws from vdd (and from vcm).

The chip's supply current at a state is the skeleton's plus the sum over the instances. `sequencer_power`
simulates the standard-cell sequencer alone (transient, one inference) for its average supply current.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from kchip.netlist import read_header
from kchip.quantize.chipspec import ChipSpec
from kchip.sim.merge import core_lines
from kchip.sim.ngspice import run_deck, run_parallel
from kchip.sim.hierarchy import core_path, flat_name, instance_call, node_voltages, subckts
from kchip.sim.opinit import TIGHT_OPTIONS, lone_cell_ops, require_converged, skeleton_text

State = Tuple[Optional[int], Dict[int, float]]      # (enabled period or None, node index -> V)


def trajectory_states(spec: ChipSpec, x: np.ndarray, points: int = 5) -> List[State]:
    """[(period, {node: V})]: for each period in execution order, `points` evenly spaced instants of the L1
    trajectory of each input row of x (SW units -> V = V_cm + V_u v; nodes the period does not use at V_cm), and
    the idle state (no period enabled, every node at V_cm). Each period's states share its enable time equally."""
    import torch
    from kchip.quantize.core import realized_model
    s = spec.scaling
    model = realized_model(spec)
    with torch.no_grad():
        _, traj = model(torch.tensor(np.asarray(x, dtype=np.float64)), return_trajectory=True, t_points=points,
                        project=False)
    states = []
    for k, (_, v) in zip(model.order(False), traj):
        v = v.numpy()                                   # (points, B, N_k)
        for i in range(v.shape[0]):
            for b in range(v.shape[1]):
                volts = {j: s.v_cm for j in range(1, spec.num_nodes + 1)}
                volts.update({j + 1: s.v_cm + s.v_u * float(v[i, b, j]) for j in range(v.shape[2])})
                states.append((k, volts))
    states.append((None, {j: s.v_cm for j in range(1, spec.num_nodes + 1)}))
    return states


def _testbench(deck: Path, head: Dict, spec: ChipSpec, state: State) -> List[str]:
    """Sources of one pinned state around `kchip_core` (every node on its load switch; `.op`)."""
    hi, (period, volts) = float(head.get("logic_high", 1.8)), state
    sup = head["supplies"]
    lines = [f"* kchip estimate: pinned state (period {period})", f".include {deck}", head["options"],
             f"Vvdd vdd 0 {sup['vdd']}", f"Iref vdd iref {sup['iref']:.9e}", f"Vvcm vcm 0 {spec.scaling.v_cm}",
             "Vdirp dirp 0 1", f"Vld ld 0 {hi}", f"Vsmp smp 0 {hi}"]
    lines += [f"Ven_{k} en_{k} 0 {hi if k == period else 0.0}" for k in range(len(spec.periods))]
    lines += [f"Vrst_{j} rst_{j} 0 0" for j in range(1, spec.num_nodes + 1)]
    lines += [f"Vin_{j} in_{j} 0 {volts[j]!r}" for j in range(1, spec.num_nodes + 1)]
    lines.append(f"Xchip {' '.join(head['ports'])} kchip_core")
    return lines


def _alters(spec: ChipSpec, prev: State, state: State, hi: float) -> List[str]:
    out = [f"alter ven_{k} dc = {hi if k == state[0] else 0.0}" for k in range(len(spec.periods))
           if (k == state[0]) != (k == prev[0])]
    out += [f"alter vin_{j} dc = {v!r}" for j, v in state[1].items() if prev[1][j] != v]
    return out


def _skeleton_states(chip: str, head: Dict, spec: ChipSpec, states: Sequence[State], wd: Path, timeout: float):
    """Step 1: per state, (skeleton supply current from vdd, current from vcm, {net: V}); `chip`: the deck's
    text."""
    skel = wd / "skeleton.spice"
    skel.write_text(skeleton_text(chip, "kchip_core"))
    hi = float(head.get("logic_high", 1.8))
    lines = _testbench(skel, head, spec, states[0]) + [TIGHT_OPTIONS, ".control", "set filetype=binary"]
    for k, st in enumerate(states):
        lines += (_alters(spec, states[k - 1], st, hi) if k else []) + ["op", "write {RAW}", "set appendwrite"]
    lines += ["quit", ".endc", ".end"]
    res = require_converged(run_deck("\n".join(lines) + "\n", cell="chip skeleton (no edge cells)",
                            point=f"{len(states)} pinned states", keep=wd / "skeleton", timeout=timeout,
                            expect_points=[1] * len(states)), "the chip skeleton")
    return [(-float(pl["i(vvdd)"][0]), -float(pl["i(vvcm)"][0]), node_voltages(pl)) for pl in res.plots]


def _cell_currents(deck: Path, cell: str, pins: List[str], vectors: List[Tuple[float, ...]], wd: Path,
                   timeout: float) -> List[Tuple[float, float]]:
    """Step 2: (current from the vdd pin, from the vcm pin) of a lone `cell` at each pin-voltage vector."""
    plots = lone_cell_ops(deck, cell, pins, vectors, wd, timeout, "pinned operating points")
    pick = lambda pl, p: -float(pl[f"i(vp_{p})"][0]) if p in pins else 0.0
    return [(pick(pl, "vdd"), pick(pl, "vcm")) for pl in plots]


def pinned_supply(deck, spec: ChipSpec, states: Sequence[State], jobs: int = 1, timeout: float = 1800.0,
                  keep: Optional[Path] = None, log=None) -> Dict:
    """The chip's supply current at each pinned state (module docstring). Returns {"i_vdd": [A per state],
    "i_vcm": [...], "skeleton_vdd": [...], "cells_vdd": [...], "ops": number of lone-cell operating points,
    "seconds": ...}."""
    deck = Path(deck).resolve()
    chip = deck.read_text()
    head = read_header(chip, str(deck))
    if head.get("level") != "transistor" or head.get("control", "ideal") != "ideal":
        raise ValueError(f"{deck}: the supply measurement needs a transistor-level deck with testbench control "
                         f"(kchip netlist --level transistor --control ideal)")
    t0 = time.perf_counter()
    subs = subckts(chip)
    cells = [tok for _, tok, cell in core_lines(chip, "kchip_core") if cell]
    with tempfile.TemporaryDirectory(prefix="kchip_estimate_") as tmp:
        wd = Path(keep).resolve() if keep is not None else Path(tmp)
        wd.mkdir(parents=True, exist_ok=True)
        skel = _skeleton_states(chip, head, spec, states, wd, timeout)
        tb = "\n".join(_testbench(deck, head, spec, states[0]))
        path = core_path(tb, subs, "kchip_core")
        # per subcircuit: the distinct pin-voltage vectors, and per state the vector of each instance
        vecs: Dict[str, Dict[Tuple, int]] = {}
        uses: List[List[Tuple[str, Tuple]]] = []
        for _, _, volts in skel:
            row = []
            for tok in cells:
                nets, sub = instance_call(tok)
                vec = tuple(0.0 if (nm := flat_name(path, n)) is None else round(volts[nm], 7) for n in nets)
                vecs.setdefault(sub, {}).setdefault(vec, len(vecs[sub]))
                row.append((sub, vec))
            uses.append(row)
        # one ngspice run per subcircuit and share of its vectors: `jobs` runs side by side
        tasks = []
        for c in sorted(vecs):
            vs = list(vecs[c])
            step = -(-len(vs) // max(1, min(jobs, len(vs))))
            tasks += [(c, k, vs[k:k + step]) for k in range(0, len(vs), step)]
        if log:
            log(f"estimate: skeleton done; {sum(len(v) for v in vecs.values())} lone-cell operating points in "
                f"{len(tasks)} ngspice runs ({jobs} at a time)")
        done = []

        def one(c, k, v):
            r = _cell_currents(deck, c, subs[c][0], v, wd / f"{c}_{k}", timeout)
            done.append(len(v))
            if log:
                log(f"estimate: {len(done)}/{len(tasks)} cell runs done ({time.perf_counter() - t0:.0f} s)")
            return r
        got = run_parallel([lambda c=c, k=k, v=v: one(c, k, v) for c, k, v in tasks], jobs)
        cur: Dict[str, list] = {}
        for (c, _, _), g in zip(tasks, got):
            cur.setdefault(c, []).extend(g)
    cells_vdd = [sum(cur[s][vecs[s][v]][0] for s, v in row) for row in uses]
    cells_vcm = [sum(cur[s][vecs[s][v]][1] for s, v in row) for row in uses]
    return {"i_vdd": [a + b for (a, _, _), b in zip(skel, cells_vdd)],
            "i_vcm": [a + b for (_, a, _), b in zip(skel, cells_vcm)],
            "skeleton_vdd": [a for a, _, _ in skel], "cells_vdd": cells_vdd, "instances": len(cells),
            "ops": sum(len(v) for v in vecs.values()), "seconds": round(time.perf_counter() - t0, 1)}


def sequencer_power(spec: ChipSpec, t_clk: float, corner: str = "tt", timeout: float = 900.0) -> Dict:
    """Average supply current of the standard-cell sequencer alone over one inference (transient; its outputs
    unloaded: the switch gates they drive add C V^2 f, in the analytic figure)."""
    from kchip.netlist.sequencer import sequencer_deck
    from kchip.pdk import load_pdk
    deck, pl, tim = sequencer_deck(spec, t_clk, corner=corner, inferences=1)
    deck = deck.replace(".save ", ".save i(vdd) ", 1)
    res = run_deck(deck, cell="sequencer", point="one inference", timeout=timeout)
    p = res.plots[0]
    t, i = p["time"], -p["i(vdd)"]
    a, b = tim["t_edge0"], tim["t_edge0"] + tim["per_inf"] * t_clk
    avg = _time_mean(t, i, a, b)
    # the latency its control gives: from the load strobe's rise to the sample strobe's fall (hold)
    half = load_pdk().vdd / 2                      # the deck's logic level (sequencer_deck drives at vdd)
    rise = next((c for c in _crossings(t, p["v(ld)"], half, +1) if c > a - t_clk), None)
    fall = next((c for c in _crossings(t, p["v(smp)"], half, -1) if c > (a if rise is None else rise)), None)
    lat = None if rise is None or fall is None else fall - rise
    return {"i_avg_A": avg, "n_flops": pl.n_flops, "t_clk_s": t_clk, "latency_s": lat,
            "seconds": round(res.wall_s, 1)}


def _crossings(t: np.ndarray, v: np.ndarray, level: float, sign: int) -> List[float]:
    """The instants (linear interpolation) at which v crosses `level` upwards (sign +1) or downwards (-1)."""
    s = sign * (np.asarray(v) - level)
    return [float(t[i] + (level - v[i]) * (t[i + 1] - t[i]) / (v[i + 1] - v[i]))
            for i in np.flatnonzero((s[:-1] < 0) & (s[1:] >= 0))]


def _time_mean(t: np.ndarray, v: np.ndarray, a: float, b: float) -> float:
    """The time average of v over [a, b] (trapezoids on the simulator's points in the window)."""
    m = (t >= a) & (t <= b)
    return float(np.trapezoid(v[m], t[m]) / (t[m][-1] - t[m][0]))


def waveform_latency(t: np.ndarray, waves: Dict[str, np.ndarray], read_times: Sequence[float],
                     outputs: Sequence[int], tol_v: float, logic_high: float = 1.8) -> Dict:
    """Latency measured on a simulated waveform: for each inference read at `read_times`, the time from the rise
    of its load strobe (`v(ld)` crossing half the logic level) to the last instant at which some output
    `v(out_j)` was more than `tol_v` away from the value read. Returns per-inference figures and their median."""
    ld = waves["v(ld)"]
    # a strobe high from t = 0 starts at 0
    starts = ([0.0] if ld[0] >= logic_high / 2 else []) + _crossings(t, ld, logic_high / 2, +1)
    out = np.stack([waves[f"v(out_{j})"] for j in outputs])
    lat = []
    for r in read_times:
        t0 = max((s for s in starts if s <= r), default=None)
        if t0 is None:
            continue
        m = (t >= t0) & (t <= r)
        ref = np.array([np.interp(r, t, o) for o in out])[:, None]
        away = np.flatnonzero(np.max(np.abs(out[:, m] - ref), axis=0) > tol_v)
        t_valid = float(t[m][away[-1] + 1]) if len(away) and away[-1] + 1 < m.sum() else \
            (float(r) if len(away) else t0)
        lat.append(t_valid - t0)
    return {"latency_s": float(np.median(lat)) if lat else None, "per_inference_s": lat, "tol_V": tol_v}


def transient_supply(t: np.ndarray, i_vdd: np.ndarray, read_times: Sequence[float]) -> Dict:
    """Average supply current of a simulated transient (i(vvdd), sign-corrected) over the inferences read at
    `read_times` (from the first read's inference start, estimated as the spacing of the reads)."""
    i = -np.asarray(i_vdd)
    r = np.asarray(read_times)
    span = float(np.median(np.diff(r))) if len(r) > 1 else float(r[0])
    a, b = float(r[0]) - span, float(r[-1])
    return {"i_avg_A": _time_mean(t, i, max(a, 0.0), b), "window_s": [a, b]}
