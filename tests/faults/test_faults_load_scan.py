"""benchmarks/load_scan.py without a trained project: the tree it writes is exactly what the scan finds,
and bad arguments stop it with a usage error (the full run needs a trained project: see its docstring)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from streamguard.data.extract import extract_functions, iter_source_files

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "load_scan.py"


@pytest.fixture(scope="module")
def load_scan():
    spec = importlib.util.spec_from_file_location("load_scan_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_tree_is_found_function_for_function(load_scan, tmp_path: Path) -> None:
    files = load_scan.generate_tree(tmp_path / "tree", functions=120, per_file=7, seed=1)
    paths = list(iter_source_files([str(tmp_path / "tree")]))
    assert files == len(paths) == 18  # ceil(120 / 7)
    found, problems = 0, []
    for path in paths:
        records, file_problems = extract_functions(path)
        found += len(records)
        problems += file_problems
    assert found == 120 and problems == []


@pytest.mark.parametrize(
    "argv",
    [
        ["--functions", "10"],  # neither --project-dir nor --make-tiny-project
        ["--project-dir", ".", "--make-tiny-project", "x"],
        ["--project-dir", ".", "--functions", "0"],
    ],
)
def test_bad_arguments_are_usage_errors(load_scan, argv: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        load_scan.main(argv)
    assert exit_info.value.code == 2 and "error:" in capsys.readouterr().err
