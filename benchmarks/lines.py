"""Which lines? Line-level localisation measured on the Juliet suite's own flaw comments.

    python benchmarks/lines.py --data-dir ../shared/data/juliet_c_cpp_1.3_functions      # machine-sized run
    python benchmarks/lines.py --data-dir DIR --quick --out /tmp/lines.md                # smoke run (tests)
    python benchmarks/lines.py --line-supervision 1.0 --methods attention,gradient_x_input,supervised  # + line head

1. **Models**: one model per track (transformer, gnn, fusion; ``--seeds`` per track) trained
   through the project's track recipes (``streamguard.tracks``) with the project's default
   parameters (``conf/base``), on a seeded sample of Juliet's *train* split (``func_anon`` only:
   comments and bad/good names never reach a model; clean rows: role bad/good, no label conflict,
   one row per anonymised text), the best epoch chosen on a *valid* sample. Checkpoints are kept
   in ``--workdir`` and reused by a rerun with the same settings.
2. **Detection**: test ROC-AUC / PR-AUC / F1 (threshold chosen on valid) on a sample of the test
   split (unseen functional variants), beside the line results.
3. **Lines**: vulnerable *test* functions whose flawed lines are known (``juliet_lines``: the
   statement after ``/* FLAW`` / ``/* POTENTIAL FLAW``, carried exactly onto ``func_anon``), one per
   anonymised text. Per track and method, each function's lines are ranked by the seed ensemble's
   line scores (``streamguard.explain``; candidates are the body's statement lines, for every method
   and random alike: ``streamguard.explain.lines.statement_lines``); Top-k accuracy = share of functions with a flawed line
   among the k highest-ranked, IFA = clean lines ranked above the first flawed one (LineVul). Beside
   them: the lexical heuristic and random order (exact expectations), with 95 % bootstrap intervals
   over functions, and paired intervals of each method's Top-1 minus random's and minus lexical's.
4. **Line supervision** (``--line-supervision W`` > 0): the transformer is trained with its line
   head (``transformer.line_supervision: W``) on the flawed lines of the vulnerable *train*
   functions (the same ``juliet_lines`` mapping; valid and test labels never reach training), and
   the line-score method ``supervised`` reads that head (for fusion, its transformer branch's).
   Its transformer and fusion checkpoints are cached apart (``*_ls<W>_seed_*.pt``); the GNN's is shared.

Results: ``--out`` (Markdown, default ``benchmarks/results/lines_juliet.md``), the same numbers as
JSON next to it, and an HTML page of a few test functions shaded by line score.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from juliet_lines import anon_flaw_lines, read_rows  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parents[1]
TRACKS = ("transformer", "gnn", "fusion")
TOP_KS = (1, 3, 5, 10)
BOOTSTRAP_ROUNDS = 1000
CLEAN_ROLES = {"bad", "good"}

# Machine-sized overrides of the project defaults (2 shared CPU cores, one torch thread).
FULL_OVERRIDES: dict[str, Any] = {
    "transformer": {"training": {"epochs": 3, "progress": False}},
    "gnn": {"training": {"epochs": 8, "progress": False}},
    "fusion": {"training": {"epochs": 4, "progress": False}},
}
QUICK_OVERRIDES: dict[str, Any] = {
    "transformer": {"max_length": 128, "vocab_size": 400, "training": {"epochs": 1, "batch_size": 16, "progress": False}},
    "gnn": {"hidden_dim": 16, "num_layers": 2, "training": {"epochs": 2, "batch_size": 32, "progress": False}},
    "fusion": {"hidden_dim": 16, "training": {"epochs": 2, "progress": False}},
}


# ---------------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------------


def load_split(data_dir: Path, split: str) -> pd.DataFrame:
    path = data_dir / f"{split}.jsonl.gz"
    if not path.exists():
        path = data_dir / f"{split}.jsonl"
    columns = ["id", "role", "target", "func", "func_anon", "anon_sha1", "label_conflict", "cwe"]
    return pd.DataFrame([{key: row.get(key) for key in columns} for row in read_rows(path)])


def clean_sample(frame: pd.DataFrame, n: int, seed: int, flaw_lines: bool = False) -> pd.DataFrame:
    """Clean rows (role bad/good, no label conflict), one per anonymised text, seeded sample of ``n``."""
    clean = frame[frame["role"].isin(CLEAN_ROLES) & ~frame["label_conflict"].astype(bool)]
    clean = clean.drop_duplicates("anon_sha1")
    if len(clean) > n:
        clean = clean.sample(n=n, random_state=seed)
    return model_frame(clean, flaw_lines)


def model_frame(rows: pd.DataFrame, flaw_lines: bool = False) -> pd.DataFrame:
    """What the track recipes read: idx, func (the anonymised text), target; with ``flaw_lines``, the
    flawed lines of ``func_anon`` of each vulnerable row (empty when clean or when they do not map)."""
    frame = pd.DataFrame(
        {"idx": np.arange(len(rows)), "func": rows["func_anon"].tolist(), "target": rows["target"].astype(int).tolist(), "id": rows["id"].tolist()}
    )
    if flaw_lines:
        frame["flaw_lines"] = [
            sorted(anon_flaw_lines(row.func, row.func_anon)[0] or ()) if int(row.target) == 1 else []
            for row in rows.itertuples(index=False)
        ]
    return frame


def line_eval_functions(test: pd.DataFrame, n: int, seed: int) -> tuple[pd.DataFrame, dict[str, int]]:
    """Vulnerable test functions with known flawed lines (one per anonymised text) and why others were left out."""
    from streamguard.explain.lines import statement_lines

    vulnerable = test[test["target"] == 1].drop_duplicates("anon_sha1")
    kept, reasons = [], {}
    for row in vulnerable.itertuples(index=False):
        flawed, why = anon_flaw_lines(row.func, row.func_anon)
        if flawed is not None:  # candidates are the body's statement lines, for every method and random alike
            statements = statement_lines(row.func_anon)
            flawed = {line for line in flawed if statements[line - 1]} or None
            why = why or "flawed line holds no statement"
        if flawed is None:
            reasons[why] = reasons.get(why, 0) + 1
            continue
        kept.append({"id": row.id, "cwe": row.cwe, "role": row.role, "func": row.func_anon, "flawed": sorted(flawed)})
    frame = pd.DataFrame(kept)
    reasons["kept"] = len(frame)
    if len(frame) > n:
        frame = frame.sample(n=n, random_state=seed).reset_index(drop=True)
    return frame, reasons


# ---------------------------------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------------------------------


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        merged[key] = deep_merge(merged[key], value) if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping) else value
    return merged


def project_parameters(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The project's default track parameters (conf/base, default presets) with ``overrides`` merged in."""
    from kedro.config import OmegaConfigLoader

    from streamguard.config.presets import plain
    from streamguard.settings import CONFIG_LOADER_ARGS

    loader = OmegaConfigLoader(str(PROJECT_ROOT / "conf"), **{**CONFIG_LOADER_ARGS, "default_run_env": "base"}, env="base")
    params = plain(loader["parameters"])
    return {name: deep_merge(params[name], overrides.get(name, {})) for name in ("transformer", "gnn", "fusion", "graphs")}


