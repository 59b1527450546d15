"""Independent, obviously-correct reference for the KirchhoffNet forward pass (used only by tests).

Written from the equations, not from kchip's code: laws as scalar formulas, topologies as the literal loops
that ARCHITECTURE §5 describes, KCL as a per-edge Python loop, integration by scipy's DOP853 at tight
tolerance in float64.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.integrate import solve_ivp


def _relu(z):
    return z if z > 0 else 0.0


def _leaky(z):
    return z if z > 0 else 0.01 * z


# law name -> scalar function of (parameter column p, vs, vd)
REF_LAWS = {
    "relu_diff": lambda p, vs, vd: _relu(p[1] * (vs - vd) + p[0]),
    "tanh_diff": lambda p, vs, vd: math.tanh(p[1] * (vs - vd) + p[0]),
    "relu_lin": lambda p, vs, vd: _relu(p[0] * vs + p[1] * vd + p[2]),
    "tanh_lin": lambda p, vs, vd: math.tanh(p[0] * vs + p[1] * vd + p[2]),
    "ShiftRelu1": lambda p, vs, vd: p[1] * _relu((vs - vd) - p[0]),
    "ShiftLeakyRelu1": lambda p, vs, vd: p[1] * _leaky((vs - vd) - p[0]),
    "ShiftRelu2": lambda p, vs, vd: _relu(p[0] * vs + p[1] * vd + p[2]),
    "ShiftLeakyRelu2": lambda p, vs, vd: _leaky(p[0] * vs + p[1] * vd + p[2]),
    "ShiftTanh1": lambda p, vs, vd: math.tanh(p[1] * (vs - vd) + p[0]),
    "ShiftTanh2": lambda p, vs, vd: math.tanh(p[0] * vs + p[1] * vd + p[2]),
    "Conductance": lambda p, vs, vd: p[0] * (vs - vd),
}
REF_ROWS = {"relu_diff": 2, "tanh_diff": 2, "relu_lin": 3, "tanh_lin": 3, "ShiftRelu1": 2, "ShiftLeakyRelu1": 2,
            "ShiftRelu2": 3, "ShiftLeakyRelu2": 3, "ShiftTanh1": 3, "ShiftTanh2": 3, "Conductance": 3}


# ---- topologies, literal loops ---------------------------------------------------------------------------
def ref_fully_connect(num_node, include_gnd=True, repeat=(1, 1)):
    nodes = list(range(0, num_node)) if include_gnd else list(range(1, num_node + 1))
    out, cnt = [], 0
    for i in nodes:
        for j in nodes:
            if i != j:
                for _ in range(repeat[0]):
                    out.append((i, j, cnt)); cnt += 1
                for _ in range(repeat[1]):
                    out.append((j, i, cnt)); cnt += 1
    return out, cnt


def ref_simple_connect(num_node, include_gnd=True, repeat=(1, 1)):
    nodes = list(range(0, num_node)) if include_gnd else list(range(1, num_node + 1))
    out, cnt = [], 0
    for i in nodes:
        for _ in range(repeat[0]):
            out.append((i, i + 1, cnt)); cnt += 1
    return out, cnt


def _ref_windows(c, w, h, k, padding):
    pad = k - 1 if padding else 0
    def node(ch, x, y):
        x -= pad; y -= pad
        if 0 <= x < w and 0 <= y < h:
            return 1 + ch * w * h + x * h + y
        return 0
    wins = []
    for x in range(w + 2 * pad - k + 1):          # unfold: output positions row-major
        for y in range(h + 2 * pad - k + 1):
            wins.append([node(ch, x + dx, y + dy) for ch in range(c) for dx in range(k) for dy in range(k)])
    return wins


def ref_neighbor_index(num_channel, width, height, neighbor_size, padding=False, repeat=1, sharing=False,
                       parallel=1):
    out, cnt = [], 0
    for win in _ref_windows(num_channel, width, height, neighbor_size, padding):
        inner = 0
        for j in range(len(win)):
            for k in range(len(win)):
                if j == k:
                    continue
                if win[j] != 0 and win[k] != 0:
                    for _ in range(repeat):
                        if sharing:
                            out.append((win[j], win[k], inner))
                        else:
                            out.append((win[j], win[k], cnt)); cnt += 1
                inner += 1
                if sharing:
                    cnt = max(cnt, inner)
    if parallel > 1:
        inc1 = max(max(a, b) for a, b, _ in out)
        base = list(out)
        for i in range(1, parallel):
            out += [(a + inc1 * i, b + inc1 * i, p + cnt * i) for a, b, p in base]
        cnt = max(p for _, _, p in out) + 1
    return out, cnt


def ref_mix_connect(num_channel, width, height, neighbor_size, fully_connect_node, repeat=(1, 0), padding=False,
                    kernel_repeat=1, sharing=False, parallel=1):
    out, cnt = ref_neighbor_index(num_channel, width, height, neighbor_size, padding, kernel_repeat, sharing,
                                  parallel)
    max_node = max(max(a, b) for a, b, _ in out)
    for node in range(1, max_node + 1):
        for _ in range(repeat[0]):
            out.append((node, 0, cnt)); cnt += 1
        for _ in range(repeat[1]):
            out.append((0, node, cnt)); cnt += 1
    for node in range(max_node + 1, max_node + 1 + fully_connect_node):
        for i in range(max_node + 1):
            for _ in range(repeat[0]):
                out.append((i, node, cnt)); cnt += 1
            for _ in range(repeat[1]):
                out.append((node, i, cnt)); cnt += 1
    return out, cnt


REF_GENERATORS = {"_fully_connect": ref_fully_connect, "_simple_connect": ref_simple_connect,
                  "_neighbor_index": ref_neighbor_index, "_mix_connect": ref_mix_connect}


# ---- forward ------------------------------------------------------------------------------------------------
def ref_forward(periods, x, reverse=False, projector=None, rtol=1e-11, atol=1e-12):
    """periods: list of dicts {edges: [(s, d), ...], num_nodes, law, param (k, E) array, t_len}.
    x: (B, n) array. Returns (B, n_out) float64 array."""
    order = list(range(len(periods)))[::-1] if reverse else list(range(len(periods)))
    outs = []
    for row in np.asarray(x, dtype=np.float64):
        v = list(row)
        for k in order:
            per = periods[k]
            n = per["num_nodes"]
            v = (v + [0.0] * n)[:n]                       # new nodes start at 0, surplus dropped
            law = REF_LAWS[per["law"]]
            edges = [(int(s), int(d)) for s, d in per["edges"]]
            params = np.asarray(per["param"], dtype=np.float64).T.tolist()

            def rhs(t, y, edges=edges, params=params, law=law, n=n):
                volt = [0.0] + list(y)                    # node 0 = ground
                dv = [0.0] * (n + 1)
                for (s, d), p in zip(edges, params):
                    i = law(p, volt[s], volt[d])
                    dv[s] -= i
                    dv[d] += i
                return dv[1:]

            t_span = (per["t_len"], 0.0) if reverse else (0.0, per["t_len"])
            sol = solve_ivp(rhs, t_span, v, method="DOP853", rtol=rtol, atol=atol)
            assert sol.success, sol.message
            v = list(sol.y[:, -1])
        outs.append(v)
    out = np.asarray(outs)
    if projector:
        num = int(projector[4:] if projector.startswith("last") else projector[5:])
        out = out[:, -num:] if projector.startswith("last") else out[:, :num]
    return out
