"""Benchmark: a flow's first run against reruns with nothing changed (every stage from the cache), side by side in
one run, as subprocesses of the CLI (what a user types). Prints the times, the per-stage times of the first run and
the ratio rerun / first (issue 24's target: <= 10 %).

    python benchmarks/flow_rerun.py                    # the bundled default flow.yaml, build in a fresh temp folder
    python benchmarks/flow_rerun.py flows/x.yaml --reruns 5
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(flow: Path, build: Path) -> float:
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "kchip.cli", "flow", str(flow), "--build", str(build)],
                       capture_output=True, text=True, cwd=ROOT)
    if r.returncode:
        raise SystemExit(f"kchip flow failed ({r.returncode}): {r.stderr.strip()[-500:]}")
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("flow", nargs="?", default=str(ROOT / "flow.yaml"))
    ap.add_argument("--reruns", type=int, default=3)
    a = ap.parse_args()
    flow = Path(a.flow).resolve()
    with tempfile.TemporaryDirectory(prefix="kchip_bench_") as tmp:
        build = Path(tmp)
        first = _run(flow, build)
        reruns = [_run(flow, build) for _ in range(a.reruns)]
        (name,) = [p.name for p in build.iterdir() if p.is_dir()]
        stages = {p.name: json.loads((p / "stage.json").read_text())["seconds"]
                  for p in sorted((build / name).iterdir()) if (p / "stage.json").exists()}
    med = statistics.median(reruns)
    print(json.dumps({"flow": str(flow), "first_run_s": round(first, 2), "stages_s": stages,
                      "reruns_s": [round(r, 2) for r in reruns], "rerun_median_s": round(med, 2),
                      "ratio_rerun_over_first": round(med / first, 4)}, indent=1))


if __name__ == "__main__":
    main()
