"""Share the device model cards of a large deck between instances of the same geometry.

Why: the sky130 device subcircuits (`sky130_fd_pr__nfet_01v8`, ...) define their ~60 binned `.model` cards
*inside* the subcircuit, and one card parameter depends on the instance (`rdsw = {swx_nrds}`, with
`swx_nrds = {89.1*nf/w+443.5}`). ngspice therefore copies every card of the bin set for every instance:
about 1.5 MB per transistor (measured: 2,000 nfets take 3.0 GB), so a 600-cell chip (~60,000 transistors)
cannot be loaded on a 24 GB machine.

What: `share_models(text, library_text)` finds the instances of such device subcircuits whose geometry is
written as numbers, groups them by the values of the instance parameters the cards depend on (w and nf
here), and gives each group a copy of the device subcircuit whose cards live at the top level of the deck
with those parameters evaluated. Only the bins whose [lmin, lmax) x [wmin, wmax) can hold one of the
group's geometries are copied; ngspice still chooses the bin itself (a wrongly pruned set makes ngspice stop
with "could not find a valid modelname", never a silent change). Everything else in the subcircuit (its
`.param` lines, `delvto` with the per-instance mismatch term) stays per instance, so the circuit is the same.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_BRACE = re.compile(r"\{([^{}]*)\}")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SAFE = {"sqrt": math.sqrt, "max": max, "min": min, "abs": abs, "log": math.log, "exp": math.exp}


class FlattenError(ValueError):
    pass


@dataclass
class _Card:
    name: str                 # e.g. nshort_model.12
    lines: List[str]          # the card, continuation lines included
    box: Tuple[float, float, float, float]   # lmin, lmax, wmin, wmax [m] (inf when absent)


@dataclass
class DeviceSubckt:
    name: str
    header: List[str]                           # .subckt line and its continuations
    params: Dict[str, str]                      # subckt parameter -> default/expression text (in order)
    body: List[str]                             # every line that is not a .model card, nor header/.ends
    cards: Dict[str, List[_Card]] = field(default_factory=dict)   # bin-set base name -> its cards
    dependent: Dict[str, List[str]] = field(default_factory=dict)  # param used in cards -> instance params


def _logical(lines: Sequence[str]) -> List[List[str]]:
    """Group physical lines into logical SPICE lines (a line plus its '+' continuations)."""
    out: List[List[str]] = []
    for ln in lines:
        if ln.startswith("+") and out:
            out[-1].append(ln)
        else:
            out.append([ln])
    return out


def _param_pairs(text: str) -> List[Tuple[str, str]]:
    """name = value pairs of a .param / .subckt parameter text; values may be {expr} or plain tokens."""
    text = re.sub(r";.*", "", text)
    pairs = re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(\{[^{}]*\}|[^\s]+)", text)
    return [(k.lower(), v) for k, v in pairs]


def parse_device_subckts(library_text: str, names: Sequence[str]) -> Dict[str, DeviceSubckt]:
    """The device subcircuits `names` of a model file whose cards depend on instance parameters."""
    lines = library_text.splitlines()
    out: Dict[str, DeviceSubckt] = {}
    i = 0
    while i < len(lines):
        toks = lines[i].split()
        if len(toks) >= 2 and toks[0].lower() == ".subckt" and toks[1] in names:
            j = i + 1
            while j < len(lines) and not (lines[j].split()[:1] and lines[j].split()[0].lower() == ".ends"):
                j += 1
            sub = _parse_one(toks[1], lines[i:j])
            if sub is not None:
                out[sub.name] = sub
            i = j
        i += 1
    return out


def _parse_one(name: str, lines: List[str]) -> Optional[DeviceSubckt]:
    groups = _logical([ln for ln in lines if not ln.lstrip().startswith("*")])
    header, rest = groups[0], groups[1:]
    sub = DeviceSubckt(name=name, header=header, params={}, body=[])
    sub.params.update(_param_pairs(" ".join(s.lstrip("+") for s in header)))
    for g in rest:
        first = g[0].split()
        if first and first[0].lower() == ".param":
            sub.params.update(_param_pairs(" ".join(s.lstrip("+") for s in g)[len(".param"):]))
            sub.body += g
        elif first and first[0].lower() == ".model":
            base, _, _ = first[1].partition(".")
            sub.cards.setdefault(base, []).append(_Card(first[1], g, _box(g)))
        else:
            sub.body += g
    used = set()
    for cards in sub.cards.values():
        for c in cards:
            for expr in _BRACE.findall("\n".join(c.lines)):
                used.update(x.lower() for x in _IDENT.findall(expr))
    local = {k for k in used if k in sub.params}
    if not local:
        return None          # cards already instance-independent: ngspice shares them as they are
    for k in sorted(local):
        sub.dependent[k] = sorted(_closure(k, sub.params))
    return sub


def _closure(name: str, params: Dict[str, str], seen=None) -> set:
    """The subckt parameters `name` depends on that have no expression of their own (instance inputs)."""
    seen = seen if seen is not None else set()
    val = params.get(name, "")
    idents = {x.lower() for x in _IDENT.findall(val[1:-1])} if val.startswith("{") else set()
    deps = {x for x in idents if x in params and x not in seen}
    if not deps:
        return {name} if not val.startswith("{") else set()
    out = set()
    for d in deps:
        seen.add(d)
        out |= _closure(d, params, seen)
    return out


def _box(card: List[str]) -> Tuple[float, float, float, float]:
    text = " ".join(s.lstrip("+") for s in card).lower()

    def get(k, default):
        m = re.search(rf"\b{k}\s*=\s*({_NUM})", text)
        return float(m.group(1)) if m else default
    return get("lmin", 0.0), get("lmax", math.inf), get("wmin", 0.0), get("wmax", math.inf)


def _num(v: str) -> Optional[float]:
    try:
        return float(v)
    except ValueError:
        return None


def _evaluate(name: str, params: Dict[str, str], inst: Dict[str, float], where: str) -> float:
    """Numeric value of subckt parameter `name` for an instance (its own values over the defaults)."""
    if name in inst:
        return inst[name]
    val = params[name]
    if not val.startswith("{"):
        x = _num(val)
        if x is None:
            raise FlattenError(f"{where}: parameter {name}={val!r} is not a number")
        return x
    expr = val[1:-1]
    env = {k: _evaluate(k, params, inst, where) for k in {i.lower() for i in _IDENT.findall(expr)}
           if k in params}
    try:
        return float(eval(expr.replace("^", "**"), {"__builtins__": {}}, {**_SAFE, **env}))
    except Exception as exc:   # an identifier that is not a local parameter, or bad syntax
        raise FlattenError(f"{where}: cannot evaluate {name} = {val}: {exc}") from None


def _instance(line: str, devices: Dict[str, DeviceSubckt]):
    """(token index of the device name, its DeviceSubckt, numeric instance parameters); (k, None, None) for
    an instance whose geometry is not numeric; None for any other line."""
    toks = line.split()
    if not toks or toks[0][0].lower() != "x":
        return None
    for k, t in enumerate(toks[1:], 1):
        if t in devices:
            pairs = _param_pairs(" ".join(toks[k + 1:]))
            nums = {n: _num(v) for n, v in pairs}
            if any(v is None for v in nums.values()):
                return k, None, None   # geometry written as an expression: leave the instance alone
            return k, devices[t], nums
        if "=" in t:
            return None
    return None


def share_models(deck: str, library_text: str, devices: Sequence[str], scale: float = 1e-6
                 ) -> Tuple[str, Dict]:
    """(deck text with shared model cards, stats). `devices`: the device subcircuit names to treat;
    `scale`: metres per unit of the instance geometry (the sky130 library's `.option scale=1e-6`)."""
    subs = parse_device_subckts(library_text, devices)
    lines = deck.splitlines()
    groups: Dict[Tuple, Dict] = {}
    rewritten = left = 0
    for i, ln in enumerate(lines):
        hit = _instance(ln, subs) if not ln.startswith("+") else None
        if hit is None:
            continue
        k, sub, inst = hit
        if sub is None:
            left += 1
            continue
        inputs = sorted({p for deps in sub.dependent.values() for p in deps})
        where = f"instance {ln.split()[0]} of {sub.name}"
        key = (sub.name,) + tuple((p, _evaluate(p, sub.params, inst, where)) for p in inputs)
        g = groups.setdefault(key, {"name": f"{sub.name}__k{len(groups)}", "sub": sub, "geoms": set(),
                                    "values": {d: _evaluate(d, sub.params, inst, where) for d in sub.dependent}})
        g["geoms"].add(tuple(_evaluate(p, sub.params, inst, where) for p in ("l", "w", "nf")))
        toks = ln.split()
        toks[k] = g["name"]
        lines[i] = " ".join(toks)
        rewritten += 1
    block, n_cards = [], 0
    for key, g in groups.items():
        text, n = _group_text(g, scale)
        block += text
        n_cards += n
    stats = {"instances": rewritten, "groups": len(groups), "cards": n_cards, "left": left}
    return "\n".join(lines) + ("\n" if deck.endswith("\n") else ""), {"block": "\n".join(block), **stats}


def _fits(box, geoms, scale: float) -> bool:
    lmin, lmax, wmin, wmax = box
    tol = 1e-9
    for l, w, nf in geoms:
        L = l * scale
        for W in {w * scale, w * scale / max(nf, 1.0)}:
            if lmin * (1 - tol) <= L <= lmax * (1 + tol) and wmin * (1 - tol) <= W <= wmax * (1 + tol):
                return True
    return False


def _group_text(g: Dict, scale: float) -> Tuple[List[str], int]:
    sub: DeviceSubckt = g["sub"]
    tag = g["name"].rsplit("__", 1)[1]
    renamed = {base: f"{base}__{tag}" for base in sub.cards}
    out = [f"* shared model cards of {g['name']}: "
           + ", ".join(f"{k}={v:.6g}" for k, v in g["values"].items())]
    n = 0
    for base, cards in sub.cards.items():
        keep = [c for c in cards if _fits(c.box, g["geoms"], scale)]
        if not keep:
            raise FlattenError(f"{sub.name}: no bin of {base} holds geometry {sorted(g['geoms'])}")
        for c in keep:
            text = "\n".join(c.lines)
            text = _BRACE.sub(lambda m: _subst(m.group(1), g["values"]), text)
            text = text.replace(f".model {c.name}", f".model {renamed[base]}.{c.name.split('.', 1)[1]}", 1)
            out.append(text)
            n += 1
    head = list(sub.header)
    head[0] = head[0].replace(sub.name, g["name"], 1)
    out += head
    for ln in sub.body:
        toks = ln.split()
        if toks and toks[0][0].lower() == "m":
            toks = [renamed.get(t, t) for t in toks]
            ln = " ".join(toks)
        out.append(ln)
    out.append(f".ends {g['name']}")
    return out, n


def _subst(expr: str, values: Dict[str, float]) -> str:
    idents = {x.lower() for x in _IDENT.findall(expr)}
    if not idents & set(values):
        return "{" + expr + "}"
    if idents <= set(values):
        env = {k: values[k] for k in idents}
        return repr(float(eval(expr, {"__builtins__": {}}, {**_SAFE, **env})))
    return "{" + _IDENT.sub(lambda m: repr(values[m.group(0).lower()]) if m.group(0).lower() in values
                            else m.group(0), expr) + "}"
