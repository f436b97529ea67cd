"""Anonymisation methods by name. In-tree methods and third-party ones share one mechanism: Python
entry points in the group ``kpdp_bench.methods`` (name = registry name, value =
``module:Class`` of a :class:`kpdp.method.Anonymizer`). A user benchmarks their own anonymiser by
installing a package that declares one; nothing in this repository changes. Entry points are read
once and classes are imported only when a method is used.

A *method spec* names a method and, optionally, parameters of its ``__init__``:
``name`` or ``name[key=value,...]`` (``kpdp[postprocess=mean]``). :func:`canonical` sorts the keys,
so one variant is one cell of the result store however it was typed."""
from __future__ import annotations

import functools
import inspect
import math
import re
import tomllib
from pathlib import Path

from kpdp.method import Anonymizer
from kpdp.registry import Registry, UnknownName

GROUP = "kpdp_bench.methods"

# The methods are declared once, as entry points in pyproject.toml. A source tree that was not
# pip-installed has no entry points: then the same table is read from its pyproject.toml.
PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def declared_in_pyproject(path: Path = PYPROJECT) -> dict[str, str]:
    """{name: "module:Class"} of the methods ``pyproject.toml`` declares ({} without one)."""
    if not path.is_file():
        return {}
    with open(path, "rb") as f:
        return dict(tomllib.load(f).get("project", {}).get("entry-points", {}).get(GROUP, {}))


class UnknownMethod(UnknownName):
    """A method name no entry point declares; the message lists the known ones."""


@functools.lru_cache(maxsize=1)
def registry() -> Registry:
    """The methods, lazily: each is ``module:Class`` until a run asks for it."""
    methods = Registry("method", entry_point_group=GROUP)
    if not methods.names():
        for name, target in declared_in_pyproject().items():
            methods.add(name, target)
    return methods


def available() -> list[str]:
    return sorted(registry().names())


_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*$")
NOT_SETTABLE = ("eps", "device")  # set by the grid (--eps, --device), never by a spec


def split_specs(text: str) -> list[str]:
    """Comma-separated specs; commas inside brackets belong to a spec.

    Example:
        >>> split_specs("kpdp, kpdp[a=1,b=2],blur")
        ['kpdp', 'kpdp[a=1,b=2]', 'blur']
    """
    out, depth, start = [], 0, 0
    for i, ch in enumerate(text + ","):
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth < 0:
                raise ValueError(f"unbalanced ']' in methods '{text}'")
        elif ch == "," and depth == 0:
            out.append(text[start:i].strip())
            start = i + 1
    if depth:
        raise ValueError(f"unbalanced '[' in methods '{text}'")
    return [t for t in out if t]


def parse_value(text: str):
    """int, else float (``inf`` too), else true/false, else the string itself."""
    for kind in (int, float):
        try:
            v = kind(text)
        except ValueError:
            continue
        if isinstance(v, float) and math.isnan(v):
            raise ValueError("nan is not a parameter value")
        return v
    return {"true": True, "false": False}.get(text.lower(), text)


def parse_spec(spec: str) -> tuple[str, dict]:
    """``name[key=value,...]`` -> (name, {key: value}).

    Example:
        >>> parse_spec("kpdp[postprocess=mean, scale=0.5, n=3, fast=true]")
        ('kpdp', {'postprocess': 'mean', 'scale': 0.5, 'n': 3, 'fast': True})
    """
    text = spec.strip()
    name, bracket, rest = text.partition("[")
    name = name.strip()
    if "]" in name:
        raise ValueError(f"method spec '{spec}': unbalanced ']'")
    if not name:
        raise ValueError(f"method spec '{spec}': no method name")
    if not bracket:
        return name, {}
    if "]" in rest and not rest.endswith("]"):
        raise ValueError(f"method spec '{spec}': text after ']'")
    if not rest.endswith("]") or "[" in rest or "]" in rest[:-1]:
        raise ValueError(f"method spec '{spec}': unbalanced brackets (write name[key=value,key=value])")
    if not rest[:-1].strip():
        raise ValueError(f"method spec '{spec}': empty brackets (write name, or name[key=value])")
    params = {}
    for item in rest[:-1].split(","):
        key, eq, value = (t.strip() for t in item.partition("="))
        if not eq:
            raise ValueError(f"method spec '{spec}': '{item.strip()}' is not key=value")
        if not key:
            raise ValueError(f"method spec '{spec}': a parameter without a name ('{item.strip()}')")
        if not _KEY.match(key):
            raise ValueError(f"method spec '{spec}': '{key}' is not a parameter name")
        if key in params:
            raise ValueError(f"method spec '{spec}': '{key}' is given twice")
        if not value:
            raise ValueError(f"method spec '{spec}': '{key}' has no value")
        try:
            params[key] = parse_value(value)
        except ValueError as exc:
            raise ValueError(f"method spec '{spec}': {key}: {exc}") from None
    return name, params


