"""The project notebook runs headless, end to end, on a tiny copy of the project (so it cannot rot).

nbclient executes ``notebooks/streamguard.ipynb`` in a kernel started with this interpreter (the
venv's), with ``STREAMGUARD_PROJECT`` pointing at a throwaway copy of the project and MLflow logging
into that copy. A probe cell appended after the notebook's own cells hands the notebook's tables
back as JSON, and the test checks them against the files and MLflow runs the notebook produced.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

import pytest
import yaml

from conftest import PROJECT_ROOT, make_project_copy

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOK = PROJECT_ROOT / "notebooks" / "streamguard.ipynb"
TRACKS = ("transformer", "gnn", "fusion")
SEEDS = (0, 1)

# TINY_LOCAL_PARAMETERS cut further: two seeds (so "many seeds" and the ensembles mean something)
# and the smallest models that still train; the whole notebook runs in well under a minute.
NOTEBOOK_LOCAL_PARAMETERS = """
seeds: [0, 1]
cpu_threads: 1
data_processing:
  generator: {n_train: 120, n_valid: 48, n_test: 48, seed: 3}
transformer:
  max_length: 64
  vocab_size: 400
  training: {epochs: 1, batch_size: 32, progress: false}
gnn:
  hidden_dim: 8
  num_layers: 1
  training: {epochs: 1, batch_size: 64, progress: false}
fusion:
  hidden_dim: 8
  training: {epochs: 1, progress: false}
"""

PROBE = """
import json
print("PROBE" + json.dumps({
    "cwd": str(Path.cwd()),
    "has_baseline": "baseline" in pipelines,
    "presets": preset_table.to_dict(orient="records"),
    "summary": summary.to_dict(orient="records"),
    "final_report_table": final_report_table.to_dict(orient="records"),
}, default=str))
"""


def _kernel_manager(kernels_dir: Path):
    """A kernel on *this* interpreter, whatever kernelspecs the user or system has installed."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    spec_dir = kernels_dir / "streamguard-test"
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "StreamGuard test kernel",
                "language": "python",
            }
        )
    )
    specs = KernelSpecManager(kernel_dirs=[str(kernels_dir)], ensure_native_kernel=False)
    return KernelManager(kernel_name="streamguard-test", kernel_spec_manager=specs)


def _outputs_text(cell) -> str:
    parts = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            parts.append(output.get("text", ""))
        for mime in ("text/plain", "text/html"):
            parts.append(output.get("data", {}).get(mime, ""))
    return "\n".join(parts)


