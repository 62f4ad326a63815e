"""Model quality: every deep track over several seeds, their ensembles and the lexical baseline.

    python benchmarks/quality.py --data generated                        # embedded generator, 1200/300/300
    python benchmarks/quality.py --data devign --data-dir ../shared/data/devign \\
        --sample-train 2500 --sample-valid 1000 --sample-test 1000 --seeds 0 1
    python benchmarks/quality.py --quick                                 # smoke run (tiny data, tiny models)

What it runs is what a user runs: ``kedro run`` (the ``__default__`` pipeline: data_processing,
baseline, transformer, gnn, fusion, ensemble) through a KedroSession in a throwaway copy of the
project's conf, with seeds and the CPU-sized model settings in the copy's
``conf/local/parameters.yml`` and the data choice as runtime params (the same dotted
``--params`` a user passes). Nothing in the repository is written except ``--out``.

It prints (and writes to ``--out``, default ``benchmarks/results/quality_<data>.md``) a Markdown
report: test accuracy (at 0.5, as CodeXGLUE reports it, and at the validation-chosen threshold),
F1 at the validation-chosen threshold, ROC-AUC and PR-AUC, per-seed mean ± std and seed ensemble
for transformer, gnn and fusion, the TF-IDF + logistic-regression baseline on the same split,
the published CodeXGLUE Devign test accuracies, whether each deep model beats the baseline, the
duplicate report, the same numbers with cross-split duplicates removed from test, and wall times.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEEP_TRACKS = ("transformer", "gnn", "fusion")

# CodeXGLUE Defect detection (Devign), test accuracy (%), from the CodeXGLUE leaderboard / paper.
PUBLISHED_DEVIGN_ACCURACY: tuple[tuple[str, float], ...] = (
    ("BiLSTM", 59.37),
    ("TextCNN", 60.69),
    ("RoBERTa", 61.05),
    ("CodeBERT", 62.08),
    ("CoTexT", 66.62),
)

# CPU-sized model settings, written to the copy's conf/local/parameters.yml. "cpu" keeps the
# project's default presets (transformer_cpu_fast, gnn_cpu_fast, fusion_balanced) with progress
# bars off; "quick" is a smoke configuration (tiny models, one epoch, one seed by default).
CPU_LOCAL = """
transformer:
  training: {progress: false}
gnn:
  training: {progress: false}
fusion:
  training: {progress: false}
"""
QUICK_LOCAL = """
transformer:
  max_length: 128
  vocab_size: 600
  training: {epochs: 1, batch_size: 16, progress: false}
gnn:
  hidden_dim: 16
  num_layers: 2
  training: {epochs: 1, batch_size: 32, progress: false}
fusion:
  hidden_dim: 16
  training: {epochs: 1, progress: false}
"""
QUICK_SIZES = (160, 60, 60)


# --------------------------------------------------------------------------------------------
# Running the project
# --------------------------------------------------------------------------------------------


def make_project_copy(destination: Path, local_parameters: str, refresh: bool = False) -> Path:
    """A throwaway copy of the project's conf; data, mlflow.db and mlruns land inside it.

    ``refresh`` updates the conf of an existing copy (resuming an interrupted benchmark) and keeps its data.
    """
    if refresh:
        shutil.rmtree(destination / "conf")
    shutil.copytree(PROJECT_ROOT / "conf", destination / "conf", ignore=shutil.ignore_patterns("local"))
    (destination / "conf" / "local").mkdir()
    (destination / "conf" / "local" / "parameters.yml").write_text(local_parameters, encoding="utf-8")
    shutil.copy(PROJECT_ROOT / "pyproject.toml", destination / "pyproject.toml")
    (destination / "src").mkdir(exist_ok=True)  # Kedro's bootstrap checks it exists; the package is installed (-e)
    return destination


class NodeTimer:
    """A Kedro hook recording each node's wall time."""

    def __init__(self) -> None:
        self.started: dict[str, float] = {}
        self.seconds: dict[str, float] = {}

    def _hooks(self):
        from kedro.framework.hooks import hook_impl

        timer = self

        class Hooks:
            @hook_impl
            def before_node_run(self, node: Any) -> None:
                timer.started[node.name] = time.perf_counter()

            @hook_impl
            def after_node_run(self, node: Any) -> None:
                timer.seconds[node.name] = time.perf_counter() - timer.started.pop(node.name)

        return Hooks()


def stage_of(node_name: str) -> str:
    """Group node names into stages: data_processing, baseline, pretraining, transformer, gnn, fusion, ensemble."""
    head = node_name.split(".", 1)[0]
    if head in ("baseline", "pretraining", *DEEP_TRACKS, "ensemble"):
        return head
    if node_name.endswith("build_graphs"):
        return "gnn"
    return "data_processing"


def stage_seconds(node_seconds: Mapping[str, float]) -> dict[str, float]:
    """Node wall times summed per stage (``stage_of``)."""
    stages: dict[str, float] = {}
    for name, seconds in node_seconds.items():
        stages[stage_of(name)] = stages.get(stage_of(name), 0.0) + seconds
    return stages


