"""Anonymisation methods by name. In-tree methods and third-party ones share one mechanism: Python
entry points in the group ``kpdp_bench.methods`` (name = registry name, value =
``module:Class`` of a :class:`kpdp.method.Anonymizer`). A user benchmarks their own anonymiser by
installing a package that declares one; nothing in this repository changes. Entry points are read
once and classes are imported only when a method is used."""
from __future__ import annotations

import functools
import importlib
from importlib.metadata import entry_points

GROUP = "kpdp_bench.methods"

# Used when the project runs from a source tree that was not pip-installed (no entry points).
BUILTIN = {
    "original": "baselines.original:Original",
    "blur": "baselines.blur:GaussianBlur",
    "blur-strong": "baselines.blur:GaussianBlurStrong",
    "pixelate-8": "baselines.pixelate:Pixelate8",
    "pixelate-16": "baselines.pixelate:Pixelate16",
    "mask": "baselines.mask:MaskConstant",
    "mask-noise": "baselines.mask:MaskNoise",
    "dppix": "baselines.dppix:DPPix",
    "kpdp": "kpdp.anonymizer:KPDPAnonymizer",
    "deepprivacy": "baselines.deepprivacy:DeepPrivacyStyle",
}


class UnknownMethod(KeyError):
    def __str__(self):
        return self.args[0]


@functools.lru_cache(maxsize=1)
def _targets() -> dict[str, str]:
    found = dict(BUILTIN)
    for ep in entry_points(group=GROUP):
        found[ep.name] = ep.value
    return found


def available() -> list[str]:
    return sorted(_targets())


def method_class(name: str):
    targets = _targets()
    if name not in targets:
        raise UnknownMethod(f"unknown method '{name}'; available: {', '.join(available())}")
    module, _, attr = targets[name].partition(":")
    cls = getattr(importlib.import_module(module), attr)
    return cls


def uses_eps(name: str) -> bool:
    return bool(getattr(method_class(name), "uses_eps", False))


def create(name: str, eps: float | None = None, device: str = "cpu", **params):
    cls = method_class(name)
    if getattr(cls, "uses_eps", False):
        return cls(eps=eps, device=device, **params)
    return cls(device=device, **params)


def refresh() -> None:
    """Forget the entry points read so far (after installing a plugin in the same process)."""
    _targets.cache_clear()
