"""Characterization tables of a cell at one corner, and the code->value table the quantize stage takes.

`CodeTable` (what kchip.quantize consumes, as is):
    cell      cell kind, e.g. "tanh_diff"
    corner    "tt", "ss", ...
    units     {param: unit string}, HW units (A, 1/V, V); convert with the Scaling (I_u, V_u)
    params    {param: CodeParam(codes: int array (K,), values: float array (K,), sigma: float array (K,))}
    meta      free-form (bits, I_unit, v_cm, realizable ranges, ...)
  For tanh_diff:  params "amp" (A, realized tail amplitude per magnitude code), "slope" (1/V, realized
                  tanh slope per code), "offset" (V, input-referred offset per code).
  For relu_diff:  "gain" (A/V per magnitude code), "bias" (A per offset code).
  Serialization: `to_json(path)` / `CodeTable.from_json(path)`, `to_npz` / `from_npz`.

`CellTable`: the full DC I-V surfaces I(code, vd, vs) (currents into d and out of s), plus scalars;
it is what the L2 surrogate interpolates. NPZ (+ CSV of the surfaces) on disk.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional

import numpy as np

__all__ = ["CodeParam", "CodeTable", "CellTable", "TableError"]


class TableError(ValueError):
    pass


@dataclass
class CodeParam:
    codes: np.ndarray          # (K,) int, the integer codes
    values: np.ndarray         # (K,) float, the realized value of each code (HW units)
    sigma: Optional[np.ndarray] = None   # (K,) float, mismatch sigma per code (same units), if measured

    def __post_init__(self):
        self.codes = np.asarray(self.codes, dtype=np.int64)
        self.values = np.asarray(self.values, dtype=np.float64)
        if self.sigma is not None:
            self.sigma = np.asarray(self.sigma, dtype=np.float64)
        if self.codes.shape != self.values.shape:
            raise TableError(f"codes {self.codes.shape} and values {self.values.shape} differ in shape")
        if not np.all(np.isfinite(self.values)):
            raise TableError("code table has non-finite values")

    def value(self, code) -> np.ndarray:
        idx = np.searchsorted(self.codes, code)
        if np.any(idx >= len(self.codes)) or np.any(self.codes[np.minimum(idx, len(self.codes) - 1)] != code):
            raise TableError(f"code(s) {code} not in table (codes {self.codes.min()}..{self.codes.max()})")
        return self.values[idx]

    def nearest(self, value) -> np.ndarray:
        """Code whose realized value is nearest to `value` (what a quantizer does)."""
        v = np.asarray(value, dtype=np.float64)[..., None]
        return self.codes[np.argmin(np.abs(self.values[None, :] - v.reshape(-1, 1)), axis=1)].reshape(
            np.shape(value))


@dataclass
class CodeTable:
    cell: str
    corner: str
    params: Dict[str, CodeParam]
    units: Dict[str, str] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"cell": self.cell, "corner": self.corner, "units": self.units, "meta": self.meta,
                "params": {k: {"codes": p.codes.tolist(), "values": p.values.tolist(),
                               **({"sigma": p.sigma.tolist()} if p.sigma is not None else {})}
                           for k, p in self.params.items()}}

    @classmethod
    def from_dict(cls, d: dict) -> "CodeTable":
        return cls(d["cell"], d["corner"],
                   {k: CodeParam(v["codes"], v["values"], v.get("sigma")) for k, v in d["params"].items()},
                   dict(d.get("units", {})), dict(d.get("meta", {})))

    def to_json(self, path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1))

    @classmethod
    def from_json(cls, path) -> "CodeTable":
        return cls.from_dict(json.loads(Path(path).read_text()))

    def to_npz(self, path) -> None:
        arrs = {}
        for k, p in self.params.items():
            arrs[f"{k}__codes"] = p.codes
            arrs[f"{k}__values"] = p.values
            if p.sigma is not None:
                arrs[f"{k}__sigma"] = p.sigma
        hdr = {"cell": self.cell, "corner": self.corner, "units": self.units, "meta": self.meta,
               "params": list(self.params)}
        np.savez(path, __header__=np.array(json.dumps(hdr)), **arrs)

    @classmethod
    def from_npz(cls, path) -> "CodeTable":
        z = np.load(path)
        hdr = json.loads(str(z["__header__"]))
        params = {k: CodeParam(z[f"{k}__codes"], z[f"{k}__values"],
                               z[f"{k}__sigma"] if f"{k}__sigma" in z else None) for k in hdr["params"]}
        return cls(hdr["cell"], hdr["corner"], params, hdr["units"], hdr["meta"])


@dataclass
class CellTable:
    """DC surfaces of one cell kind at one corner.
    codes (K,), vs (NS,), vd (ND,) grids in volts; i_d[k, j, i] = current into d (A) at code k, vd[j],
    vs[i]; i_s = current taken out of s (A). i_dd = supply current (A). `scalars` holds summary figures."""
    cell: str
    corner: str
    codes: np.ndarray
    vs: np.ndarray
    vd: np.ndarray
    i_d: np.ndarray
    i_s: np.ndarray
    i_dd: Optional[np.ndarray] = None
    scalars: dict = field(default_factory=dict)
    zero_ok: tuple = ()        # table codes whose surface is zero by design (e.g. a ReLU biased fully off)
    extra: dict = field(default_factory=dict)   # further named arrays of the characterization (saved in the npz)

    def validate(self) -> None:
        """No holes and no silent zeros: every point finite, the enabled non-zero-code surfaces not all 0."""
        shp = (len(self.codes), len(self.vd), len(self.vs))
        for nm in ("i_d", "i_s"):
            a = getattr(self, nm)
            if a.shape != shp:
                raise TableError(f"{self.cell}/{self.corner}: {nm} has shape {a.shape}, expected {shp}")
            if not np.all(np.isfinite(a)):
                k, j, i = np.argwhere(~np.isfinite(a))[0]
                raise TableError(f"{self.cell}/{self.corner}: {nm} has a hole at code {self.codes[k]}, "
                                 f"vd={self.vd[j]:.3f} V, vs={self.vs[i]:.3f} V")
        for k, c in enumerate(self.codes):
            if c != 0 and c not in self.zero_ok and np.all(self.i_d[k] == 0):
                raise TableError(f"{self.cell}/{self.corner}: surface of code {c} is all zeros")

    def save(self, path) -> None:
        self.validate()
        np.savez_compressed(path, cell=self.cell, corner=self.corner, codes=self.codes, vs=self.vs,
                            vd=self.vd, i_d=self.i_d, i_s=self.i_s,
                            i_dd=self.i_dd if self.i_dd is not None else np.zeros(0),
                            scalars=np.array(json.dumps(self.scalars)), zero_ok=np.array(self.zero_ok, dtype=int),
                            **{f"extra__{k}": np.asarray(v) for k, v in self.extra.items()})

    @classmethod
    def load(cls, path) -> "CellTable":
        z = np.load(path)
        t = cls(str(z["cell"]), str(z["corner"]), z["codes"], z["vs"], z["vd"], z["i_d"], z["i_s"],
                z["i_dd"] if z["i_dd"].size else None, json.loads(str(z["scalars"])),
                tuple(int(x) for x in z["zero_ok"]) if "zero_ok" in z else (),
                {k[len("extra__"):]: z[k] for k in z.files if k.startswith("extra__")})
        t.validate()
        return t

    def to_csv(self, path) -> None:
        K, ND, NS = self.i_d.shape
        kk, jj, ii = np.meshgrid(np.arange(K), np.arange(ND), np.arange(NS), indexing="ij")
        cols = np.stack([self.codes[kk].ravel(), self.vs[ii].ravel(), self.vd[jj].ravel(),
                         self.i_d.ravel(), self.i_s.ravel()], axis=1)
        np.savetxt(path, cols, delimiter=",", header="code,vs_V,vd_V,i_into_d_A,i_out_of_s_A", comments="",
                   fmt=["%d", "%.4f", "%.4f", "%.6e", "%.6e"])
