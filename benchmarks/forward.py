"""Forward-pass speed and memory: kchip's KCL kernel vs the official gather/scatter_add formulation.

MNIST-size model (official mnist config): `_mix_connect` 28x28, neighbour 4, 50 extra nodes, repeat [1, 1],
2 periods of T = 1, ShiftRelu1, ~230k edges per period; batch 16; both through torchdiffeq dopri5 with the same
rtol/atol. Timings are interleaved (A, B, A, B, ...) in one process and reported as medians; peak memory is the
peak RSS growth (VmHWM after resetting it, minus VmRSS before) of a fresh child process running one forward of
each variant after building the model.

    python benchmarks/forward.py [--repeats 5] [--threads 1] [--batch 16]
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchdiffeq

from kchip.model import KirchhoffNet, Period, topology


def build(seed: int = 0) -> KirchhoffNet:
    torch.manual_seed(seed)
    edges = topology._mix_connect(1, 28, 28, 4, 50, repeat=[1, 1])[:, :2]
    periods = []
    for _ in range(2):
        periods.append(Period(edges, "ShiftRelu1", 1.0))     # official init: kaiming_normal_
    return KirchhoffNet(periods, projector="last10", solver={"method": "dopri5", "rtol": 1e-3, "atol": 1e-3})


class OfficialLayer(nn.Module):
    """The official code's right-hand side: state (B, N); gather v_src, v_dst with a ground column
    prepended; currents; scatter_add -i at src and +i at dst."""

    def __init__(self, per: Period):
        super().__init__()
        self.src, self.dst, self.param = per.src, per.dst, per.param
        self.nfe = 0

    def forward(self, t, x):
        self.nfe += 1
        aux = torch.cat((torch.zeros_like(x[..., :1]), x), dim=-1)
        vs, vd = aux[..., self.src], aux[..., self.dst]
        i = self.param[1] * F.relu((vs - vd) - self.param[0])
        res = torch.cat((torch.zeros_like(x[..., :1]), torch.zeros_like(x)), dim=-1)
        res.scatter_add_(-1, self.src.expand_as(i), -i)
        res.scatter_add_(-1, self.dst.expand_as(i), i)
        return res[..., 1:]


def official_forward(model: KirchhoffNet, layers, x):
    for per, layer in zip(model.periods, layers):
        if x.shape[1] < per.num_nodes:
            x = torch.cat([x, x.new_zeros(x.shape[0], per.num_nodes - x.shape[1])], dim=1)
        t = torch.tensor([0.0, per.t_len])
        x = torchdiffeq.odeint(layer, x, t, method=model.solver["method"], rtol=model.solver["rtol"],
                               atol=model.solver["atol"])[-1]
    return model.project(x)


def _inputs(batch: int, n: int) -> torch.Tensor:
    return torch.rand(batch, n, generator=torch.Generator().manual_seed(1))


def _child(variant: str, batch: int, threads: int, q) -> None:
    torch.set_num_threads(threads)
    model = build()
    layers = [OfficialLayer(p) for p in model.periods]
    x = _inputs(batch, 784)
    before = _status_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:     # reset the peak-RSS mark (VmHWM) to the current RSS
        f.write("5")
    with torch.no_grad():
        (model(x) if variant == "kchip" else official_forward(model, layers, x))
    q.put(_status_kib("VmHWM") - before)


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def peak_mib(variant: str, batch: int, threads: int) -> float:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(variant, batch, threads, q))
    p.start()
    kib = q.get()
    p.join()
    return kib / 1024.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=16)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = build()
    layers = [OfficialLayer(p) for p in model.periods]
    x = _inputs(args.batch, 784)
    print(f"model: {len(model.periods)} periods x {model.periods[0].num_edges} edges, "
          f"{model.periods[0].num_nodes} nodes, batch {args.batch}, {args.threads} thread(s), "
          f"dopri5 rtol=atol={model.solver['rtol']}")
    times = {"kchip": [], "official": []}
    nfe = 0
    with torch.no_grad():
        y_k = model(x)                                   # warm-up (builds the incidence matrices)
        y_o = official_forward(model, layers, x)
        err = float((y_k - y_o).abs().max())
        for _ in range(args.repeats):
            for name in ("kchip", "official"):
                for per in model.periods:
                    per.nfe = 0
                t0 = time.perf_counter()
                model(x) if name == "kchip" else official_forward(model, layers, x)
                times[name].append(time.perf_counter() - t0)
                if name == "kchip":
                    nfe = sum(p.nfe for p in model.periods)
    med = {k: statistics.median(v) for k, v in times.items()}
    mem = {k: peak_mib(k, args.batch, args.threads) for k in ("kchip", "official")}
    print(f"{'variant':10s} {'median s':>9s} {'min s':>7s} {'peak MiB':>9s}")
    for k in ("kchip", "official"):
        print(f"{k:10s} {med[k]:9.3f} {min(times[k]):7.3f} {mem[k]:9.1f}")
    print(f"speed-up kchip vs official: {med['official'] / med['kchip']:.2f}x (median of {args.repeats}), "
          f"memory ratio official/kchip: {mem['official'] / max(mem['kchip'], 1e-9):.2f}x; "
          f"rhs evaluations per forward: {nfe}; max |output difference|: {err:.2e}")
    # training path: one right-hand-side evaluation with autograd, forward + backward (what every solver step
    # of training costs), interleaved as above
    per, off = model.periods[0], layers[0]
    xg = torch.randn(args.batch, per.num_nodes, generator=torch.Generator().manual_seed(2))
    grad_t = {"kchip": [], "official": []}
    for _ in range(max(args.repeats, 5)):
        for name in ("kchip", "official"):
            y = (xg.t().contiguous() if name == "kchip" else xg.clone()).requires_grad_(True)
            t0 = time.perf_counter()
            out = per(0.0, y) if name == "kchip" else off(0.0, y)
            out.square().sum().backward()
            grad_t[name].append(time.perf_counter() - t0)
    gmed = {k: statistics.median(v) for k, v in grad_t.items()}
    print(f"training path (one rhs, forward + backward): kchip {gmed['kchip'] * 1e3:.1f} ms, official "
          f"{gmed['official'] * 1e3:.1f} ms, speed-up {gmed['official'] / gmed['kchip']:.2f}x")
    print(json.dumps({"median_s": med, "grad_rhs_median_s": gmed, "peak_mib": mem, "speedup": med["official"] / med["kchip"],
                      "max_abs_diff": err, "nfe": nfe}))
    assert err <= 1e-5, f"outputs differ by {err:.2e} > 1e-5"


if __name__ == "__main__":
    main()
