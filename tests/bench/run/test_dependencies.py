"""The installed dependencies lie inside the ranges pyproject.toml declares, and constraints.txt
(the versions CI installs with) pins every direct dependency inside them (bench/run/dependencies.py)."""

import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from bench.cli import dependencies as dependencies_cli
from bench.run import dependencies
from tests.conftest import ROOT


def _declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    return [Requirement(line) for line in lines]


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version.strip()
    return pins


def test_every_installed_dependency_is_in_its_tested_range():
    bad = dependencies.problems()
    assert not bad, "installed versions outside the tested range:\n" + "\n".join(bad)


def test_every_direct_dependency_is_bounded_above():
    unbounded = [str(r) for r in _declared()
                 if not any(s.operator in ("<", "<=", "==", "~=") for s in r.specifier)]
    assert not unbounded, f"no upper bound: {unbounded}"


def test_the_lock_pins_every_direct_dependency_inside_its_range():
    pins = _pins()
    for req in _declared():
        name = canonicalize_name(req.name)
        assert name in pins, f"constraints.txt has no pin for {req.name}: bash scripts/make_constraints.sh"
        assert req.specifier.contains(pins[name], prereleases=True), \
            f"constraints.txt pins {req.name}=={pins[name]}, outside {req.specifier}"


def test_an_out_of_range_version_is_named_with_its_range():
    installed = {canonicalize_name(r.name): dependencies.installed_version(r.name) for r in dependencies.requirements()}
    installed["opencv-python"] = "5.2.0"  # a release past the tested range
    bad = dependencies.problems(version_of=lambda name: installed[canonicalize_name(name)])
    assert bad == ['opencv-python 5.2.0 is outside the tested range <5.2,>=5.0 (pip install "opencv-python<5.2,>=5.0")']
    assert dependencies_cli.main(["--quiet"]) == 0  # the real installation passes the command CI runs


def test_the_recorded_versions_name_every_direct_dependency():
    versions = dependencies.installed_versions()
    assert versions["kpdp-bench"] and versions["torch"] and versions["opencv-python"]
    assert set(versions) >= {canonicalize_name(r.name) for r in dependencies.requirements()}
