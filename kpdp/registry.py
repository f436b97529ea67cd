"""The project's one registry class, behind every extension point: anonymisation methods, attackers,
metric groups (``bench``), face backends and data sets (``kpdp``).

An entry joins in one of three ways, as in lm-evaluation-harness: a decorator on its class or
factory (``@REG.register`` takes the name from ``.name``; ``@REG.register("name")`` gives it), a
*built-in module* that the registry imports on first use (so importing a registry stays cheap),
or a *plugin*: an installed package's entry point in the registry's group. A lazy entry is a
``"module:attribute"`` string, imported only when that name is asked for. An unknown name is
answered with the list of known ones.

>>> shapes = Registry("shape")
>>> @shapes.register("square")
... def square(side):
...     return side * side
>>> shapes.get("square")(3)
9
>>> shapes.add("root", "math:sqrt")  # lazy: math is imported on first get
>>> shapes.names(), shapes.get("root")(16.0)
(['square', 'root'], 4.0)
>>> shapes.get("circle")
Traceback (most recent call last):
...
kpdp.registry.UnknownName: unknown shape 'circle'; valid: square, root
"""
from __future__ import annotations

import importlib
import importlib.metadata as md
import warnings
from typing import Callable


class UnknownName(KeyError):
    """A name no entry has; the message lists the known ones."""

    def __str__(self):
        return self.args[0]


class Registry:
    """Name -> entry (a class, a factory, or a lazy ``"module:attribute"`` string).

    ``builtin_modules``: imported, in order, before the first lookup; their decorators register
    the built-in entries, and :meth:`names` lists those first in this order. ``entry_point_group``:
    each installed entry point either registers by being imported (its value is a module whose
    decorators run) or *is* the entry (its value is ``module:attribute``; kept lazy).
    ``check``: called with (name, entry) on registration, raises on an invalid one.
    """

    def __init__(self, kind: str, builtin_modules: tuple[str, ...] = (), entry_point_group: str | None = None,
                 check: Callable | None = None):
        self.kind, self.builtin_modules, self.group, self.check = kind, tuple(builtin_modules), entry_point_group, check
        self._entries: dict[str, object] = {}
        self._loaded = False

    def register(self, name_or_entry=None):
        """Decorator: ``@reg.register`` (the entry's ``.name``) or ``@reg.register("name")``."""
        if isinstance(name_or_entry, str) or name_or_entry is None:
            def deco(entry):
                self.add(name_or_entry or entry.name, entry)
                return entry
            return deco
        self.add(name_or_entry.name, name_or_entry)
        return name_or_entry

    def add(self, name: str, entry) -> None:
        if not name:
            raise ValueError(f"a {self.kind} needs a name: {entry!r}")
        if self.check is not None and not isinstance(entry, str):
            self.check(name, entry)
        self._entries[name] = entry

    def remove(self, name: str) -> None:
        """Forget an entry (a test's temporary one)."""
        self._entries.pop(name, None)

    def registered(self) -> dict[str, object]:
        """What has registered so far, without importing anything (a ``check`` may read it)."""
        return dict(self._entries)

    def load(self) -> None:
        """Import the built-in modules and the plugins, once."""
        if self._loaded:
            return
        self._loaded = True
        for mod in self.builtin_modules:
            importlib.import_module(mod)
        if self.group is None:
            return
        for ep in md.entry_points(group=self.group):
            if ":" in ep.value:
                self._entries.setdefault(ep.name, ep.value)  # lazy: imported when asked for
                continue
            try:
                ep.load()
            except Exception as exc:  # a broken plugin must not take the built-in ones down
                warnings.warn(f"{self.kind} plugin '{ep.name}' failed to load: {exc}", stacklevel=3)

    def names(self) -> list[str]:
        """Every name: the built-in modules' entries in their order, then the rest as registered."""
        self.load()
        rank = {m: i for i, m in enumerate(self.builtin_modules)}

        def module_of(entry) -> str:
            return entry.split(":")[0] if isinstance(entry, str) else getattr(entry, "__module__", "")

        order = {n: i for i, n in enumerate(self._entries)}
        return sorted(self._entries, key=lambda n: (rank.get(module_of(self._entries[n]), len(rank)), order[n]))

    def __contains__(self, name: str) -> bool:
        self.load()
        return name in self._entries

    def _require(self, name: str) -> None:
        self.load()
        if name not in self._entries:
            raise UnknownName(f"unknown {self.kind} '{name}'; valid: {', '.join(self.names())}")

    def get(self, name: str):
        """The entry of ``name``, imported if it was lazy; :class:`UnknownName` lists the known ones."""
        self._require(name)
        entry = self._entries[name]
        if isinstance(entry, str):
            module, _, attr = entry.partition(":")
            entry = getattr(importlib.import_module(module), attr)
            if self.check is not None:
                self.check(name, entry)
            self._entries[name] = entry
        return entry

    def target(self, name: str) -> str:
        """``module:attribute`` of an entry, without importing a lazy one."""
        self._require(name)
        entry = self._entries[name]
        return entry if isinstance(entry, str) else f"{entry.__module__}:{entry.__qualname__}"

    def items(self) -> list[tuple[str, object]]:
        return [(n, self.get(n)) for n in self.names()]

    def __iter__(self):
        return iter(self.names())

    def __getitem__(self, name: str):
        return self.get(name)
