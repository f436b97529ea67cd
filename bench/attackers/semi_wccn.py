"""``semi-wccn``: knows the method and has data to adapt, as ``semi-linear``, with its map fixed to
within-class covariance whitening (WCCN: the centred embeddings times the inverse square root of the
training people's within-class covariance), then attacks as ``lazy`` in the mapped space.

It exists because ``semi-linear``'s choice of map on two held-out folds of its training people
can reject the map that re-identifies most on the evaluation gallery (see
:mod:`bench.attackers.semi_linear`); the strongest attack is the maximum over every attacker.
"""
from __future__ import annotations

from .registry import register_attacker
from .semi_linear import SemiLinear


@register_attacker
class SemiWCCN(SemiLinear):
    name = "semi-wccn"
    fixed_map = "wccn"