def checkpoint_names(line_supervision: float) -> dict[str, str]:
    """File stem per track in the work directory: the line-supervised transformer (and the fusion
    model built on it) apart from the plain ones; the GNN does not depend on it."""
    suffix = f"_ls{line_supervision:g}" if line_supervision > 0 else ""
    return {"transformer": f"transformer{suffix}", "gnn": "gnn", "fusion": f"fusion{suffix}"}


def train_models(
    frames: Mapping[str, pd.DataFrame],
    params: Mapping[str, Any],
    seeds: Sequence[int],
    workdir: Path,
    log: Any,
    names: Mapping[str, str] | None = None,
) -> tuple[dict[str, list[dict]], dict[str, float]]:
    """Per track, one checkpoint per seed (trained now, or reused from ``workdir`` under ``names``), and training seconds."""
    from streamguard.tracks.fusion import train_fusion
    from streamguard.tracks.gnn import build_split_graphs, train_gnn
    from streamguard.tracks.transformer import train_transformer
    from streamguard.training.checkpoint import atomic_torch_save, safe_torch_load

    train, valid = frames["train"], frames["valid"]
    graphs = {split: build_split_graphs(frames[split], params["graphs"])[0] for split in ("train", "valid")}
    checkpoints: dict[str, list[dict]] = {track: [] for track in TRACKS}
    seconds: dict[str, float] = {track: 0.0 for track in TRACKS}
    for seed in seeds:
        for track in TRACKS:
            path = workdir / f"{(names or {}).get(track, track)}_seed_{seed}.pt"
            if path.exists():
                checkpoints[track].append(safe_torch_load(path))
                continue
            log(f"training {track} seed {seed} on {len(train)} functions")
            started = time.perf_counter()
            if track == "transformer":
                checkpoint, _ = train_transformer(train, valid, params["transformer"], seed=seed)
            elif track == "gnn":
                checkpoint, _ = train_gnn(graphs["train"], train, graphs["valid"], valid, params["gnn"], params["graphs"], seed=seed)
            else:
                checkpoint, _ = train_fusion(
                    checkpoints["transformer"][-1], checkpoints["gnn"][-1], frames, graphs, params["fusion"], seed=seed
                )
            seconds[track] += time.perf_counter() - started
            atomic_torch_save(checkpoint, path)
            checkpoints[track].append(checkpoint)
    return checkpoints, seconds


