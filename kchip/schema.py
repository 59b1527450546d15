"""A small declarative schema for configuration files (flow.yaml): each field knows its type, range, allowed
values and default; `Map.check` returns the section with defaults filled in, or raises `UsageError` naming the
file, the key path, the value and what is allowed (``flow.yaml: quantize.bits_gm: 40: an integer in [1, 16]``).

`load_yaml` reads a YAML file the same way: a syntax error names line and column, a key given twice is refused
(PyYAML would keep the last silently)."""
from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence

import yaml

from .errors import NO_VALUE, UsageError

REQUIRED = object()    # a field without a default: it must be given
OMIT = object()        # a field whose absence means something: no default is filled in
FILL = object()        # a mapping field that, when absent, is checked as empty (its own defaults filled in)


@dataclass
class Where:
    """What an error names: the file, and the folder relative paths in it resolve from."""
    file: str
    base: Path = Path(".")

    def error(self, path: str, value: Any, allowed: str) -> UsageError:
        return UsageError(self.file, path, value, allowed)


class Field:
    def __init__(self, default: Any = OMIT, doc: str = ""):
        self.default, self.doc = default, doc

    def allowed(self) -> str:
        raise NotImplementedError

    def check(self, value: Any, path: str, where: Where) -> Any:
        raise NotImplementedError


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


class Int(Field):
    def __init__(self, lo: Optional[int] = None, hi: Optional[int] = None, **kw):
        super().__init__(**kw)
        self.lo, self.hi = lo, hi

    def allowed(self) -> str:
        if self.lo is not None and self.hi is not None:
            return f"an integer in [{self.lo}, {self.hi}]"
        if self.lo is not None:
            return f"an integer >= {self.lo}"
        return "an integer" if self.hi is None else f"an integer <= {self.hi}"

    def check(self, value, path, where):
        if not _is_int(value) or (self.lo is not None and value < self.lo) or (self.hi is not None and value > self.hi):
            raise where.error(path, value, self.allowed())
        return value


class Float(Field):
    """A finite number; `lo` / `hi` bounds, exclusive where `lo_open` / `hi_open`."""
    def __init__(self, lo: Optional[float] = None, hi: Optional[float] = None, lo_open: bool = False,
                 hi_open: bool = False, unit: str = "", **kw):
        super().__init__(**kw)
        self.lo, self.hi, self.lo_open, self.hi_open, self.unit = lo, hi, lo_open, hi_open, unit

    def allowed(self) -> str:
        parts = []
        if self.lo is not None:
            parts.append(f"{'>' if self.lo_open else '>='} {self.lo:g}")
        if self.hi is not None:
            parts.append(f"{'<' if self.hi_open else '<='} {self.hi:g}")
        unit = f" [{self.unit}]" if self.unit else ""
        return "a finite number" + (" " + " and ".join(parts) if parts else "") + unit

    def check(self, value, path, where):
        ok = _is_num(value) and math.isfinite(value)
        if ok and self.lo is not None:
            ok = value > self.lo if self.lo_open else value >= self.lo
        if ok and self.hi is not None:
            ok = value < self.hi if self.hi_open else value <= self.hi
        if not ok:
            raise where.error(path, value, self.allowed())
        return float(value)


class Bool(Field):
    def allowed(self) -> str:
        return "true or false"

    def check(self, value, path, where):
        if not isinstance(value, bool):
            raise where.error(path, value, self.allowed())
        return value


class Choice(Field):
    def __init__(self, options: Sequence[Any], **kw):
        super().__init__(**kw)
        self.options = list(options)

    def allowed(self) -> str:
        return "one of " + ", ".join(repr(o) for o in self.options)

    def check(self, value, path, where):
        if not any(value == o and type(value) is type(o) for o in self.options):
            hint = _close(value, self.options)
            raise where.error(path, value, self.allowed() + hint)
        return value


class Str(Field):
    def __init__(self, pattern: Optional[str] = None, what: str = "a non-empty string", **kw):
        super().__init__(**kw)
        self.pattern, self.what = pattern, what

    def allowed(self) -> str:
        return self.what

    def check(self, value, path, where):
        if not isinstance(value, str) or not value or (self.pattern and not re.fullmatch(self.pattern, value)):
            raise where.error(path, value, self.allowed())
        return value


class File(Field):
    """A path to an existing file, relative to the configuration file's folder; kept as written."""
    def allowed(self) -> str:
        return "the path of an existing file (relative paths start at the flow file's folder)"

    def check(self, value, path, where):
        if not isinstance(value, str) or not value:
            raise where.error(path, value, self.allowed())
        p = Path(value)
        p = p if p.is_absolute() else where.base / p
        if not p.exists():
            raise where.error(path, value, f"file not found ({p})")
        if not p.is_file():
            raise where.error(path, value, "not a file (a folder?)")
        return value


class Nullable(Field):
    """`None` (YAML `null` or nothing) or the inner field."""
    def __init__(self, inner: Field, **kw):
        super().__init__(**kw)
        self.inner = inner

    def allowed(self) -> str:
        return self.inner.allowed() + ", or null"

    def check(self, value, path, where):
        return None if value is None else self.inner.check(value, path, where)


class AnyValue(Field):
    """Passed through unchecked here (checked where it is used, e.g. a topology generator's arguments)."""
    def __init__(self, what: str = "any value", **kw):
        super().__init__(**kw)
        self.what = what

    def allowed(self) -> str:
        return self.what

    def check(self, value, path, where):
        return value


