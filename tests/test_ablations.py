"""benchmarks/ablations.py: the report from fabricated results (fast), and a --quick smoke run.

No quality is asserted in the smoke run (one epoch of tiny models on 160 generated rows): it
checks that the variants still drive `kedro run` per track (normalised-data copy, list-valued
edge types, a run inside the reference copy) and that the table has a row per variant and track.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from conftest import run_benchmark_script

PROJECT_ROOT = Path(__file__).resolve().parents[1]
ABLATIONS = PROJECT_ROOT / "benchmarks" / "ablations.py"


@pytest.fixture(scope="module")
def ablations():
    sys.path.insert(0, str(ABLATIONS.parent))
    spec = importlib.util.spec_from_file_location("ablations_under_test", ABLATIONS)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def _entry(auc: float, seeds: int = 2, labels=(0, 1, 0, 1, 1, 0), probs=(0.2, 0.7, 0.4, 0.6, 0.9, 0.1)):
    block = {"roc_auc": auc, "pr_auc": auc - 0.05, "f1": 0.6, "accuracy": 0.58, "accuracy_at_0_5": 0.57, "threshold": 0.4}
    return {"per_seed": [block] * seeds, "ensemble": {**block, "roc_auc": auc + 0.01}, "best_epoch": [1] * seeds,
            "test_idx": list(range(len(labels))), "test_label": list(labels), "test_prob": list(probs)}


def test_report_rows_deltas_and_ensemble_section(ablations):
    tracks = {"baseline": _entry(0.63, seeds=1), "transformer": _entry(0.62), "gnn": _entry(0.59), "fusion": _entry(0.63)}
    results = {
        "reference": {"tracks": tracks, "track_s": {"transformer": 100.0}, "wall_s": 200.0, "finished": "t",
                      "runtime_params": "x=1", "params": {"train_rows": 6}},
        "edges_ast_only": {"tracks": {"gnn": _entry(0.61, probs=(0.1, 0.8, 0.3, 0.7, 0.9, 0.2))}, "track_s": {"gnn": 50.0},
                           "wall_s": 60.0, "finished": "t2", "runtime_params": "y=2", "params": {}},
    }
    args = ablations.parse_args(["--quick"])
    report = ablations.build_report(args, results, {"tok": {"vocab": 600, "mean_tokens": 120.0, "truncated": 0.25}})
    assert "| reference | `reference` | transformer |" in report
    row = next(line for line in report.splitlines() if "`edges_ast_only` | gnn" in line)
    assert "| +0.020 | +0.000 |" in row  # per-seed mean ROC-AUC 0.61 vs 0.59, F1 unchanged
    assert "[" in row and "]" in row  # paired bootstrap interval on the same test rows
    assert "## Seed ensemble against the per-seed mean" in report and "| `reference` | gnn | 0.590 | 0.600 | +0.010 |" in report
    assert "| tok | 600 | 120 | 25.0 % |" in report
    # Each deep row also says where its ensemble stands against the baseline, on the same test rows.
    import re

    intervals = re.compile(r"[+-]\d\.\d{3} \[[+-]\d\.\d{3}, [+-]\d\.\d{3}\]")
    assert len(intervals.findall(row)) == 2
    reference_gnn = next(line for line in report.splitlines() if "`reference` | gnn" in line)
    assert len(intervals.findall(reference_gnn)) == 1 and "(reference)" in reference_gnn
    assert "Not run:" in report and "tok_vocab_1000" in report


def test_variants_are_logged_as_comparable_mlflow_runs(ablations, tmp_path):
    import mlflow

    tracks = {"baseline": _entry(0.63, seeds=1), "transformer": _entry(0.62), "gnn": _entry(0.59), "fusion": _entry(0.63)}
    results = {
        "reference": {"tracks": tracks, "track_s": {"gnn": 100.0}, "runtime_params": "x=1"},
        "edges_ast_only": {"tracks": {"gnn": _entry(0.61, probs=(0.1, 0.8, 0.3, 0.7, 0.9, 0.2))}, "track_s": {"gnn": 50.0}},
    }
    uri = f"sqlite:///{tmp_path / 'ablations.db'}"
    assert len(ablations.log_to_mlflow(results, uri)) == 5  # 4 reference tracks + 1 variant track
    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("streamguard-ablations")
    runs = {run.info.run_name: run for run in client.search_runs([experiment.experiment_id])}
    variant = runs["edges_ast_only / gnn"].data
    assert variant.params["variant"] == "edges_ast_only" and variant.metrics["wall_s"] == 50.0
    assert variant.metrics["test_roc_auc"] == pytest.approx(0.61)
    assert variant.metrics["ensemble_roc_auc_vs_reference_low"] <= variant.metrics["ensemble_roc_auc_vs_reference"]
    assert "ensemble_roc_auc_vs_baseline" in variant.metrics
    assert "ensemble_roc_auc_vs_reference" not in runs["reference / gnn"].data.metrics


def test_paired_bootstrap_is_zero_for_identical_scores(ablations):
    labels, probs = [0, 1] * 20, [0.1 * (i % 10) for i in range(40)]
    point, low, high = ablations.paired_bootstrap(labels, probs, probs, rounds=50)
    assert point == low == high == 0.0


def test_edge_type_variants_pass_lists_as_runtime_params(ablations):
    edges = {v.name: v.extra_params["graphs"]["edge_types"] for v in ablations.VARIANTS if v.name.startswith("edges_")}
    assert edges == {"edges_ast_only": ["ast"], "edges_no_next_token": ["ast", "control_flow", "data_flow"],
                     "edges_ast_next_token": ["ast", "next_token"]}
    runtime = ablations._merge({"graphs": {"max_nodes": 512}}, {"graphs": {"edge_types": ["ast"]}})
    assert runtime == {"graphs": {"max_nodes": 512, "edge_types": ["ast"]}}


def test_every_variant_override_names_an_existing_parameter(ablations, project_copy):
    """A misspelt dotted override (``gnn.hiden_dim=64``) would add a key nothing reads: the variant
    would silently rerun the reference."""
    from kedro.config import OmegaConfigLoader

    from streamguard import settings

    params = OmegaConfigLoader(str(project_copy / "conf"), **settings.CONFIG_LOADER_ARGS)["parameters"]
    checked = 0
    for variant in ablations.VARIANTS:
        for override in variant.params:
            key = override.split("=", 1)[0]
            if key == "preset":
                continue
            node = params
            for part in key.split("."):
                assert isinstance(node, dict) and part in node, f"{variant.name}: {key} is not a parameter"
                node = node[part]
            checked += 1
    assert checked >= 8  # the class-weight, GGNN and GNN-width variants at least


def test_normalised_copies_of_the_reference_rows(ablations, tmp_path):
    import gzip
    import json

    import pandas as pd

    primary = tmp_path / "reference" / "data" / "03_primary"
    primary.mkdir(parents=True)
    for split in ("train", "valid", "test"):
        pd.DataFrame({"idx": [1, 2], "func": ["int f(int a) { return g(a); }", "void h(void) { free(p); }"],
                      "target": [1, 0], "project": ["qemu", "FFmpeg"]}).to_parquet(primary / f"{split}_functions.parquet")
    runtime = ablations.normalised_data(tmp_path / "reference", tmp_path / "idnorm")
    assert runtime["data_processing"]["source"] == "jsonl" and "sample_per_split" not in runtime["data_processing"]
    path = Path(runtime["data_processing"]["paths"]["train"])
    rows = [json.loads(line) for line in gzip.open(path, "rt")]
    assert rows == [
        {"idx": 1, "func": "int FUNC_1(int VAR_1) { return FUNC_2(VAR_1); }", "target": 1, "project": "qemu"},
        {"idx": 2, "func": "void FUNC_1(void) { free(VAR_1); }", "target": 0, "project": "FFmpeg"},
    ]


def test_unknown_variant_is_refused(ablations, capsys):
    with pytest.raises(SystemExit):
        ablations.parse_args(["--variants", "reference,nope"])
    assert "unknown variant" in capsys.readouterr().err


def test_in_reference_variants_copy_the_reference_data_without_their_own_tracks(ablations, tmp_path):
    source = tmp_path / "ref"
    for relative in ("data/03_primary/train_functions.parquet", "data/06_models/transformer/seed_0/checkpoint.pt",
                     "data/06_models/fusion/seed_0/checkpoint.pt", "data/08_reporting/fusion/seed_0/metrics.json",
                     "data/07_model_output/gnn/seed_0/test_logits.parquet"):
        (source / relative).parent.mkdir(parents=True, exist_ok=True)
        (source / relative).write_text(relative)
    ablations.copy_reference_data(source, tmp_path / "variant", ["fusion"])
    copied = sorted(p.relative_to(tmp_path / "variant").as_posix() for p in (tmp_path / "variant").rglob("*") if p.is_file())
    assert copied == ["data/03_primary/train_functions.parquet", "data/06_models/transformer/seed_0/checkpoint.pt",
                      "data/07_model_output/gnn/seed_0/test_logits.parquet"]


@pytest.mark.slow
def test_ablations_quick_runs_and_reports_each_variant(tmp_path: Path):
    out = tmp_path / "ablations.md"
    variants = "reference,fusion_finetune"  # the normalised-data path is tested without kedro below
    # cwd: nothing may land in the caller's folder or the repository
    completed = run_benchmark_script(
        ABLATIONS, "--quick", "--variants", variants, "--workdir", str(tmp_path / "work"), "--out", str(out), cwd=tmp_path
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = out.read_text()
    assert report in completed.stdout
    for row in ("| `reference` | baseline |", "| `reference` | transformer |", "| `reference` | gnn |", "| `reference` | fusion |",
                "| `fusion_finetune` | fusion |"):
        assert row in report, row
    assert "## Tokenizers" in report and "identifiers normalised" in report
    assert "Not run:" in report and "tok_vocab_1000" in report
    assert not list(tmp_path.glob("data")) and not (tmp_path / "mlflow.db").exists()

    # A finished run as the reference (nothing re-trained), and a variant on a copy of its data.
    again = tmp_path / "again.md"
    completed = run_benchmark_script(
        ABLATIONS, "--quick", "--reference-from", str(tmp_path / "work" / "reference"), "--variants", "fusion_lexical",
        "--workdir", str(tmp_path / "work2"), "--out", str(again), cwd=tmp_path,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = again.read_text()
    assert "reference imported from the finished run" in report and "| `fusion_lexical` | fusion |" in report
    assert "[reference] re" not in completed.stdout and "reference: kedro run" not in completed.stdout
    assert (tmp_path / "work" / "reference" / "data" / "06_models" / "fusion").is_dir()  # the reference's own files stay
