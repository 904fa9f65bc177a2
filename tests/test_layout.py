"""The house plan: which floor of ttl_utils may import which, what stays light, and how long a function may get."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ttl_utils"
UTILITIES = {"config", "errors", "runtime", "progress", "storage", "digests", "cache"}
ENTRY_POINTS = {"pipeline", "find", "cli", "commands", "notebook", "__init__", "__main__"}  # may import anything
# a floor may import the floors (or single modules) named here, and nothing else of the project
MAY_IMPORT = {
    "utilities": {"utilities"},
    "data": {"utilities", "data"},
    "models": {"utilities", "data", "models"},
    "evaluate": {"utilities", "data", "models", "evaluate"},
    "train": {"utilities", "data", "models", "evaluate", "train"},
    "explain": {"utilities", "data", "models", "evaluate", "explain"},
    "present": {"config", "storage", "evaluate.metrics", "evaluate.report", "present"},
}
LIGHT = ["ttl_utils.evaluate.metrics", "ttl_utils.evaluate.report", "ttl_utils.present.findings",
         "ttl_utils.present.slides", "ttl_utils.present.plots", "ttl_utils.present.pictures"]


@lru_cache(maxsize=1)
def modules() -> dict[str, Path]:
    """Return every module of the package by its dotted name inside it (`train.finetune`, `cli`)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 1 else parts)] = path
    return found


def floor(module: str) -> str:
    """Return the floor a module lives on: a subpackage's name, `utilities` or `entry points`."""
    first = module.split(".")[0]
    if "." not in module and first in UTILITIES:
        return "utilities"
    if "." not in module and first in ENTRY_POINTS:
        return "entry points"
    return first


def project_imports(module: str, path: Path) -> list[tuple[str, int, bool]]:
    """Return `(imported module, line, at module level)` for each import of the project in `path`; an
    import under `if TYPE_CHECKING:` (annotations only) is not one."""
    tree = ast.parse(path.read_text())
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    skipped = {id(node) for stmt in ast.walk(tree) if isinstance(stmt, ast.If) and getattr(stmt.test, "id", "") ==
               "TYPE_CHECKING" for node in ast.walk(stmt)}
    top_level = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[:len(package) - node.level + 1] + (node.module.split(".") if node.module else [])
            for alias in node.names:  # `from ..evaluate import metrics` imports the module evaluate.metrics
                name = ".".join([*base, alias.name])
                found.append((name if name in modules() else ".".join(base), node.lineno, id(node) in top_level))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            for name in names:
                if name and name.split(".")[0] == "ttl_utils":
                    found.append((name.removeprefix("ttl_utils").lstrip(".") or "__init__", node.lineno,
                                  id(node) in top_level))
    return found


def allowed(target: str, rule: set[str]) -> bool:
    return any(target == entry or target.startswith(entry + ".") or floor(target) == entry for entry in rule)


def test_every_floor_imports_only_the_floors_below_it():
    broken = []
    for module, path in modules().items():
        rule = MAY_IMPORT.get(floor(module))
        if rule is None:
            continue
        broken += [f"{module} (line {line}) imports {target}" for target, line, _ in project_imports(module, path)
                   if not allowed(target, rule)]
    assert broken == []


def test_no_import_cycle_at_module_level():
    graph = {module: {target for target, _, top in project_imports(module, path) if top and target != module}
             for module, path in modules().items()}
    state: dict[str, str] = {}

    def visit(module: str, trail: list[str]) -> None:
        state[module] = "open"
        for target in graph.get(module, ()):
            assert state.get(target) != "open", " -> ".join([*trail, module, target])
            if target not in state:
                visit(target, [*trail, module])
        state[module] = "done"

    for module in graph:
        if module not in state:
            visit(module, [])


def test_the_rule_catches_an_import_from_a_higher_floor(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("from ..train.finetune import finetune\nfrom ..evaluate.metrics import recall_at_k\n")
    found = project_imports("models.probe", probe)
    assert [target for target, _, _ in found] == ["train.finetune", "evaluate.metrics"]
    assert [allowed(target, MAY_IMPORT["models"]) for target, _, _ in found] == [False, False]
    assert allowed("evaluate.report", MAY_IMPORT["present"]) and not allowed("evaluate.ranking", MAY_IMPORT["present"])


def test_every_subpackage_says_what_it_holds_and_may_import_and_runs_no_code():
    for init in PACKAGE.glob("*/__init__.py"):
        tree = ast.parse(init.read_text())
        doc = ast.get_docstring(tree) or ""
        assert "Holds:" in doc and "May import:" in doc, init
        assert len(tree.body) == 1, f"{init} should hold its docstring only (importing a module stays light)"


def test_the_package_docstring_names_every_floor_and_entry_point():
    import ttl_utils

    names = {floor(module) for module in modules()} - {"utilities", "entry points"}
    names |= (UTILITIES | ENTRY_POINTS) - {"__init__", "__main__"}
    assert [name for name in sorted(names) if f"`{name}`" not in ttl_utils.__doc__] == []


def test_every_module_is_named_in_its_subpackage_s_docstring_and_the_readme_layout():
    readme = (PACKAGE.parent / "README.md").read_text()
    layout = readme[readme.index("## Layout"):]
    layout = layout[:layout.index("```", layout.index("```") + 3)]
    unnamed_init, unnamed_readme = [], []
    for module in sorted(PACKAGE.glob("**/*.py")):
        name = module.stem
        if name in ("__init__", "__main__"):
            continue
        if module.parent != PACKAGE and f"`{name}`" not in (module.parent / "__init__.py").read_text():
            unnamed_init.append(str(module.relative_to(PACKAGE)))
        if not re.search(rf"\b{name}\b", layout):
            unnamed_readme.append(str(module.relative_to(PACKAGE)))
    assert unnamed_init == [] and unnamed_readme == []


def test_no_function_is_over_60_lines():
    long = []
    for module, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 60:
                long.append(f"{module}.{node.name}: {node.end_lineno - node.lineno + 1} lines")
    assert long == []


def _loaded_after(code: str) -> list[str]:
    done = subprocess.run([sys.executable, "-c", f"{code}\nimport sys\nprint(' '.join(sorted(sys.modules)))"],
                          capture_output=True, text=True, check=True)
    return done.stdout.split()


def test_metrics_reports_findings_and_slides_load_neither_torch_nor_onnx_runtime(tmp_path):
    loaded = _loaded_after(f"import {', '.join(LIGHT)}\nfrom ttl_utils.present.slides import main\n"
                           f"main(['--figures', {str(tmp_path)!r}])")  # `make slides` (here without findings)
    assert [name for name in ("torch", "onnxruntime", "captum") if name in loaded] == []


@pytest.mark.slow
def test_find_loads_no_training_code():
    loaded = _loaded_after("import ttl_utils.find")
    assert "torch" in loaded  # it runs a model
    assert [name for name in loaded if name.startswith("ttl_utils.train.") and name != "ttl_utils.train.recipes"] == []


def test_an_installed_package_holds_every_subpackage():
    import tomllib

    settings = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert settings["packages"]["find"]["include"] == ["ttl_utils*"]  # a plain list would leave the subpackages out
    assert {init.parent.name for init in PACKAGE.glob("*/__init__.py")} == {
        "data", "models", "evaluate", "train", "explain", "present"}