def run_project(
    project: Path,
    runtime_params: Mapping[str, Any],
    pipeline_names: Sequence[str] | None = None,
    runner: Any = None,
    namespaces: Sequence[str] | None = None,
) -> tuple[float, dict[str, float], dict[str, Any]]:
    """``kedro run`` in ``project`` (the ``__default__`` pipeline, or ``kedro run --pipeline a --pipeline b``
    for ``pipeline_names``); returns total wall seconds, seconds per node and the effective parameters
    (after presets, conf/local and runtime params); ``runner``: a Kedro runner instance (default sequential),
    or a zero-argument factory called in the project once it is bootstrapped, where ``kedro run`` builds
    its runner (``DaskRunner(warm_start=True)`` starts its workers there, in the project's folder);
    ``namespaces``: only those namespaces' nodes (``kedro run --namespaces``), e.g. one seed.
    Reused by ``benchmarks/ablations.py`` and ``benchmarks/main_job.py``."""
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    timer = NodeTimer()
    previous = Path.cwd()
    os.chdir(project)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{project / 'mlflow.db'}"
    started = time.perf_counter()
    try:
        bootstrap_project(project)
        from kedro.runner import AbstractRunner

        if runner is not None and not isinstance(runner, AbstractRunner):
            runner = runner()
        with KedroSession.create(project_path=project, runtime_params=dict(runtime_params)) as session:
            session._hook_manager.register(timer._hooks())  # noqa: SLF001 (timing only; Kedro has no public API)
            params = session.load_context().params
            session.run(
                pipeline_names=list(pipeline_names) if pipeline_names else None,
                runner=runner,
                namespaces=list(namespaces) if namespaces else None,
            )
    finally:
        os.chdir(previous)
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    return time.perf_counter() - started, timer.seconds, params


def project_params(project: Path, runtime_params: Mapping[str, Any]) -> dict[str, Any]:
    """The effective parameters of the project folder ``project`` (presets, conf/local, runtime params), run nothing."""
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    previous = Path.cwd()
    os.chdir(project)
    try:
        bootstrap_project(project)
        with KedroSession.create(project_path=project, runtime_params=dict(runtime_params)) as session:
            return session.load_context().params
    finally:
        os.chdir(previous)


def config_lines(params: Mapping[str, Any]) -> list[str]:
    """The model settings that decide cost and quality, as the run resolved them."""
    t, g, f, b = (params.get(k, {}) for k in ("transformer", "gnn", "fusion", "baseline"))
    tt, gt, ft = t.get("training", {}), g.get("training", {}), f.get("training", {})
    return [
        f"- transformer: preset `{t.get('preset')}`, model `{t.get('model_name')}`, max_length {t.get('max_length')}, "
        f"epochs {tt.get('epochs')} (patience {tt.get('early_stopping_patience')}), batch {tt.get('batch_size')}, lr {tt.get('lr')}",
        f"- gnn: preset `{g.get('preset')}`, {g.get('arch')} × {g.get('num_layers')} layers, hidden {g.get('hidden_dim')}, "
        f"epochs {gt.get('epochs')} (patience {gt.get('early_stopping_patience')}), lr {gt.get('lr')}",
        f"- fusion: preset `{f.get('preset')}`, hidden {f.get('hidden_dim')}, frozen encoders "
        f"{bool(f.get('freeze_transformer')) and bool(f.get('freeze_gnn'))}, epochs {ft.get('epochs')}, lr {ft.get('lr')}",
        f"- baseline: n-grams {b.get('ngram_range')}, min_df {b.get('min_df')}, C grid {b.get('c_grid')}, "
        f"chosen by valid {b.get('select_by')}",
    ]


def dotted_params(items: Sequence[str]) -> dict[str, Any]:
    """``["a.b=1", "c=x"]`` -> nested dict, exactly as ``kedro run --params`` parses them."""
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.from_dotlist(list(items))) if items else {}


