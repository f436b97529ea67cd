"""``lazy``: can run the method. The gallery is every evaluation image anonymised by the same
method with fresh randomness; the recognizer is off the shelf. Against a method whose output does
not vary between releases (the same blur, the same average face) this is the attack that links
two releases of one person through whatever the method keeps."""
from __future__ import annotations

from bench.attackers.registry import Attacker, register_attacker


@register_attacker
class Lazy(Attacker):
    name = "lazy"
    gallery = "anonymised"
