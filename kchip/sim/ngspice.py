"""Generic ngspice runner: write a deck, run `ngspice -b`, read the binary rawfile, raise clear errors.

    res = run_deck(deck, cell="tanh_diff", point="vd sweep at code 5")
    res.plots[0]["v(out)"]  -> numpy array

A deck should end its `.control` block with `write {RAW}` (the runner substitutes the raw-file path)
or contain analyses only (the runner then appends a control block that runs them and writes the raw file).
Errors (all subclasses of `NgspiceError`; each message names the cell and the point):
  - `NgspiceNotFound`      no ngspice executable
  - `ModelFileMissing`     an .include/.lib file of the deck does not exist, or ngspice could not open one
  - `ConvergenceError`     an operating point / sweep / transient failed to converge, or returned fewer
                           points than expected, or NaN values
  - `NgspiceError`         anything else ngspice reported as fatal
"""
from __future__ import annotations

import os
import resource
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

__all__ = ["NgspiceError", "NgspiceNotFound", "ModelFileMissing", "ConvergenceError", "Plot", "SimResult", "run_decks", "run_parallel",
           "find_ngspice", "run_deck", "read_raw", "DEFAULT_SPICEINIT"]

DEFAULT_SPICEINIT = "set ngbehavior=hsa\nset ng_nomodcheck\n"


class NgspiceError(RuntimeError):
    def __init__(self, msg: str, log: str = ""):
        super().__init__(msg)
        self.log = log


class NgspiceNotFound(NgspiceError, FileNotFoundError):
    pass


class ModelFileMissing(NgspiceError, FileNotFoundError):
    pass


class ConvergenceError(NgspiceError, ValueError):
    pass


@dataclass
class Plot:
    name: str
    title: str
    vectors: Dict[str, np.ndarray]
    complex: bool = False

    def __getitem__(self, key: str) -> np.ndarray:
        k = key.lower()
        if k in self.vectors:
            return self.vectors[k]
        raise KeyError(f"vector {key!r} not in plot {self.name!r}; have {sorted(self.vectors)}")

    def __contains__(self, key: str) -> bool:
        return key.lower() in self.vectors

    def __len__(self) -> int:
        return len(next(iter(self.vectors.values()))) if self.vectors else 0


@dataclass
class SimResult:
    plots: List[Plot]
    log: str
    wall_s: float
    workdir: Optional[Path] = None
    # CPU time (user + system) of the children reaped during this run: the ngspice process itself when one run
    # at a time happens per Python process (kchip simulate's process pool); with threads running several decks
    # side by side (run_parallel) it may include a neighbour's
    cpu_s: float = float("nan")
    extra: Dict[str, str] = field(default_factory=dict)


def find_ngspice(exe: Optional[str] = None) -> str:
    exe = exe or os.environ.get("KCHIP_NGSPICE", "ngspice")
    path = shutil.which(exe) if os.sep not in exe else (exe if os.access(exe, os.X_OK) else None)
    if not path:
        raise NgspiceNotFound(f"ngspice executable {exe!r} not found (install ngspice >= 39, e.g. "
                              f"`apt-get install ngspice`, or set $KCHIP_NGSPICE)")
    return path


