"""Re-identification attackers of growing knowledge (``../shared/docs/metrics.md``, *Attackers*).

An attacker decides what the gallery holds (the originals, or the method's outputs with fresh
randomness) and may adapt to the method on anonymised training images of other people. The reid
metric group runs every attacker of the run on the same probes; the headline is the strongest.
"""
from bench.attackers.registry import (  # noqa: F401
                       Attacker,
                       TrainingSet,
                       available,
                       default_attackers,
                       get_attacker,
                       register_attacker,
)
