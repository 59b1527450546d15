"""Flow stages `layout`, `drc` and `lvs` (plugged into kchip.flow.STAGES).

layout: the netlist stage's transistor deck (netlist.level: transistor, netlist.control: ideal) laid out by
        kchip.layout.chip -> chip.gds, chip.lyp, chip.layout.json.
drc:    kchip drc on that GDS -> drc.json (+ drc.lyrdb); the result says clean or lists the failing rules.
lvs:    kchip lvs of that GDS against the very deck the simulate stage runs -> lvs.json (+ lvs.lvsdb).
A dirty DRC or an LVS mismatch does not stop the flow; it is in the stage result and the report.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

from ..fsio import write_json


def _need(ctx, stage: str, key: str):
    res = ctx.results.get(stage)
    if not res or key not in res:
        raise ValueError(f"flow.yaml: stages: '{stage}' must run before this stage (it gives {key!r})")
    return res[key]


def stage_layout(cfg: Dict[str, Any], ctx, out: Path) -> Dict[str, Any]:
    from ..pdk import load_pdk
    from .chip import layout_deck
    from .gds import write_gds, write_lyp
    deck = ctx.root / _need(ctx, "netlist", "netlist")
    if ctx.results["netlist"].get("level") != "transistor":
        raise ValueError("flow.yaml: netlist.level: the layout stage needs 'transistor' (the ideal level has no "
                         "devices to lay out)")
    from ..flow import _log
    pdk = load_pdk()
    _log(f"layout: placing and routing the cells of {deck.name} ...")
    chip = layout_deck(deck.read_text(), pdk, aspect=cfg["aspect"])
    _log(f"layout: {chip.stats['instances']} instances placed; writing the GDS ...")
    gds = write_gds(chip.top.comp, out / "chip.gds")
    write_lyp(pdk, out / "chip.lyp")
    summary = dict(top=chip.name, **chip.stats, instances_per_cell=chip.counts)
    write_json(out / "chip.layout.json", summary, indent=1)
    return {"gds": str(gds.relative_to(ctx.root)), "deck": str(deck.relative_to(ctx.root)), "top": chip.name,
            "area_mm2": chip.stats["area_mm2"], "instances": chip.stats["instances"],
            "floating_pins": chip.stats["floating_pins"]}


def stage_drc(cfg: Dict[str, Any], ctx, out: Path) -> Dict[str, Any]:
    from ..pdk import load_pdk
    from ..verify.drc import run_drc
    gds = ctx.root / _need(ctx, "layout", "gds")
    from ..flow import _log
    rep = run_drc(gds, load_pdk(), lyrdb=out / "drc.lyrdb", json_out=out / "drc.json", log=_log)
    return {"clean": rep.clean, "violations": rep.violations, "rules": len(rep.results),
            "failing": {r.name: r.count for r in rep.failing()}, "report": str((out / "drc.json").relative_to(ctx.root)),
            "seconds": round(rep.seconds, 2)}


def stage_lvs(cfg: Dict[str, Any], ctx, out: Path) -> Dict[str, Any]:
    from ..pdk import load_pdk
    from ..verify.lvs import run_lvs
    gds = ctx.root / _need(ctx, "layout", "gds")
    deck = ctx.root / _need(ctx, "layout", "deck")
    from ..flow import _log
    _log(f"lvs: extracting {gds.name} and comparing it with {deck.name} ...")
    rep = run_lvs(gds, deck, load_pdk(), lvsdb=out / "lvs.lvsdb", json_out=out / "lvs.json")
    return {"match": rep.match, "mismatches": rep.mismatches[:20], "ideal_elements": len(rep.ideal_elements),
            "report": str((out / "lvs.json").relative_to(ctx.root)), "seconds": round(rep.seconds, 2)}