def detection_metrics(track: str, checkpoints: Sequence[dict], valid: pd.DataFrame, test: pd.DataFrame) -> dict[str, Any]:
    """Test metrics of the seed ensemble at the threshold chosen on valid (the project's metrics module)."""
    from streamguard.serving.scorer import EnsembleScorer
    from streamguard.evaluation.metrics import compute_metrics

    scorer = EnsembleScorer(track, checkpoints, 0.5, seed_workers=1)
    valid_probs = scorer.score_codes(valid["func"].tolist())
    test_probs = scorer.score_codes(test["func"].tolist())
    metrics = compute_metrics(valid["target"].to_numpy(), valid_probs, test["target"].to_numpy(), test_probs)
    block = metrics["test"]
    return {key: block.get(key) for key in ("roc_auc", "pr_auc", "f1", "precision", "recall", "accuracy")} | {
        "threshold": metrics["best_threshold_by_f1"]
    }


# ---------------------------------------------------------------------------------------------------
# line metrics
# ---------------------------------------------------------------------------------------------------


def ranking_outcomes(ranking: Sequence[int], flawed: Sequence[int]) -> dict[str, float]:
    """Top-k hits and IFA of one function's line ranking."""
    flawed_set = set(flawed)
    first = next(position for position, line in enumerate(ranking) if line in flawed_set)
    outcome = {f"top{k}": float(first < k) for k in TOP_KS}
    outcome["ifa"] = float(first)
    return outcome


def random_outcomes(num_lines: int, flawed: Sequence[int]) -> dict[str, float]:
    from streamguard.explain import random_expected_ifa, random_topk_probability

    outcome = {f"top{k}": random_topk_probability(num_lines, len(flawed), k) for k in TOP_KS}
    outcome["ifa"] = random_expected_ifa(num_lines, len(flawed))
    return outcome


def bootstrap_summary(values: Mapping[str, np.ndarray], rounds: int, seed: int) -> dict[str, dict[str, float]]:
    """Mean (median for IFA too) with 95 % percentile intervals over functions resampled with replacement."""
    rng = np.random.default_rng(seed)
    n = len(next(iter(values.values())))
    samples = rng.integers(0, n, size=(rounds, n))
    summary = {}
    for key, array in values.items():
        stats = {"mean": float(np.mean(array))}
        means = array[samples].mean(axis=1)
        stats["low"], stats["high"] = (float(v) for v in np.percentile(means, [2.5, 97.5]))
        if key == "ifa":
            medians = np.median(array[samples], axis=1)
            stats["median"] = float(np.median(array))
            stats["median_low"], stats["median_high"] = (float(v) for v in np.percentile(medians, [2.5, 97.5]))
        summary[key] = stats
    return summary