def _format_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return repr(float(v)) if isinstance(v, float) and not math.isinf(v) else str(v)


def format_spec(name: str, params: dict | None = None) -> str:
    """The canonical spec: keys sorted, values as :func:`parse_spec` reads them back.

    Example:
        >>> format_spec("kpdp", {"residual": "full", "postprocess": "mean"})
        'kpdp[postprocess=mean,residual=full]'
    """
    if not params:
        return name
    spec = f"{name}[{','.join(f'{k}={_format_value(params[k])}' for k in sorted(params))}]"
    if parse_spec(spec) != (name, params):  # e.g. a string value "1" or one holding a comma
        raise ValueError(f"parameters {params!r} of '{name}' cannot be written as a method spec")
    return spec


def canonical(spec: str) -> str:
    return format_spec(*parse_spec(spec))


def base_name(spec: str) -> str:
    return parse_spec(spec)[0]


def settable_params(cls) -> list[str]:
    """Parameters a spec may set: the named ones of ``__init__`` along the MRO, following ``**kw``
    up to :class:`kpdp.method.Anonymizer`, less ``eps``, ``device`` and a preset's ``fixed_params``
    (``pixelate-8`` passes ``blocks=8`` to its parent and takes no other value)."""

    names = []
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        sig = inspect.signature(init)
        names += [p.name for p in list(sig.parameters.values())[1:]
                  if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        if klass is Anonymizer or not any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
            break
    return sorted(set(names) - set(NOT_SETTABLE) - set(getattr(cls, "fixed_params", ())))


def check_spec(spec: str) -> str:
    """The canonical spec; :class:`UnknownMethod` or ValueError (naming the valid parameters)."""
    name, params = parse_spec(spec)
    cls = method_class(name)
    valid = settable_params(cls)
    bad = [k for k in params if k not in valid]
    if bad:
        fixed = [k for k in bad if k in getattr(cls, "fixed_params", ())]
        hint = f" ({', '.join(fixed)} fixed by this preset)" if fixed else ""
        raise ValueError(f"method '{name}' has no parameter {', '.join(repr(k) for k in bad)}{hint}; "
                         f"its parameters: {', '.join(valid) or '(none)'}")
    return format_spec(name, params)


def method_class(spec: str):
    try:
        return registry().get(base_name(spec))
    except UnknownName as exc:
        raise UnknownMethod(*exc.args) from None


def uses_eps(spec: str) -> bool:
    return bool(getattr(method_class(spec), "uses_eps", False))


def create(spec: str, eps: float | None = None, device: str = "cpu", **params):
    """An instance of the method ``spec`` names, with the spec's parameters and ``params``."""
    check_spec(spec)
    cls = method_class(spec)
    given = parse_spec(spec)[1]
    both = sorted(set(given) & set(params))
    if both:
        raise ValueError(f"method spec '{spec}' and the call both set {', '.join(both)}")
    grid = {"eps": eps, "device": device} if getattr(cls, "uses_eps", False) else {"device": device}
    try:
        return cls(**grid, **given, **params)
    except TypeError as exc:
        if not given:
            raise
        # a subclass that fixes a parent's parameter (pixelate-8 passes blocks=8) takes no other value
        raise ValueError(f"method spec '{spec}': {exc}") from exc


def refresh() -> None:
    """Forget the entry points read so far (after installing a plugin in the same process)."""
    registry.cache_clear()
