"""Lay out, DRC and LVS the whole cell library, and print the time of each step per cell and in all.

Target (issue 22): the whole library in <= 2 min on 2 cores. Run: .venv/bin/python benchmarks/layout_library.py
(repeats: --repeat N; the first run includes gdsfactory's import and the first KLayout calls)."""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from kchip.layout.library import CELLS, STDCELLS, build_library
from kchip.pdk import load_pdk


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    pdk = load_pdk()
    totals, per = [], {c: [] for c in CELLS + STDCELLS}
    for k in range(args.repeat):
        with tempfile.TemporaryDirectory() as d:
            t0 = time.perf_counter()
            rows = build_library(pdk, Path(d), png=False)
            totals.append(time.perf_counter() - t0)
        for r in rows:
            per[r["cell"]].append(r["seconds"])
        assert all(r["drc_violations"] == 0 and r["lvs_match"] for r in rows)
    print(f"{'cell':10s} {'layout s':>9s} {'drc s':>7s} {'lvs s':>7s}   (median of {args.repeat})")
    for c, runs in per.items():
        med = {k: statistics.median(r[k] for r in runs) for k in ("layout", "drc", "lvs")}
        print(f"{c:10s} {med['layout']:9.3f} {med['drc']:7.3f} {med['lvs']:7.3f}")
    print(f"whole library: median {statistics.median(totals):.2f} s over {args.repeat} runs "
          f"(first {totals[0]:.2f} s); target 120 s -> ratio {statistics.median(totals) / 120:.3f}")


if __name__ == "__main__":
    main()
