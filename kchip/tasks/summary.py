"""Collect metrics.json files of training runs into the markdown tables of docs/results.md.

    python -m kchip.tasks.summary build/train
"""
from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from .regression import PAPER_TABLE1, SIZES


def load_runs(root) -> list:
    runs = []
    for f in sorted(Path(root).glob("*/metrics.json")):
        try:
            m = json.loads(f.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        m["_dir"] = f.parent.name
        runs.append(m)
    return runs


def regression_table(runs) -> str:
    cells = defaultdict(list)
    meta = {}
    for m in runs:
        if "test_mse" not in m:
            continue
        key = (m["name"].split("-")[0], m.get("size", "small"))
        cells[key].append(m)
        meta[key] = m
    lines = ["| data | size | params | test MSE (mean ± std over seeds) | seeds | per-seed MSE | s/epoch | "
             "min/run | paper MSE / params | ratio to paper |", "|---|---|---|---|---|---|---|---|---|---|"]
    for data in ("friedman", "diabetes"):
        for size in SIZES:
            ms = cells.get((data, size), [])
            paper = PAPER_TABLE1.get((data, size))
            ptxt = f"{paper[0]:.3g} / {paper[1]}" if paper else "not recorded"
            if not ms:
                lines.append(f"| {data} | {size} | - | not run | 0 | - | - | - | {ptxt} | - |")
                continue
            v = np.array([m["test_mse"] for m in ms])
            seeds = sorted(m["seed"] for m in ms)
            ratio = f"{v.mean() / paper[0]:.2f}x" if paper else "-"
            lines.append(f"| {data} | {size} | {ms[0]['params']} | {v.mean():.3e} ± {v.std():.1e} | "
                         f"{','.join(map(str, seeds))} | {', '.join(f'{x:.3e}' for x in v)} | "
                         f"{np.mean([m['epoch_s_mean'] for m in ms]):.2f} | "
                         f"{np.mean([m.get('train_s_total', np.nan) for m in ms]) / 60:.1f} | {ptxt} | {ratio} |")
    return "\n".join(lines)


def _init_dir(m):
    """Run directory name of the model a run was initialised from (fine-tuning stage), or None."""
    init = m.get("init")
    if not init:
        return None
    p = Path(init)
    return p.parent.name if p.suffix else p.name


def generation_table(runs) -> str:
    """One row per 2-D toy set: the last stage of each chain of runs (a run another run does not start from via
    --init), its test NLL and the stages behind it (epochs, lr, NLL each), with summed iterations and wall time."""
    gen = {m["_dir"]: m for m in runs if "test_nll" in m}
    parents = {_init_dir(m) for m in gen.values()}
    lines = ["| data set | final run | test NLL [nats] (10,000 pts) | stages: run (epochs, lr, test NLL) | "
             "iterations x batch | train wall [min] |", "|---|---|---|---|---|---|"]
    rows = []
    for name, m in gen.items():
        if name in parents:
            continue
        chain, cur, seen = [], m, set()
        while cur is not None and cur["_dir"] not in seen:
            seen.add(cur["_dir"])
            chain.insert(0, cur)
            cur = gen.get(_init_dir(cur))
        iters = sum(c["epochs_run"] * c.get("iters_per_epoch", 0) for c in chain)
        wall = sum(c.get("train_s_total", 0.0) for c in chain) / 60
        stages = "; ".join(f"{c['_dir']} ({c['epochs_run']}, {c['lr']:g}, {c['test_nll']:.4f})" for c in chain)
        rows.append((m.get("data", m.get("dataset", "?")), name,
                     f"| {m.get('data', '?')} | {name} | {m['test_nll']:.4f} | {stages} | "
                     f"{iters} x {m.get('batch', '?')} | {wall:.1f} |"))
    lines += [r[2] for r in sorted(rows)]
    return "\n".join(lines)


def other_table(runs) -> str:
    lines = ["| run | task | params | metric | epochs | s/epoch |", "|---|---|---|---|---|---|"]
    for m in runs:
        t = ("generation" if "test_nll" in m else "density" if "kl" in m
             else "classification" if "test_top1" in m else None)
        if t == "generation":
            metric = f"test NLL {m['test_nll']:.4f} nats ({m['n_test']} pts)"
        elif t == "density":
            metric = f"KL {m['kl']:.4f} nats (box mass {m['mass_in_box']:.4f})"
        elif t == "classification":
            metric = f"top-1 {100 * m['test_top1']:.2f} % (train {100 * m['train_top1']:.2f} %)"
        else:
            continue
        lines.append(f"| {m['_dir']} | {t} | {m['params']} | {metric} | {m['epochs_run']} | "
                     f"{m['epoch_s_mean']:.2f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    runs = load_runs(argv[0] if argv else "build/train")
    print(regression_table(runs))
    print()
    print(generation_table(runs))
    print()
    print(other_table(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
