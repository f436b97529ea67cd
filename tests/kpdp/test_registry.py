"""The one registry class behind methods, attackers, metric groups, face backends and data sets."""
import importlib.metadata as md
import sys
import types

import pytest

from kpdp.registry import Registry, UnknownName


class _EntryPoint:
    def __init__(self, name, value):
        self.name, self.value = name, value

    def load(self):
        if self.value == "broken_plugin":
            raise ImportError("no module named broken_plugin")
        module = sys.modules[self.value]
        module.register()


def test_lazy_entries_are_imported_only_when_asked_for(monkeypatch):
    module = types.ModuleType("lazy_toy_module")
    module.Thing = type("Thing", (), {"name": "thing"})
    monkeypatch.setitem(sys.modules, "lazy_toy_module", module)
    reg = Registry("toy")
    reg.add("thing", "lazy_toy_module:Thing")
    assert reg.registered()["thing"] == "lazy_toy_module:Thing"  # still a string: nothing imported
    assert reg.target("thing") == "lazy_toy_module:Thing"
    assert reg.get("thing") is module.Thing and reg["thing"] is module.Thing
    assert "thing" in reg and list(reg) == ["thing"]


def test_builtin_modules_come_first_in_their_order_then_plugins(monkeypatch):
    reg = Registry("toy", ("toy_builtin_b", "toy_builtin_a"), "toy.group")

    def builtin(mod_name, entry):
        module = types.ModuleType(mod_name)
        cls = type(entry, (), {"name": entry, "__module__": mod_name})
        module.__dict__["cls"] = cls
        monkeypatch.setitem(sys.modules, mod_name, module)
        reg.add(entry, cls)  # as its decorator would on import

    plugin = types.ModuleType("toy_plugin")
    plugin.register = lambda: reg.add("from-plugin", type("P", (), {"name": "from-plugin", "__module__": "toy_plugin"}))
    monkeypatch.setitem(sys.modules, "toy_plugin", plugin)
    monkeypatch.setattr(md, "entry_points", lambda group: [_EntryPoint("p", "toy_plugin"),
                                                           _EntryPoint("lazy", "toy_plugin:Lazy")]
                        if group == "toy.group" else [])
    builtin("toy_builtin_a", "alpha")
    builtin("toy_builtin_b", "beta")
    assert reg.names() == ["beta", "alpha", "from-plugin", "lazy"]


def test_a_broken_plugin_warns_and_the_others_still_load(monkeypatch):
    reg = Registry("toy", (), "toy.group")
    reg.add("kept", object)
    monkeypatch.setattr(md, "entry_points", lambda group: [_EntryPoint("bad", "broken_plugin")])
    with pytest.warns(UserWarning, match="toy plugin 'bad' failed to load"):
        assert reg.names() == ["kept"]


def test_unknown_names_are_answered_with_the_known_ones_and_checks_run_on_registration():
    def positive(name, entry):
        if entry <= 0:
            raise ValueError(f"{name} must be positive")

    reg = Registry("number", check=positive)
    reg.add("one", 1)
    with pytest.raises(ValueError, match="two must be positive"):
        reg.add("two", -2)
    with pytest.raises(UnknownName, match="unknown number 'three'; valid: one"):
        reg.get("three")
    with pytest.raises(KeyError):  # callers that catch KeyError keep working
        reg.get("three")


def test_the_projects_registries_are_this_class():
    from bench.attackers.registry import ATTACKERS
    from bench.methods import registry as methods
    from bench.metrics.registry import GROUPS
    from kpdp.datasets import DATASETS
    from kpdp.faces.registry import DETECTORS, LANDMARKERS, RECOGNIZERS

    for reg in (ATTACKERS, methods(), GROUPS, DATASETS, DETECTORS, LANDMARKERS, RECOGNIZERS):
        assert isinstance(reg, Registry)
    assert {"ignorant", "lazy"} <= set(ATTACKERS.names()) and {"kpdp", "blur"} <= set(methods().names())
    assert "reid" in GROUPS and "lfw" in DATASETS and "mtcnn" in DETECTORS.names()
