"""The dependency arrows point one way: from the Kedro glue down to the plain packages.

Library code (models, graphs, training, tracks, metrics, evaluation, stacking, scan, explain, ...)
must never import the pipeline registry, the pipelines or the Kedro settings, and must not import
Kedro at all, except the named places that open a project's catalog on purpose. Checked on the
source (every ``import`` statement, also those inside functions), so the layering cannot rot.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "streamguard"
GLUE = ("pipelines/", "pipeline_registry.py", "settings.py", "hooks/", "datasets/", "runners/")
GLUE_MODULES = ("streamguard.pipelines", "streamguard.pipeline_registry", "streamguard.settings")
# Library code that reads a Kedro project's catalog on purpose (``streamguard scan --project-dir``).
MAY_IMPORT_KEDRO = {"serving/scorer.py"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def _library_modules() -> list[tuple[str, set[str]]]:
    modules = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if not relative.startswith(GLUE):
            modules.append((relative, _imports(path)))
    return modules


def test_library_code_never_imports_the_kedro_glue():
    offenders = {
        module: sorted(name for name in names if name.startswith(GLUE_MODULES))
        for module, names in _library_modules()
        if any(name.startswith(GLUE_MODULES) for name in names)
    }
    assert not offenders, f"library modules importing pipelines / pipeline_registry / settings: {offenders}"


def test_library_code_does_not_depend_on_kedro():
    offenders = sorted(
        module
        for module, names in _library_modules()
        if module not in MAY_IMPORT_KEDRO and any(name == "kedro" or name.startswith("kedro.") for name in names)
    )
    assert not offenders, f"plain packages importing Kedro: {offenders}"


def test_the_checker_sees_imports_inside_functions(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from streamguard.pipeline_registry import configured_seeds\n    import kedro.io\n")
    names = _imports(probe)
    assert "streamguard.pipeline_registry" in names and "kedro.io" in names


LIBRARY_PACKAGES = ("runtime", "config", "data", "evaluation", "graphs", "training", "tracking", "models", "tracks",
                    "explain", "serving")
TOP_LEVEL_FILES = {"__init__.py", "console.py", "settings.py", "pipeline_registry.py"}


def _declared_imports(package: str) -> set[str]:
    """The packages a package's ``__init__`` docstring says it may import (its "May import:" line)."""
    import re

    docstring = ast.get_docstring(ast.parse((PACKAGE / package / "__init__.py").read_text(encoding="utf-8"))) or ""
    line = next((line for line in docstring.splitlines() if line.startswith("May import:")), None)
    assert line is not None, f"streamguard/{package}/__init__.py: the docstring lacks its 'May import:' line"
    return set(re.findall(r"\b(" + "|".join(LIBRARY_PACKAGES) + r")\b", line.removeprefix("May import:")))


def test_packages_import_only_what_their_docstring_allows():
    """The layering, one package at a time: every import of another streamguard package is declared."""
    offenders = {}
    for package in LIBRARY_PACKAGES:
        allowed = _declared_imports(package) | {package}
        for path in sorted((PACKAGE / package).rglob("*.py")):
            used = {name.split(".")[1] for name in _imports(path) if name.startswith("streamguard.") and "__" not in name}
            if used - allowed:
                offenders[path.relative_to(PACKAGE).as_posix()] = sorted(used - allowed)
    assert not offenders, f"imports the package docstrings do not allow: {offenders}"


def test_the_declared_layering_has_no_cycle():
    """Declared imports form a DAG, so 'may import' reads as a stack of layers."""
    graph = {package: _declared_imports(package) for package in LIBRARY_PACKAGES}
    done: set[str] = set()

    def visit(package: str, path: tuple[str, ...]) -> None:
        assert package not in path, f"import cycle: {' -> '.join(path + (package,))}"
        if package not in done:
            for target in graph[package]:
                visit(target, path + (package,))
            done.add(package)

    for package in graph:
        visit(package, ())


def test_the_top_level_is_packages_plus_kedros_conventional_files():
    loose = {path.name for path in PACKAGE.glob("*.py")} - TOP_LEVEL_FILES
    assert not loose, f"modules at the top of src/streamguard (put them in the package that owns them): {sorted(loose)}"
    for folder in PACKAGE.iterdir():
        if folder.is_dir() and folder.name != "__pycache__":
            assert (folder / "__init__.py").exists(), f"{folder.name}/ lacks an __init__.py with its docstring"
