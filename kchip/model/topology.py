"""Topology generators: each returns an edge table (E, 3) of (src, dst, parameter index).

Node 0 is ground. The official KirchhoffNet generators are reproduced with their exact edge order and
parameter numbering (so that official checkpoints line up edge for edge); the paper's layer names FC, NE and
Proj are built from them:

* FC   -- every ordered pair of distinct nodes, ground included (`_fully_connect`).
* NE   -- neighbour-emphasizing, conv-like: every ordered pair of distinct positions inside each k x k window of
          a (c, w, h) grid (`_neighbor_index`), plus edges between each grid node and ground.
* Proj -- NE plus `extra` new nodes, each joined to every existing node and ground (`_mix_connect`); with a
          `lastN` projector the extra nodes become the outputs.
"""
from __future__ import annotations

from typing import Callable, Dict, List, Sequence

import numpy as np


def _table(rows: List[List[int]]) -> np.ndarray:
    arr = np.asarray(rows, dtype=np.int64).reshape(-1, 3)
    return arr


def _fully_connect(num_node: int, include_gnd: bool = True, repeat: Sequence[int] = (1, 1)) -> np.ndarray:
    start, end = (0, num_node) if include_gnd else (1, num_node + 1)
    rows, cnt = [], 0
    for i in range(start, end):
        for j in range(start, end):
            if i == j:
                continue
            for _ in range(repeat[0]):
                rows.append([i, j, cnt]); cnt += 1
            for _ in range(repeat[1]):
                rows.append([j, i, cnt]); cnt += 1
    return _table(rows)


def _simple_connect(num_node: int, include_gnd: bool = True, repeat: Sequence[int] = (1, 1)) -> np.ndarray:
    start, end = (0, num_node) if include_gnd else (1, num_node + 1)
    rows, cnt = [], 0
    for i in range(start, end):
        for _ in range(repeat[0]):
            rows.append([i, i + 1, cnt]); cnt += 1
    return _table(rows)


def _windows(num_channel: int, width: int, height: int, k: int, padding: bool) -> np.ndarray:
    """Node numbers inside each kernel window, shape (num_windows, c*k*k), in torch `unfold` order
    (channel-major inside a window, windows row-major); 0 marks a padded position."""
    grid = np.arange(1, 1 + num_channel * width * height).reshape(num_channel, width, height)
    pad = (k - 1) if padding else 0
    if pad:
        grid = np.pad(grid, ((0, 0), (pad, pad), (pad, pad)))
    W, H = grid.shape[1], grid.shape[2]
    out = []
    for x in range(W - k + 1):
        for y in range(H - k + 1):
            out.append(grid[:, x:x + k, y:y + k].reshape(-1))
    return np.asarray(out, dtype=np.int64).reshape(-1, num_channel * k * k)


def _neighbor_index(num_channel: int, width: int, height: int, neighbor_size: int, padding: bool = False,
                    repeat: int = 1, sharing: bool = False, parallel: int = 1) -> np.ndarray:
    return _neighbor_core(num_channel, width, height, neighbor_size, padding, repeat, sharing, parallel)[0]


def _neighbor_core(num_channel, width, height, neighbor_size, padding, repeat, sharing, parallel):
    """(edge table, parameter count) exactly as the official `_neighbor_index` returns them."""
    win = _windows(num_channel, width, height, neighbor_size, padding)
    m = win.shape[1]
    jj, kk = np.meshgrid(np.arange(m), np.arange(m), indexing="ij")
    pair = (jj != kk).reshape(-1)
    j_idx, k_idx = jj.reshape(-1)[pair], kk.reshape(-1)[pair]          # pair order: j outer, k inner
    src = win[:, j_idx]                                                 # (windows, pairs)
    dst = win[:, k_idx]
    valid = (src != 0) & (dst != 0)
    if sharing:
        # one parameter per (j, k) slot of the window, shared by all windows
        pidx = np.broadcast_to(np.arange(len(j_idx)), src.shape)
        src, dst, pidx = src[valid], dst[valid], pidx[valid]
        src, dst, pidx = (np.repeat(a, repeat) for a in (src, dst, pidx))
        n_param = len(j_idx)
    else:
        src, dst = src[valid], dst[valid]
        src, dst = np.repeat(src, repeat), np.repeat(dst, repeat)
        pidx = np.arange(len(src))
        n_param = len(src)
    table = np.stack([src, dst, pidx], axis=1).astype(np.int64)
    if parallel > 1:
        inc_node, blocks = int(table[:, :2].max()), [table]
        for i in range(1, parallel):
            blk = table.copy()
            blk[:, :2] += inc_node * i
            blk[:, 2] += n_param * i
            blocks.append(blk)
        table = np.concatenate(blocks, axis=0)
        n_param = int(table[:, 2].max()) + 1
    return table, n_param


def _mix_connect(num_channel: int, width: int, height: int, neighbor_size: int, fully_connect_node: int,
                 repeat: Sequence[int] = (1, 0), padding: bool = False, kernel_repeat: int = 1,
                 sharing: bool = False, parallel: int = 1) -> np.ndarray:
    # the official code continues the parameter numbering after the neighbour part's parameter count
    base, cnt = _neighbor_core(num_channel, width, height, neighbor_size, padding, kernel_repeat, sharing, parallel)
    max_node = int(base[:, :2].max())
    rows = []
    for node in range(1, max_node + 1):
        for _ in range(repeat[0]):
            rows.append([node, 0, cnt]); cnt += 1
        for _ in range(repeat[1]):
            rows.append([0, node, cnt]); cnt += 1
    for node in range(max_node + 1, max_node + 1 + fully_connect_node):
        for i in range(max_node + 1):
            for _ in range(repeat[0]):
                rows.append([i, node, cnt]); cnt += 1
            for _ in range(repeat[1]):
                rows.append([node, i, cnt]); cnt += 1
    return np.concatenate([base, _table(rows)], axis=0) if rows else base


