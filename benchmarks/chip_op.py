"""Operating point of a transistor-level chip at growing size: wall time and ngspice's search steps.

    python benchmarks/chip_op.py build/twomoon_tr/03-quantize/chip.json --edges 5,20,60 \
        --variant default --variant "src:gminsteps=0" --variant "ramp:optran 0 0 0 50n 3u 1u"

Sub-chips keep the first K edges of every period of the given ChipSpec (same cells, codes and scaling), are built
at the transistor level with the standard-cell sequencer, merged and pin-isolated as `kchip simulate` does
(`simulation_deck`), and get
the first inference's testbench with `.op` in place of `.tran`. A variant is `name`, `name:<.options words>`, or
`name:optran ...` (an ngspice `optran` command for .spiceinit); the variant named `init` starts Newton from
kchip.sim.opinit's initial state (as `kchip simulate` does). Prints, per size and variant: seconds, dynamic
gmin tries, source steps, whether the transient op ran, and whether ngspice found the point. Side by side in
one process, one ngspice at a time (set OMP_NUM_THREADS=1; nothing else running).
"""
from __future__ import annotations

import argparse
import copy
import json
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Tuple

import numpy as np

from kchip.netlist import TRANSISTOR_OPTIONS, build_netlist
from kchip.quantize.chipspec import ChipSpec
from kchip.sim.ngspice import DEFAULT_SPICEINIT, NgspiceError, run_deck
from kchip.sim.opinit import pulls
from kchip.sim.simulate import simulation_deck, testbench


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


def op_deck(spec: ChipSpec, folder: Path, options: str) -> Tuple[str, Path]:
    """(the first inference's testbench, `.op` in place of `.tran`, the simulation copy of the deck it includes:
    merged and pin-isolated by `kchip simulate`'s own `simulation_deck`, written to folder)."""
    netlist = folder / "chip.spice"
    netlist.write_text(build_netlist(spec, "transistor", "tt"))
    chip, _, _ = simulation_deck(netlist, folder)
    x = np.zeros((1, len(spec.input_nodes())))
    tb = testbench(chip, spec, x, "forward", options=options).deck
    return re.sub(r"^\.tran.*$", ".op", tb, flags=re.M), chip


def run(spec: ChipSpec, variant: str, timeout: float) -> dict:
    """One variant through kchip's own runner (`run_deck`: .spiceinit, one thread, error detection). Variant
    `init` adds kchip.sim.opinit's pulls (what `kchip simulate` does) and counts their cost in `init_s`."""
    name, _, arg = variant.partition(":")
    options, init = TRANSISTOR_OPTIONS, DEFAULT_SPICEINIT
    if arg.startswith("optran"):
        init += arg + "\n"
    elif arg:
        options = f"{TRANSISTOR_OPTIONS} {arg}"
    with tempfile.TemporaryDirectory(prefix="kchip_op_") as tmp:
        (deck, chip), init_s = op_deck(spec, Path(tmp), options), 0.0
        if name == "init":
            t0 = time.perf_counter()
            text, _ = pulls(deck, chip, release_s=1e-9)
            deck, init_s = deck.replace("\n.end\n", "\n" + text + ".end\n"), time.perf_counter() - t0
        t0 = time.perf_counter()
        try:
            log, found = run_deck(deck, cell="chip", point=f"op {name}", timeout=timeout, spiceinit=init,
                                  threads=1).log, True
        except NgspiceError as exc:
            log, found = exc.log, str(exc)
    low = log.lower()
    return {"variant": name, "seconds": round(time.perf_counter() - t0, 1), "init_s": round(init_s, 1),
            "gmin_tries": log.count("Trying gmin"),
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