# --------------------------------------------------------------------------------------------
# Reading results
# --------------------------------------------------------------------------------------------


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def collect(project: Path, seeds: Sequence[int]) -> dict[str, Any]:
    """metrics.json and logits of every seed, ensemble and the baseline, as the run wrote them."""
    import pandas as pd

    reporting, outputs = project / "data/08_reporting", project / "data/07_model_output"
    result: dict[str, Any] = {"per_seed": {}, "ensembles": {}, "logits": {}, "seeds_of": {}}
    for track in DEEP_TRACKS:
        # Only what the run finished: an interrupted benchmark reports the seeds and tracks it has.
        done = [s for s in seeds if (reporting / f"{track}/seed_{s}/metrics.json").exists()
                and all((outputs / f"{track}/seed_{s}/{split}_logits.parquet").exists() for split in ("valid", "test"))]
        result["seeds_of"][track] = done
        result["per_seed"][track] = [read_json(reporting / f"{track}/seed_{s}/metrics.json") for s in done]
        for s in done:
            result["logits"][(track, f"seed_{s}")] = {
                split: pd.read_parquet(outputs / f"{track}/seed_{s}/{split}_logits.parquet") for split in ("valid", "test")
            }
        if (reporting / f"{track}/ensemble_metrics.json").exists():
            result["ensembles"][track] = read_json(reporting / f"{track}/ensemble_metrics.json")
            result["logits"][(track, "ensemble")] = {
                split: pd.read_parquet(outputs / f"{track}/ensemble_{split}_logits.parquet") for split in ("valid", "test")
            }
    stacked = reporting / "stacked/ensemble_metrics.json"
    if stacked.exists() and read_json(stacked).get("enabled", True):
        result["ensembles"]["stacked"] = read_json(stacked)
        result["logits"][("stacked", "ensemble")] = {
            split: pd.read_parquet(outputs / f"stacked/ensemble_{split}_logits.parquet") for split in ("valid", "test")
        }
    result["baseline"] = read_json(reporting / "baseline/seed_0/metrics.json")
    result["logits"][("baseline", "seed_0")] = {
        split: pd.read_parquet(outputs / f"baseline/seed_0/{split}_logits.parquet") for split in ("valid", "test")
    }
    result["data_report"] = read_json(reporting / "data_processing/data_report.json")
    result["splits"] = {
        split: pd.read_parquet(project / f"data/03_primary/{split}_functions.parquet") for split in ("train", "valid", "test")
    }
    return result


def test_duplicates(splits: Mapping[str, Any]) -> set[int]:
    """idx of test rows whose normalised text also occurs in train or valid."""
    from streamguard.data.dedup import drop_cross_split_duplicates

    _, dropped = drop_cross_split_duplicates(splits)
    return set(dropped.loc[dropped["split"] == "test", "idx"].astype(int))


def rescored(results: Mapping[str, Any], drop_idx: set[int], seeds: Sequence[int]) -> dict[str, Any]:
    """The same models scored on test without ``drop_idx``; thresholds still chosen on (unchanged) valid."""
    from streamguard.evaluation.scoring import metrics_from_logits

    sweep = results["baseline"].get("sweep")
    info = results["baseline"].get("baseline")

    def score(key: tuple[str, str], **extra: Any) -> dict:
        frames = results["logits"][key]
        test = frames["test"][~frames["test"]["idx"].isin(drop_idx)].reset_index(drop=True)
        return metrics_from_logits(frames["valid"], test, sweep, **extra)

    return {
        "per_seed": {track: [score((track, f"seed_{s}"), seed=s) for s in results["seeds_of"][track]] for track in DEEP_TRACKS},
        "ensembles": {
            track: {**score((track, "ensemble")), "num_seeds_with_logits": results["ensembles"][track].get("num_seeds_with_logits")}
            for track in results["ensembles"]
        },
        "baseline": score(("baseline", "seed_0"), **({"baseline": info} if info else {})),
    }


# --------------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------------

# (header, key in the metrics' test block); accuracies are shown in %, as published.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("test acc @0.5", "accuracy_at_0_5"),
    ("test acc @thr", "accuracy"),
    ("test F1 @thr", "f1"),
    ("test ROC-AUC", "roc_auc"),
    ("test PR-AUC", "pr_auc"),
)


def _fmt(values: Sequence[float], percent: bool = False) -> str:
    from streamguard.evaluation.metrics import mean_std

    scale = 100.0 if percent else 1.0
    digits = 2 if percent else 3
    if len(values) == 1:
        return f"{values[0] * scale:.{digits}f}"
    mean, std = mean_std(values)
    return f"{mean * scale:.{digits}f} ± {std * scale:.{digits}f}"


def _cells(metrics: Sequence[Mapping[str, Any]]) -> list[str]:
    cells = []
    for header, key in COLUMNS:
        cells.append(_fmt([m["test"][key] for m in metrics], percent=header.startswith("test acc")))
    return cells


def _beats(metrics: Sequence[Mapping[str, Any]], baseline: Mapping[str, Any]) -> str:
    from streamguard.evaluation.metrics import mean_std

    verdicts = []
    for key in ("roc_auc", "f1"):
        mean, _ = mean_std([m["test"][key] for m in metrics])
        verdicts.append("yes" if mean > baseline["test"][key] else "**NO**")
    return " / ".join(verdicts)


