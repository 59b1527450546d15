"""The estimate stage and report.html of a small flow: the page opened in headless Chromium (Debian's chromium:
screenshot taken, every figure decoded, no script error), the estimate's figures consistent with their parts."""
import json
import re
import shutil
import subprocess

import pytest
import yaml

from kchip.flow import run_flow

from test_flow import FLOW

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FIGURES = ["levels", "errors", "bits", "waves", "mc", "power", "area"]     # no layout stage in this flow
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars"]

pytestmark = pytest.mark.skipif(shutil.which("ngspice") is None, reason="ngspice not installed")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    flow = dict(FLOW, stages=FLOW["stages"][:-1] + ["sweep", "estimate", "report"],
                estimate={"inputs": 1, "points": 2, "sequencer": False}, sweep={"mc_draws": 4, "inputs": 3})
    f = tmp / "flow.yaml"
    f.write_text(yaml.safe_dump(flow))
    res = run_flow(f, tmp / "build")
    return tmp / "build" / "tiny", res


def test_estimate_stage_figures(built):
    root, res = built
    e = res["estimate"]
    est = json.loads((root / e["estimate"]).read_text())
    sim, ana = est["simulated"], est["analytic"]
    # energy = power x time per inference, on both sides; the analytic total is the sum of its blocks
    t_inf = est["latency_analytic"]["t_inference_s"]
    for side in (sim, ana):
        assert side["energy_J"] == pytest.approx(side["power_W"] * t_inf)
    for st in ana["supply_A"].values():
        assert st["total_A"] == pytest.approx(st["cells_A"] + st["bias_A"] + st["sequencer_A"])
    assert est["gap"]["power"] == pytest.approx((ana["power_W"] - sim["power_W"]) / sim["power_W"])
    # the latency measured on the simulate stage's waveforms against the schedule's
    assert est["latency_simulated"]["latency_s"] == pytest.approx(est["latency_analytic"]["latency_s"], rel=0.1)
    assert abs(est["gap"]["power"]) < 0.1
    assert est["software"]["per_sample_batched_s"] > 0


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (scripts/setup.sh installs it)")
def test_report_html_in_headless_chromium(built, tmp_path):
    root, res = built
    page = root / res["report"]["html"]
    html = page.read_text()
    for name in FIGURES:
        assert f'id="fig-{name}"' in html, name
    assert "http://" not in html and "https://" not in html            # self-contained
    shot = tmp_path / "report.png"
    common = FLAGS + [f"--user-data-dir={tmp_path / 'profile'}"]
    r = subprocess.run([CHROMIUM, *common, "--window-size=1200,3000", f"--screenshot={shot}", page.as_uri()],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert shot.exists() and shot.stat().st_size > 50_000             # a page with figures, not a blank one
    dom = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile2'}", "--enable-logging=stderr",
                          "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120)
    body = re.search(r"<body[^>]*>", dom.stdout).group(0)
    attrs = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', body))
    assert attrs["images"] == attrs["images-ok"] == str(len(FIGURES)), attrs
    assert attrs["errors"] == "0"
    console = [ln for ln in dom.stderr.splitlines() if "CONSOLE" in ln]
    assert not [ln for ln in console if "error" in ln.lower() or "uncaught" in ln.lower()], console


def test_report_shows_the_layout_and_its_checks(tmp_path):
    """A transistor-level flow with layout, drc and lvs: the page holds the layout render and says DRC clean /
    LVS match."""
    flow = dict(FLOW, stages=["model", "forward", "quantize", "netlist", "layout", "drc", "lvs", "report"],
                netlist={"level": "transistor", "control": "ideal"})
    f = tmp_path / "flow.yaml"
    f.write_text(yaml.safe_dump(flow))
    res = run_flow(f, tmp_path / "build")
    assert res["drc"]["clean"] and res["lvs"]["match"]
    html = (tmp_path / "build" / "tiny" / res["report"]["html"]).read_text()
    assert 'id="fig-layout"' in html
    assert "<td>DRC</td><td>clean</td>" in html and "<td>LVS</td><td>match</td>" in html