def paired_difference(a: np.ndarray, b: np.ndarray, rounds: int, seed: int) -> dict[str, float]:
    """Mean of a - b with a 95 % paired bootstrap interval (same resampled functions for both)."""
    rng = np.random.default_rng(seed)
    samples = rng.integers(0, len(a), size=(rounds, len(a)))
    differences = (a - b)[samples].mean(axis=1)
    low, high = np.percentile(differences, [2.5, 97.5])
    return {"delta": float(np.mean(a - b)), "low": float(low), "high": float(high)}


def evaluate_lines(
    functions: pd.DataFrame, checkpoints: Mapping[str, Sequence[dict]], methods: Mapping[str, Sequence[str]], rounds: int, log: Any
) -> tuple[dict[str, Any], dict[tuple[str, str], list[np.ndarray]]]:
    """Line metrics for every (track, method), the lexical heuristic and random order, on the same functions."""
    from streamguard.explain import ensemble_line_scores, lexical_line_scores, rank_lines
    from streamguard.explain.lines import statement_lines
    from streamguard.tracks.common import reuse_loaded_models

    codes, flawed = functions["func"].tolist(), functions["flawed"].tolist()
    # Lines that hold no statement are never ranked above a scored one (NaN), so random order is over the statement lines.
    num_lines = [int(statement_lines(code).sum()) for code in codes]
    per_function: dict[tuple[str, str], dict[str, np.ndarray]] = {}
    all_scores: dict[tuple[str, str], list[np.ndarray]] = {}
    seconds: dict[tuple[str, str], float] = {}

    def collect(key: tuple[str, str], outcomes: list[dict[str, float]]) -> None:
        per_function[key] = {name: np.asarray([o[name] for o in outcomes]) for name in outcomes[0]}

    collect(("random", "expected"), [random_outcomes(n, f) for n, f in zip(num_lines, flawed)])
    started = time.perf_counter()
    lexical = [lexical_line_scores(code) for code in codes]
    seconds[("lexical", "heuristic")] = time.perf_counter() - started
    all_scores[("lexical", "heuristic")] = lexical
    collect(("lexical", "heuristic"), [ranking_outcomes(rank_lines(s), f) for s, f in zip(lexical, flawed)])
    for track, track_methods in methods.items():
        cache: dict = {}
        with reuse_loaded_models(cache):
            for method in track_methods:
                log(f"line scores: {track} / {method} on {len(codes)} functions")
                started = time.perf_counter()
                scores = ensemble_line_scores(checkpoints[track], codes, method)
                seconds[(track, method)] = time.perf_counter() - started
                all_scores[(track, method)] = scores
                collect((track, method), [ranking_outcomes(rank_lines(s), f) for s, f in zip(scores, flawed)])
    results: dict[str, Any] = {"rows": []}
    random_top1 = per_function[("random", "expected")]["top1"]
    lexical_top1 = per_function[("lexical", "heuristic")]["top1"]
    for (track, method), values in per_function.items():
        row = {"track": track, "method": method, **bootstrap_summary(values, rounds, seed=0)}
        row["seconds_per_function"] = seconds.get((track, method), 0.0) / max(len(codes), 1)
        if track != "random":
            row["top1_minus_random"] = paired_difference(values["top1"], random_top1, rounds, seed=1)
            row["top1_minus_lexical"] = paired_difference(values["top1"], lexical_top1, rounds, seed=2)
        results["rows"].append(row)
    results["functions"] = len(codes)
    results["lines_median"] = float(np.median(num_lines))
    results["lines_le_10"] = float(np.mean(np.asarray(num_lines) <= 10))
    results["flawed_lines_mean"] = float(np.mean([len(f) for f in flawed]))
    return results, all_scores


