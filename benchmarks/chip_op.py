"""Operating point of a transistor-level chip at growing size: wall time and ngspice's search steps.

    python benchmarks/chip_op.py build/twomoon_tr/03-quantize/chip.json --edges 5,20,60 \
        --variant default --variant "src:gminsteps=0" --variant "ramp:optran 0 0 0 50n 3u 1u"

Sub-chips keep the first K edges of every period of the given ChipSpec (same cells, codes and scaling), are built
at the transistor level with the standard-cell sequencer and merged as `kchip simulate` merges them, and get
the first inference's testbench with `.op` in place of `.tran`. A variant is `name`, `name:<.options words>`, or
`name:optran ...` (an ngspice `optran` command for .spiceinit). Prints, per size and variant: seconds, dynamic
gmin tries, source steps, whether the transient op ran, and whether ngspice found the point. Side by side in
one process, one ngspice at a time (set OMP_NUM_THREADS=1; nothing else running).
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from kchip.netlist import TRANSISTOR_OPTIONS, build_netlist
from kchip.quantize.chipspec import ChipSpec
from kchip.sim.merge import merge_parallel_cells
from kchip.sim.ngspice import DEFAULT_SPICEINIT
from kchip.sim.simulate import testbench


def sub_spec(d: dict, k: int) -> ChipSpec:
    """The first k edges of every period, renumbered."""
    dd = copy.deepcopy(d)
    new, remap = [], {}
    for p in dd["periods"]:
        keep = p["edges"][:k]
        for i in keep:
            remap[i] = len(new)
            e = dict(d["edges"][i], id=remap[i])
            new.append(e)
        p["edges"] = [remap[i] for i in keep]
    dd["edges"] = new
    return ChipSpec.from_json(json.dumps(dd))


def op_deck(spec: ChipSpec, folder: Path, options: str) -> Path:
    text, _ = merge_parallel_cells(build_netlist(spec, "transistor", "tt"))
    chip = folder / "chip.spice"
    chip.write_text(text)
    x = np.zeros((1, len(spec.input_nodes())))
    deck = testbench(chip, spec, x, "forward", options=options).deck
    deck = re.sub(r"^\.tran.*$", ".op", deck, flags=re.M)
    deck = re.sub(r"^(\.save.*|\.end\s*)$", "", deck, flags=re.M) + "\n.control\nrun\nquit\n.endc\n.end\n"
    (folder / "op.sp").write_text(deck)
    return folder / "op.sp"


def run(spec: ChipSpec, variant: str, timeout: float) -> dict:
    name, _, arg = variant.partition(":")
    options, init = TRANSISTOR_OPTIONS, DEFAULT_SPICEINIT + "set num_threads=1\n"
    if arg.startswith("optran"):
        init += arg + "\n"
    elif arg:
        options = f"{TRANSISTOR_OPTIONS} {arg}"
    with tempfile.TemporaryDirectory(prefix="kchip_op_") as tmp:
        folder = Path(tmp)
        op_deck(spec, folder, options)
        (folder / ".spiceinit").write_text(init)
        t0 = time.perf_counter()
        try:
            pr = subprocess.run(["ngspice", "-b", "op.sp"], cwd=folder, capture_output=True, text=True,
                                timeout=timeout, env=dict(os.environ, OMP_NUM_THREADS="1"))
            log, found = pr.stdout + pr.stderr, None
        except subprocess.TimeoutExpired:
            log, found = "", f"no result within {timeout:.0f} s"
    low = log.lower()
    if found is None:
        found = not ("dc solution failed" in low or "transient op failed" in low or "aborted" in low)
    return {"variant": name, "seconds": round(time.perf_counter() - t0, 1), "gmin_tries": log.count("Trying gmin"),
            "source_steps": log.count("Supplies reduced"), "optran": "transient op started" in low, "found": found}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("chipspec")
    ap.add_argument("--edges", default="5,20,60", help="edges kept per period, comma-separated")
    ap.add_argument("--variant", action="append", help="name[:.options words | :optran ...] (repeatable)")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds per ngspice run")
    a = ap.parse_args(argv)
    d = json.loads(Path(a.chipspec).read_text())
    for k in [int(v) for v in a.edges.split(",")]:
        spec = sub_spec(d, k)
        for v in a.variant or ["default"]:
            r = run(spec, v, a.timeout)
            print(json.dumps(dict(edges_per_period=k, cells=len(spec.edges), **r)), flush=True)


if __name__ == "__main__":
    sys.exit(main())
