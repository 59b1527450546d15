"""Waveform plots of a simulated chip: node voltages (SW units) and the control signals, with the period
boundaries marked."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Tuple

from kchip.netlist.schedule import build_schedule
from kchip.quantize.chipspec import ChipSpec


def _node(j: int, head: Optional[Dict]) -> str:
    """The node's voltage name in the testbench (inside kchip_chip -> Xcore for a sequencer-controlled deck)."""
    seq = bool(head and head.get("control") == "sequencer")
    return f"v(xchip.xcore.n{j})" if seq else f"v(xchip.n{j})"


def _frame(spec: ChipSpec, head: Optional[Dict], direction: str) -> Tuple[float, float]:
    """(start of inference 0, time per inference) of the testbench (`kchip.sim.simulate`)."""
    if head and head.get("control") == "sequencer":
        from kchip.netlist.sequencer import inference_frame
        return inference_frame(float(head["sequencer"]["t_clk"]), int(head["sequencer"]["n_flops"]))
    return 0.0, build_schedule(spec, direction, 1).t_inference


def wave_names(spec: ChipSpec, head: Optional[Dict] = None) -> List[str]:
    return ([_node(j, head) for j in range(1, spec.num_nodes + 1)] + ["v(ld)", "v(smp)"]
            + [f"v(en_{p.index})" for p in spec.periods] + [f"v(rst_{j})" for j in range(1, spec.num_nodes + 1)]
            + [f"v(out_{j})" for j in range(1, spec.num_nodes + 1)])


def kept_waves(spec: ChipSpec, level: str, n_in: int) -> List[str]:
    """The waveforms the flow's simulate stage keeps (first chunk, waves.npz): control strobes, the outputs and, at
    the transistor level, the supply current."""
    outs = build_schedule(spec, "forward", n_in).outputs
    return (["v(ld)", "v(smp)"] + [f"v(en_{p.index})" for p in spec.periods] + [f"v(out_{j})" for j in outs]
            + (["i(vvdd)"] if level == "transistor" else []))


def load_waves(path: Path) -> Dict:
    """{name: array} of a simulate stage's waves.npz (plus "time" and "read_times")."""
    import numpy as np
    z = np.load(path)
    out = {"time": z["time"], "read_times": z["read_times"]}
    out.update({str(n): z[f"w{i}"] for i, n in enumerate(z["names"])})
    return out


def plot_waves(spec: ChipSpec, info: Dict, direction: str, n_inf: int, path: Path, head: Optional[Dict] = None) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    t, w = info["time"], info["waves"]
    s = spec.scaling
    sch = build_schedule(spec, direction, 1)
    first, t_inf = _frame(spec, head, direction)
    keep = t <= first + n_inf * t_inf
    tu = t[keep] * 1e6
    fig, ax = plt.subplots(3, 1, figsize=(10, 8), sharex=True, gridspec_kw={"height_ratios": [3, 1.5, 1.5]})
    for j in range(1, spec.num_nodes + 1):
        ax[0].plot(tu, (w[_node(j, head)][keep] - s.v_cm) / s.v_u, lw=1, label=f"node {j}")
        ax[0].plot(tu, (w[f"v(out_{j})"][keep] - s.v_cm) / s.v_u, lw=0.8, ls=":", color="gray")
    ax[0].set_ylabel("node voltage (SW units)\n(V - V_cm) / V_u")
    ax[0].legend(loc="upper right", fontsize=7, ncol=4)
    off = 0
    for k in sch.order:
        ax[1].plot(tu, w[f"v(en_{k})"][keep] + 1.2 * off, lw=1, label=f"en_{k}")
        off += 1
    ax[1].plot(tu, w["v(ld)"][keep] + 1.2 * off, lw=1, label="ld")
    ax[1].plot(tu, w["v(smp)"][keep] + 1.2 * (off + 1), lw=1, label="smp")
    ax[1].set_ylabel("control")
    ax[1].legend(loc="upper right", fontsize=7, ncol=6)
    for j in range(1, spec.num_nodes + 1):
        ax[2].plot(tu, w[f"v(rst_{j})"][keep] + 1.2 * (j - 1), lw=1)
    ax[2].set_ylabel("rst_j (offset by j)")
    ax[2].set_xlabel("time (µs)")
    for i in range(n_inf):
        for k in sch.order:
            for a in ax:
                a.axvline((first + i * t_inf + sch.starts[k]) * 1e6, color="k", lw=0.4, alpha=0.4)
        for a in ax:
            a.axvline((first + i * t_inf + sch.t_end) * 1e6, color="r", lw=0.6, alpha=0.6)
    ax[0].set_title(f"{spec.name}: {direction}, {n_inf} inference(s); black: period starts, red: sample")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
