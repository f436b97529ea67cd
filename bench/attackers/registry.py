"""The attacker interface and its registry (decorator registration, lazy built-ins, plugins by the
entry-point group ``kpdp_bench.attackers``, an unknown name answered with the known ones).

An attacker is a recipe, not a model: for each (cell, recognizer) the harness creates a fresh
instance, calls :meth:`Attacker.fit` with the method's outputs on identity-disjoint training images
(when :attr:`Attacker.trains`), and compares :meth:`Attacker.project`-ed probes with the
projected gallery. ``gallery = "original"``: the clean originals (an attacker who does not know the
method); ``"anonymised"``: every evaluation image anonymised by the same method with fresh
randomness (an attacker who can run the method).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from ..plugins import Plugins

ENTRY_POINT_GROUP = "kpdp_bench.attackers"
BUILTIN_MODULES = ("bench.attackers.ignorant", "bench.attackers.lazy", "bench.attackers.semi_linear",
                   "bench.attackers.semi_finetune")
GALLERIES = ("original", "anonymised")


@dataclass
class TrainingSet:
    """Embeddings by one recognizer of the method's outputs on identity-disjoint training images."""

    embeddings: np.ndarray  # (N, D)
    identities: np.ndarray  # (N,)
    source: str = ""  # where the images came from (recorded in the run)
    info: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.identities)


class Attacker:
    """Base class: the ``ignorant`` attacker's behaviour (no training, no projection)."""

    name: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    gallery: ClassVar[str] = "original"
    trains: ClassVar[bool] = False
    #: in ``bench run``'s default list (False: too slow to run here by default)
    default: ClassVar[bool] = True
    #: learns from the anonymised images, which the store does not keep: it runs on a finished run
    #: (``bench attack``), not through fit/project (``bench run`` calls it after the grid)
    pixels: ClassVar[bool] = False

    def __init__(self, seed: int = 0):
        self.seed = seed
        self.info: dict = {}  # what fitting chose (recorded in the run's metadata)

    def fit(self, train: TrainingSet) -> "Attacker":
        return self

    def project(self, embeddings: np.ndarray) -> np.ndarray:
        """The attacker's representation of embeddings (probes and gallery alike)."""
        return np.asarray(embeddings, np.float64)


_ATTACKERS: dict[str, type[Attacker]] = {}
_PLUGINS = Plugins(BUILTIN_MODULES, ENTRY_POINT_GROUP, "attacker")


def register_attacker(cls: type[Attacker]) -> type[Attacker]:
    """Class decorator: make an attacker known by its ``name``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    if cls.gallery not in GALLERIES:
        raise ValueError(f"attacker '{cls.name}': gallery must be one of {GALLERIES}, not {cls.gallery!r}")
    _ATTACKERS[cls.name] = cls
    return cls


def _load() -> None:
    _PLUGINS.load()


def available() -> list[str]:
    """Every attacker, built-ins first in ladder order (:data:`BUILTIN_MODULES`)."""
    _load()
    rank = {m: i for i, m in enumerate(BUILTIN_MODULES)}
    return sorted(_ATTACKERS, key=lambda n: rank.get(_ATTACKERS[n].__module__, len(rank)))


def default_attackers() -> list[str]:
    return [n for n in available() if _ATTACKERS[n].default]


def get_attacker(name: str) -> type[Attacker]:
    _load()
    if name not in _ATTACKERS:
        raise KeyError(f"unknown attacker '{name}'; available: {', '.join(available())}")
    return _ATTACKERS[name]
