"""StreamGuard speed figures, all measured in one run: training, graph building, scan, scaling.

    python benchmarks/speed.py                      # defaults: about 6-8 minutes on 2 CPU cores
    python benchmarks/speed.py --quick              # smoke run, seconds
    python benchmarks/speed.py --source ../shared/data/devign/valid.jsonl.gz
    python benchmarks/speed.py --checkpoint-dir data/06_models   # scan with the models `kedro run` trained

Sections (each prints a ``ratio ...`` line; a Markdown table of everything comes at the end):

1. **Training throughput**, StreamGuard's recipe against the classic one, same model (``--model``
   tiny|small from ``load_backbone``, identical initial weights), same tokenised data (truncated
   at ``--block-size``), same batch size, same number of optimizer steps (``--warmup-steps``
   untimed + ``--steps`` timed), forward + backward + clipping + AdamW + LR schedule:

   * classic: every sequence padded to the block size, random batches (``RandomSampler``);
   * StreamGuard: padding to the batch's longest sequence rounded up to ``pad_to_multiple_of=8``
     (``make_token_collate``) and length-grouped batches (``LengthGroupedSampler``).

   How it is timed: not with ``fit()`` (it cannot stop after N steps and validates every epoch),
   but with the pieces ``fit()`` itself uses, so each timed step is exactly a ``fit()`` step:
   the training DataLoader built by the loop's ``make_train_loader`` (the same sampler choice as
   ``fit``: ``LengthGroupedSampler`` when ``group_by_length`` and lengths are given, else
   ``RandomSampler``), the default AdamW parameter groups, the warmup schedule, the loss, and
   the loop's ``_Trainer.train_epoch`` run on one batch at a time. The two recipes' steps are
   interleaved (A B, B A, ...) so that load from other processes on a shared machine hits both
   alike. A step's time includes fetching and collating its batch. ``functions/s`` counts
   examples; ``real tokens/s`` counts non-pad tokens (the attention mask), the fair unit since
   the two recipes draw different batches. The ratio is also given on process CPU time.
2. **Graph building** (``streamguard.graphs.build_graphs``, the GNN/fusion featurisation) in
   functions/s, and the share of that time spent in tree-sitter parsing: parsing is timed alone
   on the same inputs with the same parser, best of ``--graph-repeats`` (as
   ``benchmarks/graph_build.py`` does).
3. **Scan**: the ``streamguard scan`` code path (``streamguard.serving.scan.run_scan``: file walk,
   tree-sitter extraction, batched scoring by ``inference.EnsembleScorer``, JSON report) over a
   temporary tree of C files holding the functions, per track. The scorer uses ``--scan-seeds``
   seed checkpoints as ``streamguard scan`` does; unless ``--checkpoint-dir`` points at trained
   ones (``data/06_models`` after ``kedro run``), one seed per track is trained here (1 epoch on
   a few hundred functions, the conf/base defaults otherwise) and used for every seed slot
   (scoring cost does not depend on the weights). Checkpoint loading is not timed. Extraction
   alone is timed too, which gives the scoring share. Each scorer first scores 16 functions
   untimed (first-call imports and allocations).
4. **Scaling**: time of graph building and of transformer inference (tokenisation + forward
   pass, ``tracks.transformer.transformer_logits``, the scan's scoring path, with the scan's
   transformer checkpoint) for each of ``--scaling`` sizes, and time(largest)/time(smallest):
   linear cost gives the size ratio (16x for 1k -> 16k). Each size is run once; the ratio is
   given on wall time and on this process's CPU time, which other processes' load hardly moves
   (a single wall-clock run of the smallest size is easily off by 2x on a busy machine).

Data: ``--source generated`` (``streamguard.data.generator``) or a Devign-style ``.jsonl[.gz]``
read with ``streamguard.data.loading.read_jsonl``; when a file has fewer rows than a section
needs, rows are repeated (said in the output). Every time here is one wall-clock measurement on
whatever else the machine is doing: on a shared machine compare ratios, not absolute figures,
and use ``--threads 1`` (several torch threads on oversubscribed cores mostly wait for each other:
on a busy 2-core machine a tiny-model step was 25x slower with 2 threads than with 1).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import platform
import shlex
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[1]

import numpy as np
import pandas as pd

from streamguard.runtime.offline import enforce_offline

enforce_offline()  # no telemetry, no model hub, as every StreamGuard entry point (before torch/transformers load)


# --------------------------------------------------------------------------------------------
# Output helpers
# --------------------------------------------------------------------------------------------


@dataclass
class Row:
    section: str
    what: str
    n: int | None = None
    seconds: float | None = None
    functions_per_s: float | None = None
    tokens_per_s: float | None = None
    note: str = ""


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    ratios: list[str] = field(default_factory=list)

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        return row

    def ratio(self, line: str) -> None:
        self.ratios.append(line)
        print(line, flush=True)


def log(message: str) -> None:
    print(f"[speed] {message}", file=sys.stderr, flush=True)


def _fmt(value: float | None, digits: int = 1) -> str:
    if value is None:
        return ""
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def markdown_table(rows: Sequence[Row]) -> str:
    lines = [
        "| section | measurement | functions | seconds | functions/s | real tokens/s | ratio / note |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row.section} | {row.what} | {'' if row.n is None else f'{row.n:,}'} | {_fmt(row.seconds, 2)} | "
            f"{_fmt(row.functions_per_s)} | {_fmt(row.tokens_per_s)} | {row.note} |"
        )
    return "\n".join(lines)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine_lines(torch_module: Any, device: str) -> list[str]:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    gpu = ""
    if device.startswith("cuda"):
        gpu = f", GPU {torch_module.cuda.get_device_name(0)}"
    return [
        f"- machine: {cpu_model()}, {os.cpu_count()} cores ({usable} usable by this process), "
        f"torch threads {torch_module.get_num_threads()}, device {device}{gpu}",
        f"- load average (1, 5, 15 min) at the end: {load}",
        f"- python {platform.python_version()}, torch {torch_module.__version__}, {platform.platform()}",
    ]


def busy_note(torch_module: Any) -> str:
    """A warning when other processes compete for the cores (the figures are then noisy)."""
    if not hasattr(os, "getloadavg"):
        return ""
    cores = os.cpu_count() or 1
    load = os.getloadavg()[0]
    if load <= cores:
        return ""
    hint = ""
    if torch_module.get_num_threads() > 1:
        hint = (
            " With several torch threads on a busy machine, threads waiting for each other can dominate the"
            " times: compare with --threads 1."
        )
    return f"- note: the machine was busy (load {load:.1f} on {cores} cores): absolute figures are noisy, ratios less so.{hint}"


def quiet_libraries() -> None:
    warnings.filterwarnings("ignore")
    logging.getLogger("streamguard").setLevel(logging.ERROR)
    for name in ("transformers", "torch", "torch_geometric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
    except ImportError:  # pragma: no cover
        pass


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


def load_rows(source: str, n: int, seed: int) -> tuple[pd.DataFrame, str]:
    """``n`` rows (idx, func, target); a file's rows are repeated when it holds fewer than ``n``."""
    if source == "generated":
        from streamguard.data.generator import generate_functions

        rows = generate_functions(n, seed)
        frame = pd.DataFrame(rows)[["idx", "func", "target"]]
        return frame, f"generated (streamguard.data.generator, seed {seed})"
    from streamguard.data.loading import read_jsonl

    path = Path(source)
    accepted, rejects = read_jsonl(path, "benchmark")
    if accepted.empty:
        raise SystemExit(f"{path}: no usable rows ({len(rejects)} rejected)")
    distinct = len(accepted)
    frame = accepted[["func", "target"]].reset_index(drop=True)
    if distinct < n:
        frame = pd.concat([frame] * (n // distinct + 1), ignore_index=True)
    frame = frame.iloc[:n].reset_index(drop=True)
    frame.insert(0, "idx", np.arange(len(frame), dtype=np.int64))
    note = f"{path} ({distinct:,} usable rows" + (f", repeated to {n:,})" if distinct < n else ")")
    return frame, note


def conf_defaults() -> dict[str, Any]:
    """The embedded defaults of conf/base (the plain ``_<track>_defaults`` and ``graphs`` blocks)."""
    import yaml

    values: dict[str, Any] = {}
    for name in ("transformer", "gnn", "fusion"):
        with open(PROJECT_ROOT / "conf" / "base" / f"parameters_{name}.yml", encoding="utf-8") as stream:
            loaded = yaml.safe_load(stream)
        values[name] = loaded[f"_{name}_defaults"]
        if name == "gnn":
            values["graphs"] = loaded["graphs"]
    return values


# --------------------------------------------------------------------------------------------
# 1. Training throughput
# --------------------------------------------------------------------------------------------


@dataclass
class Recipe:
    name: str
    trainer: Any
    loader: Any
    iterator: Any = None
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    samples: int = 0
    tokens: int = 0
    padded: int = 0
    widths: list[int] = field(default_factory=list)

    def next_batch(self) -> dict:
        if self.iterator is None:
            self.iterator = iter(self.loader)
        try:
            return next(self.iterator)
        except StopIteration:  # more steps than one epoch holds: a new epoch, as fit() would start
            self.iterator = iter(self.loader)
            return next(self.iterator)

    def step(self, timed: bool, sync: Callable[[], None]) -> None:
        started, cpu_started = time.perf_counter(), time.process_time()
        batch = self.next_batch()
        stats = self.trainer.train_epoch([batch], 1)  # one fit() step on this batch
        sync()
        elapsed = time.perf_counter() - started
        if timed:
            self.seconds += elapsed
            self.cpu_seconds += time.process_time() - cpu_started
            self.samples += int(stats["samples"])
            self.tokens += int(stats["tokens"])
            self.padded += int(batch["input_ids"].numel())
            self.widths.append(int(batch["input_ids"].shape[1]))


def fixed_block_collate(pad_id: int, block_size: int) -> Callable[[list[dict]], dict]:
    """The classic recipe: every sequence padded to ``block_size`` (sequences are truncated to it)."""
    from streamguard.models.transformer import make_token_collate

    # Rounding the longest sequence (<= block_size after truncation) up to a multiple of
    # block_size is padding to block_size exactly; checked below.
    inner = make_token_collate(pad_id, pad_to_multiple_of=block_size)

    def collate(items: list[dict]) -> dict:
        batch = inner(items)
        if batch["input_ids"].shape[1] != block_size:
            raise AssertionError(f"fixed padding gave width {batch['input_ids'].shape[1]}, not {block_size}")
        return batch

    return collate


def make_recipe(name: str, model: Any, dataset: Any, collate: Callable, config: Any, total_steps: int, device: Any) -> Recipe:
    import torch

    from streamguard.training import components, loop
    from streamguard.training.losses import build_loss
    from streamguard.training.seeding import epoch_seed

    sampler_generator, loader_generator = torch.Generator(), torch.Generator()
    sampler_generator.manual_seed(epoch_seed(config.seed, 1, stream=0))  # what fit() does for epoch 1
    loader_generator.manual_seed(epoch_seed(config.seed, 1, stream=1))
    lengths = dataset.lengths if config.group_by_length else None
    loader = components.make_train_loader(dataset, collate, config, device, (sampler_generator, loader_generator), lengths, None)
    model.to(device)
    amp = components.resolve_amp(config.amp_dtype, device)
    optimizer = torch.optim.AdamW(components.default_param_groups(model, config), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = components.build_scheduler(optimizer, config.scheduler, int(round(config.warmup_ratio * total_steps)), total_steps)
    scaler = torch.amp.GradScaler(device.type, enabled=amp.use_scaler)
    criterion = build_loss(config, None).to(device)
    trainer = loop._Trainer(model, config, device, amp, optimizer, scheduler, scaler, None, criterion, total_steps)
    return Recipe(name, trainer, loader)


def bench_training(args: argparse.Namespace, frame: pd.DataFrame, report: Report, device: Any, sync: Callable) -> None:
    import copy

    from streamguard.models.transformer import TokenizedDataset, TransformerClassifier, load_backbone, make_token_collate
    from streamguard.training import TrainConfig, seed_everything

    texts = frame["func"].tolist()
    started = time.perf_counter()
    seed_everything(args.seed, True)  # what fit() does first (deterministic kernels included)
    tokenizer, encoder, info = load_backbone(
        args.model, train_texts=texts, vocab_size=args.vocab_size, max_length=args.block_size
    )
    block = int(info["max_length"])
    dataset = TokenizedDataset(frame["idx"].tolist(), texts, frame["target"].tolist(), tokenizer, block)
    model_classic = TransformerClassifier(encoder)
    model_streamguard = copy.deepcopy(model_classic)  # identical initial weights
    parameters = sum(p.numel() for p in model_classic.parameters())
    log(f"training: tokenizer + model ({args.model}, {parameters / 1e6:.2f}M parameters) in {time.perf_counter() - started:.1f}s")

    common = dict(batch_size=args.batch_size, seed=args.seed, progress=False, device=str(device), epochs=1)
    classic_config = TrainConfig(group_by_length=False, pad_to_multiple_of=None, **common)
    streamguard_config = TrainConfig(group_by_length=True, pad_to_multiple_of=8, **common)
    total_steps = args.warmup_steps + args.steps
    classic = make_recipe(
        f"classic: pad to {block}, random batches", model_classic, dataset,
        fixed_block_collate(tokenizer.pad_token_id, block), classic_config, total_steps, device,
    )
    streamguard = make_recipe(
        "StreamGuard: pad to batch max (x8), length-grouped", model_streamguard, dataset,
        make_token_collate(tokenizer.pad_token_id, streamguard_config.pad_to_multiple_of), streamguard_config, total_steps, device,
    )
    for step in range(total_steps):
        order = (classic, streamguard) if step % 2 == 0 else (streamguard, classic)
        for recipe in order:
            recipe.step(timed=step >= args.warmup_steps, sync=sync)
        if (step + 1) % 10 == 0 or step + 1 == total_steps:
            log(f"training: step {step + 1}/{total_steps} (classic {classic.seconds:.1f}s, StreamGuard {streamguard.seconds:.1f}s timed)")

    lengths = np.asarray(dataset.lengths)
    setting = (
        f"{args.model} model, batch {args.batch_size}, {args.steps} timed steps (+{args.warmup_steps} warm-up) each, "
        f"block {block}, {len(dataset):,} functions (median {int(np.median(lengths))} tokens, "
        f"{np.mean(lengths >= block):.0%} truncated at {block})"
    )
    log(f"training: {setting}")
    for recipe in (classic, streamguard):
        pad_share = 1 - recipe.tokens / max(recipe.padded, 1)
        report.add(
            Row(
                "training", recipe.name, recipe.samples, recipe.seconds,
                recipe.samples / recipe.seconds, recipe.tokens / recipe.seconds,
                f"padding {pad_share:.0%} of positions, mean batch width {np.mean(recipe.widths):.0f}",
            )
        )
    functions_ratio = (streamguard.samples / streamguard.seconds) / (classic.samples / classic.seconds)
    tokens_ratio = (streamguard.tokens / streamguard.seconds) / (classic.tokens / classic.seconds)
    cpu_ratio = (streamguard.samples / streamguard.cpu_seconds) / (classic.samples / classic.cpu_seconds)
    report.add(
        Row(
            "training", "ratio StreamGuard / classic",
            note=f"**{functions_ratio:.2f}x functions/s, {tokens_ratio:.2f}x real tokens/s** "
            f"(on process CPU time: {cpu_ratio:.2f}x functions/s; {setting})",
        )
    )
    report.ratio(f"ratio training functions/s StreamGuard/classic: {functions_ratio:.2f}x")
    report.ratio(f"ratio training real tokens/s StreamGuard/classic: {tokens_ratio:.2f}x")


# --------------------------------------------------------------------------------------------
# 2. Graph building
# --------------------------------------------------------------------------------------------


def bench_graphs(args: argparse.Namespace, codes: list[str], graph_config: Any, report: Report) -> None:
    if str(Path(__file__).parent) not in sys.path:  # also when this file is imported, not run
        sys.path.insert(0, str(Path(__file__).parent))
    from graph_build import time_parse_and_build

    parse_time, total_time, _ = time_parse_and_build(codes, graph_config, args.graph_repeats, warmup=20)
    share = parse_time / total_time
    report.add(
        Row(
            "graphs", "build_graphs end to end (parse + walk + control/data flow)", len(codes), total_time,
            len(codes) / total_time,
            note=f"parse share {share:.0%} (parse alone {len(codes) / parse_time:,.0f} functions/s); best of {args.graph_repeats}",
        )
    )
    report.ratio(f"ratio graphs parse share: {share:.1%} ({len(codes) / total_time:,.0f} functions/s end to end)")


# --------------------------------------------------------------------------------------------
# 3. Scan
# --------------------------------------------------------------------------------------------


def train_scan_checkpoints(args: argparse.Namespace, train: pd.DataFrame, valid: pd.DataFrame) -> dict[str, dict]:
    """One seed per track, 1 epoch, on the conf/base defaults (vocabulary capped for a small train set)."""
    from streamguard.graphs import GraphConfig, build_graphs
    from streamguard.tracks.fusion import train_fusion
    from streamguard.tracks.gnn import train_gnn
    from streamguard.tracks.transformer import train_transformer

    defaults = conf_defaults()

    def quick(params: dict) -> dict:
        return {**params, "training": {**params["training"], "epochs": 1, "progress": False}}

    transformer_params = quick(defaults["transformer"])
    if args.quick:
        transformer_params.update(vocab_size=min(int(transformer_params["vocab_size"]), 500), max_length=128)
    graph_params = defaults["graphs"]
    graph_config = GraphConfig.from_dict(graph_params)
    checkpoints: dict[str, dict] = {}
    started = time.perf_counter()
    graphs = {"train": build_graphs(train["func"].tolist(), graph_config), "valid": build_graphs(valid["func"].tolist(), graph_config)}
    wanted = set(args.scan_tracks) if "scan" not in args.skip else set()
    checkpoints["transformer"], _ = train_transformer(train, valid, transformer_params, seed=args.seed)  # scaling uses it too
    if wanted & {"gnn", "fusion"}:
        checkpoints["gnn"], _ = train_gnn(
            graphs["train"], train, graphs["valid"], valid, quick(defaults["gnn"]), graph_params, seed=args.seed
        )
    if "fusion" in wanted:
        checkpoints["fusion"], _ = train_fusion(
            checkpoints["transformer"], checkpoints["gnn"], {"train": train, "valid": valid}, graphs,
            quick(defaults["fusion"]), seed=args.seed,
        )
    log(f"scan: trained one seed of {', '.join(checkpoints)} on {len(train)} functions (1 epoch) in {time.perf_counter() - started:.1f}s")
    return {track: [checkpoint] * args.scan_seeds for track, checkpoint in checkpoints.items()}


def load_checkpoint_dir(directory: Path, tracks: Sequence[str]) -> dict[str, list[dict]]:
    from streamguard.training import safe_torch_load

    found: dict[str, list[dict]] = {}
    for track in tracks:
        paths = sorted((directory / track).glob("seed_*/checkpoint.pt"))
        if paths:
            found[track] = [safe_torch_load(path) for path in paths]
        else:
            log(f"scan: no {track} checkpoints under {directory / track}: that track is skipped")
    return found


def write_tree(root: Path, codes: Sequence[str], per_file: int, files_per_directory: int = 25) -> int:
    """C files of ``per_file`` functions each, ``files_per_directory`` per directory; returns the file count."""
    count = 0
    for start in range(0, len(codes), per_file):
        directory = root / f"module_{count // files_per_directory:04d}"
        directory.mkdir(parents=True, exist_ok=True)
        body = "\n".join(codes[start : start + per_file])
        (directory / f"file_{count:05d}.c").write_text(f"#include <stdio.h>\n#include <stdlib.h>\n\n{body}\n", encoding="utf-8")
        count += 1
    return count


def bench_scan(args: argparse.Namespace, codes: list[str], checkpoints: dict[str, list[dict]], report: Report) -> None:
    from streamguard.serving.scorer import EnsembleScorer
    from streamguard.serving.scan import extract_functions, iter_source_files, run_scan
    from streamguard.serving.scan.cli import DEFAULT_INCLUDE, build_parser

    with tempfile.TemporaryDirectory(prefix="streamguard-scan-bench-") as temporary:
        root = Path(temporary) / "tree"
        files = write_tree(root, codes, args.funcs_per_file)
        started = time.perf_counter()
        paths = list(iter_source_files([str(root)], DEFAULT_INCLUDE, ()))
        found = sum(len(extract_functions(path)[0]) for path in paths)
        extract_time = time.perf_counter() - started
        report.add(
            Row(
                "scan", f"extraction only (walk + tree-sitter, {files} files)", found, extract_time, found / extract_time,
                note=f"{found} of {len(codes)} written functions found",
            )
        )
        for track in args.scan_tracks:
            if track not in checkpoints:
                continue
            scorer = EnsembleScorer(track, checkpoints[track], threshold=0.5)
            scorer.score_codes(codes[:16])  # warm-up, untimed: first-call imports and allocations
            # --lines 0: detection throughput. Line scores are computed after scoring, for flagged functions
            # only, so with them on the figure would depend on how many functions the checkpoints flag
            # (README "Which lines?" and benchmarks/lines.py state their cost per flagged function).
            argv = [str(root), "--track", track, "--format", "json", "--output", str(Path(temporary) / f"{track}.json"),
                    "--no-progress", "--lines", "0"]
            scan_args = build_parser().parse_args(argv)
            stderr = io.StringIO()
            started = time.perf_counter()
            code = run_scan(scan_args, scorer_factory=lambda *_: scorer, stdout=io.StringIO(), stderr=stderr)
            elapsed = time.perf_counter() - started
            if code not in (0, 1):
                raise RuntimeError(f"streamguard scan ({track}) exited {code}: {stderr.getvalue().strip()}")
            share = max(0.0, 1 - extract_time / elapsed)
            seeds = len(checkpoints[track])
            report.add(
                Row(
                    "scan", f"`streamguard scan --track {track}` ({seeds} seed{'s' if seeds > 1 else ''})", found, elapsed,
                    found / elapsed, note=f"scoring share {share:.0%}",
                )
            )
            report.ratio(f"ratio scan {track} functions/s: {found / elapsed:,.1f} (scoring share {share:.0%}, {seeds} seeds)")
            log(f"scan: {track} {found} functions in {elapsed:.1f}s")


# --------------------------------------------------------------------------------------------
# 4. Scaling
# --------------------------------------------------------------------------------------------


def bench_scaling(
    args: argparse.Namespace, frame: pd.DataFrame, graph_config: Any, transformer_checkpoint: dict | None, report: Report
) -> None:
    from streamguard.graphs import build_graphs
    from streamguard.tracks.transformer import transformer_logits

    sizes = args.scaling
    def timed(work: Callable[[], Any]) -> tuple[float, float]:
        started, cpu_started = time.perf_counter(), time.process_time()
        work()
        return time.perf_counter() - started, time.process_time() - cpu_started

    # (wall seconds, process CPU seconds) per size. CPU time hardly moves with other processes'
    # load, so on a shared machine it is the better basis for the growth ratio.
    timings: dict[str, dict[int, tuple[float, float]]] = {"graph building": {}, "transformer inference": {}}
    for size in sizes:
        subset = frame.iloc[:size]
        timings["graph building"][size] = timed(lambda: build_graphs(subset["func"].tolist(), graph_config))
        if transformer_checkpoint is not None:
            timings["transformer inference"][size] = timed(lambda: transformer_logits(transformer_checkpoint, subset))
        log(f"scaling: {size:,} functions done ({', '.join(f'{k} {v[size][0]:.1f}s' for k, v in timings.items() if size in v)})")
    smallest, largest = sizes[0], sizes[-1]
    linear = largest / smallest
    for name, values in timings.items():
        if not values:
            continue
        for size in sizes:
            wall, cpu = values[size]
            report.add(Row("scaling", f"{name}, {size:,} functions", size, wall, size / wall, note=f"CPU {cpu:.2f}s"))
        wall_growth = values[largest][0] / values[smallest][0]
        cpu_growth = values[largest][1] / values[smallest][1]
        report.add(
            Row(
                "scaling", f"{name}: time({largest:,}) / time({smallest:,})",
                note=f"**{cpu_growth:.1f}x on CPU time**, {wall_growth:.1f}x on wall time (linear: {linear:.0f}x)",
            )
        )
        report.ratio(
            f"ratio scaling {name} time({largest})/time({smallest}): CPU {cpu_growth:.2f}x, wall {wall_growth:.2f}x (linear {linear:.0f}x)"
        )


# --------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------


def _sizes(text: str) -> list[int]:
    sizes = sorted({int(part) for part in text.split(",") if part.strip()})
    if len(sizes) < 2 or sizes[0] < 1:
        raise argparse.ArgumentTypeError("give at least two positive sizes, e.g. 1000,4000,16000")
    return sizes


def _tracks(text: str) -> list[str]:
    tracks = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [track for track in tracks if track not in ("fusion", "transformer", "gnn")]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown track(s) {unknown}; use fusion, transformer, gnn")
    return tracks


QUICK = dict(
    train_size=48, steps=2, warmup_steps=1, batch_size=8, block_size=128, vocab_size=400, graph_n=40,
    graph_repeats=1, scan_functions=24, scan_seeds=1, scan_train=32, scan_valid=16, scaling=[40, 160],
    scan_tracks=["transformer", "gnn"],
)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default="generated", help="'generated' or a Devign-style .jsonl[.gz] (idx, func, target)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="tiny smoke run (seconds): small defaults for the sizes below")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's own choice)")
    training = parser.add_argument_group("1. training")
    training.add_argument("--model", choices=["tiny", "small"], default="tiny")
    training.add_argument("--vocab-size", type=int, help="BPE vocabulary (default: tiny 4000, small 8000, as the presets)")
    training.add_argument("--block-size", type=int, default=512, help="classic recipe's fixed length; both recipes truncate at it")
    training.add_argument("--batch-size", type=int, default=16)
    training.add_argument("--steps", type=int, default=30, help="timed optimizer steps per recipe")
    training.add_argument("--warmup-steps", type=int, default=1, help="untimed steps per recipe before timing")
    training.add_argument("--train-size", type=int, default=1024, help="functions to draw batches from (>= one 800-example mega-batch)")
    graphs = parser.add_argument_group("2. graph building")
    graphs.add_argument("--graph-n", type=int, default=2000)
    graphs.add_argument("--graph-repeats", type=int, default=3, help="best of this many runs")
    scan = parser.add_argument_group("3. scan")
    scan.add_argument("--scan-functions", type=int, default=2000, help="functions in the scanned tree (the issue asks for >= 2,000)")
    scan.add_argument("--scan-tracks", type=_tracks, default=["fusion", "transformer", "gnn"], help="comma-separated")
    scan.add_argument("--scan-seeds", type=int, default=3, help="seed checkpoints per track (conf/base seeds: 3)")
    scan.add_argument("--scan-train", type=int, default=256, help="functions to train the scan checkpoints on")
    scan.add_argument("--scan-valid", type=int, default=64)
    scan.add_argument("--funcs-per-file", type=int, default=20)
    scan.add_argument("--checkpoint-dir", type=Path, help="score with <dir>/<track>/seed_*/checkpoint.pt (e.g. data/06_models)")
    scaling = parser.add_argument_group("4. scaling")
    scaling.add_argument("--scaling", type=_sizes, default=[1000, 4000, 16000], help="comma-separated function counts")
    parser.add_argument(
        "--skip", type=lambda text: {part.strip() for part in text.split(",") if part.strip()}, default=set(),
        help="sections to skip: training,graphs,scan,scaling",
    )
    args = parser.parse_args(argv)
    if args.quick:  # smaller defaults; options given on the command line still win
        for name, value in QUICK.items():
            if getattr(args, name) == parser.get_default(name):
                setattr(args, name, value)
    if args.vocab_size is None:
        args.vocab_size = 4000 if args.model == "tiny" else 8000
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    quiet_libraries()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from streamguard.graphs import GraphConfig
    from streamguard.training import resolve_device

    device = resolve_device("auto")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    command = shlex.join(["python", *sys.argv]) if argv is None else shlex.join(["python", "benchmarks/speed.py", *argv])
    report = Report()
    overall = time.perf_counter()

    measured = max(args.train_size, args.graph_n, args.scan_functions, args.scaling[-1])
    frame, origin = load_rows(args.source, measured + args.scan_train + args.scan_valid, args.seed)
    pool, scan_train = frame.iloc[:measured].reset_index(drop=True), frame.iloc[measured:]
    log(f"data: {origin}; {len(frame):,} rows in {time.perf_counter() - overall:.1f}s")
    graph_config = GraphConfig.from_dict(conf_defaults()["graphs"])

    if "training" not in args.skip:
        log("1/4 training throughput")
        bench_training(args, pool.iloc[: args.train_size].reset_index(drop=True), report, device, sync)

    if "graphs" not in args.skip:
        log("2/4 graph building")
        bench_graphs(args, pool["func"].iloc[: args.graph_n].tolist(), graph_config, report)

    checkpoints: dict[str, list[dict]] = {}
    if not {"scan", "scaling"} <= args.skip:
        if args.checkpoint_dir is not None:
            checkpoints = load_checkpoint_dir(args.checkpoint_dir, ["fusion", "transformer", "gnn"])
        else:
            train = scan_train.iloc[: args.scan_train].reset_index(drop=True)
            valid = scan_train.iloc[args.scan_train :].reset_index(drop=True)
            checkpoints = train_scan_checkpoints(args, train, valid)

    if "scan" not in args.skip:
        log("3/4 scan")
        bench_scan(args, pool["func"].iloc[: args.scan_functions].tolist(), checkpoints, report)

    if "scaling" not in args.skip:
        log("4/4 scaling")
        transformer = checkpoints.get("transformer", [None])[0]
        if transformer is None:
            log("scaling: no transformer checkpoint, transformer inference skipped")
        bench_scaling(args, pool, graph_config, transformer, report)

    total = time.perf_counter() - overall
    print()
    print("## StreamGuard speed")
    print()
    print(markdown_table(report.rows))
    print()
    print(f"- command: `{command}`")
    print(f"- data: {origin}")
    if "transformer" in checkpoints:
        info = checkpoints["transformer"][0]["model"]["backbone_info"]
        where = args.checkpoint_dir or "trained here, 1 epoch"
        print(f"- scan / scaling transformer: {info['model_name']}, max_length {info['max_length']} ({where})")
    for line in machine_lines(torch, str(device)):
        print(line)
    busy = busy_note(torch)
    if busy:
        print(busy)
    print(f"- total wall time: {total:.0f}s")
    return 0


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
