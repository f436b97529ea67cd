"""``ignorant``: knows nothing of the method; an off-the-shelf recognizer against clean originals."""
from __future__ import annotations

from bench.attackers.registry import IGNORANT, Attacker, register_attacker


@register_attacker
class Ignorant(Attacker):
    name = IGNORANT
    gallery = "original"
