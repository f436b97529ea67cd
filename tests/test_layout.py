"""The layout of docs/architecture.md, held to the code: data flows one way, no import circles."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: bench's stages, lowest first: a module may import its own stage and the ones before it
STAGES = ["methods", "processes", "timing", "metrics", "store", "measure", "attackers", "aggregate", "run",
          "report", "cli"]
#: the one import that runs back up, and why: evaluate() promises metrics.csv and summary.md
ALLOWED_UP = {("bench.run.evaluate", "bench.report.export"), ("bench.run.finetune", "bench.report.export")}


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """{module: project modules it imports (anywhere in it)} of bench, kpdp and baselines."""
    out = {}
    for pkg in ("bench", "kpdp", "baselines"):
        for path in sorted((ROOT / pkg).rglob("*.py")):
            mod = _module(path)
            found = set()
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom):
                    base = node.module or ""
                    if node.level:  # relative: resolve against the importing package
                        pkg_parts = mod.split(".")[: -node.level] if not path.name == "__init__.py" else \
                            mod.split(".")[: len(mod.split(".")) - node.level + 1]
                        base = ".".join(pkg_parts + ([base] if base else []))
                    names = [(base, f"{base}.{a.name}") for a in node.names]  # a submodule, or a name in base
                elif isinstance(node, ast.Import):
                    names = [(a.name, a.name) for a in node.names]
                else:
                    continue
                found |= {n for n in names if n[0].split(".")[0] in ("bench", "kpdp", "baselines")}
            out[mod] = found
    modules = set(out)
    return {m: {sub if sub in modules else base for base, sub in deps} & modules - {m} for m, deps in out.items()}


def _stage(module: str):
    parts = module.split(".")
    return STAGES.index(parts[1]) if parts[0] == "bench" and len(parts) > 1 and parts[1] in STAGES else None


def test_no_import_circles():
    graph = _imports()
    state, circles = {}, []

    def visit(m, path):
        state[m] = "open"
        for d in sorted(graph.get(m, ())):
            if state.get(d) == "open":
                circles.append(path[path.index(d):] + [d])
            elif d not in state:
                visit(d, path + [d])
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not circles, f"import circles: {circles}"


def test_the_method_and_baselines_know_nothing_of_the_harness():
    graph = _imports()
    leaks = {m: sorted(d for d in deps if d.startswith("bench")) for m, deps in graph.items()
             if m.split(".")[0] in ("kpdp", "baselines")}
    assert not {m: d for m, d in leaks.items() if d}


def test_no_stage_imports_a_later_one():
    up = sorted((m, d) for m, deps in _imports().items() for d in deps
                if _stage(m) is not None and _stage(d) is not None and _stage(d) > _stage(m) and (m, d) not in ALLOWED_UP)
    assert not up, f"imports against the data flow (docs/architecture.md): {up}"


#: command-line entry modules: they import their command's modules when the command runs, so that
#: ``--help`` and a command that needs no model start without loading torch and every backend
LAZY_ENTRY_MODULES = ("bench.cli.", "bench.__main__", "kpdp.__main__", "kpdp.cli_space")


def test_project_imports_sit_at_module_top_outside_the_command_line():
    inner = []
    for pkg in ("bench", "kpdp", "baselines"):
        for path in sorted((ROOT / pkg).rglob("*.py")):
            mod = _module(path)
            if mod.startswith(LAZY_ENTRY_MODULES):
                continue
            tree = ast.parse(path.read_text())
            top = {id(n) for n in tree.body}
            for node in ast.walk(tree):
                if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in top:
                    name = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
                    if getattr(node, "level", 0) or (name or "").split(".")[0] in ("bench", "kpdp", "baselines"):
                        inner.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not inner, f"project imports inside functions (move them to the module's top): {inner}"