def results_table(scored: Mapping[str, Any], published: bool, published_note: str,
                  deltas: Mapping[str, Mapping[str, float]] | None = None) -> str:
    """``deltas``: per ensemble row (track name), the paired-bootstrap ROC-AUC difference to the baseline."""
    deltas = deltas or {}
    header = "| model | seeds | " + " | ".join(h for h, _ in COLUMNS) + " | beats baseline (ROC-AUC / F1) | ROC-AUC − baseline [95 % CI] |"
    lines = [header, "|---|---|" + "---|" * (len(COLUMNS) + 2)]
    baseline = scored["baseline"]
    chosen = f" (C={baseline['baseline']['C']:g})" if "baseline" in baseline else ""
    lines.append(f"| baseline: TF-IDF + logistic regression{chosen} | – | " + " | ".join(_cells([baseline])) + " | (reference) | |")
    p = baseline["test"]["num_positive"] / baseline["test"]["num_samples"]
    lines.append(f"| trivial: flag every function vulnerable | – | {100 * p:.2f} | {100 * p:.2f} | {2 * p / (1 + p):.3f} "
                 f"| 0.500 | {p:.3f} | – | |")
    for track in DEEP_TRACKS:
        seeds = scored["per_seed"][track]
        if not seeds:
            lines.append(f"| {track} | 0 | not finished in this run (`--keep DIR --resume` continues it) |" + " |" * (len(COLUMNS) + 1))
            continue
        lines.append(f"| {track}, per seed (mean ± std) | {len(seeds)} | " + " | ".join(_cells(seeds)) + f" | {_beats(seeds, baseline)} | |")
        ensemble = scored["ensembles"].get(track)
        if ensemble is None:
            continue
        lines.append(
            f"| {track}, seed ensemble | {ensemble['num_seeds_with_logits']} | "
            + " | ".join(_cells([ensemble])) + f" | {_beats([ensemble], baseline)} | {_delta_cell(deltas.get(track))} |"
        )
    if "stacked" in scored["ensembles"]:
        stacked = scored["ensembles"]["stacked"]
        inputs = "+".join(stacked.get("inputs", [])) or "tracks"
        lines.append(
            f"| stacked ({inputs}), meta-model fitted on valid | – | "
            + " | ".join(_cells([stacked])) + f" | {_beats([stacked], baseline)} | {_delta_cell(deltas.get('stacked'))} |"
        )
    if published:
        for name, accuracy in PUBLISHED_DEVIGN_ACCURACY:
            lines.append(f"| {name} (CodeXGLUE Devign, published{published_note}) | – | {accuracy:.2f} | – | – | – | – | – | |")
    return "\n".join(lines)


def _delta_cell(delta: Mapping[str, float] | None) -> str:
    if not delta:
        return "n/a"
    verdict = " **above 0**" if delta["low"] > 0 else (" below 0" if delta["high"] < 0 else "")
    return f"{delta['delta']:+.3f} [{delta['low']:+.3f}, {delta['high']:+.3f}]{verdict}"


def bootstrap_deltas(results: Mapping[str, Any], drop_idx: set[int] | None = None) -> dict[str, dict[str, float]]:
    """Paired-bootstrap ROC-AUC difference of every ensemble (and the stacked model) to the baseline on test."""
    from streamguard.evaluation.scoring import compare_to_reference

    def test_of(key: tuple[str, str]):
        frame = results["logits"][key]["test"]
        return frame if not drop_idx else frame[~frame["idx"].isin(drop_idx)].reset_index(drop=True)

    reference = test_of(("baseline", "seed_0"))
    return {track: compare_to_reference(reference, test_of((track, "ensemble"))) for track in results["ensembles"]}


def per_seed_deltas(results: Mapping[str, Any], seeds: Sequence[int]) -> dict[str, list[dict[str, float]]]:
    """The same comparison for every single seed of every deep track."""
    from streamguard.evaluation.scoring import compare_to_reference

    reference = results["logits"][("baseline", "seed_0")]["test"]
    return {
        track: [{"seed": s, **compare_to_reference(reference, results["logits"][(track, f"seed_{s}")]["test"])} for s in results["seeds_of"][track]]
        for track in DEEP_TRACKS
    }


def verdict_sentences(scored: Mapping[str, Any], deltas: Mapping[str, Mapping[str, float]] | None = None) -> list[str]:
    """Plain sentences from the report module's comparison (ensemble rows judged), plus a warning
    for models whose F1 is no better than flagging every function (F1 = 2p / (1 + p))."""
    from streamguard.evaluation.report import baseline_verdicts, summary_table

    table = summary_table(scored["per_seed"], scored["ensembles"], baseline=scored["baseline"], comparisons=deltas)
    sentences = baseline_verdicts(table)
    test = scored["baseline"]["test"]
    p = test["num_positive"] / test["num_samples"]
    trivial = 2 * p / (1 + p)
    candidates = {"baseline": scored["baseline"], **{f"{t} (ensemble)": scored["ensembles"][t] for t in scored["ensembles"]}}
    degenerate = [name for name, metrics in candidates.items() if metrics["test"]["f1"] <= trivial + 0.005]
    if degenerate:
        sentences.append(
            f"F1 caveat: flagging every test function gives F1 {trivial:.3f}; {', '.join(degenerate)} "
            f"{'is' if len(degenerate) == 1 else 'are'} within 0.005 of that (or below), so an F1 win there says little; "
            "ROC-AUC is the threshold-free comparison."
        )
    return sentences