# ---- the paper's layer names -------------------------------------------------------------------------------
def fc(num_node: int, repeat: Sequence[int] = (1, 0)) -> np.ndarray:
    """FC layer over nodes 1..num_node and ground: every ordered pair of distinct nodes gets repeat[0] +
    repeat[1] edges (the official `_fully_connect` visits each unordered pair twice, so (1, 0) gives every
    ordered pair exactly one edge; twomoon's repeat [25, 25] gives 50)."""
    return _fully_connect(num_node + 1, include_gnd=True, repeat=repeat)


def ne(num_channel: int, width: int, height: int, neighbor_size: int, repeat: Sequence[int] = (1, 1),
       kernel_repeat: int = 1) -> np.ndarray:
    """NE layer: kernel-window pairs plus grid-node <-> ground edges."""
    return _mix_connect(num_channel, width, height, neighbor_size, 0, repeat=repeat, kernel_repeat=kernel_repeat)


def proj(num_channel: int, width: int, height: int, neighbor_size: int, extra: int,
         repeat: Sequence[int] = (1, 1), kernel_repeat: int = 1) -> np.ndarray:
    """Proj layer: NE plus `extra` nodes fully joined to the grid (read out with a lastN projector)."""
    return _mix_connect(num_channel, width, height, neighbor_size, extra, repeat=repeat, kernel_repeat=kernel_repeat)


GENERATORS: Dict[str, Callable[..., np.ndarray]] = {
    "_fully_connect": _fully_connect,
    "_simple_connect": _simple_connect,
    "_neighbor_index": _neighbor_index,
    "_mix_connect": _mix_connect,
    "fc": fc, "FC": fc,
    "ne": ne, "NE": ne,
    "proj": proj, "Proj": proj,
}


MAX_EDGES = 1_000_000          # the largest edge table a generator is asked for (a 28 x 28 NE layer: ~63k)
MAX_INT_ARG = 4096


def _check_args(name: str, args, where: str) -> dict:
    """The generator's arguments checked against its signature: known names, required ones present, integers
    in range, booleans, `repeat` pairs; and the edge count they imply at most MAX_EDGES."""
    import inspect
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise ValueError(f"{where}.args: {args!r}: a mapping of the generator's arguments")
    params = inspect.signature(GENERATORS[name]).parameters
    for k, v in args.items():
        if k not in params:
            raise ValueError(f"{where}.args.{k}: unknown argument of generator {name!r}; allowed: {', '.join(params)}")
        ann = str(params[k].annotation)
        ok = True
        if ann == "bool":
            ok = isinstance(v, bool)
            allowed = "true or false"
        elif ann == "int":
            lo = 0 if k in ("extra", "fully_connect_node") else 1
            ok = isinstance(v, int) and not isinstance(v, bool) and lo <= v <= MAX_INT_ARG
            allowed = f"an integer in [{lo}, {MAX_INT_ARG}]"
        else:                                   # Sequence[int]: a (forward, backward) repeat pair
            ok = isinstance(v, (list, tuple)) and len(v) == 2 and all(
                isinstance(r, int) and not isinstance(r, bool) and 0 <= r <= 64 for r in v)
            allowed = "a pair [a, b] of integers in [0, 64]"
        if not ok:
            raise ValueError(f"{where}.args.{k}: {v!r}: {allowed}")
    missing = [k for k, p in params.items() if p.default is inspect.Parameter.empty and k not in args]
    if missing:
        raise ValueError(f"{where}.args: missing argument {missing[0]!r} of generator {name!r} (arguments: "
                         f"{', '.join(params)})")
    full = {k: (args[k] if k in args else p.default) for k, p in params.items()}
    rep = full.get("repeat", 1)
    r = sum(rep) if isinstance(rep, (list, tuple)) else rep
    if "num_node" in full:
        n = full["num_node"] + (1 if name == "fc" else 0)
        est = n * n * r
    else:
        c, w, h, k = full["num_channel"], full["width"], full["height"], full["neighbor_size"]
        m, grid = c * k * k, c * w * h
        kr = full.get("kernel_repeat", full["repeat"] if name == "_neighbor_index" else 1)
        extra = full.get("extra", full.get("fully_connect_node", 0))
        est = (w * h * m * m * kr + grid * r + extra * (grid + 1) * r) * full.get("parallel", 1)
    if est > MAX_EDGES:
        raise ValueError(f"{where}.args: {args!r}: about {est:,} edges; at most {MAX_EDGES:,} are supported")
    return args


def generate(name: str, args: dict | None, where: str = "net_struct") -> np.ndarray:
    """Build the edge table of a generator by name; errors name `where`, the generator and the bad args."""
    if name not in GENERATORS:
        raise ValueError(f"{where}: unknown topology generator {name!r}; known: {', '.join(sorted(GENERATORS))}")
    args = _check_args(name, args, where)
    try:
        table = GENERATORS[name](**args)
    except (TypeError, ValueError, IndexError) as exc:
        raise ValueError(f"{where}.args: {args!r}: not a valid layer for generator {name!r} ({exc})") from None
    if table.size == 0:
        raise ValueError(f"{where}.args: {args!r}: generator {name!r} produced no edges with these arguments")
    return table
