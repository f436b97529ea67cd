"""Are the installed dependencies inside the range this project was tested with?

The range is the one ``pyproject.toml`` declares (each direct dependency bounded above by the next
release that could break it); ``constraints.txt`` pins the versions the committed results and CI
used. ``python -m bench.cli.dependencies`` prints each direct dependency's installed version and range
and exits 1 when one is outside it (``tests/bench/run/test_dependencies.py`` and ``.ci/run`` run it).
A package of an optional extra (``test``, ``ray``) that is not installed is not an error: the
README's first command installs none of them.
"""
from __future__ import annotations

import importlib.metadata as md

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

DISTRIBUTION = "kpdp-bench"


def requirements(extras: tuple[str, ...] = ("test",)) -> list[Requirement]:
    """The direct requirements of the installed distribution, with those of ``extras``."""
    out = []
    for line in md.requires(DISTRIBUTION) or []:
        req = Requirement(line)
        if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in extras):
            out.append(req)
    return out


def installed_version(name: str) -> str | None:
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None


def problems(reqs: list[Requirement] | None = None, version_of=installed_version) -> list[str]:
    """One line per requirement that is missing or whose installed version is outside its range.

    >>> problems([Requirement("numpy>=1.24,<1.25")], version_of=lambda name: "2.1.0")
    ['numpy 2.1.0 is outside the tested range <1.25,>=1.24 (pip install "numpy<1.25,>=1.24")']
    >>> problems([Requirement("numpy>=1.24")], version_of=lambda name: "2.1.0")
    []
    >>> problems([Requirement('pytest>=7,<10; extra == "test"')], version_of=lambda name: None)
    []
    """
    out = []
    for req in requirements() if reqs is None else reqs:
        got = version_of(req.name)
        spec = str(req.specifier)
        if got is None and req.marker is not None:
            continue  # an optional extra's package, not installed: nothing to check
        if got is None:
            out.append(f"{req.name} is not installed (pip install -e . installs it)")
        elif not req.specifier.contains(got, prereleases=True):
            out.append(f"{req.name} {got} is outside the tested range {spec} (pip install \"{req.name}{spec}\")")
    return out


def installed_versions(reqs: list[Requirement] | None = None) -> dict[str, str | None]:
    """{distribution: installed version} of every direct dependency (recorded in each run)."""
    names = [DISTRIBUTION] + [canonicalize_name(r.name) for r in (requirements() if reqs is None else reqs)]
    return {n: installed_version(n) for n in dict.fromkeys(names)}
