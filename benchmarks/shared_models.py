"""Memory and time of a many-transistor deck with and without shared device model cards (kchip.pdk.flatten).

    python benchmarks/shared_models.py [--n 2000] [--corner tt]

Builds N sky130 FETs (5 widths x 5 lengths of nfet_01v8, each with a load resistor), runs the same `.op`
in ngspice twice - the plain deck (every instance of the device subcircuit gets its own copy of the ~60
binned model cards) and the deck after `Pdk.share_models` - and prints wall time, peak memory and the ratios,
plus the largest difference between the two operating points.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kchip.pdk import load_pdk  # noqa: E402
from kchip.sim.ngspice import find_ngspice  # noqa: E402

_MEASURE = """import resource, subprocess, sys, time
t0 = time.perf_counter()
r = subprocess.run(sys.argv[1:], capture_output=True, text=True)
print(time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, r.returncode)
print(r.stdout)
"""


def _body(n: int) -> str:
    lines = ["Vdd vdd 0 1.8", "Vg g 0 0.7"]
    for i in range(n):
        w, l = [0.42, 1, 2, 4, 16][i % 5], [0.15, 1, 2, 4, 8][(i // 5) % 5]
        lines += [f"Rd{i} vdd d{i} 100k", f"XM{i} d{i} g 0 0 sky130_fd_pr__nfet_01v8 w={w} l={l}"]
    return "\n".join(lines)


def _run(deck: str, wd: Path, name: str, probes) -> dict:
    d = wd / name
    d.mkdir()
    ctl = "\n".join([".control", "op", "print " + " ".join(probes), ".endc", ".end"])
    (d / "deck.sp").write_text(deck + "\n" + ctl + "\n")
    (d / ".spiceinit").write_text(load_pdk().spiceinit)
    out = subprocess.run([sys.executable, "-c", _MEASURE, find_ngspice(), "-b", "deck.sp"], cwd=d,
                         capture_output=True, text=True, check=True).stdout.splitlines()
    wall, rss_kb, rc = out[0].split()
    vals = {ln.split("=")[0].strip(): float(ln.split("=")[1]) for ln in out[1:] if ln.startswith("v(")}
    if len(vals) != len(probes):      # ngspice -b exits 1 after .control even when all went well
        raise RuntimeError(f"ngspice (rc {rc}) printed {len(vals)} of {len(probes)} probes on the {name} deck")
    return {"wall_s": float(wall), "max_rss_MB": int(rss_kb) / 1024, "v": vals}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--corner", default="tt")
    a = ap.parse_args(argv)
    pdk = load_pdk()
    body = _body(a.n)
    shared, stats = pdk.share_models(body)
    head = f"* {a.n} nfets\n{pdk.model_include(a.corner)}\n"
    probes = [f"v(d{i})" for i in range(0, a.n, max(1, a.n // 25))]
    with tempfile.TemporaryDirectory(prefix="kchip_bench_share_") as tmp:
        plain = _run(head + body, Path(tmp), "plain", probes)
        share = _run(head + shared, Path(tmp), "shared", probes)
    diff = max(abs(plain["v"][k] - share["v"][k]) for k in plain["v"])
    print(json.dumps({"n_fets": a.n, "corner": a.corner, **{k: v for k, v in stats.items()},
                      "plain": {k: round(v, 2) for k, v in plain.items() if k != "v"},
                      "shared": {k: round(v, 2) for k, v in share.items() if k != "v"},
                      "memory_ratio": round(plain["max_rss_MB"] / share["max_rss_MB"], 1),
                      "time_ratio": round(plain["wall_s"] / share["wall_s"], 1),
                      "max_abs_dv_V": diff, "probes": len(plain["v"])}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
