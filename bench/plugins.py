"""Loading a registry's members: built-in modules first, then plugins by entry point. Each module
registers its classes with the registry's decorator when imported."""
from __future__ import annotations

import importlib
import importlib.metadata as md


def load_modules(builtin: tuple[str, ...], entry_point_group: str, kind: str) -> None:
    for mod in builtin:
        importlib.import_module(mod)
    for ep in md.entry_points(group=entry_point_group):
        try:
            ep.load()
        except Exception as exc:  # a broken plugin must not take the built-in ones down
            import warnings

            warnings.warn(f"{kind} plugin '{ep.name}' failed to load: {exc}", stacklevel=3)


class Plugins:
    """Loads a registry's members once, on first use (importing a registry stays cheap)."""

    def __init__(self, builtin: tuple[str, ...], entry_point_group: str, kind: str):
        self.builtin, self.group, self.kind = builtin, entry_point_group, kind
        self.loaded = False

    def load(self) -> None:
        if not self.loaded:
            self.loaded = True
            load_modules(self.builtin, self.group, self.kind)