# ----------------------------------------------------------------------------------------------- rawfile
def read_raw(path) -> List[Plot]:
    """Parse an ngspice rawfile (binary or ascii, one or several plots)."""
    data = Path(path).read_bytes()
    plots: List[Plot] = []
    pos = 0
    n = len(data)
    while pos < n:
        hdr: Dict[str, str] = {}
        names: List[str] = []
        mode = None
        while pos < n:
            end = data.index(b"\n", pos)
            line = data[pos:end].decode("latin-1")
            pos = end + 1
            if not line.strip():
                continue
            key, _, val = line.partition(":")
            k = key.strip().lower()
            if k == "variables":
                nvar = int(hdr["no. variables"])
                for _ in range(nvar):
                    end = data.index(b"\n", pos)
                    toks = data[pos:end].decode("latin-1").split()
                    pos = end + 1
                    names.append(toks[1].lower())
                continue
            if k in ("binary", "values"):
                mode = k
                break
            hdr[k] = val.strip()
        if mode is None:
            break
        nvar = int(hdr["no. variables"])
        npts = int(hdr["no. points"])
        cplx = "complex" in hdr.get("flags", "")
        if mode == "binary":
            dt = np.complex128 if cplx else np.float64
            cnt = nvar * npts
            arr = np.frombuffer(data, dtype=dt, count=cnt, offset=pos).reshape(npts, nvar)
            pos += cnt * np.dtype(dt).itemsize
        else:
            vals = []
            lines = data[pos:].decode("latin-1").splitlines(keepends=True)
            consumed = 0
            i = 0
            for _ in range(npts):
                row = []
                for j in range(nvar):
                    ln = lines[i]; i += 1
                    consumed += len(ln.encode("latin-1"))
                    while not ln.strip():
                        ln = lines[i]; i += 1
                        consumed += len(ln.encode("latin-1"))
                    toks = ln.split()
                    tok = toks[1] if j == 0 else toks[0]
                    if cplx:
                        re_, im_ = tok.split(",")
                        row.append(complex(float(re_), float(im_)))
                    else:
                        row.append(float(tok))
                vals.append(row)
            arr = np.array(vals, dtype=np.complex128 if cplx else np.float64).reshape(npts, nvar)
            pos += consumed
        vecs = {nm: arr[:, j].copy() for j, nm in enumerate(names)}
        plots.append(Plot(hdr.get("plotname", ""), hdr.get("title", ""), vecs, cplx))
    return plots


# ----------------------------------------------------------------------------------------------- errors
_INC_RE = re.compile(r"^\s*\.(include|inc|lib)\s+(\"[^\"]+\"|'[^']+'|\S+)", re.I | re.M)
_CONV_PATTERNS = [
    r"timestep too small", r"no convergence",
    r"iteration limit reached", r"singular matrix", r"dc solution failed", r"simulation\(s\) aborted",
    r"transient solution failed", r"op point failed", r"analysis failed",
]
# steps of ngspice's operating-point search (direct Newton, dynamic then true gmin stepping, source stepping, then
# a transient ramp, "optran", standard since ngspice 39): one step failing is a warning when a later one finds the
# point. They are an error only when the run also lacks its results (a failed search ends in "DC solution failed"
# or an aborted analysis, both above); else SimResult.extra["op_search"] records them.
_OP_STEP_PATTERNS = [r"gmin stepping failed", r"source stepping failed", r"transient op failed"]
_MISSING_PATTERNS = [r"could not find include file", r"can't find", r"cannot open", r"could not open"]


def _log_lines(log: str, patterns: Sequence[str]) -> List[str]:
    """The stripped lines of an ngspice log that match any of the (lower-case) patterns."""
    return [ln.strip() for ln in log.splitlines() if any(re.search(p, ln.lower()) for p in patterns)]


def _where(cell: Optional[str], point: Optional[str]) -> str:
    return f"cell {cell or '?'}, point {point or '?'}"


def _check_includes(deck: str, workdir: Path, cell, point) -> None:
    for m in _INC_RE.finditer(deck):
        f = m.group(2).strip("\"'")
        p = Path(f) if os.path.isabs(f) else workdir / f
        if not p.exists():
            raise ModelFileMissing(f"{_where(cell, point)}: model/include file not found: {f}")


_ANA_RE = re.compile(r"^\s*\.(op|dc|tran|ac|noise)\b", re.I | re.M)


