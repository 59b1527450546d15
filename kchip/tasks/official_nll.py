"""Test NLL of an imported official KirchhoffNet 2-D flow on kchip's fixed 10,000-point test set (the same
points `kchip train --task NAME` scores its own models on).

    python -m kchip.tasks.official_nll /work/shared/fixtures/official-kirchhoffnet/twomoon [-o out.json]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from kchip.model import import_official

from . import generation as G


def official_nll(fixture_dir, name: str = None, n: int = G.N_TEST) -> dict:
    d = Path(fixture_dir)
    model = import_official(d / "model.pth", d / "config.yaml")
    name = name or model.meta.get("test_bench") or d.name
    x = G.test_set(name, n)
    t0 = time.time()
    val = G.nll(model, x)
    return {"fixture": str(d), "data": name, "n_test": n, "test_seed": G.TEST_SEED, "test_nll": val,
            "params": model.num_params(), "solver": G.EVAL_SOLVER, "eval_s": time.time() - t0}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("fixture")
    ap.add_argument("--data", default=None)
    ap.add_argument("-o", "--out", default=None)
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    res = official_nll(a.fixture, a.data)
    print(json.dumps(res, indent=2))
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