@pytest.fixture(scope="module")
def executed(tmp_path_factory, monkeypatch_module):
    project = make_project_copy(tmp_path_factory.mktemp("nbproject"), NOTEBOOK_LOCAL_PARAMETERS)
    monkeypatch_module.setenv("STREAMGUARD_PROJECT", str(project))
    monkeypatch_module.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{project / 'mlflow.db'}")
    monkeypatch_module.setenv("OMP_NUM_THREADS", "1")
    monkeypatch_module.setenv("MPLBACKEND", "Agg")

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell(PROBE))
    client = nbclient.NotebookClient(
        notebook,
        km=_kernel_manager(tmp_path_factory.mktemp("kernels")),
        timeout=300,
        # Start where a user opens it: the kernel's working directory is notebooks/.
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    client.execute()
    probe = [line for line in _outputs_text(notebook.cells[-1]).splitlines() if line.startswith("PROBE")]
    assert probe, _outputs_text(notebook.cells[-1])
    return project, notebook, json.loads(probe[0][len("PROBE") :])


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_committed_notebook_has_no_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, "clear the notebook's outputs before committing"


@pytest.mark.slow
def test_notebook_runs_on_the_project_it_is_pointed_at(executed):
    project, _, probe = executed
    assert Path(probe["cwd"]).resolve() == project.resolve()


@pytest.mark.slow
def test_preset_cell_lists_every_preset_from_conf(executed):
    _, _, probe = executed
    listed = {(row["track"], row["preset"]): row for row in probe["presets"]}
    for track in TRACKS:
        conf = yaml.safe_load((PROJECT_ROOT / "conf" / "base" / f"parameters_{track}.yml").read_text())
        presets = conf[f"{track}_presets"]
        assert {name for (t, name) in listed if t == track} == set(presets)
        first = next(iter(presets))
        assert listed[(track, first)]["default"] is True
        for name, preset in presets.items():
            assert listed[(track, name)]["description"] == preset["description"]


@pytest.mark.slow
def test_runs_write_every_seed_and_ensemble(executed):
    project, _, _ = executed
    reporting = project / "data" / "08_reporting"
    for track in TRACKS:
        for seed in SEEDS:
            assert (reporting / track / f"seed_{seed}" / "metrics.json").is_file()
            assert (project / "data" / "06_models" / track / f"seed_{seed}" / "checkpoint.pt").is_file()
        assert (reporting / track / "ensemble_metrics.json").is_file()
    assert (reporting / "final_report.csv").is_file()
    assert not (PROJECT_ROOT / "notebooks" / "data").exists(), "outputs must land in the project, not notebooks/"


@pytest.mark.slow
def test_summary_table_comes_from_the_metrics_files(executed):
    project, notebook, probe = executed
    rows = {(row["track"], row["model"]): row for row in probe["summary"]}
    expected = {(track, f"seed_{seed}") for track in TRACKS for seed in SEEDS} | {(t, "ensemble") for t in TRACKS}
    if probe["has_baseline"]:
        expected.add(("baseline", "seed_0"))
    assert set(rows) == expected

    reporting = project / "data" / "08_reporting"
    for track in TRACKS:
        for seed in SEEDS:
            metrics = json.loads((reporting / track / f"seed_{seed}" / "metrics.json").read_text())
            row = rows[(track, f"seed_{seed}")]
            assert row["test_f1"] == pytest.approx(metrics["test"]["f1"])
            assert row["valid_f1_at_best"] == pytest.approx(metrics["f1_at_best_threshold"])
            assert row["threshold"] == pytest.approx(metrics["best_threshold_by_f1"])
        ensemble = json.loads((reporting / track / "ensemble_metrics.json").read_text())
        assert ensemble["num_seeds_with_logits"] == len(SEEDS)
        assert rows[(track, "ensemble")]["test_f1"] == pytest.approx(ensemble["test"]["f1"])

    if probe["has_baseline"]:
        metrics = json.loads((reporting / "baseline" / "seed_0" / "metrics.json").read_text())
        assert rows[("baseline", "seed_0")]["test_f1"] == pytest.approx(metrics["test"]["f1"])

    report = {(row["track"], row["model"]) for row in probe["final_report_table"]}
    assert {(t, m) for t in TRACKS for m in ("seeds mean", "seeds std", "ensemble")} <= report

    # The summary cell displays the table.
    summary_cell = next(cell for cell in notebook.cells if cell.cell_type == "code" and "SUMMARY_COLUMNS" in cell.source)
    shown = _outputs_text(summary_cell)
    assert all(track in shown for track in TRACKS) and "ensemble" in shown and "test_f1" in shown


@pytest.mark.slow
def test_each_run_is_one_mlflow_run_and_the_preset_is_tagged(executed):
    project, _, probe = executed
    with sqlite3.connect(project / "mlflow.db") as db:
        runs = db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
        presets = [value for (value,) in db.execute("SELECT value FROM tags WHERE key = 'preset'")]
    # data_processing, one seed, three tracks, baseline (when registered), ensemble
    assert runs == 6 + probe["has_baseline"]
    # Every run is tagged: the one run with `preset=fusion_balanced` by it, the others `default`.
    assert sorted(presets) == ["default"] * (runs - 1) + ["fusion_balanced"]


@pytest.mark.slow
def test_which_lines_cell_shows_the_line_report(executed):
    project, notebook, _ = executed
    cell = next(cell for cell in notebook.cells if cell.cell_type == "code" and "line_report_html" in cell.source)
    shown = "".join(output.get("data", {}).get("text/html", "") for output in cell.get("outputs", []))
    page = (project / "data" / "08_reporting" / "line_report.html").read_text(encoding="utf-8")
    assert shown.strip() == page.strip()
    assert page.count('<table class="sg-lines">') == 3 and "P(vulnerable)" in page
    assert len(list((project / "data" / "08_reporting" / "line_report").glob("*.png"))) == 3
