"""`kchip.report`: report.json (every stage's results) and a self-contained report.html (figures inlined as PNG).

    paths = write_report(results, build_root, out_dir, name)

The page holds, where the stages that give them ran: the summary figures, every fidelity level's outputs against
L0 and their error histograms (simulate: levels.npz), error vs bit width (quantize.sweep_bits), the simulated
waveforms with the period boundaries (simulate: waves.npz), the chip-level corner / Monte Carlo table (sweep),
area / power / latency / energy simulated and analytic with the block breakdowns (estimate), the layout render
(layout) and the cells' corner table. Each figure is an <img id="fig-..."> with a data: URI; a small script
records on <body> how many images decoded and any script error (data-images, data-images-ok, data-errors), for
the headless-browser test.
"""
from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from kchip.fsio import write_json, write_text

from . import plots


def _fmt(v: Any, unit: str = "") -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}{(' ' + unit) if unit else ''}"
    return html.escape(str(v)) + ((" " + unit) if unit else "")


def _table(rows: List[List[Any]], head: List[str]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c if isinstance(c, str) else _fmt(c)}</td>" for c in r) + "</tr>"
                   for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _img(name: str, png: bytes, caption: str) -> str:
    data = base64.b64encode(png).decode()
    return (f'<figure><img id="fig-{name}" alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


_SCRIPT = """<script>
document.body.dataset.errors = "0";
window.addEventListener("error", function () {
  document.body.dataset.errors = String(Number(document.body.dataset.errors) + 1); });
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  document.body.dataset.images = String(imgs.length);
  document.body.dataset.imagesOk = String(imgs.filter(function (i) {
    return i.complete && i.naturalWidth > 0; }).length); });
</script>"""

_CSS = """body{font-family:sans-serif;max-width:1100px;margin:1.5em auto;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f3f3f3}td:first-child{text-align:left}figure{display:inline-block;margin:.5em 1em .5em 0}
figcaption{font-size:.85em;color:#555;max-width:560px}img{max-width:100%}.note{color:#555;font-size:.9em}"""


def _summary(res: Dict[str, Any]) -> str:
    rows = []
    m = res.get("model", {})
    rows.append(["model", f"{m.get('law', '-')}, {m.get('periods', '-')} period(s), nodes {m.get('nodes')}, "
                 f"edges {m.get('edges')}, {m.get('params', '-')} parameters"])
    q = res.get("quantize", {})
    if q:
        rows.append(["quantization", f"{q['bits']['gm']}-bit gm / {q['bits']['bias']}-bit bias, clipped "
                     f"{q.get('clipped')}, tau {_fmt(q.get('tau_s'), 's')}"])
    for key, what in (("test_mse_L0", "test MSE, float model (L0)"), ("test_mse_L1", "test MSE, quantized (L1)")):
        if key in q:
            rows.append([what, _fmt(q[key])])
    s = res.get("simulate", {})
    if s:
        rows.append(["chip vs L0", f"{_fmt(s['vs_L0']['rms_pct_fs'])} % FS RMS ({s['inputs']} inputs)"])
        rows.append(["chip vs L1", f"{_fmt(s['vs_L1']['rms_pct_fs'])} % FS RMS"])
        if "vs_L2" in s:
            rows.append(["chip vs L2", f"{_fmt(s['vs_L2']['rms_pct_fs'])} % FS RMS"])
        if "mse_chip" in s:
            rows.append(["test MSE, chip (simulated inputs)", _fmt(s["mse_chip"])])
    e = res.get("estimate", {})
    if e:
        rows.append(["area", f"{_fmt(e['area_mm2'], 'mm²')} ({e['area_source']})"])
        rows.append(["latency", _fmt(e["latency_s"], "s")])
        if "power_W" in e:
            rows.append(["power (simulated)", _fmt(e["power_W"], "W")])
            rows.append(["energy per inference (simulated)", _fmt(e["energy_J"], "J")])
        rows.append(["software forward, per sample (this CPU)", _fmt(e["sw_s_per_sample"], "s")])
    if "drc" in res:
        r = res["drc"]
        rows.append(["DRC", "clean" if r["clean"] else f"{r['violations']} violations: {_fmt(r['failing'])}"])
    if "lvs" in res:
        r = res["lvs"]
        rows.append(["LVS", "match" if r["match"] else f"mismatch: {_fmt(r['mismatches'][:5])}"])
    return _table(rows, ["", "figure"])


def _stages(res: Dict[str, Any], seconds: Dict[str, float]) -> str:
    return _table([[k, _fmt(seconds.get(k), "s")] for k in res], ["stage", "run time"])


def _accuracy(res: Dict, root: Path) -> str:
    s = res.get("simulate")
    if not s or "levels" not in s:
        return "<p class=note>No simulate stage in this flow.</p>"
    z = np.load(root / s["levels"])
    levels = {k: z[k] for k in z.files}
    fs = s.get("full_scale") or float(np.ptp(levels["L0"])) or 1.0
    rows = [[k.replace("vs_", "chip vs "), v["rms_pct_fs"], v["max_pct_fs"]] for k, v in s.items()
            if k.startswith("vs_") and isinstance(v, dict) and "rms_pct_fs" in v]
    if "L2_vs_L0" in s:
        rows.append(["L2 vs L0", s["L2_vs_L0"]["rms_pct_fs"], s["L2_vs_L0"]["max_pct_fs"]])
    return (_table(rows, ["comparison", "RMS (% FS)", "max (% FS)"])
            + _img("levels", plots.levels_scatter(levels), "every fidelity level's outputs against L0")
            + _img("errors", plots.error_histograms(levels, fs), f"error histograms (full scale {fs:.4g})"))


def _bits(res: Dict) -> str:
    q = res.get("quantize", {})
    sw = q.get("bits_sweep")
    if not sw:
        return "<p class=note>No bit-width sweep (quantize.sweep_bits is empty).</p>"
    rows = [[r["bits"], r["rms_pct_fs_vs_L0"], r.get("clipped"), r.get("test_mse_L1")] for r in sw]
    return (_img("bits", plots.bits_curve(sw, q["bits"]["gm"]), "L1 (quantized) against L0 at each bit width")
            + _table(rows, ["bits", "L1 - L0 (% FS RMS)", "clipped", "test MSE (L1)"]))


def _waves(res: Dict, root: Path, periods: List[int]) -> str:
    s = res.get("simulate", {})
    if "waves" not in s:
        return "<p class=note>No waveforms (no simulate stage).</p>"
    from kchip.sim.waves import load_waves
    w = load_waves(root / s["waves"])
    lat = s.get("latency_measured", {})
    return (_img("waves", plots.waveforms(w, periods), "ngspice waveforms of the first inferences")
            + f"<p>Measured latency (outputs within {_fmt(lat.get('tol_V'), 'V')} of the value read): "
              f"{_fmt(lat.get('latency_s'), 's')}.</p>")


def _estimate(res: Dict, root: Path) -> str:
    e = res.get("estimate")
    if not e:
        return "<p class=note>No estimate stage in this flow.</p>"
    d = json.loads((root / e["estimate"]).read_text())
    a, s, gap = d["analytic"], d.get("simulated", {}), d.get("gap", {})
    pct = lambda g: "-" if g is None else f"{100 * g:+.2f} %"
    lat_sim = d.get("latency_simulated", {}).get("latency_s")
    rows = [["power, average over an inference (W)", s.get("power_W"), a["power_W"], pct(gap.get("power"))],
            ["power while a period runs (W)", s.get("forward_power_W"), a["forward_power_W"],
             pct(gap.get("forward_power"))],
            ["idle power (W)", s.get("idle_power_W"), a["idle_power_W"], pct(gap.get("idle_power"))],
            ["energy per inference (J)", s.get("energy_J"), a["energy_J"], pct(gap.get("energy"))],
            ["latency, on the simulated waveforms (s)", lat_sim, d["latency_analytic"]["latency_s"],
             pct(gap.get("latency"))],
            ["latency, the sequencer's strobes (transistor level, s)", d.get("latency_sequencer", {}).get("latency_s"),
             d["windows"]["t_end"], pct(gap.get("latency_sequencer"))],
            ["time per inference (s)", None, d["latency_analytic"]["t_inference_s"], "-"]]
    out = _table(rows, ["", "simulated", "analytic", "analytic - simulated"])
    ar = d["area_cells"]
    area_rows = [["area from the cells' layout table (mm²)", ar["total_mm2"]],
                 ["area per edge (µm²)", ar["per_edge_um2"]]]
    if "area_gds_mm2" in d:
        area_rows.insert(0, ["area of the GDS (mm²)", d["area_gds_mm2"]])
    sw = d["software"]
    area_rows += [["software forward per sample, batch of %d (s)" % sw["batch"], sw["per_sample_batched_s"]],
                  ["software forward, one sample (s)", sw["single_sample_s"]]]
    out += _table(area_rows, ["", "value"])
    blocks = next(iter(a["supply_A"].values()))
    cur = {k[:-2]: v for k, v in blocks.items() if k != "total_A"}
    out += _img("power", plots.breakdown(cur, "supply current by block (analytic, a period running)", "mA", 1e3),
                "supply current by block")
    out += _img("area", plots.breakdown(ar["blocks_um2"], "area by block (cells' layout table)", "mm²", 1e-6),
                "area by block")
    return out


def _layout(res: Dict, root: Path, out: Path) -> str:
    lay = res.get("layout")
    if not lay:
        return "<p class=note>No layout stage in this flow (it needs netlist.level: transistor).</p>"
    from kchip.layout.library import render_png
    png = out / "layout.png"                     # the report's own folder: the layout stage's stays as it wrote it
    render_png(root / lay["gds"], png)
    return _img("layout", png.read_bytes(), f"layout of {lay['top']}: {lay['area_mm2']:.4g} mm²")


def _sweep(res: Dict) -> str:
    sw = res.get("sweep")
    if not sw:
        return "<p class=note>No chip-level sweep in this flow (stage sweep).</p>"
    metric = "test MSE" if sw["metric"] == "mse" else "L2 - L0 (% FS RMS)"
    tr = {p["corner"]: p for p in sw["points"] if p.get("level") == "transistor" and p["draw"] is None}
    rows = [[p["corner"], p.get("mse"), p["rms_pct_fs_vs_L0"], tr[p["corner"]].get("mse") if tr else "-",
             tr[p["corner"]]["rms_pct_fs_vs_L2"] if tr else "-"]
            for p in sw["points"] if p["draw"] is None and p.get("level", "L2") == "L2"]
    out = (f"<p>The chip at L2 (the cells' characterized surrogates in the ODE, the transistor chip's codes) on "
           f"{sw['inputs']} test inputs: {metric} at each process corner, and over Monte Carlo mismatch draws "
           f"(tt; per cell gain sigma {sw['sigmas']['gain']:.3g}, input offset sigma "
           f"{1e3 * sw['sigmas']['offset_V']:.3g} mV).</p>"
           + _table(rows, ["corner", "test MSE (L2)", "L2 - L0 (% FS RMS)", "test MSE (transistor)",
                           "transistor - L2 (% FS RMS)"])
           + f"<p class=note>Transistor level: {html.escape(sw.get('transistor', '-'))}.</p>")
    mcs = [(lvl, sw.get(k)) for lvl, k in (("L2", "monte_carlo"), ("transistor", "monte_carlo_transistor"))]
    mc_rows = [[lvl, m["draws"], m["mean"], m["std"], m["min"], m["max"]] for lvl, m in mcs if m]
    if mc_rows:
        out += _table(mc_rows, ["Monte Carlo", "draws", "mean", "std", "min", "max"])
        vals = [p[sw["metric"]] for p in sw["points"] if p["draw"] is not None and p.get("level", "L2") == "L2"]
        out += _img("mc", plots.histogram(vals, metric, f"{metric} over {len(vals)} mismatch draws"),
                    "Monte Carlo distribution")
    return out


def _corners(res: Dict) -> str:
    from kchip.netlist.transistor import SUPPORTED_LAWS, cell_table_path
    law = res.get("model", {}).get("law")
    kind = SUPPORTED_LAWS.get(law)
    if kind is None:
        return "<p class=note>No transistor cell for this law.</p>"
    rows = []
    for c in ("tt", "ss", "ff", "sf", "fs"):
        p = cell_table_path(kind, c)
        if p.exists():
            m = json.loads(p.read_text())["meta"]["summary"]
            sup = m.get("supply_current_A")
            sup = float(np.median(list(sup.values()))) if isinstance(sup, dict) else None
            bw = m.get("bandwidth_Hz", m.get("bandwidth_theta1_Hz"))
            rows.append([c, m.get("i_fs_A"), m.get("max_dev_pct_fs"), bw if isinstance(bw, float) else None, sup])
    return (f"<p>The {kind} cell at each process corner (characterization tables, 27 °C).</p>"
            + _table(rows, ["corner", "full-scale current (A)", "max law deviation (% FS)", "bandwidth (Hz)",
                            "supply per cell, median (A)"]))


def write_report(results: Dict[str, Any], root: Path, out: Path, name: str, html_page: bool = True,
                 seconds: Optional[Dict[str, float]] = None) -> Dict[str, str]:
    """report.json and (with `html_page`) report.html in `out`; returns their paths relative to `root`."""
    out = Path(out)
    write_json(out / "report.json", {"flow": name, "stages": results})
    paths = {"report": str((out / "report.json").relative_to(root))}
    if not html_page:
        return paths
    periods = list(range(len(results.get("model", {}).get("edges", [0]))))
    parts = [f"<h1>kchip report: {html.escape(name)}</h1>", "<h2>Summary</h2>", _summary(results),
             _stages(results, seconds or {}), "<h2>Accuracy: every level against L0</h2>", _accuracy(results, root),
             "<h2>Error vs bit width</h2>", _bits(results), "<h2>Waveforms</h2>", _waves(results, root, periods),
             "<h2>Corners and Monte Carlo (chip, L2)</h2>", _sweep(results),
             "<h2>Area, power, latency, energy</h2>", _estimate(results, root), "<h2>Layout</h2>",
             _layout(results, root, out), "<h2>The cell at each corner</h2>", _corners(results)]
    page = (f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>kchip report: {html.escape(name)}"
            f"</title><style>{_CSS}</style></head><body>{''.join(parts)}{_SCRIPT}</body></html>\n")
    write_text(out / "report.html", page)
    paths["html"] = str((out / "report.html").relative_to(root))
    return paths