def _with_control(deck: str, raw: Path) -> str:
    """Substitute {RAW}; or append a control block that runs the dot-analyses and writes every plot.
    Always make the control block end in `quit` (ngspice -b would otherwise run the analyses twice)."""
    if "{RAW}" in deck:
        deck = deck.replace("{RAW}", str(raw))
    elif not re.search(r"^\s*\.control", deck, re.I | re.M):
        body = deck.rstrip()
        if body.lower().endswith(".end"):
            body = body[:-4]
        counts: Dict[str, int] = {}
        writes = []
        for m in _ANA_RE.finditer(body):
            kind = m.group(1).lower()
            counts[kind] = counts.get(kind, 0) + 1
            writes.append(f"setplot {kind}{counts[kind]}\nwrite {raw}\nset appendwrite")
        ctl = "\n".join(["set filetype=binary", "run", *writes])
        deck = body + f"\n.control\n{ctl}\nquit\n.endc\n.end\n"
    if not re.search(r"^\s*quit\b", deck, re.I | re.M):
        idx = deck.lower().rfind(".endc")
        if idx >= 0:
            deck = deck[:idx] + "quit\n" + deck[idx:]
    return deck


def run_deck(deck: str, *, cell: Optional[str] = None, point: Optional[str] = None,
             expect_points: Optional[Sequence[int]] = None, timeout: float = 600.0,
             spiceinit: str = DEFAULT_SPICEINIT, keep: Optional[Path] = None,
             ngspice: Optional[str] = None, seed: Optional[int] = 1,
             threads: Optional[int] = None) -> SimResult:
    """Run one ngspice deck in batch mode and return its plots.

    expect_points: the number of points each plot must have (in order); a shorter plot (an aborted sweep)
    raises ConvergenceError naming the first missing point index. NaN/inf values raise too.
    keep: a folder in which to keep deck, log and raw file (default: a temporary folder, deleted).
    seed: ngspice's random seed (`.options seed`, read before the parameters are evaluated: the Monte Carlo
    mismatch draws); without one ngspice seeds from the process and the same deck draws differently on every
    run (`set rndseed` in .spiceinit did not fix it: measured). None: leave it unset.
    threads: ngspice's OpenMP threads for the device evaluation (`set num_threads`; default: the
    KCHIP_NGSPICE_THREADS environment variable, else 1). Debian's ngspice starts 2 threads whatever
    OMP_NUM_THREADS says; two such processes on 2 cores ran a tanh_lin deck pair in 33.5 s against 4.2 s with
    one thread each (spinning OpenMP workers; docs/cells.md), so parallel runs must not add threads.
    """
    exe = find_ngspice(ngspice)
    tmp = None
    if keep is None:
        tmp = tempfile.TemporaryDirectory(prefix="kchip_ng_")
        wd = Path(tmp.name)
    else:
        wd = Path(keep).resolve()
        wd.mkdir(parents=True, exist_ok=True)
    try:
        _check_includes(deck, wd, cell, point)
        raw = wd / "out.raw"
        if raw.exists():
            raw.unlink()
        if seed is not None:        # after the title line, before anything is evaluated
            head, _, rest = deck.partition("\n")
            deck = f"{head}\n.options seed={int(seed)}\n{rest}"
        deck = _with_control(deck, raw)
        (wd / "deck.sp").write_text(deck)
        threads = int(threads or os.environ.get("KCHIP_NGSPICE_THREADS", 0) or 1)
        if spiceinit is not None:
            spiceinit = spiceinit + f"set num_threads={max(1, threads)}\n"
        if spiceinit:
            (wd / ".spiceinit").write_text(spiceinit)
        env = dict(os.environ, OMP_NUM_THREADS="1")
        t0 = time.perf_counter()
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        try:
            pr = subprocess.run([exe, "-b", "deck.sp"], cwd=wd, capture_output=True, text=True,
                                timeout=timeout, env=env)
        except subprocess.TimeoutExpired as exc:
            raise ConvergenceError(f"{_where(cell, point)}: ngspice did not finish within {timeout:.0f} s "
                                   f"(stuck simulation / non-convergence)") from exc
        wall = time.perf_counter() - t0
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
        log = (pr.stdout or "") + "\n" + (pr.stderr or "")
        low = log.lower()
        for pat in _MISSING_PATTERNS:
            m = re.search(pat + r".*", low)
            if m:
                raise ModelFileMissing(f"{_where(cell, point)}: ngspice could not open a file: "
                                       f"{m.group(0).strip()}", log)
        conv = [p for p in _CONV_PATTERNS if re.search(p, low)]
        if conv:
            raise ConvergenceError(f"{_where(cell, point)}: ngspice did not converge: "
                                   f"{'; '.join(dict.fromkeys(_log_lines(log, conv)[:3]))}", log)
        steps = _log_lines(log, _OP_STEP_PATTERNS)
        if steps and not raw.exists():
            raise ConvergenceError(f"{_where(cell, point)}: ngspice did not converge: "
                                   f"{'; '.join(dict.fromkeys(steps[:3]))}", log)
        if not raw.exists():
            errs = [ln.strip() for ln in log.splitlines() if "error" in ln.lower()][:5]
            raise NgspiceError(f"{_where(cell, point)}: ngspice wrote no results (rc={pr.returncode}): "
                               f"{' | '.join(errs) or log.strip()[-400:]}", log)
        plots = read_raw(raw)
        if expect_points is not None:
            if len(plots) < len(expect_points):
                raise ConvergenceError(f"{_where(cell, point)}: expected {len(expect_points)} analyses, "
                                       f"ngspice returned {len(plots)} (an analysis aborted)", log)
            for k, (pl, want) in enumerate(zip(plots, expect_points)):
                if want is not None and len(pl) != want:
                    raise ConvergenceError(f"{_where(cell, point)}: analysis {k} ({pl.name}) returned "
                                           f"{len(pl)} of {want} points; first missing point index "
                                           f"{len(pl)}", log)
        for k, pl in enumerate(plots):
            for nm, v in pl.vectors.items():
                if not np.all(np.isfinite(v)):
                    bad = int(np.flatnonzero(~np.isfinite(v))[0])
                    raise ConvergenceError(f"{_where(cell, point)}: analysis {k} ({pl.name}) vector {nm} "
                                           f"is not finite at point index {bad}", log)
        extra = {"op_search": "; ".join(dict.fromkeys(steps))} if steps else {}
        return SimResult(plots, log, wall, wd if keep is not None else None, cpu, extra)
    finally:
        if tmp is not None:
            tmp.cleanup()