def scan_cost(
    checkpoints: Mapping[str, Sequence[dict]], codes: Sequence[str], thresholds: Mapping[str, float], k: int, workdir: Path, log: Any
) -> dict[str, dict[str, float]]:
    """``streamguard scan`` over the same files with ``--lines 0`` and ``--lines k``, alternated twice per track.

    Scan times only extraction + scoring (line scores are computed after it, for flagged functions),
    so functions/s should not move; the line-score seconds are what ``--lines`` costs.
    """
    from streamguard.serving.scorer import EnsembleScorer
    from streamguard.serving.scan import cli as scan_cli

    tree = workdir / "scan_tree"
    tree.mkdir(parents=True, exist_ok=True)
    per_file = 10
    for start in range(0, len(codes), per_file):
        (tree / f"part_{start // per_file:04d}.c").write_text("\n".join(codes[start : start + per_file]), encoding="utf-8")
    results: dict[str, dict[str, float]] = {}
    for track in checkpoints:
        scorer = EnsembleScorer(track, checkpoints[track], thresholds[track], seed_workers=1).warm_up()
        runs: dict[int, list[dict]] = {0: [], k: []}
        for lines in (0, k, 0, k):
            out = workdir / f"scan_{track}_{lines}.json"
            argv = [str(tree), "--format", "json", "-o", str(out), "--lines", str(lines), "--no-progress"]
            scan_cli.main(argv, scorer_factory=lambda *_: scorer)
            runs[lines].append(json.loads(out.read_text())["summary"])
        off, on = runs[0], runs[k]
        flagged = on[0]["over_threshold"]
        line_seconds = float(np.mean([summary["line_scores"]["seconds"] for summary in on])) if flagged else 0.0
        results[track] = {
            "functions": on[0]["functions"],
            "flagged": flagged,
            "method": on[0].get("line_scores", {}).get("method", ""),
            "fps_off": float(np.mean([summary["functions_per_second"] for summary in off])),
            "fps_on": float(np.mean([summary["functions_per_second"] for summary in on])),
            "line_seconds": line_seconds,
            "line_seconds_per_flagged": line_seconds / flagged if flagged else 0.0,
        }
        log(f"scan cost {track}: {results[track]}")
    return results


# ---------------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------------


def _interval(stats: Mapping[str, float], digits: int = 2) -> str:
    return f"{stats['mean']:.{digits}f} [{stats['low']:.{digits}f}, {stats['high']:.{digits}f}]"


def _difference(stats: Mapping[str, float] | None) -> str:
    if not stats:
        return ""
    return f"{stats['delta']:+.2f} [{stats['low']:+.2f}, {stats['high']:+.2f}]"