def duplicates_section(report: Mapping[str, Any], dropped_test: int, test_rows: int) -> list[str]:
    within, cross = report["duplicates"]["within"], report["duplicates"]["cross"]
    lines = [
        "| split | rows | exact dups within | normalised dups within | label-conflict groups within |",
        "|---|---|---|---|---|",
    ]
    for split, row in within.items():
        lines.append(
            f"| {split} | {row['rows']} | {row['exact_duplicates_within']} | {row['normalized_duplicates_within']} "
            f"| {row['conflicting_labels_within']} |"
        )
    lines += ["", "| pair (rows of the second found in the first) | exact | normalised | with conflicting label |", "|---|---|---|---|"]
    for pair, row in cross.items():
        first, second = pair.split("__")
        lines.append(f"| {first} → {second} | {row['exact']} | {row['normalized']} | {row['conflicting_labels']} |")
    lines += ["", f"Test rows whose normalised text also occurs in train or valid: **{dropped_test} of {test_rows}**."]
    return lines


def timing_section(total: float, node_seconds: Mapping[str, float], seeds: Sequence[int]) -> list[str]:
    stages = stage_seconds(node_seconds)
    lines = ["| stage | wall s |", "|---|---|"]
    for stage in ("data_processing", "baseline", "pretraining", *DEEP_TRACKS, "ensemble"):
        if stage in stages:
            extra = f" ({len(seeds)} seeds)" if stage in DEEP_TRACKS else ""
            lines.append(f"| {stage}{extra} | {stages[stage]:.1f} |")
    lines.append(f"| **total (`kedro run`, incl. session start and MLflow logging)** | **{total:.1f}** |")
    return lines


def build_report(args: argparse.Namespace, runtime_params: Mapping[str, Any], results: Mapping[str, Any],
                 total: float, node_seconds: Mapping[str, float], load: tuple[str, str] = ("n/a", "n/a"),
                 params: Mapping[str, Any] | None = None) -> str:
    seeds = args.seeds
    drop = test_duplicates(results["splits"])
    full = {"per_seed": results["per_seed"], "ensembles": results["ensembles"], "baseline": results["baseline"]}
    rows = {split: len(frame) for split, frame in results["splits"].items()}
    positive = results["data_report"]["positive_rate"]
    is_devign = args.data == "devign"
    note = "" if is_devign else "; other data"
    lines = [
        f"# StreamGuard quality benchmark: {args.data}{' (quick)' if args.quick else ''}",
        "",
        f"- Date (UTC): {datetime.now(timezone.utc).isoformat(timespec='seconds')}; machine: {platform.machine()}, "
        f"{os.cpu_count()} CPU cores, Python {platform.python_version()}, torch {_torch_version()}",
        f"- Command: `python benchmarks/quality.py {' '.join(sys.argv[1:])}`",
        f"- Ran `kedro run` (default pipeline{', as parallel stages' if getattr(args, 'jobs', 1) > 1 else ''}) in a "
        f"{'kept' if args.keep else 'temporary'} project copy; runtime params `{_flat(runtime_params)}`; "
        f"seeds {list(seeds)}; model settings: {_settings_label(args, runtime_params)}"
        + (f"; extra params `{','.join(args.params)}`" if args.params else ""),
        f"- Rows used: train {rows['train']}, valid {rows['valid']}, test {rows['test']}; vulnerable share "
        f"train {positive['train']:.3f}, valid {positive['valid']:.3f}, test {positive['test']:.3f}",
        f"- **Wall time: {total:.1f} s** ({total / 60:.1f} min) for the whole run; torch threads "
        f"{_torch_threads()}; 1-min load average {load[0]} before, {load[1]} after (other processes share the CPU)",
        "",
        "## Test metrics (threshold chosen on valid, applied to test)",
        "",
        "`acc @0.5` predicts vulnerable when P ≥ 0.5 (argmax, as CodeXGLUE reports accuracy); `@thr` uses the "
        "threshold that maximises F1 on valid (0.30–0.70 grid). Per-seed cells are mean ± sample std over seeds.",
        "",
        results_table(full, published=True, published_note=note, deltas=results.get("deltas")),
        "",
        "The last column is the test ROC-AUC difference to the baseline on the same test rows, with a 95 % "
        "paired-bootstrap interval (1,000 resamples of the test rows); **above 0** marks a difference the "
        "interval supports. The stacked row is a logistic-regression meta-model over the baseline's and each "
        "track's ensemble log-odds, fitted on valid only (out-of-fold valid scores choose its threshold).",
        "",
    ]
    if is_devign:
        lines += [
            "Published numbers are CodeXGLUE's Devign split with full training data and GPU-trained models; ours is "
            "a different random 80/10/10 split of the same functions (grouped on normalised text)"
            f"{'' if getattr(args, 'full', False) else ', sub-sampled'}, with CPU-sized models: indicative, not like-for-like.",
            "",
        ]
    else:
        lines += ["Published numbers are on Devign, shown for scale only: this run is on generated data.", ""]
    lines += ["### Does each deep model beat the lexical baseline?", ""]
    lines += [f"- {sentence}" for sentence in verdict_sentences(full, results.get("deltas"))]
    lines += ["", "## Duplicates (normalised text: comments and layout removed)", ""]
    lines += duplicates_section(results["data_report"], len(drop), rows["test"])
    lines += [""]
    if drop:
        deduped = rescored(results, drop, seeds)
        lines += [
            f"### Test metrics with cross-split duplicates removed from test ({rows['test'] - len(drop)} rows)",
            "",
            "Same models, same validation-chosen thresholds; only the test rows that also occur in train/valid are left out.",
            "",
            results_table(deduped, published=False, published_note=note, deltas=bootstrap_deltas(results, drop)),
            "",
        ]
        lines += [f"- {sentence}" for sentence in verdict_sentences(deduped, bootstrap_deltas(results, drop))]
        lines += [""]
    else:
        lines += ["No test row occurs in train or valid, so the de-duplicated numbers are the ones above.", ""]
    info = results["baseline"].get("baseline", {})
    if info:
        lines += [
            "## Baseline details",
            "",
            f"C = {info['C']:g} chosen by valid {info['select_by']} over {[row['C'] for row in info['c_grid']]}; "
            f"vocabulary {info['vocabulary_size']} n-grams (n = {info['ngram_range'][0]}..{info['ngram_range'][1]}); "
            f"fit + grid {info['fit_seconds']:.1f} s."
            + (" The chosen C is at the edge of the grid: a wider grid might do slightly better." if info.get("c_at_grid_edge") else ""),
            f"Most vulnerable n-grams: {', '.join(f'`{t}`' for t in info.get('top_vulnerable_ngrams', [])[:8])}.",
            f"Most safe n-grams: {', '.join(f'`{t}`' for t in info.get('top_safe_ngrams', [])[:8])}.",
            "",
        ]
    if params:
        lines += ["## Model settings (as resolved by the run)", ""] + config_lines(params) + [""]
    lines += ["## Wall time per stage (sum of node times)", ""]
    lines += timing_section(total, node_seconds, seeds)
    return "\n".join(lines) + "\n"


