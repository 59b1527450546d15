"""Ideal-level chip netlist: behavioural edge sources that realize each law with the realized theta exactly,
ideal switches and sample-and-hold. It checks the wiring, the scaling and the control timing.

Hardware mapping (ARCHITECTURE §3): a SW voltage v is V_cm + V_u v, a SW current i is I_u i, and every node
has its capacitor C to ground. SW ground (node 0) is the V_cm rail. An edge sinks its current from node s and
sources it into node d, which is SPICE's own convention for a current source `B s d I=...`.

Subcircuit ports of `kchip_core`:
    vcm dirp ld smp en_0..en_{D-1} rst_1..rst_N in_1..in_N out_1..out_N
  dirp  +1 V forward, -1 V reverse (every edge current is multiplied by it)
  en_k  1 V while period k runs (gates its edges), rst_j 1 V holds node j at V_cm,
  ld    1 V connects every node j to its input driver in_j, smp 1 V tracks / 0 V holds the outputs out_j.
"""
from __future__ import annotations

from typing import List

from kchip.hw.kinds import CELL_KINDS
from kchip.model.laws import get_law
from kchip.quantize.chipspec import ChipSpec

LOGIC_HIGH = 1.0        # control levels of the ideal netlist (V)


def _fmt(x: float) -> str:
    return f"{x:.12g}"


def law_expression(law_name: str, vs: str, vd: str, p: List[str]) -> str:
    """SPICE expression (SW units) of a kchip law, from the law's own pipeline description."""
    law = get_law(law_name)
    z = f"({vs}-{vd})" if law.form == "diff" else f"({p[0]}*{vs}+{p[1]}*{vd}+{p[2]})"
    if law.pre is not None:
        z = f"({z}*{p[law.pre[1]]}+{p[law.pre[2]]})" if law.pre[0] == "affine" else f"({z}-{p[law.pre[1]]})"
    act = {"relu": f"max({z},0)", "tanh": f"tanh({z})", "linear": z,
           "leaky_relu": f"max({z},0.01*{z})"}[law.activation]
    return f"{act}*{p[law.post]}" if law.post is not None else act


def edge_subckt(cell: str) -> str:
    """One subcircuit per cell kind: `edge_<cell> s d vcm en dirp` with the realized SW parameters p0..p{k-1}
    (in the law's row order), I_u and V_u as instance parameters."""
    kind = CELL_KINDS[cell]
    law = get_law(kind.law)
    names = [f"p{r}" for r in range(law.rows)]
    expr = law_expression(kind.law, "(v(s,vcm)/vu)", "(v(d,vcm)/vu)", names)
    defaults = " ".join(f"{n}=0" for n in names)
    return "\n".join([
        f".subckt edge_{cell} s d vcm en dirp {defaults} iu=1n vu=10m",
        f"* {law.doc or law.name}; sinks I from s, sources I into d; gated by en, signed by dirp",
        f"B1 s d I = v(dirp) * (v(en) > {LOGIC_HIGH / 2} ? 1 : 0) * iu * {expr}",
        ".ends",
    ])


def core_ports(spec: ChipSpec) -> List[str]:
    n, d = spec.num_nodes, len(spec.periods)
    return (["vcm", "dirp", "ld", "smp"] + [f"en_{k}" for k in range(d)] + [f"rst_{j}" for j in range(1, n + 1)]
            + [f"in_{j}" for j in range(1, n + 1)] + [f"out_{j}" for j in range(1, n + 1)])


def _node(j: int) -> str:
    return "vcm" if j == 0 else f"n{j}"


def core_subckt(spec: ChipSpec) -> str:
    s = spec.scaling
    lines = [f".subckt kchip_core {' '.join(core_ports(spec))}",
             f"* {spec.name}: {spec.num_nodes} nodes, {len(spec.periods)} periods, {len(spec.edges)} edges; "
             f"V_u={_fmt(s.v_u)} V, I_u={_fmt(s.i_u)} A, tau={_fmt(s.tau_s)} s",
             "* node capacitors, load and reset switches, sample-and-hold"]
    for n in spec.nodes:
        j = n.index
        lines += [f"C_node{j} n{j} 0 {_fmt(n.cap_f)}",
                  f"S_load{j} n{j} in_{j} ld 0 sw_ideal",
                  f"S_reset{j} n{j} vcm rst_{j} 0 sw_ideal",
                  f"E_buf{j} buf{j} 0 n{j} 0 1",
                  f"S_sample{j} buf{j} out_{j} smp 0 sw_ideal",
                  f"C_hold{j} out_{j} 0 100f"]
    for per in spec.periods:
        lines.append(f"* period {per.index}: law {per.law}, t = {_fmt(per.start)} .. "
                     f"{_fmt(per.start + per.length)} (SW), {len(per.edges)} edges")
        for eid in per.edges:
            e = spec.edges[eid]
            law = get_law(per.law)
            rows = [0.0] * law.rows
            for (row, _, _), v in zip(CELL_KINDS[e.cell].params, e.values):
                rows[row] = v
            params = " ".join(f"p{r}={_fmt(v)}" for r, v in enumerate(rows))
            lines.append(f"X_p{per.index}_e{e.id}_n{e.src}_n{e.dst} {_node(e.src)} {_node(e.dst)} vcm "
                         f"en_{per.index} dirp edge_{e.cell} {params} iu={_fmt(s.i_u)} vu={_fmt(s.v_u)}")
    lines.append(".ends kchip_core")
    return "\n".join(lines)


def ideal_netlist(spec: ChipSpec) -> str:
    cells = sorted({e.cell for e in spec.edges})
    parts = [f"* ---- edge cells ({', '.join(cells)}) ----"] + [edge_subckt(c) for c in cells]
    parts += ["* ---- ideal switch: on above 0.5 V ----",
              ".model sw_ideal sw vt=0.5 vh=0.1 ron=100 roff=1e16",
              "* ---- the chip ----", core_subckt(spec)]
    return "\n".join(parts) + "\n"
