"""`kchip simulate`: run a kchip chip deck in ngspice on many inputs and compare with the software levels.

One ngspice run simulates a sequence of inferences on the same circuit (load, periods, sample, hold; then the
next input), which is what the chip does in use; independent chunks of inputs run in parallel processes.
Every chunk's outputs are written to `<out>/chunks/` as soon as it finishes, so a failing chunk loses nothing
already computed. Outputs are read from the sample-and-hold nodes at the end of each hold window and turned
back into SW units, (V - V_cm) / V_u, then compared with L1 (the realized model) and, when given, L0 (the
float model): RMS and max error per output and in % of full scale (the reference outputs' range).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from kchip.netlist import read_header, spec_digest
from kchip.netlist.ideal import LOGIC_HIGH
from kchip.netlist.schedule import Schedule, build_schedule
from kchip.netlist.sequencer import drive_sources
from kchip.quantize.chipspec import ChipSpec

from .ngspice import NgspiceError, run_deck
from .opinit import pulls

DEFAULT_OPTIONS = ".options reltol=1e-4 abstol=1e-15 vntol=1e-7"   # trap; measured in docs/netlist.md


def _pwl(points: List[Tuple[float, float]]) -> str:
    out, last_t = [], -1.0
    for t, v in points:
        if t <= last_t:
            t = last_t + 1e-15
        out.append(f"{t:.9e} {v:.9g}")
        last_t = t
    return "PWL(" + " ".join(out) + ")"


def _pulses(windows: Sequence[Tuple[float, float]], t_rise: float, hi: float = LOGIC_HIGH) -> List:
    """PWL points of a 0/hi signal that is high on each (start, stop) window; edges centred on the window
    boundaries so that the 50 % crossings fall exactly on them."""
    pts = [(0.0, 0.0)]
    for a, b in sorted(windows):
        if b <= a:
            continue
        a0, a1 = max(a - t_rise / 2, 0.0), a + t_rise / 2
        if a0 == 0.0 and a <= t_rise / 2:
            pts = [(0.0, hi)] if a == 0.0 else pts + [(a1, hi)]
        else:
            pts += [(a0, 0.0), (a1, hi)]
        pts += [(b - t_rise / 2, hi), (b + t_rise / 2, 0.0)]
    return pts


@dataclass
class Testbench:
    deck: str
    read_times: np.ndarray        # (n_inputs,) instants at which the held outputs are read
    outputs: List[int]
    t_stop: float
    level: str = "ideal"
    # before this instant no edge cell is enabled: the initial-state pulls (kchip.sim.opinit) let go by then
    t_release: float = 0.0


def testbench(deck_path: Path, spec: ChipSpec, x: np.ndarray, direction: str, waves: Sequence[str] = (),
              options: Optional[str] = None, steps_per_period: int = 50) -> Testbench:
    """The testbench deck around `kchip_core`: supplies, input drivers, control (the schedule of every
    inference), transient analysis with at least `steps_per_period` steps per period, `.save` of the outputs
    and of the requested waveforms only."""
    head = read_header(deck_path.read_text(), str(deck_path))
    if direction not in head.get("directions", ["forward", "reverse"]):
        raise ValueError(f"direction: {direction!r} is not supported by this {head['level']}-level deck "
                         f"(supported: {', '.join(head['directions'])})")
    options = head.get("options", DEFAULT_OPTIONS) if options is None else options
    if head.get("control") == "sequencer":
        return _testbench_sequencer(head, deck_path, spec, x, direction, waves, options, steps_per_period)
    hi = float(head.get("logic_high", LOGIC_HIGH))
    sch: Schedule = build_schedule(spec, direction, x.shape[1])
    s = spec.scaling
    t_inf = sch.t_inference
    t_rise = min(sch.t_load, sch.t_hold) / 50
    n_in = x.shape[0]
    wins: Dict[str, List[Tuple[float, float]]] = {"ld": [], "smp": []}
    wins.update({f"en_{k}": [] for k in range(len(spec.periods))})
    wins.update({f"rst_{j}": [] for j in range(1, spec.num_nodes + 1)})
    for i in range(n_in):
        t0 = i * t_inf
        wins["ld"].append((t0, t0 + sch.t_load))
        wins["smp"].append((t0, t0 + sch.t_end))
        for k in sch.order:
            wins[f"en_{k}"].append((t0 + sch.enable_from[k], t0 + sch.enable_until[k]))
        for j, ws in sch.resets.items():
            wins[f"rst_{j}"] += [(t0 + a, t0 + b) for a, b in ws]
    lines = [f"* kchip testbench: {n_in} inferences, {direction}", f".include {deck_path.resolve()}", options,
             *_supplies(head, spec), f"Vdir dirp 0 {1.0 if direction == 'forward' else -1.0}"]
    for name, ws in wins.items():
        lines.append(f"V{name} {name} 0 {_pwl(_pulses(ws, t_rise, hi))}")
    for j in range(1, spec.num_nodes + 1):
        col = j - 1
        if col < x.shape[1]:
            pts = []
            for i in range(n_in):
                v = s.v_cm + s.v_u * float(x[i, col])
                t0 = i * t_inf
                pts += [(max(t0 - t_rise, 0.0) if i else 0.0, v), (t0 + sch.t_load + t_rise, v)]
            lines.append(f"Vin_{j} in_{j} 0 {_pwl(pts)}")
        else:
            lines.append(f"Vin_{j} in_{j} 0 {s.v_cm:.9g}")
    ports = head["ports"]
    lines.append(f"Xchip {' '.join(ports)} kchip_core")
    t_stop = n_in * t_inf
    tmax = min(sch.lengths.values()) / steps_per_period
    lines.append(f".tran {tmax / 10:.6e} {t_stop:.9e} 0 {tmax:.6e}")
    saves = [f"v(out_{j})" for j in sch.outputs] + list(waves)
    lines.append(".save " + " ".join(dict.fromkeys(saves)))
    lines.append(".end")
    reads = np.array([i * t_inf + t_inf - t_rise for i in range(n_in)])
    return Testbench("\n".join(lines) + "\n", reads, sch.outputs, t_stop, head.get("level", "ideal"),
                     min(sch.enable_from.values(), default=0.0) / 4)


def _supplies(head: Dict, spec: ChipSpec) -> List[str]:
    sup = head.get("supplies", {})
    out = [f"Vvcm vcm 0 {spec.scaling.v_cm:.9g}"]
    if "vdd" in sup:
        out.append(f"Vvdd vdd 0 {sup['vdd']:.9g}")
    if "iref" in sup:
        out.append(f"Iref vdd iref {sup['iref']:.9e}")
    return out


def _testbench_sequencer(head: Dict, deck_path: Path, spec: ChipSpec, x: np.ndarray, direction: str,
                         waves: Sequence[str], options: str, steps_per_period: int) -> Testbench:
    """Testbench of a deck whose control is its own standard-cell sequencer (`kchip_chip`): only a clock, a
    power-on reset, one start pulse per inference (one clock wide, around the edge that loads the token) and
    the input drivers, which change in the idle clock cycle between inferences. Inference i's token enters
    flop 0 at the rising edge t0_i = 2 t_clk + i (n_flops + 1) t_clk; slot k of its plan spans
    [t0_i + k t_clk, t0_i + (k + 1) t_clk); the outputs are read at the end of the hold slot."""
    tim = head["sequencer"]
    t_clk, n_fl = float(tim["t_clk"]), int(tim["n_flops"])
    hi = float(head.get("logic_high", LOGIC_HIGH))
    outs = build_schedule(spec, direction, x.shape[1]).outputs      # (validates the input width)
    n_in = x.shape[0]
    drive, t0 = drive_sources(t_clk, n_fl, n_in, hi, direction)
    lines = [f"* kchip testbench (sequencer control): {n_in} inferences, {direction}",
             f".include {deck_path.resolve()}", options, *_supplies(head, spec), *drive]
    for j in range(1, spec.num_nodes + 1):
        col = j - 1
        if col < x.shape[1]:
            pts = []
            for i in range(n_in):       # valid from the idle cycle before the load slot to the end of it
                v = spec.scaling.v_cm + spec.scaling.v_u * float(x[i, col])
                pts += [((t0[i] - 0.75 * t_clk) if i else 0.0, v), (t0[i] + 1.25 * t_clk, v)]
            lines.append(f"Vin_{j} in_{j} 0 {_pwl(pts)}")
        else:
            lines.append(f"Vin_{j} in_{j} 0 {spec.scaling.v_cm:.9g}")
    lines.append(f"Xchip {' '.join(head['ports'])} {head.get('top', 'kchip_chip')}")
    t_stop = t0[-1] + n_fl * t_clk + t_clk / 2
    tmax = min(spec.scaling.period_s[p.index] for p in spec.periods) / steps_per_period
    lines.append(f".tran {tmax / 10:.6e} {t_stop:.9e} 0 {tmax:.6e}")
    lines.append(".save " + " ".join(dict.fromkeys([f"v(out_{j})" for j in outs] + list(waves))))
    lines.append(".end")
    reads = np.array([t + n_fl * t_clk - t_clk / 10 for t in t0])
    return Testbench("\n".join(lines) + "\n", reads, outs, t_stop, head.get("level", "transistor"), t0[0] / 4)


DEFAULT_TIMEOUT_PER_INPUT_S = {"transistor": 3600.0, "ideal": 600.0}
# transistor decks: once per ngspice run, on top of the inferences, for the operating point: ~3 min on the
# 568-cell twomoon chip from kchip.sim.opinit's initial state, but a run without it (or where it fails) falls back
# on source stepping, which took 27 min there (session 13; docs/netlist.md)
OP_ALLOWANCE_S = {"transistor": 3600.0, "ideal": 0.0}


def _run_chunk(args) -> Dict:
    deck_path, spec_json, x, direction, waves, keep, per_input, threads, op_init, *rest = args
    seed = rest[0] if rest else 1                # ngspice's random seed (the mismatch draws of an _mm corner)
    spec = ChipSpec.from_json(spec_json)
    tb = testbench(Path(deck_path), spec, x, direction, waves)
    deck, init_info = tb.deck, None
    if op_init and tb.level == "transistor" and tb.t_release > 0:
        # Newton's start for the operating point: every edge cell's nodes pulled to their t = 0 state, found
        # on the chip without cells and on lone cells (kchip.sim.opinit); released before any cell is enabled
        try:
            text, init_info = pulls(tb.deck, deck_path, tb.t_release,
                                    keep=None if keep is None else Path(keep) / "opinit")
            deck = tb.deck.replace("\n.end\n", "\n" + text + ".end\n")
        except (NgspiceError, ValueError) as exc:   # no initial state: ngspice searches from scratch (slow)
            init_info = {"error": str(exc)}
    # transistor decks: tens of minutes per inference on a loaded machine (a 577-cell chip: > 30 min of CPU);
    # ideal decks: seconds (the ideal default is per ngspice run, not per input)
    if per_input is not None:
        timeout = float(per_input) * len(x)
    elif tb.level == "transistor":
        timeout = DEFAULT_TIMEOUT_PER_INPUT_S["transistor"] * len(x)
    else:
        timeout = DEFAULT_TIMEOUT_PER_INPUT_S["ideal"]
    timeout += OP_ALLOWANCE_S.get(tb.level, 0.0)
    res = run_deck(deck, cell="chip", point=f"{direction} inferences", keep=keep, timeout=timeout,
                   threads=threads, seed=seed)
    plot = res.plots[0]
    t = plot["time"] if "time" in plot.vectors else plot.vectors[next(iter(plot.vectors))]
    out = np.stack([np.interp(tb.read_times, t, plot[f"v(out_{j})"]) for j in tb.outputs], axis=1)
    y = (out - spec.scaling.v_cm) / spec.scaling.v_u
    wave = {k: plot[k] for k in waves} if waves else {}
    return {"y": y, "wall_s": res.wall_s, "cpu_s": res.cpu_s, "time": t if waves else None, "waves": wave,
            "read_times": tb.read_times if waves else None, "op_search": res.extra.get("op_search"),
            "op_init": init_info}


def simulate(deck_path, spec: ChipSpec, x: np.ndarray, direction: str = "forward", jobs: int = None,
             chunk: int = 16, out_dir: Optional[Path] = None, waves: Sequence[str] = (), keep_decks: bool = False,
             timeout_per_input: Optional[float] = None, merge: bool = True, op_init: bool = True,
             scheduler: Optional[str] = None):
    """Simulate inputs x (B, n_in); returns (y (B, n_out) SW units, info dict). `timeout_per_input`: seconds of
    wall time allowed per inference of an ngspice run (default DEFAULT_TIMEOUT_PER_INPUT_S by level), plus
    OP_ALLOWANCE_S once per run at the transistor level (the operating point).
    Transistor level: ngspice gets a copy of the deck in which every edge-cell pin has a net of its own behind a
    0 V source (`kchip.sim.merge.isolate_cell_pins`) and, with `merge` (nominal corners), identical parallel
    edge cells are one scaled instance (`kchip.sim.merge`; the same circuit, fewer transistors); info["merge"].
    `op_init` (transistor level): give ngspice's operating point an initial state built from the chip without
    its edge cells and from lone cells (`kchip.sim.opinit`); info["op_init"] per chunk. The chunks run in `jobs`
    local processes, or with `scheduler` (a dask.distributed address) on that cluster (`kchip.sim.workers`)."""
    deck_path = Path(deck_path)
    if not deck_path.exists():
        raise FileNotFoundError(f"{deck_path}: netlist not found")
    head = read_header(deck_path.read_text(), str(deck_path))
    if head["spec_sha256"] != spec_digest(spec):
        raise ValueError(f"{deck_path}: netlist was built from ChipSpec {head['spec']!r} "
                         f"(sha256 {head['spec_sha256'][:12]}…) but the given ChipSpec {spec.name!r} differs "
                         f"(sha256 {spec_digest(spec)[:12]}…): rebuild it with `kchip netlist`")
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"inputs: expected a 2-D array (batch, n_in), got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        r, c = np.argwhere(~np.isfinite(x))[0]
        raise ValueError(f"inputs[{r}, {c}]: value {x[r, c]} is not finite")
    build_schedule(spec, direction, x.shape[1])            # validates the input width early
    merge_info, tmp, given = None, None, deck_path
    if head.get("level") == "transistor":
        deck_path, merge_info, tmp = simulation_deck(deck_path, out_dir, merge)
    jobs = jobs or max(1, min(os.cpu_count() or 1, 8))
    chunks = [x[i:i + chunk] for i in range(0, len(x), chunk)]
    if out_dir is not None:
        (Path(out_dir) / "chunks").mkdir(parents=True, exist_ok=True)
    spec_json = spec.to_json()
    results: List[Optional[Dict]] = [None] * len(chunks)
    errors = []
    # cores / processes OpenMP threads per ngspice: more would spin against each other (kchip.sim.ngspice)
    threads = max(1, (os.cpu_count() or 1) // min(jobs, len(chunks)))
    tasks = [(str(deck_path), spec_json, c, direction, tuple(waves) if k == 0 else (),
              (Path(out_dir) / f"deck_{direction}_{k}") if (out_dir and keep_decks) else None, timeout_per_input,
              threads, op_init) for k, c in enumerate(chunks)]
    t_start = time.perf_counter()
    try:
        _run_chunks(tasks, chunks, chunk, results, errors, jobs, out_dir, direction, scheduler)
    finally:
        if tmp is not None:
            tmp.cleanup()
    if errors:
        done = sum(r is not None for r in results)
        raise NgspiceError(f"{given}: {len(errors)} of {len(chunks)} chunks failed "
                           f"({done} kept{' in ' + str(Path(out_dir) / 'chunks') if out_dir else ''}): "
                           + " | ".join(errors))
    y = np.concatenate([r["y"] for r in results], axis=0)
    info = {"wall_s": [r["wall_s"] for r in results], "cpu_s": [r["cpu_s"] for r in results], "merge": merge_info,
            "chunks": len(chunks), "jobs": min(jobs, len(chunks)),
            "wall_total_s": time.perf_counter() - t_start,
            # operating-point search steps that failed before a later one found the point (kchip.sim.ngspice)
            "op_search": [r["op_search"] for r in results], "op_init": [r["op_init"] for r in results],
            "time": results[0]["time"], "waves": results[0]["waves"], "read_times": results[0]["read_times"]}
    return y, info


def _run_chunks(tasks, chunks, chunk, results, errors, jobs, out_dir, direction, scheduler=None) -> None:
    """Run the chunks in parallel processes (or on the dask cluster at `scheduler`); fill results[k] (or errors)
    and save each chunk's outputs to <out>/chunks/ as soon as it is back."""
    from concurrent.futures import as_completed
    from .workers import pool as worker_pool
    t0, done = time.perf_counter(), 0
    with worker_pool(min(jobs, len(chunks)), scheduler) as pool:
        futs = {pool.submit(_run_chunk, t): k for k, t in enumerate(tasks)}
        for f in as_completed(futs):
            k = futs[f]
            lo = k * chunk
            done += 1
            try:
                results[k] = f.result()
            except NgspiceError as exc:
                errors.append(f"inputs {lo}..{lo + len(chunks[k]) - 1}: {exc}")
                continue
            finally:
                if len(chunks) > 1:            # progress: one line per finished chunk
                    print(f"[kchip simulate] chunk {done}/{len(chunks)} done (inputs {lo}..{lo + len(chunks[k]) - 1}, "
                          f"{time.perf_counter() - t0:.0f} s)", flush=True)
            if out_dir is not None:
                np.save(Path(out_dir) / "chunks" / f"{direction}_{k:04d}.npy", results[k]["y"])


