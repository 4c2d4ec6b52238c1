"""The package's shape (DESIGN.md section 1), measured on the code itself: stages that import only downward,
no import cycles, no private names across modules, functions that fit on a screen, one writer of
results.json, report.html written once per run.

``python tests/test_layout.py`` prints the module graph (docs/architecture.md shows it).
"""

from __future__ import annotations

import ast
import inspect
import sys
from pathlib import Path

import pytest

ADACLI = Path(__file__).resolve().parents[1] / "adacli"

#: the stages, lowest first: a module may import modules of its own stage and of the stages before it
STAGES = ("vocabulary", "recipe", "analysis", "optim", "train", "ci", "report", "run", "app", "cli")
VOCABULARY = {"adacli.errors", "adacli.results", "adacli.files"}
MAX_FUNCTION_LINES = 80


def modules() -> dict[str, Path]:
    return {
        ".".join(p.relative_to(ADACLI.parent).with_suffix("").parts).removesuffix(".__init__"): p
        for p in sorted(ADACLI.rglob("*.py"))
    }


def stage(module: str) -> str | None:
    """The stage of an adacli module (None for the package itself and ``__main__``)."""
    if module in VOCABULARY:
        return "vocabulary"
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in STAGES) else None


def imports(path: Path, names: set[str]) -> dict[str, set[str]]:
    """The adacli modules a file imports (module level and inside functions) -> the names it takes."""
    out: dict[str, set[str]] = {}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                target = f"{node.module}.{a.name}"
                if target in names:  # `from adacli.run import store`: the module store
                    out.setdefault(target, set())
                elif node.module in names:
                    out.setdefault(node.module, set()).add(a.name)
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name in names:
                    out.setdefault(a.name, set())
    return out


def import_graph() -> dict[str, set[str]]:
    names = set(modules())
    return {m: {d for d in imports(p, names) if d not in (m, "adacli")} for m, p in modules().items()}


def test_every_module_belongs_to_a_stage():
    loose = [m for m in modules() if stage(m) is None and m not in ("adacli", "adacli.__main__")]
    assert not loose, f"modules outside the stages {STAGES}: {loose}"


def test_stages_import_only_downward():
    upward = []
    for m, deps in import_graph().items():
        s = stage(m)
        for d in deps:
            if s is not None and stage(d) is not None and STAGES.index(stage(d)) > STAGES.index(s):
                upward.append(f"{m} ({s}) imports {d} ({stage(d)})")
    assert not upward, upward


def test_no_import_cycles():
    graph = import_graph()

    def reachable(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for d in graph[todo.pop()]:
                if d not in seen:
                    seen.add(d)
                    todo.append(d)
        return seen

    cycles = [m for m in graph if m in reachable(m)]
    assert not cycles, f"modules that import themselves through others: {cycles}"


def test_no_module_imports_another_modules_private_names():
    names = set(modules())
    private = []
    for m, p in modules().items():
        tree = ast.parse(p.read_text())
        for dep, taken in imports(p, names).items():
            private += [
                f"{m}: from {dep} import {n}" for n in taken if n.startswith("_") and not n.startswith("__")
            ]
        aliases = _module_aliases(tree, names)
        for node in ast.walk(tree):
            on_module = isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
            if on_module and node.value.id in aliases and node.attr.startswith("_") and node.attr[1] != "_":
                private.append(f"{m}: {aliases[node.value.id]}.{node.attr}")
    assert not private, private


def _module_aliases(tree: ast.AST, names: set[str]) -> dict[str, str]:
    """Local names bound to adacli modules (``from adacli.run import store``, ``import adacli.x as y``)."""
    out = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                if f"{node.module}.{a.name}" in names:
                    out[a.asname or a.name] = f"{node.module}.{a.name}"
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name in names and a.asname:
                    out[a.asname] = a.name
    return out


def test_no_function_is_longer_than_a_screen_and_a_bit():
    long = []
    for m, p in modules().items():
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1  # type: ignore[operator]
                if n > MAX_FUNCTION_LINES:
                    long.append(f"{m}.{node.name}: {n} lines")
    assert not long, long


def test_only_the_store_names_the_files_of_a_run_folder():
    """results.json, gate.json and summary.csv are named in one module: everything else goes through it."""
    named = []
    for m, p in modules().items():
        if m == "adacli.run.store":
            continue
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.Constant) and node.value in ("results.json", "gate.json", "summary.csv"):
                named.append(f"{m}: {node.value!r}")
    assert not named, named


def test_results_json_has_one_writer_and_report_html_is_written_once_per_run(tmp_path, monkeypatch):
    """A real `compare --save-baseline` then `compare --baseline` (the gate judged in the save step):
    every write of results.json comes from store.write_results, report.html is written once per run."""
    from helpers import invoke, write_recipe

    import adacli.files

    writes: list[tuple[str, str]] = []
    real = adacli.files.write_atomic

    def recording(path, data):
        writes.append((Path(path).name, inspect.stack()[1].function))
        return real(path, data)

    for name, module in list(sys.modules.items()):
        if name.startswith("adacli") and getattr(module, "write_atomic", None) is real:
            monkeypatch.setattr(module, "write_atomic", recording)
    recipe = write_recipe(tmp_path, ["adam", "{name: sgd, lr: 0.1}"], steps=3)
    base = tmp_path / "base.json"
    for out, flags in (("a", ["--save-baseline", str(base)]), ("b", ["--baseline", str(base)])):
        writes.clear()
        res = invoke("compare", str(recipe), "--out", str(tmp_path / out), *flags)
        assert res.exit_code == 0, res.output
        assert {f for n, f in writes if n == "results.json"} == {"write_results"}, writes
        assert [n for n, _ in writes].count("report.html") == 1, writes
    assert "gate.json" in [n for n, _ in writes]
    assert 'class="banner pass"' in (tmp_path / "b" / "report.html").read_text()


def module_graph() -> str:
    """The module graph, one line per module: its stage and the adacli modules it imports."""
    lines = []
    for m, deps in sorted(import_graph().items()):
        lines.append(f"{m} [{stage(m) or 'package'}] -> {', '.join(sorted(deps)) or '(nothing)'}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(module_graph())
else:
    pytestmark = pytest.mark.usefixtures("one_thread")
