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

from kpdp.registry import Registry

ENTRY_POINT_GROUP = "kpdp_bench.attackers"
BUILTIN_MODULES = ("bench.attackers.ignorant", "bench.attackers.lazy", "bench.attackers.semi_linear",
                   "bench.attackers.semi_finetune", "bench.attackers.recon_wiener", "bench.attackers.recon_learned")
GALLERIES = ("original", "anonymised")
#: the attacker every run has (knows nothing of the method), and the one a single recognizer's privacy
#: number always meant
IGNORANT = "ignorant"


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


def _check(name: str, cls: type[Attacker]) -> None:
    if cls.gallery not in GALLERIES:
        raise ValueError(f"attacker '{name}': gallery must be one of {GALLERIES}, not {cls.gallery!r}")


ATTACKERS = Registry("attacker", BUILTIN_MODULES, ENTRY_POINT_GROUP, check=_check)
#: class decorator: make an attacker known by its ``name``
register_attacker = ATTACKERS.register


def available() -> list[str]:
    """Every attacker, built-ins first in ladder order (:data:`BUILTIN_MODULES`)."""
    return ATTACKERS.names()


def default_attackers() -> list[str]:
    return [n for n in available() if ATTACKERS.get(n).default]


def get_attacker(name: str) -> type[Attacker]:
    return ATTACKERS.get(name)
