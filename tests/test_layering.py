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
GLUE = ("pipelines/", "pipeline_registry.py", "settings.py", "hooks.py", "tracking_hooks.py", "datasets/", "runners/")
GLUE_MODULES = ("streamguard.pipelines", "streamguard.pipeline_registry", "streamguard.settings")
# Library code that reads a Kedro project's catalog on purpose (``streamguard scan --project-dir``).
MAY_IMPORT_KEDRO = {"inference.py"}


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
