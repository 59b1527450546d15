"""The layout generator's dimensions, all derived from pdk/<name>/rules.yaml (integer nanometres).

Nothing here is a foundry number: every size is a rule value of rules.yaml (read through kchip.pdk) or a sum of
them, snapped up to the manufacturing grid of layers.yaml. `LayoutRules.from_pdk` asserts the relations the
generators rely on (e.g. a source/drain strip wide enough for poly.7), so that a changed rule table fails loudly.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..pdk import Pdk

__all__ = ["LayoutRules", "LayoutError"]


class LayoutError(ValueError):
    """A circuit kchip's generators cannot lay out (names the device or net)."""


def _nm(v: float) -> int:
    return int(round(v * 1000))


@dataclass(frozen=True)
class LayoutRules:
    grid: int
    licon: int; licon_sp: int; licon_diff: int; licon_gate: int; licon_tap_adj: int
    licon_poly_adj: int; npc_licon: int
    poly_end: int
    li_adj: int; li_area: int
    mcon: int; mcon_sp: int; m1_mcon: int; m1_mcon_adj: int; m1_area: int
    via: int; m1_via: int; m1_via_adj: int; m2_via: int; m2_via_adj: int
    via2: int; m2_via2: int; m2_via2_adj: int; m3_via2: int; m3_sp: int; m3_w: int; m3_area: int
    m2_sp: int
    via3: int; via3_sp: int; m3_via3_adj: int; m4_via3: int; capm_via3: int; capm_m3: int
    implant_diff: int; nwell_pdiff: int; lvtn_gate: int; nwell_lvtn: int; difftap_sp: int
    dnwell_hole: int; nwell_dnwell: int; dnwell_space: int
    slot_w: int; slot_l: int; res_psdm: int; res_npc: int; res_rpm: int; rpm_w: int; res_space: int

    # ---- sizes built from the rules ------------------------------------------------------------------
    def snap(self, v: float) -> int:
        g = self.grid
        return int(-(-int(round(v)) // g) * g)

    @property
    def sd(self) -> int:
        """Width of a source/drain strip: a licon column with its diff and gate clearances."""
        return self.snap(self.licon + 2 * max(self.licon_diff, self.licon_gate))

    @property
    def m1_strip(self) -> int:
        return self.snap(max(self.mcon + 2 * self.m1_mcon, self.via + 2 * self.m1_via))

    @property
    def riser(self) -> int:
        """Width of a met2 riser / spine (holds via1 and via2 with their met2 enclosure)."""
        return self.snap(max(self.via + 2 * self.m2_via, self.via2 + 2 * self.m2_via2))

    @property
    def track(self) -> int:
        """Width of a met3 routing track (holds via2 with its met3 enclosure)."""
        return self.snap(max(self.m3_w, self.via2 + 2 * self.m3_via2))

    @property
    def track_pitch(self) -> int:
        return self.track + self.snap(self.m3_sp)

    @property
    def spine_pitch(self) -> int:
        return self.riser + self.snap(self.m2_sp)

    @property
    def tap_w(self) -> int:
        return self.snap(self.licon + 2 * self.licon_tap_adj)

    @classmethod
    def from_pdk(cls, pdk: Pdk) -> "LayoutRules":
        v = lambda name: _nm(pdk.rule_value(name))
        r = cls(
            grid=_nm(pdk.grid_um),
            licon=v("licon.1"), licon_sp=v("licon.2"), licon_diff=max(v("licon.5a"), v("licon.5c")),
            licon_gate=v("licon.11"), licon_tap_adj=v("licon.7"),
            licon_poly_adj=v("licon.8a"), npc_licon=v("licon.15"),
            poly_end=v("poly.8"),
            li_adj=v("li.5"), li_area=int(round(pdk.rule_value("li.6") * 1e6)),
            mcon=v("ct.1"), mcon_sp=v("ct.2"), m1_mcon=v("m1.4"), m1_mcon_adj=v("m1.5"),
            m1_area=int(round(pdk.rule_value("m1.6") * 1e6)),
            via=v("via.1a"), m1_via=v("via.4a"), m1_via_adj=v("via.5a"),
            m2_via=v("m2.4"), m2_via_adj=v("m2.5"),
            via2=v("via2.1a"), m2_via2=v("via2.4"), m2_via2_adj=v("via2.5"),
            m3_via2=v("m3.4"), m3_sp=v("m3.2"), m3_w=v("m3.1"), m3_area=int(round(pdk.rule_value("m3.6") * 1e6)),
            m2_sp=v("m2.2"),
            via3=v("via3.1"), via3_sp=v("via3.2"), m3_via3_adj=v("via3.5"), m4_via3=v("m4.3"),
            capm_via3=v("capm.4"), capm_m3=v("capm.3"),
            implant_diff=max(v("nsd.5a"), v("psd.5a")), nwell_pdiff=v("difftap.8"),
            lvtn_gate=v("lvtn.4b"), nwell_lvtn=v("lvtn.10"), difftap_sp=v("difftap.3"),
            dnwell_hole=v("nwell.6"), nwell_dnwell=v("nwell.5"), dnwell_space=v("dnwell.3"),
            slot_w=v("licon.1bc"), slot_l=_nm(float(pdk.rule("licon.1bc")["value2"])),
            res_psdm=max(v("rpm.4"), v("psd.5a")), res_npc=v("rpm.5"), res_rpm=v("rpm.3"), rpm_w=v("urpm.1a"),
            res_space=max(v("poly.9"), v("rpm.7"), v("rpm.6")),
        )
        if r.sd < _nm(pdk.rule_value("poly.7")):
            raise LayoutError(f"rules.yaml: a source/drain strip of {r.sd} nm is narrower than poly.7")
        return r