def simulation_deck(deck_path: Path, out_dir: Optional[Path], merge: bool = True):
    """(deck to simulate, its stats, temporary folder to clean up or None): the simulation copy of a transistor
    deck (`kchip.sim.merge`): identical parallel cells merged (`merge`, nominal corners), then every cell pin on
    a net of its own behind a 0 V source (`isolate_cell_pins`: the same circuit, a faster sparse ordering)."""
    import tempfile
    from .merge import isolate_cell_pins, merge_parallel_cells
    text = deck_path.read_text()
    st: Dict = {"merged": False, "reason": "merge off"}
    try:
        if merge:
            text, st = merge_parallel_cells(text)
            st = dict(st, merged=bool(st["merged_groups"]))
    except ValueError as exc:                      # a mismatch corner: every copy differs
        st = {"merged": False, "reason": str(exc)}
    text, iso = isolate_cell_pins(text)
    st.update(iso)
    tmp = None
    if out_dir is not None:
        folder = Path(out_dir)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="kchip_merge_")
        folder = Path(tmp.name)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{deck_path.stem}.merged.spice"
    path.write_text(text)
    return path, dict(st, deck=str(path)), tmp


def compare(y: np.ndarray, ref: np.ndarray, full_scale: Optional[float] = None) -> Dict:
    """RMS / max error per output and overall, also in % of full scale (default: the reference's output range on
    these inputs; the flow passes the float model's range over the whole test set)."""
    d = y - ref
    fs = full_scale or float(np.max(ref.max(0) - ref.min(0))) or 1.0
    per = [{"rms": float(np.sqrt(np.mean(d[:, k] ** 2))), "max": float(np.max(np.abs(d[:, k])))}
           for k in range(d.shape[1])]
    rms, mx = float(np.sqrt(np.mean(d ** 2))), float(np.max(np.abs(d)))
    return {"rms": rms, "max": mx, "full_scale": fs, "rms_pct_fs": 100 * rms / fs, "max_pct_fs": 100 * mx / fs,
            "per_output": per}
