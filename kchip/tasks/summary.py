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
             "paper MSE / params | ratio to paper |", "|---|---|---|---|---|---|---|---|---|"]
    for data in ("friedman", "diabetes"):
        for size in SIZES:
            ms = cells.get((data, size), [])
            paper = PAPER_TABLE1.get((data, size))
            ptxt = f"{paper[0]:.3g} / {paper[1]}" if paper else "not recorded"
            if not ms:
                lines.append(f"| {data} | {size} | - | not run | 0 | - | - | {ptxt} | - |")
                continue
            v = np.array([m["test_mse"] for m in ms])
            seeds = sorted(m["seed"] for m in ms)
            ratio = f"{v.mean() / paper[0]:.2f}x" if paper else "-"
            lines.append(f"| {data} | {size} | {ms[0]['params']} | {v.mean():.3e} ± {v.std():.1e} | "
                         f"{','.join(map(str, seeds))} | {', '.join(f'{x:.3e}' for x in v)} | "
                         f"{np.mean([m['epoch_s_mean'] for m in ms]):.2f} | {ptxt} | {ratio} |")
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
    print(other_table(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