def run_parallel(tasks: Sequence, jobs: int) -> List:
    """Run zero-argument callables (each runs its own ngspice process), up to `jobs` at a time, results in order.
    The first error is raised after every task finished (no orphaned ngspice)."""
    if jobs <= 1 or len(tasks) <= 1:
        return [t() for t in tasks]
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(max_workers=min(jobs, len(tasks))) as pool:
        futs = [pool.submit(t) for t in tasks]
        return _all_results(futs)


def _all_results(futs) -> List:
    """The futures' results in order, once every one has finished; the first error raised then."""
    errs = [f.exception() for f in futs]
    for e in errs:
        if e is not None:
            raise e
    return [f.result() for f in futs]


def run_decks(decks: Sequence[str], jobs: Optional[int] = None, scheduler: Optional[str] = None,
              **kw) -> List[SimResult]:
    """Run independent decks in parallel ngspice processes (one per core by default; KCHIP_JOBS overrides),
    results in the order of `decks`. Every keyword goes to `run_deck`; deck k gets the random seed `seed` + k
    (default seed 1), so Monte Carlo copies split over several decks draw independently and reproducibly.
    `scheduler` (default: the KCHIP_SCHEDULER environment variable, which `kchip characterize --scheduler` sets):
    run them on that dask.distributed cluster instead (`kchip.sim.workers`; the decks' include files must be at
    the same paths there)."""
    jobs = jobs or int(os.environ.get("KCHIP_JOBS", 0)) or os.cpu_count() or 1
    seed = kw.pop("seed", 1)
    seeds = [None if seed is None else seed + k for k in range(len(decks))]
    scheduler = scheduler or os.environ.get("KCHIP_SCHEDULER") or None
    if scheduler and len(decks) > 1:
        from .workers import pool
        with pool(scheduler=scheduler) as ex:
            return _all_results([ex.submit(run_deck, d, seed=sd, **kw) for d, sd in zip(decks, seeds)])
    return run_parallel([lambda d=d, sd=sd: run_deck(d, seed=sd, **kw) for d, sd in zip(decks, seeds)], jobs)