def _settings_label(args: argparse.Namespace, runtime_params: Mapping[str, Any]) -> str:
    if args.quick:
        return "quick (tiny test configuration)"
    if runtime_params.get("preset"):
        return f"preset `{runtime_params['preset']}`"
    return "project CPU presets (transformer_cpu_fast, gnn_cpu_fast, fusion_balanced)"


def _flat(params: Mapping[str, Any], prefix: str = "") -> str:
    items = []
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            items.append(_flat(value, name + "."))
        else:
            items.append(f"{name}={value}")
    return ",".join(items)


def _load_average() -> str:
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except OSError:  # pragma: no cover
        return "n/a"


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def _torch_version() -> str:
    try:
        import torch

        return torch.__version__
    except ImportError:  # pragma: no cover
        return "n/a"


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", choices=("generated", "devign"), default="generated")
    parser.add_argument("--data-dir", type=Path, default=PROJECT_ROOT.parent / "shared" / "data" / "devign",
                        help="folder with {train,valid,test}.jsonl[.gz] (--data devign)")
    parser.add_argument("--n-train", type=int, default=None,
                        help="generated rows (--data generated); default: the pipeline's data_processing.generator sizes")
    parser.add_argument("--n-valid", type=int, default=None)
    parser.add_argument("--n-test", type=int, default=None)
    parser.add_argument("--sample-train", type=int, default=2500, help="seeded sample of train rows (--data devign)")
    parser.add_argument("--sample-valid", type=int, default=1000)
    parser.add_argument("--sample-test", type=int, default=1000)
    parser.add_argument("--sample-seed", type=int, default=0)
    parser.add_argument("--full", action="store_true", help="--data devign: every row of every split (no sampling)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="2: after data and baseline, train the transformer and gnn seeds in two processes side by side")
    parser.add_argument("--report-only", action="store_true",
                        help="with --keep: write the report from what the kept run has finished, without running anything")
    parser.add_argument("--resume", action="store_true",
                        help="with --keep: reuse the folder of an interrupted run (finished seeds are reused, "
                             "interrupted ones resume from their last epoch) instead of starting afresh")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="default: 0 1 2 (generated), 0 1 (devign), 0 (--quick)")
    parser.add_argument("--params", action="append", default=[],
                        help="extra dotted overrides as in `kedro run --params`, e.g. transformer.training.epochs=2 (repeatable)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (default 1: on a shared 2-core machine more threads oversubscribe "
                             "and run several times slower; 0 = torch's own choice)")
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny data, tiny models, one epoch, one seed")
    parser.add_argument("--out", type=Path, default=None, help="Markdown file (default benchmarks/results/quality_<data>.md)")
    parser.add_argument("--keep", type=Path, default=None, help="run in this folder and keep it (default: a temp folder, removed)")
    args = parser.parse_args(argv)
    if args.seeds is None:
        args.seeds = [0] if args.quick else [0, 1] if args.data == "devign" else [0, 1, 2]
    if len(set(args.seeds)) != len(args.seeds):
        parser.error("--seeds must be distinct")
    if args.quick:
        args.n_train, args.n_valid, args.n_test = QUICK_SIZES
        args.sample_train, args.sample_valid, args.sample_test = (min(v, q) for v, q in zip(
            (args.sample_train, args.sample_valid, args.sample_test), (400, 150, 150)))
    if args.out is None:
        args.out = PROJECT_ROOT / "benchmarks" / "results" / f"quality_{args.data}{'_quick' if args.quick else ''}.md"
    args.params = [item for group in args.params for item in group.split(",") if item]
    return args


