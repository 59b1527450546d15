"""Benchmark: sky130 model load time (trimmed include vs full library) and the wall time of characterizing
one cell kind at one corner. Prints measured numbers side by side.

    python benchmarks/characterize.py              # load times only (~30 s)
    python benchmarks/characterize.py --cell tanh_diff --corner tt [--mc 8] [--jobs 2] [--no-load]
                                                   # + one characterization (wall and ngspice CPU time)
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
os.environ.setdefault("OMP_NUM_THREADS", "1")

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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cell", default=None)
    ap.add_argument("--corner", default="tt")
    ap.add_argument("--mc", type=int, default=0)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=1, help="ngspice processes side by side")
    ap.add_argument("--no-load", action="store_true", help="skip the model load-time probe")
    a = ap.parse_args(argv)
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
