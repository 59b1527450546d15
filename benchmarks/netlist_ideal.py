"""Ideal-level netlist in ngspice vs the realized model (L1): the twomoon fixture on 64 inputs in both
directions, wall time per input and per edge, and the waveform figure of a 3-period model whose node count
grows (docs/netlist_waves_3period.png).

    python benchmarks/netlist_ideal.py [--fixture ../shared/fixtures/official-kirchhoffnet/twomoon] [--jobs 2]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from kchip.hw.mapping import map_model
from kchip.model import KirchhoffNet, Period, import_official, topology as T
from kchip.netlist import build_netlist
from kchip.quantize.core import quantize_model, realized_model
from kchip.sim.simulate import compare, simulate
from kchip.sim.waves import plot_waves, wave_names

ROOT = Path(__file__).resolve().parents[1]


def run_case(name, model, x_by_dir, out, jobs, n_in=None):
    scaling = map_model(model, x_by_dir["forward"])
    spec = quantize_model(model, scaling, name=name, num_inputs=n_in).spec
    deck = out / f"{name}.spice"
    deck.write_text(build_netlist(spec, "ideal"))
    l1 = realized_model(spec)
    rows = []
    for direction, x in x_by_dir.items():
        t0 = time.perf_counter()
        y, info = simulate(deck, spec, x, direction, jobs=jobs, chunk=16)
        wall = time.perf_counter() - t0
        with torch.no_grad():
            ref = l1(torch.tensor(x), reverse=direction == "reverse", rtol=1e-9, atol=1e-11).numpy()
        c = compare(y, ref)
        cpu = sum(info["wall_s"])
        rows.append({"case": name, "direction": direction, "inputs": len(x), "edges": len(spec.edges),
                     "rms_pct_fs": c["rms_pct_fs"], "max_pct_fs": c["max_pct_fs"], "wall_s": wall,
                     "ngspice_s_per_input": cpu / len(x), "ngspice_us_per_input_edge": 1e6 * cpu / len(x) / len(spec.edges)})
        print(json.dumps(rows[-1]))
    return spec, deck, rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixture", default=str(ROOT.parent / "shared/fixtures/official-kirchhoffnet/twomoon"))
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--inputs", type=int, default=64)
    args = ap.parse_args()
    out = ROOT / "build" / "bench_netlist_ideal"
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    fx = Path(args.fixture)
    if (fx / "model.pth").exists():
        model = import_official(fx / "model.pth", fx / "config.yaml")
        x = rng.standard_normal((args.inputs, 2))          # base samples: sampling runs the circuit forward
        with torch.no_grad():
            xr = model.double()(torch.tensor(x)).numpy()  # data-space points for the reverse direction
        run_case("twomoon", model.float(), {"forward": x, "reverse": xr}, out, args.jobs)
    else:
        print(f"twomoon fixture not found at {fx}: skipped")
    torch.manual_seed(0)
    pers = [Period(T.fc(2)[:, :2], "tanh_lin", 0.5), Period(T.fc(3)[:, :2], "tanh_lin", 0.4),
            Period(T.fc(4)[:, :2], "tanh_lin", 0.6)]
    with torch.no_grad():
        for p in pers:
            p.param.mul_(0.8)
    grow = KirchhoffNet(pers, projector="last2")
    x3 = rng.uniform(-1, 1, (2, 2))
    spec, deck, _ = run_case("grow3", grow, {"forward": x3}, out, 1, n_in=2)
    y, info = simulate(deck, spec, x3, "forward", jobs=1, chunk=2, waves=wave_names(spec))
    png = plot_waves(spec, info, "forward", 2, ROOT / "docs" / "netlist_waves_3period.png")
    print(f"wrote {png}")


if __name__ == "__main__":
    main()