def runtime_params_for(args: argparse.Namespace) -> dict[str, Any]:
    if args.data == "generated":
        items = ["data_processing.source=generated"]
        for split in ("train", "valid", "test"):
            size = getattr(args, f"n_{split}")
            if size is not None:  # otherwise the pipeline's own default size
                items.append(f"data_processing.generator.n_{split}={size}")
    else:
        data_dir = args.data_dir.resolve()
        items = ["data_processing.source=jsonl"]
        for split in ("train", "valid", "test"):
            path = next((p for p in (data_dir / f"{split}.jsonl.gz", data_dir / f"{split}.jsonl") if p.exists()), None)
            if path is None:
                raise SystemExit(f"{data_dir} has no {split}.jsonl.gz or {split}.jsonl")
            items.append(f"data_processing.paths.{split}={path}")
        if not args.full:
            items += [
                f"data_processing.sample_per_split.train={args.sample_train}",
                f"data_processing.sample_per_split.valid={args.sample_valid}",
                f"data_processing.sample_per_split.test={args.sample_test}",
                f"data_processing.sample_seed={args.sample_seed}",
            ]
    return dotted_params(items + list(args.params))


def main(argv: Sequence[str] | None = None) -> str:
    from streamguard.runtime.offline import enforce_offline

    enforce_offline()
    args = parse_args(argv)
    if args.threads > 0:
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(args.threads)
        import torch

        torch.set_num_threads(args.threads)
    load_before = _load_average()
    runtime_params = runtime_params_for(args)
    local = f"seeds: [{', '.join(str(s) for s in args.seeds)}]\ncpu_threads: {args.threads}\n" + (QUICK_LOCAL if args.quick else CPU_LOCAL)
    if args.report_only:
        return report_from_kept_run(args, runtime_params, load_before)
    workdir = args.keep.resolve() if args.keep else Path(tempfile.mkdtemp(prefix="streamguard-quality-"))
    resuming = bool(args.keep and args.resume and (workdir / "conf").is_dir())
    if args.keep and workdir.exists() and not resuming:
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        project = make_project_copy(workdir, local, refresh=resuming)
        total, node_seconds, params = run_stages(project, runtime_params, args.jobs, args.threads, args.seeds)
        results = collect(project, args.seeds)
        results["deltas"] = bootstrap_deltas(results)
        report = build_report(args, runtime_params, results, total, node_seconds, (load_before, _load_average()), params)
        write_json(args, results, total, node_seconds, args.out.with_suffix(".json"))
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return write_report(report, args.out)


def report_from_kept_run(args: argparse.Namespace, runtime_params: Mapping[str, Any], load_before: str) -> str:
    """The report of a kept (possibly interrupted or extended) run, from its files and MLflow runs."""
    if not args.keep or not (args.keep / "data").is_dir():
        raise SystemExit("--report-only needs --keep DIR of an earlier run")
    project = args.keep.resolve()
    results = collect(project, args.seeds)
    results["deltas"] = bootstrap_deltas(results)
    total, run_seconds = mlflow_wall_seconds(project)
    report = build_report(args, runtime_params, results, total, {}, (load_before, _load_average()), None)
    report += "\n## The kedro runs of this benchmark (from its MLflow store)\n\n| run | wall s |\n|---|---|\n"
    report += "".join(f"| {name} | {seconds:.0f} |\n" for name, seconds in run_seconds.items())
    write_json(args, results, total, run_seconds, args.out.with_suffix(".json"))
    return write_report(report, args.out)


