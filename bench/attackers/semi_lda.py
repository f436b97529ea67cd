"""``semi-lda``: knows the method and has data to adapt, as ``semi-linear``, with its map fixed to
shrinkage LDA (scikit-learn, Ledoit-Wolf shrinkage: the directions that best separate the training
people), then attacks as ``lazy`` in the mapped space.

It exists because ``semi-linear``'s choice of map on two held-out folds of its training people
can reject the map that re-identifies most on the evaluation gallery (see
:mod:`bench.attackers.semi_linear`); the strongest attack is the maximum over every attacker.
"""
from __future__ import annotations

from .registry import register_attacker
from .semi_linear import SemiLinear


@register_attacker
class SemiLDA(SemiLinear):
    name = "semi-lda"
    fixed_map = "lda"
