"""Ablations on a Devign sample: which knobs move test quality, one track at a time.

    python benchmarks/ablations.py --data-dir ../shared/data/devign            # the full set, 2 seeds
    python benchmarks/ablations.py --variants reference,tok_vocab_1000          # a subset (resumable)
    python benchmarks/ablations.py --quick --out /tmp/ablations.md              # smoke run (tiny models)
    # full Devign split, against a finished `quality.py --full --keep DIR` run (nothing re-trained for the reference):
    python benchmarks/ablations.py --full --params preset=devign_cpu --reference-from DIR --workdir W \
        --variants fusion_lexical,edges_ast_only,gnn_ggnn_devign,pretrained_encoder --out benchmarks/results/ablations_devign_full.md

Every variant is a ``kedro run`` through a KedroSession in a throwaway copy of the project's conf
(``benchmarks/quality.py``'s machinery: same seeded Devign sample, same CPU settings, one torch
thread), restricted to the pipelines the variant needs (``--pipeline data_processing --pipeline
transformer`` and so on) with dotted ``--params`` overrides, so each variant costs one track:

1. **tokenizer**: the BPE vocabulary trained on the train split at 1000 / 4000 (reference) / 8000
   merges, and a tokenizer trained out of domain, on the embedded generator's code (as many
   functions as the train sample) instead of on the Devign train split. The out-of-domain one
   goes in through ``transformer.model_name=<local dir>`` (a directory holding that tokenizer and a
   randomly initialised tiny RoBERTa: the documented local-checkpoint path; those initial weights are
   saved once, so unlike the scratch path they do not change with the seed);
2. **identifiers**: user-defined identifiers mapped to ``VAR_n`` / ``FUNC_n`` by
   ``streamguard.data.identifiers`` (C keywords, types, fields, macros and common library/API names kept),
   applied to a normalised copy of the sampled rows written as jsonl (the run reads that copy:
   data_processing is not changed); baseline, transformer and gnn on it;
3. **class weights**: ``training.class_weighting=balanced`` for transformer and gnn;
4. **GNN edge types**: ``graphs.edge_types`` [ast] / [ast, control_flow, data_flow] /
   [ast, next_token] against all four; the GNN's model: the Devign paper's GGNN, and the default
   preset's former width (hidden 64, 3 layers, ``gnn_h64_3_layers``) against today's (128, 2);
5. **fusion encoders**: frozen (reference, ``fusion_balanced``) against fine-tuned
   (``preset=fusion_finetune``), run in the reference copy so it fuses the reference checkpoints;
6. **ensembling**: per-seed mean against the seed ensemble (logits averaged), for every run.

The reference is the default pipeline (data_processing, baseline, transformer, gnn, fusion,
ensemble) on the project's CPU presets: what ``benchmarks/quality.py --data devign`` runs.
Seed ensembles are recomputed here from the per-seed logits with ``streamguard.evaluation.ensemble``
(the ensemble pipeline's own function) so that single-track runs get one too.

Results are kept per variant in ``--workdir`` (``<variant>/result.json``): a second invocation
skips what is done, so subsets can run one after another (or side by side: the reference first,
the identifier and fine-tuned-fusion variants read its outputs; a variant being run by another
invocation is skipped) and ``--report-only`` writes the table from what has finished. Naming a
finished variant in ``--variants`` with new ``--seeds`` adds those seeds (run in a sub-folder;
per-seed rows and the ensemble then cover all of them). ``--fresh`` starts over.

The Markdown report (``--out``, default ``benchmarks/results/ablations_<data>.md``) has one row
per variant and track: test ROC-AUC, PR-AUC, F1 and accuracy at the validation-chosen threshold
(per-seed mean ± sample std), the seed ensemble's ROC-AUC, the change against the reference
(per-seed means, and the ensemble's with a 95 % paired bootstrap interval over test rows), and
the wall time of that track's nodes.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import quality  # noqa: E402  (benchmarks/quality.py: project copy, kedro run, sampling)

PROJECT_ROOT = quality.PROJECT_ROOT
TRACKS = ("baseline", "transformer", "gnn", "fusion")
DEEP_TRACKS = quality.DEEP_TRACKS
BOOTSTRAP_ROUNDS = 1000


@dataclass(frozen=True)
class Variant:
    """One ablation run: which pipelines, which overrides, which data, which rows it reports."""

    name: str
    group: str
    changed: str
    tracks: tuple[str, ...]
    pipelines: tuple[str, ...] | None  # None: the __default__ pipeline
    params: tuple[str, ...] = ()
    data: str = "sample"  # sample | idnorm (normalised copy of the reference's rows)
    in_reference: bool = False  # runs on a copy of the reference's data (fuses its checkpoints)
    backbone: str | None = None  # ood: build the out-of-domain tokenizer directory first
    extra_params: Mapping[str, Any] = field(default_factory=dict)  # values --params cannot carry (lists)


VARIANTS: tuple[Variant, ...] = (
    Variant("reference", "reference", "project defaults (CPU presets), default pipeline", TRACKS, None),
    Variant("tok_vocab_1000", "1 tokenizer", "transformer.vocab_size=1000 (reference 4000)", ("transformer",),
            ("data_processing", "transformer"), ("transformer.vocab_size=1000",)),
    Variant("tok_vocab_8000", "1 tokenizer", "transformer.vocab_size=8000", ("transformer",),
            ("data_processing", "transformer"), ("transformer.vocab_size=8000",)),
    Variant("tok_out_of_domain", "1 tokenizer",
            "BPE (same vocab size) trained on generated code, not on the Devign train split", ("transformer",),
            ("data_processing", "transformer"), backbone="ood"),
    Variant("identifiers_normalised", "2 identifiers",
            "user identifiers -> VAR_n / FUNC_n (keywords, types, fields, macros, libc/API names kept)",
            ("baseline", "transformer", "gnn"), ("data_processing", "baseline", "transformer", "gnn"), data="idnorm"),
    Variant("class_weights_balanced", "3 class weights", "training.class_weighting=balanced",
            ("transformer", "gnn"), ("data_processing", "transformer", "gnn"),
            ("transformer.training.class_weighting=balanced", "gnn.training.class_weighting=balanced")),
    Variant("edges_ast_only", "4 GNN edges", "graphs.edge_types=[ast]", ("gnn",), ("data_processing", "gnn"),
            extra_params={"graphs": {"edge_types": ["ast"]}}),
    Variant("edges_no_next_token", "4 GNN edges", "graphs.edge_types=[ast, control_flow, data_flow]", ("gnn",),
            ("data_processing", "gnn"), extra_params={"graphs": {"edge_types": ["ast", "control_flow", "data_flow"]}}),
    Variant("edges_ast_next_token", "4 GNN edges", "graphs.edge_types=[ast, next_token] (no control/data flow)",
            ("gnn",), ("data_processing", "gnn"), extra_params={"graphs": {"edge_types": ["ast", "next_token"]}}),
    Variant("fusion_finetune", "5 fusion", "preset=fusion_finetune: encoders unfrozen (encoder lr 1e-5), 4 epochs, batch 16",
            ("fusion",), ("fusion",), ("preset=fusion_finetune",), in_reference=True),
    Variant("fusion_lexical", "5 fusion", "fusion.lexical_branch=true: the TF-IDF model's log-odds as a third branch "
            "(cross-fitted on train)", ("fusion",), ("fusion",), ("fusion.lexical_branch=true",), in_reference=True),
    Variant("gnn_ggnn_devign", "4 GNN edges", "gnn.arch=ggnn, 4 steps, gnn.pooling=devign (the Devign paper's GGNN "
            "with its convolutional readout), 4 epochs: a GGNN step costs ~5x a GCN step on CPU", ("gnn",), ("data_processing", "gnn"),
            ("gnn.arch=ggnn", "gnn.num_layers=4", "gnn.pooling=devign", "gnn.training.epochs=4", "gnn.training.early_stopping_patience=2")),
    Variant("gnn_h64_3_layers", "4 GNN model", "gnn.hidden_dim=64, gnn.num_layers=3: the default GNN preset before "
            "2026-11-30 (now hidden 128, 2 layers)", ("gnn",), ("data_processing", "gnn"),
            ("gnn.hidden_dim=64", "gnn.num_layers=3")),
    Variant("pretrained_encoder", "6 pretraining", "MLM-pretrained encoder (pipeline `pretraining` on the train "
            "split's functions), transformer fine-tuned from it (preset=devign_cpu_pretrained)", ("transformer",),
            ("data_processing", "pretraining", "transformer"), ("preset=devign_cpu_pretrained",)),
)
VARIANT_NAMES = tuple(v.name for v in VARIANTS)


# --------------------------------------------------------------------------------------------
# Data for the variants
# --------------------------------------------------------------------------------------------


def write_jsonl_gz(frame: Any, path: Path, func: Any = None) -> None:
    """Rows as Devign-style jsonl.gz (idx, func, target, project); ``func`` maps the text if given."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        for row in frame.to_dict("records"):
            text = row["func"] if func is None else func(row["func"])
            record = {"idx": int(row["idx"]), "func": text, "target": int(row["target"])}
            if row.get("project") is not None:
                record["project"] = str(row["project"])
            handle.write(json.dumps(record) + "\n")