def mlflow_wall_seconds(project: Path) -> tuple[float, dict[str, float]]:
    """Elapsed seconds from the first run's start to the last run's end, and each run's duration by name."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    runs = [run for experiment in client.search_experiments() for run in client.search_runs([experiment.experiment_id])]
    finished = [run for run in runs if run.info.end_time]
    if not finished:
        return float("nan"), {}
    total = (max(run.info.end_time for run in finished) - min(run.info.start_time for run in finished)) / 1000
    return total, {f"run {run.info.run_name} ({run.info.status})": (run.info.end_time - run.info.start_time) / 1000 for run in finished}


# Stages of the default pipeline when --jobs 2: the transformer and gnn seeds need only the data
# (and the gnn its graphs), so they train side by side; fusion needs both; the ensembles need all.
# A part is (pipelines, namespaces): namespaces (e.g. ``transformer.seed_1``) run only those seeds.
StagePart = tuple[tuple[str, ...], tuple[str, ...] | None]
PARALLEL_STAGES: tuple[tuple[StagePart, ...], ...] = (
    ((("data_processing", "baseline"), None),),
    ((("transformer",), None), (("gnn",), None)),
    ((("fusion",), None),),
    ((("ensemble",), None),),
)


def parallel_stages(params: Mapping[str, Any], seeds: Sequence[int], jobs: int) -> tuple[tuple[StagePart, ...], ...]:
    """The stages for ``--jobs`` > 1. A transformer that starts from the MLM-pretrained encoder
    (``transformer.init_from: pretraining``) needs the pretraining pipeline first: pretraining runs
    beside the gnn (similar lengths on the full split), then the transformer seeds split over the jobs."""
    if params.get("transformer", {}).get("init_from") != "pretraining":
        return PARALLEL_STAGES
    seed_groups = [tuple(f"transformer.seed_{seed}" for seed in seeds[i::jobs]) for i in range(min(jobs, len(seeds)))]
    return (
        PARALLEL_STAGES[0],
        ((("pretraining",), ("pretraining",)), (("gnn",), None)),  # its own nodes only: not data_processing again
        tuple((("transformer",), group) for group in seed_groups),
        *PARALLEL_STAGES[2:],
    )


def _run_stage_part(project: Path, runtime_params: Mapping[str, Any], part: StagePart, threads: int):
    """One ``kedro run --pipeline ... [--namespaces ...]`` in a child process (spawned: a fresh interpreter per part)."""
    _die_with_parent()
    if threads > 0:
        import torch

        torch.set_num_threads(threads)
    pipelines, namespaces = part
    return run_project(project, runtime_params, pipelines, namespaces=namespaces)


def _die_with_parent() -> None:
    """On Linux, a stage process is terminated when the benchmark process dies (killed, timed out),
    instead of training on as an orphan."""
    import ctypes
    import signal

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux/glibc: nothing to arrange
        pass


def run_stages(
    project: Path, runtime_params: Mapping[str, Any], jobs: int, threads: int, seeds: Sequence[int] = (0,)
) -> tuple[float, dict[str, float], dict[str, Any]]:
    """``kedro run`` (jobs 1), or the :data:`PARALLEL_STAGES` with independent pipelines in parallel processes."""
    if jobs <= 1:
        return run_project(project, runtime_params)
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    started, node_seconds, params = time.perf_counter(), {}, {}
    for stage in parallel_stages(project_params(project, runtime_params), seeds, jobs):
        names = " | ".join("+".join(pipes) + (f" [{','.join(spaces)}]" if spaces else "") for pipes, spaces in stage)
        print(f"[quality] stage {names} ({time.strftime('%H:%M:%S')})", flush=True)
        if len(stage) == 1:
            _, seconds, params = run_project(project, runtime_params, stage[0][0], namespaces=stage[0][1])
            node_seconds |= seconds
            continue
        with ProcessPoolExecutor(max_workers=min(jobs, len(stage)), mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(_run_stage_part, project, dict(runtime_params), part, threads) for part in stage]
            for future in futures:
                _, seconds, params = future.result()
                node_seconds |= seconds
    return time.perf_counter() - started, node_seconds, params


def write_json(args: argparse.Namespace, results: Mapping[str, Any], total: float, node_seconds: Mapping[str, float], out: Path) -> None:
    """The numbers behind the Markdown report, for tools: per seed, ensembles, stacked, intervals, wall times."""
    def test_block(metrics: Mapping[str, Any]) -> dict[str, Any]:
        test = metrics["test"]
        return {key: test.get(key) for key in ("accuracy_at_0_5", "accuracy", "f1", "roc_auc", "pr_auc", "threshold")}

    per_stage: dict[str, float] = defaultdict(float)
    for name, seconds in node_seconds.items():
        per_stage[name if name.startswith("run ") else stage_of(name)] += seconds
    payload = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": f"python benchmarks/quality.py {' '.join(sys.argv[1:])}",
        "data": args.data,
        "seeds": list(args.seeds),
        "rows": {split: len(frame) for split, frame in results["splits"].items()},
        "baseline": test_block(results["baseline"]),
        "per_seed": {track: [{"seed": s, **test_block(m)} for s, m in zip(results["seeds_of"][track], results["per_seed"][track])] for track in DEEP_TRACKS},
        "per_seed_vs_baseline": per_seed_deltas(results, args.seeds),
        "ensembles": {track: test_block(metrics) for track, metrics in results["ensembles"].items()},
        "ensembles_vs_baseline": results.get("deltas", {}),
        "stacking_coefficients": results["ensembles"].get("stacked", {}).get("coefficients"),
        "wall_seconds": {"total": total, **per_stage},
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")


def write_report(report: str, out: Path) -> str:
    """Write the Markdown report to ``out`` and print it (the ablations write theirs the same way)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report, encoding="utf-8")
    print(report)
    print(f"(written to {out})")
    return report


if __name__ == "__main__":
    main()
