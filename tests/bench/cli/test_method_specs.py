"""Method specs: ``name[key=value,...]`` on the command line, one canonical cell per variant."""
import json
import math
import sqlite3

import pandas as pd
import pytest

from bench import methods as method_registry
from bench.cli.main import main as bench_main
from bench.cli.run import with_method_args
from kpdp.method import Anonymizer


class Toy(Anonymizer):
    name = "toy"

    def __init__(self, strength: float = 1.0, *, mode: str = "a", **kw):
        super().__init__(strength=strength, mode=mode, **kw)


class ToyChild(Toy):
    name = "toy-child"

    def __init__(self, extra: int = 0, **kw):
        super().__init__(**kw)
        self.extra = extra


@pytest.fixture()
def toys():
    methods = method_registry.registry()
    methods.add("toy", f"{__name__}:Toy")  # lazy entries, as an installed plugin's would be
    methods.add("toy-child", f"{__name__}:ToyChild")
    yield
    methods.remove("toy")
    methods.remove("toy-child")


def test_parse_and_format_round_trip_in_canonical_order():
    assert method_registry.parse_spec("kpdp") == ("kpdp", {})
    assert method_registry.parse_spec(" kpdp [ b = 1 , a = x ] ") == ("kpdp", {"b": 1, "a": "x"})
    assert method_registry.canonical("kpdp[b=1,a=2]") == method_registry.canonical("kpdp[a=2,b=1]") == "kpdp[a=2,b=1]"
    for spec in ("kpdp", "blur[sigma=3.5]", "kpdp[mask=landmarks,postprocess=mean,residual=full]",
                 "x[a=inf,b=-2,c=true,d=1e-05,e=some text]"):
        assert method_registry.canonical(spec) == spec
        assert method_registry.format_spec(*method_registry.parse_spec(spec)) == spec
    with pytest.raises(ValueError, match="cannot be written"):
        method_registry.format_spec("kpdp", {"a": "1"})  # would read back as an int


def test_value_types():
    _, p = method_registry.parse_spec("m[i=3,f=0.5,e=1e3,t=true,F=False,inf=inf,s=mean,neg=-1]")
    assert p == {"i": 3, "f": 0.5, "e": 1000.0, "t": True, "F": False, "inf": math.inf, "s": "mean", "neg": -1}
    assert [type(p[k]) for k in ("i", "f", "t", "s")] == [int, float, bool, str]


@pytest.mark.parametrize("spec, message", [
    ("kpdp[a=1", "unbalanced"), ("kpdp]", "unbalanced"), ("kpdp[a=1]x", "after"), ("kpdp[a=1,a=2]", "twice"),
    ("kpdp[=1]", "without a name"), ("kpdp[a]", "not key=value"), ("kpdp[a=]", "no value"),
    ("[a=1]", "no method name"), ("kpdp[]", "empty"), ("kpdp[a=nan]", "nan"), ("kpdp[a-b=1]", "parameter name"),
])
def test_bad_specs_are_rejected(spec, message):
    with pytest.raises(ValueError, match=message):
        method_registry.parse_spec(spec)


def test_unknown_parameters_are_rejected_listing_the_valid_ones(toys):
    assert method_registry.settable_params(Toy) == ["mode", "region", "strength"]
    assert method_registry.settable_params(ToyChild) == ["extra", "mode", "region", "strength"]
    assert method_registry.check_spec("toy-child[strength=2,extra=1]") == "toy-child[extra=1,strength=2]"
    with pytest.raises(ValueError, match=r"no parameter 'strenght'; its parameters: mode, region, strength"):
        method_registry.check_spec("toy[strenght=2]")
    for grid_param in ("eps", "device"):  # --eps and --device set those
        with pytest.raises(ValueError, match="no parameter"):
            method_registry.check_spec(f"toy[{grid_param}=1]")
    with pytest.raises(method_registry.UnknownMethod):
        method_registry.check_spec("nosuch[a=1]")
    obj = method_registry.create("toy[mode=b,strength=2.5]")
    assert (obj.params, method_registry.uses_eps("toy[mode=b]")) == ({"strength": 2.5, "mode": "b"}, False)
    assert method_registry.method_class("blur[sigma=3]") is method_registry.method_class("blur")


def test_split_specs_and_method_args():
    assert method_registry.split_specs("kpdp,kpdp[postprocess=mean,mask=landmarks], blur,") == \
        ["kpdp", "kpdp[postprocess=mean,mask=landmarks]", "blur"]
    for bad in ("kpdp[a=1,blur", "kpdp],blur"):
        with pytest.raises(ValueError, match="unbalanced"):
            method_registry.split_specs(bad)
    methods = ["kpdp", "kpdp[mask=landmarks]", "blur"]
    assert with_method_args(methods, ["kpdp:postprocess=mean,kpdp:residual=full"]) == \
        with_method_args(methods, ["kpdp:residual=full", "kpdp:postprocess=mean"]) == \
        ["kpdp[postprocess=mean,residual=full]", "kpdp[mask=landmarks,postprocess=mean,residual=full]", "blur"]
    with pytest.raises(ValueError, match="not in --methods"):
        with_method_args(methods, ["dppix:b=8"])
    with pytest.raises(ValueError, match="both set mask"):
        with_method_args(methods, ["kpdp:mask=ellipse"])
    with pytest.raises(ValueError, match="method:key=value"):
        with_method_args(methods, ["postprocess=mean"])