def normalised_data(reference: Path, destination: Path) -> dict[str, Any]:
    """Normalised copies of the reference run's rows (data/03_primary) and the runtime params reading them."""
    import pandas as pd

    from streamguard.data.identifiers import normalize_identifiers

    items = ["data_processing.source=jsonl"]
    for split in ("train", "valid", "test"):
        target = destination / f"{split}.jsonl.gz"
        if not target.exists():
            frame = pd.read_parquet(reference / "data" / "03_primary" / f"{split}_functions.parquet")
            write_jsonl_gz(frame, target.with_suffix(".tmp"), normalize_identifiers)
            target.with_suffix(".tmp").replace(target)
        items.append(f"data_processing.paths.{split}={target}")
    return quality.dotted_params(items)


def ood_backbone(destination: Path, n_functions: int, vocab_size: int, max_length: int) -> Path:
    """A local backbone directory: a BPE tokenizer trained on generated code + a random tiny RoBERTa."""
    if (destination / "config.json").exists():
        return destination
    import torch
    from transformers import RobertaConfig, RobertaModel

    from streamguard.data.generator import generate_dataset
    from streamguard.models.transformer import SCRATCH_SIZES, train_bpe_tokenizer

    texts = generate_dataset(n_train=n_functions, n_valid=1, n_test=1, seed=7)["train"]["func"].tolist()
    tokenizer = train_bpe_tokenizer(texts, vocab_size=vocab_size, model_max_length=max_length)
    config = RobertaConfig(
        vocab_size=len(tokenizer), max_position_embeddings=max_length + 2, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, type_vocab_size=1,
        layer_norm_eps=1e-5, **SCRATCH_SIZES["tiny"],
    )
    torch.manual_seed(0)
    staging = destination.with_name(destination.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    RobertaModel(config, add_pooling_layer=False).save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    staging.replace(destination)
    return destination


def tokenizer_stats(train_texts: Sequence[str], test_texts: Sequence[str], vocab_size: int, max_length: int,
                    tokenizer: Any = None) -> dict[str, float]:
    """Vocabulary actually learnt, mean tokens per test function, share of test functions truncated."""
    from streamguard.models.transformer import train_bpe_tokenizer

    tokenizer = tokenizer or train_bpe_tokenizer(train_texts, vocab_size=vocab_size)
    lengths = [len(ids) for ids in tokenizer(list(test_texts), truncation=False)["input_ids"]]
    return {
        "vocab": len(tokenizer),
        "mean_tokens": sum(lengths) / len(lengths),
        "truncated": sum(length > max_length for length in lengths) / len(lengths),
    }


# --------------------------------------------------------------------------------------------
# Running and collecting
# --------------------------------------------------------------------------------------------


def _merge(base: dict, extra: Mapping[str, Any]) -> dict:
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
    return base


def test_block(metrics: Mapping[str, Any]) -> dict[str, float]:
    test = metrics["test"]
    return {key: float(test[key]) for key in ("roc_auc", "pr_auc", "f1", "accuracy", "accuracy_at_0_5")} | {
        "threshold": float(metrics["best_threshold_by_f1"])
    }


def collect_run(project: Path | Mapping[int, Path], tracks: Sequence[str], seeds: Sequence[int],
                sweep: Mapping[str, Any] | None) -> dict:
    """Per-seed test metrics, the seed ensemble (recomputed from logits) and its test probabilities.

    ``project`` is the run's folder, or a map seed -> folder when a variant's seeds ran in several
    invocations (the baseline, deterministic, is read from the first seed's folder)."""
    import pandas as pd

    from streamguard.evaluation.ensemble import ensemble_track

    folders = dict(project) if isinstance(project, Mapping) else {int(s): project for s in seeds}
    result: dict[str, Any] = {}
    for track in tracks:
        track_seeds = [0] if track == "baseline" else sorted(int(s) for s in seeds)
        where = {s: folders.get(s, folders[min(folders)]) for s in track_seeds}
        per_seed = {
            s: {split: pd.read_parquet(where[s] / f"data/07_model_output/{track}/seed_{s}/{split}_logits.parquet")
                for split in ("valid", "test")}
            for s in track_seeds
        }
        seed_metrics = [quality.read_json(where[s] / f"data/08_reporting/{track}/seed_{s}/metrics.json") for s in track_seeds]
        entry = {"seeds": track_seeds, "per_seed": [test_block(m) for m in seed_metrics],
                 "best_epoch": [m.get("best_epoch") for m in seed_metrics],
                 "seed_test_logits": {str(s): per_seed[s]["test"][["logit_0", "logit_1"]].round(6).to_numpy().tolist()
                                      for s in track_seeds}}
        if track == "baseline":
            entry["ensemble"] = entry["per_seed"][0]
            test = per_seed[0]["test"]
        else:
            metrics, _, test = ensemble_track(track, per_seed, "logits", sweep)
            entry["ensemble"] = test_block(metrics)
        entry["test_idx"] = test["idx"].astype(int).tolist()
        entry["test_label"] = test["label"].astype(int).tolist()
        entry["test_prob"] = [round(float(p), 6) for p in test["prob"]]
        result[track] = entry
    return result


def local_parameters(args: argparse.Namespace, seeds: Sequence[int]) -> str:
    local = quality.QUICK_LOCAL if args.quick else quality.CPU_LOCAL
    return f"seeds: [{', '.join(str(s) for s in seeds)}]\ncpu_threads: 1\n" + local


def result_seeds(result: Mapping[str, Any]) -> list[int]:
    """The seeds a stored result holds (its deep tracks')."""
    for track, entry in result["tracks"].items():
        if track != "baseline":
            return [int(s) for s in entry.get("seeds") or range(len(entry["per_seed"]))]
    return [0]


def run_variant(variant: Variant, args: argparse.Namespace, workdir: Path, base_params: Mapping[str, Any],
                seeds: Sequence[int] | None = None, previous: Mapping[str, Any] | None = None) -> dict:
    """One ``kedro run`` for ``variant`` on ``seeds`` (default ``--seeds``); with ``previous`` (a stored
    result on other seeds) the new seeds run in a sub-folder and the result covers both."""
    seeds = list(seeds or args.seeds)
    reference = workdir / "reference"
    if (variant.in_reference or variant.data == "idnorm") and not (reference / "result.json").exists():
        raise SystemExit(f"{variant.name} needs the reference run's outputs: run the `reference` variant first "
                         "(or name a finished run with --reference-from)")
    project = workdir / variant.name
    if previous is not None:
        project = project / f"seeds_{'_'.join(str(s) for s in seeds)}"
    shutil.rmtree(project, ignore_errors=True)
    project.mkdir(parents=True)
    quality.make_project_copy(project, local_parameters(args, seeds))
    if variant.in_reference:  # a copy of the reference's data, so its checkpoints are fused and its own files stay intact
        copy_reference_data(reference_project(workdir), project, variant.tracks)
    runtime = json.loads(json.dumps(base_params))
    if variant.data == "idnorm":
        if not (reference / "result.json").exists():
            raise SystemExit(f"{variant.name} normalises the reference run's rows: run the `reference` variant first")
        runtime = normalised_data(reference_project(workdir), workdir / "idnorm_data")
    _merge(runtime, quality.dotted_params(list(variant.params)))
    _merge(runtime, json.loads(json.dumps(variant.extra_params)))
    if variant.backbone == "ood":
        ref_params = quality.read_json(reference / "result.json")["params"] if (reference / "result.json").exists() else {}
        vocab = int(ref_params.get("transformer", {}).get("vocab_size", args.vocab_size))
        max_length = int(ref_params.get("transformer", {}).get("max_length", args.max_length))
        n_functions = int(ref_params.get("train_rows", args.sample_train))
        backbone = ood_backbone(workdir / "ood_backbone", n_functions, vocab, max_length)
        _merge(runtime, {"transformer": {"model_name": str(backbone)}})
    print(f"[ablations] {variant.name}: kedro run --pipeline {variant.pipelines or '__default__'} params {quality._flat(runtime)}",
          flush=True)
    total, node_seconds, params = quality.run_project(project, runtime, variant.pipelines)
    import pandas as pd

    train_rows = len(pd.read_parquet(project / "data/03_primary/train_functions.parquet"))
    result = {
        "variant": variant.name,
        "wall_s": total,
        "track_s": quality.stage_seconds(node_seconds),
        "runtime_params": quality._flat(runtime),
        "params": {"transformer": {k: params["transformer"].get(k) for k in ("vocab_size", "max_length", "model_name")},
                   "graphs": params.get("graphs"), "train_rows": train_rows},
        "seed_dirs": {str(s): str(project) for s in seeds},
        "tracks": collect_run(project, variant.tracks, seeds, params.get("sweep")),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "load_after": quality._load_average(),
    }
    if previous is not None:  # one result over the earlier seeds and these
        seed_dirs = {**(previous.get("seed_dirs") or {str(s): str(workdir / variant.name) for s in result_seeds(previous)}),
                     **result["seed_dirs"]}
        all_seeds = sorted(int(s) for s in seed_dirs)
        result["tracks"] = collect_run({int(s): Path(d) for s, d in seed_dirs.items()}, variant.tracks, all_seeds,
                                       params.get("sweep"))
        result["seed_dirs"] = seed_dirs
        result["wall_s"] += previous["wall_s"]
        result["track_s"] = {k: previous["track_s"].get(k, 0.0) + result["track_s"].get(k, 0.0)
                             for k in {*previous["track_s"], *result["track_s"]}}
    result_path(workdir, variant).write_text(json.dumps(result), encoding="utf-8")
    if variant.name != "reference":  # the heavy artefacts are not needed any more
        for heavy in ("data/06_models", "data/04_feature", "mlruns"):
            shutil.rmtree(project / heavy, ignore_errors=True)
    return result


def result_path(workdir: Path, variant: Variant) -> Path:
    legacy = workdir / "reference" / f"result_{variant.name}.json"  # where in-reference variants used to write
    return legacy if legacy.exists() else workdir / variant.name / "result.json"


def reference_project(workdir: Path) -> Path:
    """The folder holding the reference run's data: the work folder's own, or the one --reference-from named."""
    result = quality.read_json(workdir / "reference" / "result.json")
    return Path(result.get("project_dir") or workdir / "reference")


def copy_reference_data(source: Path, project: Path, tracks: Sequence[str]) -> None:
    """The reference's data without the outputs of ``tracks`` (which the variant re-trains)."""
    skip = {f"{stage}/{track}" for stage in ("06_models", "07_model_output", "08_reporting") for track in tracks}

    def ignore(folder: str, names: list[str]) -> set[str]:
        relative = Path(folder).relative_to(source / "data")
        return {name for name in names if (relative / name).as_posix() in skip}

    shutil.copytree(source / "data", project / "data", ignore=ignore, dirs_exist_ok=True)


def import_reference(args: argparse.Namespace, workdir: Path, base_params: Mapping[str, Any]) -> dict:
    """The reference result read from a finished run (``benchmarks/quality.py --keep DIR`` on the same data and
    runtime params), instead of training it again: full-data references cost hours."""
    source = args.reference_from.resolve()
    params = quality.project_params(source, base_params)
    import pandas as pd

    seeds = sorted(int(s) for s in args.seeds)
    result = {
        "variant": "reference",
        "wall_s": 0.0,
        "track_s": {},
        "imported_from": str(source),
        "project_dir": str(source),
        "runtime_params": quality._flat(base_params),
        "params": {"transformer": {k: params["transformer"].get(k) for k in ("vocab_size", "max_length", "model_name")},
                   "graphs": params.get("graphs"),
                   "train_rows": len(pd.read_parquet(source / "data/03_primary/train_functions.parquet"))},
        "seed_dirs": {str(s): str(source) for s in seeds},
        "tracks": collect_run(source, TRACKS, seeds, params.get("sweep")),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    (workdir / "reference").mkdir(parents=True, exist_ok=True)
    (workdir / "reference" / "result.json").write_text(json.dumps(result), encoding="utf-8")
    return result


# --------------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------------


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    from streamguard.evaluation.metrics import mean_std

    return mean_std(list(values))


def _cell(values: Sequence[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    mean, std = _mean_std(values)
    return f"{mean:.3f} ± {std:.3f}"


def paired_bootstrap(labels: Sequence[int], prob_a: Sequence[float], prob_b: Sequence[float],
                     rounds: int = BOOTSTRAP_ROUNDS, seed: int = 0) -> tuple[float, float, float]:
    """ROC-AUC(b) - ROC-AUC(a) on the same rows, with a 95 % percentile interval over resampled rows
    (the project's own ``streamguard.evaluation.scoring.paired_bootstrap_auc_delta``)."""
    from streamguard.evaluation.scoring import paired_bootstrap_auc_delta

    result = paired_bootstrap_auc_delta(labels, prob_a, prob_b, rounds=rounds, seed=seed)
    return result["delta"], result["low"], result["high"]


def _delta(value: float) -> str:
    return f"{value:+.3f}"


def _seeds(entry: Mapping[str, Any]) -> list[int]:
    return list(entry.get("seeds") or range(len(entry["per_seed"])))


def reference_on_seeds(ref: Mapping[str, Any], seeds: Sequence[int]) -> tuple[list[dict], list[float] | None]:
    """The reference's per-seed metrics on ``seeds`` and its seed ensemble over them (test probabilities),
    so that a one-seed variant is compared with the reference's model of that seed."""
    import numpy as np

    ref_seeds = _seeds(ref)
    chosen = [i for i, s in enumerate(ref_seeds) if s in seeds] or list(range(len(ref_seeds)))
    per_seed = [ref["per_seed"][i] for i in chosen]
    if [ref_seeds[i] for i in chosen] == ref_seeds:
        return per_seed, ref["test_prob"]
    logits = ref.get("seed_test_logits")
    if not logits:
        return per_seed, None
    mean = np.mean([np.asarray(logits[str(ref_seeds[i])]) for i in chosen], axis=0)
    return per_seed, (1.0 / (1.0 + np.exp(mean[:, 0] - mean[:, 1]))).tolist()


def variant_tracks(results: Mapping[str, dict]):
    """(variant, its result, track, that track's entry) for every finished variant, in table order."""
    for variant in VARIANTS:
        result = results.get(variant.name)
        if result is not None:
            for track in variant.tracks:
                yield variant, result, track, result["tracks"][track]


def ablation_rows(results: Mapping[str, dict]) -> list[str]:
    reference = results["reference"]["tracks"]
    header = ("| group | variant | track | what changed | seeds | test ROC-AUC | test PR-AUC | test F1 @thr | test acc @thr "
              "| Δ ROC-AUC (per-seed mean) | Δ F1 (per-seed mean) | ensemble ROC-AUC | Δ ensemble ROC-AUC [95 % CI] "
              "| ensemble vs baseline [95 % CI] | wall s |")
    lines = [header, "|" + "---|" * 15]
    baseline = reference.get("baseline")
    for variant, result, track, entry in variant_tracks(results):
        ref_seeds, ref_prob = reference_on_seeds(reference[track], _seeds(entry))
        ref = {**reference[track], "per_seed": ref_seeds, "test_prob": ref_prob}
        seeds = entry["per_seed"]
        cells = [_cell([m[k] for m in seeds]) for k in ("roc_auc", "pr_auc", "f1", "accuracy")]
        if variant.name == "reference":
            deltas = ["(reference)", "(reference)"]
            ensemble_delta = "(reference)"
        else:
            deltas = [
                _delta(_mean_std([m[k] for m in seeds])[0] - _mean_std([m[k] for m in ref["per_seed"]])[0])
                for k in ("roc_auc", "f1")
            ]
            if ref["test_prob"] is not None and entry["test_idx"] == ref["test_idx"] and entry["test_label"] == ref["test_label"]:
                point, low, high = paired_bootstrap(ref["test_label"], ref["test_prob"], entry["test_prob"])
                ensemble_delta = f"{point:+.3f} [{low:+.3f}, {high:+.3f}]"
            else:
                ensemble_delta = "n/a (different test rows)"
        ensemble = f"{entry['ensemble']['roc_auc']:.3f}" if track != "baseline" else "–"
        if track == "baseline":
            ensemble_delta = ensemble_delta if variant.name == "reference" else ensemble_delta + " (single model)"
        versus = "–"
        if track != "baseline" and baseline is not None and entry["test_idx"] == baseline["test_idx"]:
            point, low, high = paired_bootstrap(baseline["test_label"], baseline["test_prob"], entry["test_prob"])
            versus = f"{point:+.3f} [{low:+.3f}, {high:+.3f}]"
        seconds = result["track_s"].get(track, 0.0)
        lines.append(
            f"| {variant.group} | `{variant.name}` | {track} | {variant.changed} | {len(seeds)} | "
            + " | ".join(cells) + f" | {' | '.join(deltas)} | {ensemble} | {ensemble_delta} | {versus} | {seconds:.0f} |"
        )
    return lines


def ensemble_rows(results: Mapping[str, dict]) -> list[str]:
    lines = [
        "| variant | track | per-seed ROC-AUC (mean) | ensemble ROC-AUC | gain | per-seed F1 @thr (mean) | ensemble F1 @thr | gain |",
        "|---|---|---|---|---|---|---|---|",
    ]
    gains = []
    for variant, result, track, entry in variant_tracks(results):
        if track == "baseline":
            continue
        if len(entry["per_seed"]) < 2:
            continue
        auc = _mean_std([m["roc_auc"] for m in entry["per_seed"]])[0]
        f1 = _mean_std([m["f1"] for m in entry["per_seed"]])[0]
        gain_auc, gain_f1 = entry["ensemble"]["roc_auc"] - auc, entry["ensemble"]["f1"] - f1
        gains.append((gain_auc, gain_f1))
        lines.append(f"| `{variant.name}` | {track} | {auc:.3f} | {entry['ensemble']['roc_auc']:.3f} | {gain_auc:+.3f} "
                     f"| {f1:.3f} | {entry['ensemble']['f1']:.3f} | {gain_f1:+.3f} |")
    if gains:
        up = sum(g[0] > 0 for g in gains)
        mean_auc = sum(g[0] for g in gains) / len(gains)
        mean_f1 = sum(g[1] for g in gains) / len(gains)
        lines += ["", f"Over {len(gains)} (variant, track) runs the seed ensemble's test ROC-AUC is above the per-seed mean "
                      f"in {up}; mean gain {mean_auc:+.3f} ROC-AUC, {mean_f1:+.3f} F1."]
    return lines


def _elapsed(results: Mapping[str, dict]) -> str:
    """First start to last finish, when the runs overlapped (several invocations side by side)."""
    try:
        finished = [datetime.fromisoformat(r["finished"]).timestamp() for r in results.values()]
        started = [f - r["wall_s"] for f, r in zip(finished, results.values())]
    except (KeyError, ValueError):
        return ""
    span = max(finished) - min(started)
    total = sum(r["wall_s"] for r in results.values())
    return f"; {span / 60:.1f} min from the first start to the last finish (runs overlapped)" if span < 0.95 * total else ""


def summary_json(results: Mapping[str, dict]) -> dict[str, Any]:
    """The report's numbers as JSON: per variant and track, per-seed and ensemble test metrics and the ensemble's
    ROC-AUC change against the reference and the baseline with 95 % intervals (no per-row arrays)."""
    reference = results["reference"]["tracks"]
    baseline = reference.get("baseline")
    summary: dict[str, Any] = {}
    for variant, result, track, entry in variant_tracks(results):
        row: dict[str, Any] = {"changed": variant.changed, "seeds": _seeds(entry), "per_seed": entry["per_seed"],
                               "ensemble": entry["ensemble"], "best_epoch": entry.get("best_epoch"),
                               "track_seconds": result.get("track_s", {}).get(track)}
        comparisons = {"vs_baseline": baseline} if track != "baseline" else {}
        if variant.name != "reference":
            comparisons["vs_reference"] = {**reference[track], "test_prob": reference_on_seeds(reference[track], _seeds(entry))[1]}
        for name, other in comparisons.items():
            if other is not None and other.get("test_prob") is not None and other["test_idx"] == entry["test_idx"]:
                point, low, high = paired_bootstrap(other["test_label"], other["test_prob"], entry["test_prob"])
                row[f"ensemble_roc_auc_{name}"] = {"delta": point, "low": low, "high": high, "rounds": BOOTSTRAP_ROUNDS}
        summary.setdefault(variant.name, {})[track] = row
    return summary


def log_to_mlflow(results: Mapping[str, dict], tracking_uri: str, experiment: str = "streamguard-ablations") -> list[str]:
    """One MLflow run per (variant, track) of :func:`summary_json`: what changed, test metrics (per-seed mean and the
    seed ensemble's), the ensemble's ROC-AUC change against the reference and the baseline with their 95 % bounds.
    Side by side in the MLflow UI's compare view (``mlflow ui --backend-store-uri <tracking_uri>``). Returns the run ids."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found else client.create_experiment(experiment)
    run_ids = []
    for variant_name, tracks in summary_json(results).items():
        group = next(v.group for v in VARIANTS if v.name == variant_name)
        for track, row in tracks.items():
            run = client.create_run(experiment_id, run_name=f"{variant_name} / {track}",
                                    tags={"variant": variant_name, "track": track, "group": group})
            params = {"variant": variant_name, "track": track, "changed": row["changed"][:500], "seeds": len(row["per_seed"]),
                      "runtime_params": str(results[variant_name].get("runtime_params", ""))[:500]}
            for key, value in params.items():
                client.log_param(run.info.run_id, key, value)
            metrics = {f"test_{key}": _mean_std([m[key] for m in row["per_seed"]])[0]
                       for key in ("roc_auc", "pr_auc", "f1", "accuracy")}
            if track != "baseline":
                metrics["ensemble_test_roc_auc"] = row["ensemble"]["roc_auc"]
            for name in ("vs_baseline", "vs_reference"):
                interval = row.get(f"ensemble_roc_auc_{name}")
                if interval:
                    metrics |= {f"ensemble_roc_auc_{name}": interval["delta"], f"ensemble_roc_auc_{name}_low": interval["low"],
                                f"ensemble_roc_auc_{name}_high": interval["high"]}
            metrics["wall_s"] = float(row["track_seconds"] or 0.0)
            for key, value in metrics.items():
                client.log_metric(run.info.run_id, key, float(value))
            client.set_terminated(run.info.run_id)
            run_ids.append(run.info.run_id)
    return run_ids


def build_report(args: argparse.Namespace, results: Mapping[str, dict], tok_stats: Mapping[str, dict] | None) -> str:
    reference = results["reference"]
    rows = reference["params"].get("train_rows")
    lines = [
        f"# StreamGuard ablations: {args.data}{' (quick)' if args.quick else ''}",
        "",
        f"- Date (UTC) of the last run: {max(r['finished'] for r in results.values())}; machine: {platform.machine()}, "
        f"{os.cpu_count()} CPU cores, Python {platform.python_version()}, torch {quality._torch_version()}, 1 torch thread",
        f"- Command: `python benchmarks/ablations.py {' '.join(sys.argv[1:])}` (variants may have run in earlier "
        "invocations sharing the work folder)",
        f"- Data: {('Devign, every row of every split' if args.full else 'Devign sample') if args.data == 'devign' else 'generated'}, reference runtime params "
        f"`{reference['runtime_params']}`; train rows {rows}",
        f"- Seeds per variant: the `seeds` column (this invocation: {list(args.seeds)}); model settings: "
        + ("quick (tiny test configuration)" if args.quick else f"`--params {' '.join(args.params)}`" if args.params
           else "project CPU presets (transformer_cpu_fast, gnn_cpu_fast, fusion_balanced)")
        + (f"; reference imported from the finished run `{reference['imported_from']}`" if reference.get("imported_from") else ""),
        f"- Sum of the runs' wall times: {sum(r['wall_s'] for r in results.values()):.0f} s "
        f"({sum(r['wall_s'] for r in results.values()) / 60:.1f} min){_elapsed(results)}; `wall s` below is the sum of "
        "that track's node times (training, prediction, scoring; gnn includes graph building), on a machine other jobs "
        "(and overlapping runs) shared: compare them within a row group, not across pages",
        "",
        "Metrics are on test at the threshold chosen on valid (F1-maximising, 0.30–0.70 grid). Per-seed cells are "
        "mean ± sample std over seeds. Δ columns are against the reference run of the same track on the same seeds "
        "(a one-seed variant is compared with the reference's seed-0 model); the ensemble Δ is the ROC-AUC change of "
        "the variant's seed ensemble (its single model with one seed) against the reference's over the same seeds, "
        f"with a 95 % paired bootstrap interval over the test rows ({BOOTSTRAP_ROUNDS} resamples: test-sampling noise "
        "only; seed-to-seed noise is the ± of the reference row). An interval that contains 0 is no measurable change.",
        "",
        "## Ablation table",
        "",
        *ablation_rows(results),
        "",
        "## Seed ensemble against the per-seed mean (item 6)",
        "",
        *ensemble_rows(results),
        "",
    ]
    if tok_stats:
        lines += [
            "## Tokenizers (trained on the train sample; lengths on the test sample, before truncation)",
            "",
            f"| tokenizer | vocabulary | mean tokens per function | functions truncated at {args.max_length} |",
            "|---|---|---|---|",
        ]
        for name, stats in tok_stats.items():
            lines.append(f"| {name} | {stats['vocab']} | {stats['mean_tokens']:.0f} | {100 * stats['truncated']:.1f} % |")
        lines.append("")
    missing = [v.name for v in VARIANTS if v.name not in results]
    if missing:
        lines += [f"Not run: {', '.join(missing)}.", ""]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", choices=("devign", "generated"), default=None,
                        help="default devign (generated with --quick)")
    parser.add_argument("--data-dir", type=Path, default=PROJECT_ROOT.parent / "shared" / "data" / "devign")
    parser.add_argument("--sample-train", type=int, default=2500)
    parser.add_argument("--sample-valid", type=int, default=1000)
    parser.add_argument("--sample-test", type=int, default=1000)
    parser.add_argument("--sample-seed", type=int, default=0)
    parser.add_argument("--full", action="store_true", help="--data devign: every row of every split (no sampling)")
    parser.add_argument("--params", action="append", default=[],
                        help="extra dotted overrides for every variant and the reference, e.g. preset=devign_cpu (repeatable)")
    parser.add_argument("--mlflow-uri", default=None,
                        help="also log one MLflow run per variant and track (experiment streamguard-ablations) to this "
                             "tracking URI, e.g. sqlite:///W/ablations.db, to compare them in the MLflow UI")
    parser.add_argument("--reference-from", type=Path, default=None,
                        help="a finished `benchmarks/quality.py --keep DIR` run on the same data and --params: its "
                             "outputs are the reference (nothing re-trained) and in-reference variants copy its data")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="default 0 1 (0 with --quick)")
    parser.add_argument("--variants", default="", help=f"comma-separated subset, run in that order, of {','.join(VARIANT_NAMES)} (default: all)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="kept between invocations (results are reused); default /tmp/streamguard-ablations-<data>")
    parser.add_argument("--fresh", action="store_true", help="remove --workdir first")
    parser.add_argument("--no-report", action="store_true", help="run the variants, write no report")
    parser.add_argument("--report-only", action="store_true", help="run nothing: write the table from the finished variants")
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny generated data, tiny models, one seed")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.sample_train, args.sample_valid, args.sample_test = (min(v, q) for v, q in zip(
            (args.sample_train, args.sample_valid, args.sample_test), (400, 150, 150)))
    if args.data is None:
        args.data = "generated" if args.quick else "devign"
    if args.seeds is None:
        args.seeds = [0] if args.quick else [0, 1]
    chosen = [name for name in args.variants.split(",") if name]
    unknown = sorted(set(chosen) - set(VARIANT_NAMES))
    if unknown:
        parser.error(f"unknown variant(s) {unknown}; known: {', '.join(VARIANT_NAMES)}")
    args.chosen = chosen or list(VARIANT_NAMES)
    args.chosen_explicitly = bool(chosen)
    if args.workdir is None:
        args.workdir = Path(tempfile.gettempdir()) / f"streamguard-ablations-{args.data}{'-quick' if args.quick else ''}"
    if args.out is None:
        args.out = PROJECT_ROOT / "benchmarks" / "results" / f"ablations_{args.data}{'_quick' if args.quick else ''}.md"
    args.vocab_size, args.max_length = (600, 128) if args.quick else (4000, 256)
    return args


def base_runtime_params(args: argparse.Namespace) -> dict[str, Any]:
    """The same data choice (and Devign sample) as benchmarks/quality.py."""
    argv = ["--data", args.data, "--data-dir", str(args.data_dir), "--sample-train", str(args.sample_train),
            "--sample-valid", str(args.sample_valid), "--sample-test", str(args.sample_test),
            "--sample-seed", str(args.sample_seed)]
    if args.quick:
        argv.append("--quick")
    if args.full:
        argv.append("--full")
    for item in args.params:
        argv += ["--params", item]
    return quality.runtime_params_for(quality.parse_args(argv))


def compute_tokenizer_stats(args: argparse.Namespace, workdir: Path) -> dict[str, dict] | None:
    """Tokenizer side table (cached in the work folder): needs the reference's rows."""
    cache = workdir / "tokenizer_stats.json"
    ood_dir = workdir / "ood_backbone"
    if cache.exists():
        cached = quality.read_json(cache)
        if not (ood_dir / "config.json").exists() or any("out of domain" in name for name in cached):
            return cached
    primary = workdir / "reference" / "data" / "03_primary"
    if not primary.exists():
        return None
    import pandas as pd
    from transformers import AutoTokenizer

    from streamguard.data.identifiers import normalize_identifiers

    train = pd.read_parquet(primary / "train_functions.parquet")["func"].tolist()
    test = pd.read_parquet(primary / "test_functions.parquet")["func"].tolist()
    stats = {}
    for vocab in sorted({1000, args.vocab_size, 8000}):
        stats[f"Devign train split, vocab_size {vocab}"] = tokenizer_stats(train, test, vocab, args.max_length)
    if (ood_dir / "config.json").exists():
        ood = AutoTokenizer.from_pretrained(str(ood_dir))
        stats[f"generated code (out of domain), vocab_size {args.vocab_size}"] = tokenizer_stats(
            train, test, args.vocab_size, args.max_length, tokenizer=ood)
    stats[f"Devign train split, identifiers normalised, vocab_size {args.vocab_size}"] = tokenizer_stats(
        [normalize_identifiers(t) for t in train], [normalize_identifiers(t) for t in test], args.vocab_size, args.max_length)
    cache.write_text(json.dumps(stats), encoding="utf-8")
    return stats


def main(argv: Sequence[str] | None = None) -> str | None:
    from streamguard.runtime.offline import enforce_offline

    enforce_offline()
    args = parse_args(argv)
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)
    workdir = args.workdir.resolve()
    if args.fresh:
        shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True, exist_ok=True)
    base = base_runtime_params(args)
    if args.reference_from is not None and not (workdir / "reference" / "result.json").exists():
        import_reference(args, workdir, base)
    by_name = {variant.name: variant for variant in VARIANTS}
    for variant in (by_name[name] for name in ([] if args.report_only else args.chosen)):  # in the order asked for
        previous, seeds = None, list(args.seeds)
        if result_path(workdir, variant).exists():
            previous = quality.read_json(result_path(workdir, variant))
            seeds = [s for s in args.seeds if s not in result_seeds(previous)]
            if not seeds or variant.name == "reference" or not args.chosen_explicitly:
                continue  # done (a variant gains seeds only when named in --variants with new --seeds)
        lock = workdir / f"{variant.name}.running"  # another invocation on the same work folder runs it
        try:
            os.close(os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            print(f"[ablations] {variant.name}: {lock} exists (running elsewhere, or stale: delete it), skipped", flush=True)
            continue
        started = time.perf_counter()
        try:
            run_variant(variant, args, workdir, base, seeds, previous)
        finally:
            lock.unlink(missing_ok=True)
        print(f"[ablations] {variant.name} done in {time.perf_counter() - started:.0f} s", flush=True)
    results = {}
    for variant in VARIANTS:
        path = result_path(workdir, variant)
        if path.exists():
            results[variant.name] = quality.read_json(path)
    if args.no_report:
        return None
    if "reference" not in results:
        raise SystemExit(f"no reference result in {workdir}: run the `reference` variant first")
    report = quality.write_report(build_report(args, results, compute_tokenizer_stats(args, workdir)), args.out)
    args.out.with_suffix(".json").write_text(json.dumps(summary_json(results), indent=1) + "\n", encoding="utf-8")
    if args.mlflow_uri:
        run_ids = log_to_mlflow(results, args.mlflow_uri)
        print(f"(logged {len(run_ids)} runs to {args.mlflow_uri}, experiment streamguard-ablations: "
              f"`mlflow ui --backend-store-uri {args.mlflow_uri}`)")
    return report


if __name__ == "__main__":
    main()