class List(Field):
    def __init__(self, item: Field, min_len: int = 0, max_len: Optional[int] = None, unique: bool = False, **kw):
        super().__init__(**kw)
        self.item, self.min_len, self.max_len, self.unique = item, min_len, max_len, unique

    def allowed(self) -> str:
        n = f"at least {self.min_len} " if self.min_len else ""
        return f"a list of {n}items, each {self.item.allowed()}" + (", no item twice" if self.unique else "")

    def check(self, value, path, where):
        if not isinstance(value, list):
            raise where.error(path, value, self.allowed())
        if len(value) < self.min_len or (self.max_len is not None and len(value) > self.max_len):
            size = f"at least {self.min_len}" + (f" and at most {self.max_len}" if self.max_len is not None else "")
            raise where.error(path, value, f"a list of {size} items (got {len(value)})")
        out = [self.item.check(v, f"{path}[{i}]", where) for i, v in enumerate(value)]
        if self.unique:
            for i, v in enumerate(out):
                if v in out[:i]:
                    raise where.error(f"{path}[{i}]", v, f"listed twice (first at {path}[{out.index(v)}])")
        return out


class Map(Field):
    """A mapping with known keys. `fields`: key -> Field; a field's default is filled in when the key is
    absent (REQUIRED: the key must be given; OMIT: left absent). `null` reads as an empty mapping when
    `nullable`. `extra`: a Field for keys not in `fields` (None: unknown keys are refused)."""
    def __init__(self, fields: Mapping[str, Field], nullable: bool = True, extra: Optional[Field] = None,
                 key_what: str = "", **kw):
        super().__init__(**kw)
        self.fields, self.nullable, self.extra, self.key_what = dict(fields), nullable, extra, key_what

    def allowed(self) -> str:
        return "a mapping" + (f" with keys {', '.join(self.fields)}" if self.fields else "")

    def check(self, value, path, where):
        if value is None and self.nullable:
            value = {}
        if not isinstance(value, dict):
            raise where.error(path, value, self.allowed())
        out: Dict[str, Any] = {}
        for k, v in value.items():
            kp = f"{path}.{k}" if path else str(k)
            if not isinstance(k, str):
                raise where.error(kp, NO_VALUE, f"a key must be a name (a string), got {k!r}")
            if k in self.fields:
                out[k] = self.fields[k].check(v, kp, where)
            elif self.extra is not None:
                out[k] = self.extra.check(v, kp, where)
            else:
                known = ", ".join(self.fields) or "none"
                raise where.error(kp, NO_VALUE, f"unknown key{self.key_what}; allowed: {known}{_close(k, self.fields)}")
        for k, f in self.fields.items():
            if k in out:
                continue
            if f.default is REQUIRED:
                raise where.error(f"{path}.{k}" if path else k, NO_VALUE, f"missing required key ({f.allowed()})")
            if f.default is FILL:
                out[k] = f.check(None, f"{path}.{k}" if path else k, where)
            elif f.default is not OMIT:
                out[k] = f.default
        return out


class Switch(Field):
    """A mapping whose allowed keys depend on one key's value (`model.source`: train | official | kchip | spec).
    `variants`: value -> Map of the other keys."""
    def __init__(self, key: str, variants: Mapping[str, Map], key_default: Any = REQUIRED, **kw):
        super().__init__(**kw)
        self.key, self.variants, self.key_default = key, dict(variants), key_default

    def allowed(self) -> str:
        return f"a mapping with {self.key}: " + " | ".join(self.variants)

    def check(self, value, path, where):
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise where.error(path, value, self.allowed())
        kp = f"{path}.{self.key}" if path else self.key
        if self.key not in value and self.key_default is REQUIRED:
            raise where.error(kp, NO_VALUE, f"missing required key (one of {', '.join(self.variants)})")
        sel = value.get(self.key, self.key_default)
        sel = Choice(list(self.variants)).check(sel, kp, where)
        m = self.variants[sel]
        rest = {k: v for k, v in value.items() if k != self.key}
        inner = Map(m.fields, extra=m.extra, key_what=f" for {self.key} {sel!r}").check(rest, path, where)
        return {self.key: sel, **inner}


def _close(value, options) -> str:
    if not isinstance(value, str):
        return ""
    hits = difflib.get_close_matches(value, [str(o) for o in options], n=1)
    return f" (did you mean {hits[0]!r}?)" if hits else ""


# ---- YAML ------------------------------------------------------------------------------------------------------
class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping."""


def _mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False):
    loader.flatten_mapping(node)
    seen: Dict[Any, Any] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(None, None, f"a key must be a name, got {key!r}",
                                                    key_node.start_mark) from None
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} is given twice (first on line {seen[key].line + 1})", key_node.start_mark)
        seen[key] = key_node.start_mark
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def load_yaml(path: Path) -> Any:
    """Parse a YAML file; errors name the file, and the line and column of a syntax error or repeated key."""
    path = Path(path)
    if not path.exists():
        raise UsageError(path, None, NO_VALUE, "file not found")
    if not path.is_file():
        raise UsageError(path, None, NO_VALUE, "not a file (a folder?)")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(path, None, NO_VALUE, f"not a UTF-8 text file (byte {exc.start})") from None
    try:
        return yaml.load(text, Loader=_StrictLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "?"
        what = " ".join(str(exc.problem or exc.context or "").split())
        raise UsageError(path, at, NO_VALUE, f"YAML syntax error: {what}") from None
    except yaml.YAMLError as exc:
        raise UsageError(path, None, NO_VALUE, "YAML error: " + " ".join(str(exc).split())) from None
