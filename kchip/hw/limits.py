"""Device limits that the mapping and the ideal code tables need.

`DeviceLimits()` holds sky130 1.8 V defaults so that the mapping works without any PDK file; `DeviceLimits.from_pdk`
(and `load_limits`) override every field that `kchip.pdk` (pdk/sky130/pdk.yaml, `supply` and `limits`) provides.
The fields kchip.pdk does not (yet) provide keep the defaults below, and `source` records which came from where.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Dict, List


@dataclass(frozen=True)
class DeviceLimits:
    """Limits of the analog cells and devices, in SI units.

    vdd, v_cm             supply and node common mode [V]
    input_swing_v         usable +- swing of a cell input around v_cm [V]: a 1.8 V nfet pair with a mirror tail
                          keeps its tail transistor saturated and its load in saturation only for
                          |v - v_cm| <~ 0.4 V (V_GS ~ 0.45 V in weak/moderate inversion, V_dsat ~ 0.1 V)
    margin                fraction of the swing kept free (headroom for transients the calibration set missed)
    tanh_slope_max_per_v  largest tanh slope per volt of a differential pair, kappa / (2 U_T)
    tanh_lin_slope_max_per_v  largest slope per volt of each input of the tanh_lin cell, which has input gain
                          ahead of its pair (0: no such cell, the pair bound applies)
    cell_current_max_a    largest tail/unit current of a cell (weak/moderate inversion of the cell devices)
    cell_current_min_a    smallest unit current that still dominates junction leakage
    c_min_f, c_max_f      node capacitor range: the minimum dominates the cells' parasitic capacitance, the
                          maximum keeps the MIM capacitor area reasonable
    c_area_f_per_um2      MIM capacitance density (area estimate only)
    tanh_offset_max       largest |offset| inside a tanh cell's argument (tanh(3) = 0.995: beyond it the cell
                          is saturated anyway)
    cell_lag_s            per cell kind: the lag of its output current behind its inputs (1 / (2 pi f_-3dB) of
                          the characterized small-signal bandwidth at full code) [s]
    l2_dynamic            cell kinds whose L2 model is dynamic by default (`kchip.sim.l2.surrogate_model`: the
                          characterized s-side current and the lag as a delay of the inputs); measured per kind
    l2_code_surfaces      cell kinds whose L2 model, in the flow, adds the measured DC surfaces of the chip's own code
                          triples to the structural surrogate (`kchip.cells.code_surfaces`): kinds whose surrogate is
                          not within a fraction of a percent on codes it was not fitted to
    node_tau_over_lag_min the fastest node time constant of a period (tau / the largest sum of the node's edge
                          slopes, SW) must be at least this many cell lags (the one-node transients: tanh_lin at
                          4.3 lags is 1.9 % of the swing off the ODE, at 8.6 lags 0.9 %)
    """
    vdd: float = 1.8
    v_cm: float = 0.9
    input_swing_v: float = 0.4
    margin: float = 0.1
    tanh_slope_max_per_v: float = 11.9
    tanh_lin_slope_max_per_v: float = 0.0
    cell_current_max_a: float = 1.0e-5
    cell_current_min_a: float = 1.0e-9
    c_min_f: float = 50e-15
    c_max_f: float = 5e-12
    c_area_f_per_um2: float = 2.0e-15
    tanh_offset_max: float = 3.0
    cell_lag_s: Dict[str, float] = field(default_factory=dict, compare=False)
    node_tau_over_lag_min: float = 5.0
    l2_dynamic: List[str] = field(default_factory=list, compare=False)     # a list: the report's JSON round trip
    l2_code_surfaces: List[str] = field(default_factory=list, compare=False)
    pdk: str = "sky130"
    source: Dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def gm_max_s(self) -> float:
        """Largest transconductance of a cell: a pair at the largest tail current, in weak inversion."""
        return self.tanh_slope_max_per_v * self.cell_current_max_a

    def slope_max_per_v(self, cell: str) -> float:
        """Largest tanh slope per volt that cell kind `cell` realizes (tanh_lin: its own input-gain bound)."""
        if cell == "tanh_lin" and self.tanh_lin_slope_max_per_v > 0:
            return self.tanh_lin_slope_max_per_v
        return self.tanh_slope_max_per_v

    def to_dict(self) -> Dict:
        d = asdict(self)
        d["gm_max_s"] = self.gm_max_s
        return d

    @classmethod
    def from_pdk(cls, pdk) -> "DeviceLimits":
        """Override the defaults with what a `kchip.pdk.Pdk` provides (supply and the `limits` section)."""
        over: Dict[str, float] = {}
        src = {}
        for name, getter in (("vdd", lambda: pdk.vdd), ("v_cm", lambda: pdk.vcm)):
            try:
                over[name] = float(getter())
                src[name] = f"kchip.pdk {pdk.name}: supply"
            except (KeyError, TypeError, ValueError):
                pass
        lim = dict(getattr(pdk, "limits", {}) or {})
        for k in ("input_swing_v", "margin", "tanh_slope_max_per_v", "tanh_lin_slope_max_per_v", "cell_current_max_a",
                  "cell_current_min_a",
                  "c_min_f", "c_max_f", "tanh_offset_max", "node_tau_over_lag_min"):
            if k in lim:
                over[k] = float(lim[k])
                src[k] = f"kchip.pdk {pdk.name}: limits.{k}"
        if isinstance(lim.get("cell_lag_s"), dict):
            over["cell_lag_s"] = {str(a): float(b) for a, b in lim["cell_lag_s"].items()}
            src["cell_lag_s"] = f"kchip.pdk {pdk.name}: limits.cell_lag_s"
        for key in ("l2_dynamic", "l2_code_surfaces"):
            if key in lim:
                kinds = lim[key]
                if not isinstance(kinds, (list, tuple)) or not all(isinstance(k, str) for k in kinds):
                    raise ValueError(f"{pdk.name} pdk.yaml: limits.{key}: expected a list of cell kinds, got {kinds!r}")
                over[key], src[key] = list(kinds), f"kchip.pdk {pdk.name}: limits.{key}"
        try:
            over["c_area_f_per_um2"] = float(pdk.device("mimcap")["c_area_f_per_um2"])
            src["c_area_f_per_um2"] = f"kchip.pdk {pdk.name}: devices.mimcap"
        except Exception:  # noqa: BLE001 - optional field
            pass
        base = cls()
        for k in base.__dataclass_fields__:
            if k not in src and k not in ("source", "pdk"):
                src[k] = "kchip.hw.limits default"
        return replace(base, pdk=str(pdk.name), source=src, **over)


def load_limits(pdk_name: str = "sky130") -> DeviceLimits:
    """Limits of `pdk_name`: from kchip.pdk when that adapter and the PDK's files are there, else the defaults."""
    try:
        from kchip.pdk import load_pdk
    except ImportError:
        return replace(DeviceLimits(), pdk=pdk_name, source={"*": "kchip.hw.limits defaults (no kchip.pdk)"})
    try:
        return DeviceLimits.from_pdk(load_pdk(pdk_name))
    except FileNotFoundError:
        return replace(DeviceLimits(), pdk=pdk_name, source={"*": f"kchip.hw.limits defaults (no pdk {pdk_name})"})
