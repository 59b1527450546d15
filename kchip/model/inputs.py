"""Input arrays for `kchip forward` and `kchip simulate`: one loader that refuses, with the file named, what
is not a plain 2-D array of finite real numbers of the right width, and says on stderr when short rows will
be padded (the first period's nodes past an input's width start at 0 V)."""
from __future__ import annotations

import sys
import zipfile
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import NO_VALUE, UsageError


def read_array(path) -> np.ndarray:
    """The array of a .npy file; a .npz archive, pickled data or a non-numpy file is refused by name."""
    path = Path(path)
    if not path.exists():
        raise UsageError(path, None, NO_VALUE, "input file not found")
    if not path.is_file():
        raise UsageError(path, None, NO_VALUE, "not a file (a folder?)")
    if zipfile.is_zipfile(path):
        try:
            with np.load(path, allow_pickle=False) as z:
                names = ", ".join(z.files[:5]) or "none"
        except Exception:  # noqa: BLE001 - any zip: the message is the same
            names = "?"
        raise UsageError(path, None, NO_VALUE, f"a .npz archive (arrays: {names}), not a .npy array; save one "
                         "array with numpy.save")
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic != b"\x93NUMPY":
        raise UsageError(path, None, NO_VALUE, "not a .npy file (no NumPy header); save the array with numpy.save")
    try:
        x = np.load(path, allow_pickle=False)
    except ValueError as exc:
        what = "pickled (object) data" if "pickle" in str(exc).lower() else " ".join(str(exc).split())
        raise UsageError(path, None, NO_VALUE, f"not a .npy array of numbers ({what})") from None
    except (OSError, EOFError) as exc:
        raise UsageError(path, None, NO_VALUE, f"cannot read as a .npy array: {' '.join(str(exc).split())}") from None
    if not isinstance(x, np.ndarray):
        raise UsageError(path, None, NO_VALUE, "not a .npy array")
    return x


def check_inputs(x: np.ndarray, where: str, nodes: int, declared: Optional[int] = None,
                 what: str = "the first period") -> np.ndarray:
    """`x` as float64 (batch, width) after the checks: real numbers, 2-D, at least one row and column, finite,
    width <= `nodes` (the nodes of the period that runs first) and, when the model declares its input width
    (`declared`), equal to it."""
    if x.dtype.kind not in "iuf":
        kind = {"b": "booleans", "c": "complex numbers", "U": "strings", "S": "bytes", "O": "objects",
                "M": "dates", "m": "time deltas", "V": "structured records"}.get(x.dtype.kind, str(x.dtype))
        raise UsageError(where, "dtype", str(x.dtype), f"{kind}; inputs are real numbers (int or float), "
                         "node voltages in SW units")
    if x.ndim != 2:
        raise UsageError(where, "shape", tuple(x.shape), "a 2-D array (batch, inputs per sample)")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise UsageError(where, "shape", tuple(x.shape), "at least one sample and one value per sample")
    x = x.astype(np.float64)
    bad = ~np.isfinite(x)
    if bad.any():
        r, c = (int(i) for i in np.argwhere(bad)[0])
        raise UsageError(where, f"[{r}, {c}]", float(x[r, c]), f"inputs must be finite numbers ({int(bad.sum())} "
                         f"value(s) are NaN or infinite; the first is row {r}, column {c})")
    width = x.shape[1]
    if width > nodes:
        raise UsageError(where, "shape", tuple(x.shape), f"at most {nodes} values per sample ({what} has {nodes} "
                         "nodes)")
    if declared is not None and width != declared:
        raise UsageError(where, "shape", tuple(x.shape), f"{declared} values per sample (the model's input "
                         f"width)")
    if width < nodes and declared is None:
        print(f"note: {where}: {width} values per sample; {what} has {nodes} nodes: nodes {width + 1}..{nodes} "
              "start at 0 V", file=sys.stderr)
    return x


def load_inputs(path, model, reverse: bool = False) -> np.ndarray:
    """The checked inputs of `model` (a KirchhoffNet) from a .npy file (see `check_inputs`)."""
    first = model.periods[model.order(reverse)[0]]
    declared = model.meta.get("n_in") if not reverse else None
    declared = declared if isinstance(declared, int) and 0 < declared <= first.num_nodes else None
    return check_inputs(read_array(path), str(path), first.num_nodes, declared,
                        "the last period" if reverse and len(model.periods) > 1 else "the first period")