FAST = ["--limit", "4", "--metrics", "detection", "--detectors", "dlib-hog", "--recognizers", "dlib",
        "--executor", "local", "--quiet"]


def test_bad_spec_on_the_command_line_is_exit_2_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    assert bench_main(["run", "--methods", "blur[sigmaa=3]", *FAST, "--out", str(out)]) == 2
    assert "its parameters: max_kernel, region, sigma" in capsys.readouterr().err
    assert bench_main(["run", "--methods", "blur", "--method-args", "dppix:b=8", *FAST, "--out", str(out)]) == 2
    assert "not in --methods" in capsys.readouterr().err
    assert not out.exists()


def test_two_variants_of_one_method_in_one_run(tmp_path, monkeypatch):
    from baselines.blur import GaussianBlur
    from bench.report.check import check, make_baseline
    from bench.report.page import ReportSpec, load_runs, table

    calls = []
    original = GaussianBlur.anonymize_face
    monkeypatch.setattr(GaussianBlur, "anonymize_face", lambda self, *a: calls.append(self.sigma) or original(self, *a))
    out = tmp_path / "run"
    cmd = ["run", "--methods", "blur[sigma=12.0,max_kernel=15],blur[max_kernel=15,sigma=3.0]", *FAST,
           "--out", str(out)]
    assert bench_main(cmd) == 0
    assert sorted(set(calls)) == [3.0, 12.0]
    variants = ["blur[max_kernel=15,sigma=12.0]", "blur[max_kernel=15,sigma=3.0]"]
    csv = pd.read_csv(out / "metrics.csv", keep_default_na=False)
    assert set(csv.method) == {"original", *variants}
    rates = {m: csv[(csv.method == m) & (csv.metric == "detection_rate")].value.item() for m in variants}
    assert len(rates) == 2
    assert '"blur[max_kernel=15,sigma=3.0]"' in (out / "metrics.csv").read_text()  # its comma is quoted
    meta = {k: json.loads(v) for k, v in sqlite3.connect(out / "results.sqlite").execute("SELECT key, value FROM run")}
    described = meta["methods"]["blur[max_kernel=15,sigma=3.0]@"]
    assert described["spec"] == "blur[max_kernel=15,sigma=3.0]"
    assert described["params"] == {"max_kernel": 15, "sigma": 3.0} and described["sigma"] == 3.0
    assert meta["methods"]["blur[max_kernel=15,sigma=12.0]@"]["params"]["sigma"] == 12.0
    assert set(table(load_runs([out]), ReportSpec()).method) == {"original", *variants}
    assert set(table(load_runs([out]), ReportSpec(methods=variants[:1])).method) == {variants[0]}
    (tmp_path / "base.json").write_text(json.dumps(make_baseline(out)))
    ok, t = check(out, tmp_path / "base.json")
    assert ok and set(t.method) >= set(variants)

    calls.clear()  # the same command, and the same variants spelled another way: nothing to anonymise
    assert bench_main(cmd) == 0
    assert bench_main(["run", "--methods", "blur[sigma=3.0],blur[sigma=12.0]", "--method-args", "blur:max_kernel=15",
                       *FAST, "--out", str(out)]) == 0
    assert calls == []
    assert set(pd.read_csv(out / "metrics.csv", keep_default_na=False).method) == {"original", *variants}


def test_a_preset_refuses_the_parameter_it_fixes_and_the_generic_method_takes_it():
    # pixelate-8 passes blocks=8 to its parent: `pixelate-8[blocks=4]` used to pass the spec check
    # and fail when the run built it; it is now refused up front, pointing at `pixelate`
    with pytest.raises(ValueError, match="blocks fixed by this preset"):
        method_registry.check_spec("pixelate-8[blocks=4]")
    assert "blocks" not in method_registry.settable_params(method_registry.method_class("pixelate-16"))
    method = method_registry.create("pixelate[blocks=4]")
    assert method.blocks == 4 and method_registry.create("pixelate-8").blocks == 8


def test_methods_are_declared_once_in_pyproject_and_a_source_tree_reads_them_there(monkeypatch):
    """The installed entry points are pyproject.toml's table; without an install the registry reads
    that table itself, so no second list can drift from it."""
    import importlib.metadata as md

    declared = method_registry.declared_in_pyproject()
    installed = {ep.name: ep.value for ep in md.entry_points(group=method_registry.GROUP)}
    assert {"kpdp", "blur", "deepprivacy", "original"} <= set(declared)
    assert {k: installed[k] for k in declared} == declared
    method_registry.refresh()
    monkeypatch.setattr(md, "entry_points", lambda group: [])  # a source tree that was never pip-installed
    try:
        methods = method_registry.registry()
        assert {n: methods.target(n) for n in methods.names()} == declared
    finally:
        method_registry.refresh()