def build_report(
    args: argparse.Namespace, info: Mapping[str, Any], lines: Mapping[str, Any], detection: Mapping[str, Any], scan: Mapping[str, Any]
) -> str:
    out = [
        f"# Which lines? Juliet line-level benchmark{' (quick smoke run)' if args.quick else ''}",
        "",
        f"Generated {info['generated']} by `python benchmarks/lines.py {' '.join(info['argv'])}` "
        f"({info['platform']}, torch threads {info['threads']}).",
        "",
        f"Models: one per track and seed (seeds {info['seeds']}), trained with the project's track recipes and default "
        f"parameters plus `{json.dumps(info['overrides'])}` on {info['train_rows']} Juliet train functions "
        f"({info['train_vulnerable']} vulnerable; `func_anon`, clean rows, one per anonymised text), best epoch on "
        f"{info['valid_rows']} valid functions. Training seconds: "
        + ", ".join(f"{track} {seconds:.0f}" for track, seconds in info["train_seconds"].items())
        + ("" if any(info["train_seconds"].values()) else " (checkpoints reused from the work directory)")
        + "."
        + (
            f" Line supervision: the transformer (and fusion's transformer branch) trained with its line head, weight "
            f"{info['line_supervision']:g}, on the flawed lines of {info['train_flaw_functions']} vulnerable train functions "
            f"(Juliet `FLAW` comments of the train split only, mapped onto `func_anon`; valid and test labels never reach "
            f"training); `supervised` ranks lines by that head."
            if info.get("line_supervision") else ""
        ),
        "",
        f"Line labels: {lines['functions']} vulnerable test functions (unseen functional variants, one per anonymised "
        f"text) whose flawed lines come from Juliet's `FLAW` / `POTENTIAL FLAW` comments, mapped exactly onto "
        f"`func_anon` (selection: {json.dumps(info['line_selection'])}). Median {lines['lines_median']:.0f} statement lines, "
        f"{100 * lines['lines_le_10']:.0f} % have 10 or fewer, {lines['flawed_lines_mean']:.2f} flawed lines per function.",
        "",
        f"## Line localisation (mean [95 % bootstrap interval] over functions, {args.bootstrap} resamples)",
        "",
        "| track | method | Top-1 | Top-3 | Top-5 | Top-10 | IFA mean | IFA median | Top-1 − random | Top-1 − lexical | s / function |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in lines["rows"]:
        ifa = row["ifa"]
        out.append(
            f"| {row['track']} | {row['method']} | "
            + " | ".join(_interval(row[f"top{k}"]) for k in TOP_KS)
            + f" | {_interval(ifa, 1)} | {ifa['median']:.0f} [{ifa['median_low']:.0f}, {ifa['median_high']:.0f}]"
            + f" | {_difference(row.get('top1_minus_random'))} | {_difference(row.get('top1_minus_lexical'))}"
            + f" | {row['seconds_per_function']:.3f} |"
        )
    out += [
        "",
        "Candidate lines are the statement lines of each function's body (not the signature, braces or "
        "comments), for every method and for random alike. "
        "Random = the exact expectation of a uniformly random line order on the same functions; lexical = "
        "`streamguard.explain.lexical` (risky calls and operations first). Differences are paired bootstrap intervals.",
        "",
        f"## Detection on the test sample ({info['test_rows']} functions, {info['test_vulnerable']} vulnerable; threshold chosen on valid)",
        "",
        "| track | ROC-AUC | PR-AUC | F1 | precision | recall | threshold |",
        "|---|---|---|---|---|---|---|",
    ]
    for track, metrics in detection.items():
        out.append(
            f"| {track} | {metrics['roc_auc']:.3f} | {metrics['pr_auc']:.3f} | {metrics['f1']:.3f} | "
            f"{metrics['precision']:.3f} | {metrics['recall']:.3f} | {metrics['threshold']:.2f} |"
        )
    if scan:
        out += [
            "",
            f"## Scan cost of `--lines {args.scan_lines}` ({next(iter(scan.values()))['functions']} Juliet test functions in "
            f"{-(-next(iter(scan.values()))['functions'] // 10)} files; each setting run twice, alternated, same scorer)",
            "",
            "| track | method | functions/s, --lines 0 | functions/s, --lines on | flagged | line-score seconds | seconds per flagged function |",
            "|---|---|---|---|---|---|---|",
        ]
        for track, row in scan.items():
            out.append(
                f"| {track} | {row['method']} | {row['fps_off']:.0f} | {row['fps_on']:.0f} | {row['flagged']} | "
                f"{row['line_seconds']:.1f} | {row['line_seconds_per_flagged']:.3f} |"
            )
    best = max((r for r in lines["rows"] if r["track"] not in ("random", "lexical")), key=lambda r: r["top1"]["mean"], default=None)
    lexical = next(r for r in lines["rows"] if r["track"] == "lexical")
    if best is not None:
        beats_random = [f"{r['track']}/{r['method']}" for r in lines["rows"] if r.get("top1_minus_random", {}).get("low", -1) > 0 and r["track"] != "lexical"]
        out += [
            "",
            "## Against the goals",
            "",
            f"- Best learned method by Top-1: **{best['track']} / {best['method']}**, Top-1 {_interval(best['top1'])} "
            f"(goal >= 0.6: {'met' if best['top1']['mean'] >= 0.6 else 'not met'}), median IFA {best['ifa']['median']:.0f} "
            f"(goal 0: {'met' if best['ifa']['median'] == 0 else 'not met'}).",
            f"- Lexical heuristic: Top-1 {_interval(lexical['top1'])}; best learned minus lexical: "
            f"{_difference(best.get('top1_minus_lexical'))} ("
            + ("the learned ranking beats the heuristic" if best["top1_minus_lexical"]["low"] > 0
               else "the learned ranking does **not** beat the heuristic" if best["top1_minus_lexical"]["high"] < 0
               else "no clear difference from the heuristic")
            + ").",
            f"- Learned methods whose Top-1 is above random by its interval: {', '.join(beats_random) or 'none'} "
            f"(of {sum(1 for r in lines['rows'] if r['track'] not in ('random', 'lexical'))}).",
        ]
    return "\n".join(out) + "\n"


def write_examples(path: Path, functions: pd.DataFrame, scores: Mapping[tuple[str, str], list[np.ndarray]], keys: Sequence[tuple[str, str]], count: int) -> None:
    """A few test functions shaded by each chosen method's line scores (flawed lines marked)."""
    from streamguard.explain.render import function_html, write_html

    fragments = []
    for position in range(min(count, len(functions))):
        row = functions.iloc[position]
        for key in keys:
            fragments.append(function_html(row["func"], scores[key][position], f"{row['id']} — {key[0]} / {key[1]}", row["flawed"]))
    write_html(path, fragments, "StreamGuard: which lines? (Juliet test functions)")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=PROJECT_ROOT.parent / "shared/data/juliet_c_cpp_1.3_functions")
    parser.add_argument("--train", type=int, default=3000, help="training functions (clean, deduplicated sample)")
    parser.add_argument("--valid", type=int, default=600)
    parser.add_argument("--test", type=int, default=1000, help="test functions for the detection metrics")
    parser.add_argument("--line-functions", type=int, default=300, help="vulnerable test functions for the line metrics")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds per track")
    parser.add_argument("--tracks", default=",".join(TRACKS))
    parser.add_argument("--methods", default="", help="comma-separated methods to run (default: every method of each track)")
    parser.add_argument("--bootstrap", type=int, default=BOOTSTRAP_ROUNDS)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 on a shared machine)")
    parser.add_argument("--workdir", type=Path, default=None, help="checkpoints (reused by a rerun with the same settings)")
    parser.add_argument("--out", type=Path, default=None, help="Markdown report (default benchmarks/results/lines_juliet[_quick].md)")
    parser.add_argument("--examples", type=int, default=4, help="test functions in the HTML page of shaded lines")
    parser.add_argument("--scan-functions", type=int, default=600, help="test functions scanned to measure --lines cost (0: skip)")
    parser.add_argument("--scan-lines", type=int, default=3, help="K of the --lines K scan")
    parser.add_argument(
        "--line-supervision", type=float, default=0.0,
        help="weight of the transformer's token-level line loss on the train split's FLAW lines (0: off); > 0 also evaluates the 'supervised' method",
    )
    parser.add_argument("--quick", action="store_true", help="tiny models and samples: a smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.train, args.valid, args.test, args.line_functions = min(args.train, 120), min(args.valid, 40), min(args.test, 40), min(args.line_functions, 12)
        args.bootstrap = min(args.bootstrap, 200)
        args.scan_functions = min(args.scan_functions, 30)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    from streamguard.explain import METHODS

    torch.set_num_threads(args.threads)

    def log(message: str) -> None:
        print(f"[lines {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    overrides = QUICK_OVERRIDES if args.quick else FULL_OVERRIDES
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    tracks = [t for t in args.tracks.split(",") if t.strip()]
    wanted = {m for m in args.methods.split(",") if m.strip()}
    supervised = args.line_supervision > 0
    if "supervised" in wanted and not supervised:
        raise SystemExit("--methods supervised needs --line-supervision > 0 (it reads the transformer's line head)")
    methods = {t: [m for m in METHODS[t] if (not wanted or m in wanted) and (m != "supervised" or supervised)] for t in tracks}
    settings = {"train": args.train, "valid": args.valid, "seeds": seeds, "overrides": overrides, "data": str(args.data_dir.resolve())}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    workdir = args.workdir or Path(tempfile.gettempdir()) / f"streamguard_lines_{digest}"
    workdir = workdir / digest if args.workdir else workdir
    workdir.mkdir(parents=True, exist_ok=True)
    stem = f"lines_juliet{'_supervised' if supervised else ''}{'_quick' if args.quick else ''}"
    out = args.out or PROJECT_ROOT / "benchmarks" / "results" / f"{stem}.md"

    log(f"reading {args.data_dir}")
    splits = {split: load_split(args.data_dir, split) for split in ("train", "valid", "test")}
    frames = {
        # Only the train split's flaw lines are read, and only when the line head is trained.
        "train": clean_sample(splits["train"], args.train, seed=0, flaw_lines=supervised),
        "valid": clean_sample(splits["valid"], args.valid, seed=1),
        "test": clean_sample(splits["test"], args.test, seed=2),
    }
    functions, selection = line_eval_functions(splits["test"], args.line_functions, seed=3)
    if functions.empty:
        raise SystemExit("no vulnerable test function with FLAW comments that maps onto func_anon")
    # The work directory is keyed without the line-supervision weight: checkpoint names tell them apart.
    model_overrides = deep_merge(overrides, {"transformer": {"line_supervision": args.line_supervision}}) if supervised else overrides
    params = project_parameters(model_overrides)
    checkpoints, train_seconds = train_models(frames, params, seeds, workdir, log, checkpoint_names(args.line_supervision))
    detection = {}
    for track in tracks:
        log(f"detection metrics: {track}")
        detection[track] = detection_metrics(track, checkpoints[track], frames["valid"], frames["test"])
    lines, scores = evaluate_lines(functions, checkpoints, methods, args.bootstrap, log)
    scan = {}
    if args.scan_functions > 0:
        thresholds = {track: detection[track]["threshold"] for track in tracks}
        codes = frames["test"]["func"].tolist()[: args.scan_functions]
        scan = scan_cost({t: checkpoints[t] for t in tracks}, codes, thresholds, args.scan_lines, workdir, log)
    info = {
        "generated": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "argv": [str(a) for a in (argv if argv is not None else sys.argv[1:])],
        "platform": f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}",
        "threads": torch.get_num_threads(),
        "seeds": seeds,
        "overrides": model_overrides,
        "line_supervision": args.line_supervision,
        "train_flaw_functions": int(sum(1 for lines in frames["train"].get("flaw_lines", []) if len(lines))),
        "train_rows": len(frames["train"]),
        "train_vulnerable": int(frames["train"]["target"].sum()),
        "valid_rows": len(frames["valid"]),
        "test_rows": len(frames["test"]),
        "test_vulnerable": int(frames["test"]["target"].sum()),
        "train_seconds": train_seconds,
        "line_selection": selection,
    }
    report = build_report(args, info, lines, detection, scan)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report, encoding="utf-8")
    out.with_suffix(".json").write_text(json.dumps({"info": info, "lines": lines, "detection": detection, "scan": scan}, indent=2) + "\n", encoding="utf-8")
    learned = [row for row in lines["rows"] if row["track"] in tracks]
    best = max(learned, key=lambda row: row["top1"]["mean"]) if learned else None
    keys = [("lexical", "heuristic")] + ([(best["track"], best["method"])] if best else [])
    write_examples(out.with_name(out.stem + "_examples.html"), functions, scores, keys, args.examples)
    print(report)
    log(f"wrote {out}, {out.with_suffix('.json')} and {out.with_name(out.stem + '_examples.html')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
