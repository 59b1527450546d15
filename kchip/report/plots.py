"""The report's figures (matplotlib, Agg), each returned as PNG bytes, from the stages' result files."""
from __future__ import annotations

import io
from typing import Dict, List, Optional, Sequence

import numpy as np


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=96, bbox_inches="tight", metadata={"Software": None})
    _plt().close(fig)
    return buf.getvalue()


def levels_scatter(levels: Dict[str, np.ndarray]) -> bytes:
    """Every fidelity level's outputs against L0 (one marker set per level), the diagonal."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    l0 = levels["L0"].ravel()
    for name, mk in (("L1", "o"), ("L2", "s"), ("chip", "x")):
        if name in levels:
            ax.plot(l0, levels[name].ravel(), mk, ms=5, mfc="none" if mk != "x" else None, label=name)
    lo, hi = float(l0.min()), float(l0.max())
    pad = 0.05 * (hi - lo or 1.0)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], "k-", lw=0.8, label="= L0")
    ax.set_xlabel("L0 (float model) output")
    ax.set_ylabel("output of the level")
    ax.set_title(f"outputs vs L0 ({levels['L0'].shape[0]} simulated inputs)")
    ax.legend()
    ax.grid(alpha=0.3)
    return _png(fig)


def error_histograms(levels: Dict[str, np.ndarray], full_scale: float) -> bytes:
    """Histograms of (level - L0) in % of full scale, per level."""
    plt = _plt()
    pairs = [(f"{a} - L0", levels[a] - levels["L0"]) for a in ("L1", "L2", "chip") if a in levels]
    if "L2" in levels:
        pairs.append(("chip - L2", levels["chip"] - levels["L2"]))
    fig, axes = plt.subplots(1, len(pairs), figsize=(3.4 * len(pairs), 3.0), squeeze=False)
    for ax, (name, d) in zip(axes[0], pairs):
        ax.hist(100 * d.ravel() / full_scale, bins=20, color="tab:blue", alpha=0.8)
        ax.set_title(name)
        ax.set_xlabel("error (% of full scale)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("outputs")
    return _png(fig)


def bits_curve(sweep: List[Dict], chosen: Optional[int] = None) -> bytes:
    """L1 - L0 (% FS RMS) against bit width; the task MSE on a second axis where there is one."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    b = [r["bits"] for r in sweep]
    ax.semilogy(b, [max(r["rms_pct_fs_vs_L0"], 1e-6) for r in sweep], "o-", label="L1 - L0 (% FS RMS)")
    if chosen is not None:
        ax.axvline(chosen, color="grey", ls="--", lw=0.8, label=f"chip: {chosen} bits")
    ax.set_xlabel("code bits (gm and bias)")
    ax.set_ylabel("L1 - L0, % of full scale RMS")
    if all("test_mse_L1" in r for r in sweep):
        ax2 = ax.twinx()
        ax2.plot(b, [r["test_mse_L1"] for r in sweep], "s--", color="tab:red", label="test MSE (L1)")
        ax2.set_ylabel("test MSE", color="tab:red")
    ax.legend(loc="upper right")
    ax.grid(alpha=0.3, which="both")
    ax.set_title("error vs bit width")
    return _png(fig)


def waveforms(w: Dict[str, np.ndarray], periods: Sequence[int], inferences: int = 2) -> bytes:
    """The held outputs over the first inferences, the control strobes below, the period boundaries (en_k edges)
    as vertical lines."""
    plt = _plt()
    t = w["time"]
    reads = w["read_times"]
    t_stop = float(reads[min(inferences, len(reads)) - 1]) * 1.02
    m = t <= t_stop
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(8, 5), sharex=True, gridspec_kw={"height_ratios": [3, 1.4]})
    scale, unit = (1e6, "us") if t_stop < 1e-3 else (1e3, "ms")
    for k, v in w.items():
        if k.startswith("v(out_"):
            a1.plot(t[m] * scale, v[m], lw=1, label=k[2:-1])
    hi = 1.8
    for i, k in enumerate(["v(ld)", "v(smp)"] + [f"v(en_{p})" for p in periods]):
        if k in w:
            a2.plot(t[m] * scale, w[k][m] / hi + 1.2 * i, lw=1, label=k[2:-1])
    for p in periods:
        v = w.get(f"v(en_{p})")
        if v is None:
            continue
        edges = np.flatnonzero(np.diff((v[m] > hi / 2).astype(int)) != 0)
        for e in edges:
            for ax in (a1, a2):
                ax.axvline(t[m][e] * scale, color="grey", ls=":", lw=0.8)
    for r in reads[:inferences]:
        a1.axvline(r * scale, color="k", ls="--", lw=0.6)
    a1.set_ylabel("held output (V)")
    a1.set_title("simulated waveforms (ngspice): outputs; dotted: period boundaries, dashed: read")
    if sum(k.startswith("v(out_") for k in w) <= 8:
        a1.legend(fontsize=7, ncol=4)
    a2.set_yticks([1.2 * i + 0.5 for i in range(2 + len(periods))])
    a2.set_yticklabels(["ld", "smp"] + [f"en_{p}" for p in periods])
    a2.set_xlabel(f"time ({unit})")
    a1.grid(alpha=0.3)
    return _png(fig)


def breakdown(blocks: Dict[str, float], title: str, unit: str, scale: float = 1.0) -> bytes:
    """A horizontal bar chart of one breakdown (area or supply current by block)."""
    plt = _plt()
    names = list(blocks)
    vals = [blocks[k] * scale for k in names]
    fig, ax = plt.subplots(figsize=(5.2, 0.45 * len(names) + 1.0))
    ax.barh(names, vals, color="tab:green")
    for i, v in enumerate(vals):
        ax.text(v, i, f" {v:.3g}", va="center", fontsize=8)
    ax.set_xlabel(unit)
    ax.set_title(title)
    ax.set_xlim(0, max(vals or [1]) * 1.25 or 1)
    return _png(fig)


def histogram(values: Sequence[float], xlabel: str, title: str) -> bytes:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.2, 3.2))
    ax.hist(values, bins=min(20, max(5, len(values) // 2)), color="tab:purple", alpha=0.8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("draws")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return _png(fig)
