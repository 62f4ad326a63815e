"""Scan start-up: seconds from ``streamguard scan one.c`` to its result, per track, and where they go.

    python benchmarks/scan_startup.py --project-dir path/to/trained/project          # every trained track
    python benchmarks/scan_startup.py --project-dir P --tracks fusion --repeats 5
    python benchmarks/scan_startup.py --make-tiny-project /tmp/sg-tiny              # trains one first (minutes)
    python benchmarks/scan_startup.py --project-dir P --library-models              # as before the lite models

What is measured, in one run:

* **Command to first result**: wall time of ``python -m streamguard.console scan one.c --project-dir P
  --track T --format json --output FILE`` as a subprocess (interpreter start, imports, model loading,
  extraction, scoring, line scores, report written), one file with one function
  (``--function``; the default is a copy that every track flags, so line scores are included).
* Per track, ``--repeats`` pairs of scans, alternated: a **first scan** of the project
  (``data/06_models/.scan_index.json`` removed: the catalog is resolved with Kedro, as every scan
  did before the index existed) and a scan **after the first run** (the index is there: no Kedro),
  track after track, so that load from other processes hits both figures alike; medians and
  spreads are printed, and the median of the per-pair differences.
* The scan's own ``load_seconds`` / ``seconds`` / line-score seconds from its JSON summary.
* **Import breakdown**: one more scan per track under ``python -X importtime``, each module's own
  import time summed per top-level package (torch, transformers, torch_geometric, pandas, kedro...).
  ``-X importtime`` slows imports down itself: read the shares, not the absolute sum.

The target (issue 18): under 5 s on 2 cores after the first run. On a busy machine the absolute
figures are inflated (the load average is printed); compare figures of the same run.

Where a scan's start-up goes: ``import torch`` is about 2 s of it. The scorer builds the plain-torch
twins of the models (``streamguard.models.roberta_lite``, ``tokenizer_lite``, ``gnn_lite``), so a
scan of the default tracks imports neither ``transformers`` (about 3.5 s on 2 cores: torch._dynamo,
sympy, torch.distributed.tensor, accelerate, scipy) nor ``torch_geometric`` (about 1 s more, and it
imports transformers and pandas itself), nor Captum for the default line scores, nor pandas.
``--library-models`` scans with ``STREAMGUARD_LITE_MODELS=0`` (the library models, as training
builds them): the figures as they were before, for a comparison within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
TRACKS = ("fusion", "transformer", "gnn")
INDEX = Path("data") / "06_models" / ".scan_index.json"
DEFAULT_FUNCTION = "int copy(char *src) {\n    char buf[16];\n    strcpy(buf, src);\n    return buf[0];\n}\n"
#: Packages named in the import breakdown (the rest is summed as "other").
PACKAGES = (
    "torch", "transformers", "torch_geometric", "tokenizers", "pandas", "pyarrow", "scipy", "sympy", "sklearn",
    "kedro", "omegaconf", "dynaconf", "flask", "mlflow", "numpy", "tree_sitter", "tree_sitter_c", "captum",
    "matplotlib", "huggingface_hub", "safetensors", "accelerate", "fsspec", "yaml", "tqdm", "jinja2", "streamguard",
)
_IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)")


def log(message: str) -> None:
    print(f"[scan_startup] {message}", file=sys.stderr, flush=True)


def scan_command(source: Path, project: Path, track: str, output: Path, importtime: bool = False) -> list[str]:
    return [
        sys.executable, *(["-X", "importtime"] if importtime else []), "-m", "streamguard.console", "scan", str(source),
        "--project-dir", str(project), "--track", track, "--format", "json", "--output", str(output), "--no-progress",
    ]


LIBRARY_MODELS: dict[str, str] = {}  # {"STREAMGUARD_LITE_MODELS": "0"} with --library-models


def scan_env() -> dict[str, str]:
    from streamguard.runtime.offline import OFFLINE_ENV

    return {**OFFLINE_ENV, **os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), **LIBRARY_MODELS}


def timed_scan(source: Path, project: Path, track: str, workdir: Path, importtime: bool = False) -> dict:
    output = workdir / f"{track}.json"
    started = time.perf_counter()
    done = subprocess.run(scan_command(source, project, track, output, importtime), env=scan_env(), capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode not in (0, 1):
        raise SystemExit(f"scan --track {track} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    summary = json.loads(output.read_text(encoding="utf-8"))["summary"]
    return {"wall": wall, "summary": summary, "stderr": done.stderr}


def import_breakdown(stderr: str) -> dict[str, float]:
    """Seconds of own import time per top-level package, from ``-X importtime`` lines."""
    seconds: dict[str, float] = defaultdict(float)
    for line in stderr.splitlines():
        match = _IMPORT_LINE.match(line)
        if match:
            root = match[4].split(".")[0]
            seconds[root if root in PACKAGES else "other"] += int(match[1]) / 1e6
    return dict(seconds)


def load_note() -> str:
    if not hasattr(os, "getloadavg"):
        return "load average: n/a"
    load = os.getloadavg()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    busy = " (busy machine: absolute figures inflated, compare within this run)" if load[0] > 0.5 else ""
    return f"load average {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f} on {cores} core(s){busy}"


def forget_track(index: Path, track: str) -> None:
    """Drop ``track``'s entry from the scan index (its next scan resolves the catalog with Kedro)."""
    try:
        content = json.loads(index.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if isinstance(content, dict) and isinstance(content.get("tracks"), dict) and content["tracks"].pop(track, None) is not None:
        index.write_text(json.dumps(content, indent=1), encoding="utf-8")


def trained_tracks(project: Path) -> list[str]:
    return [track for track in TRACKS if any((project / "data" / "06_models" / track).glob("seed_*/checkpoint.pt"))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--project-dir", type=Path, help="a trained StreamGuard project")
    parser.add_argument("--make-tiny-project", type=Path, metavar="DIR", help="train a tiny project (every track) in DIR first")
    parser.add_argument("--tracks", nargs="+", choices=TRACKS, help="default: every track trained in the project")
    parser.add_argument("--repeats", type=int, default=3, help="pairs of scans (first, after the first run) per track (default: 3)")
    parser.add_argument("--function", type=Path, help="a C file to scan instead of the built-in one-function file")
    parser.add_argument("--no-importtime", action="store_true", help="skip the import breakdown")
    parser.add_argument("--json-out", type=Path, help="also write the figures as JSON here")
    parser.add_argument("--library-models", action="store_true",
                        help="score with the library models (transformers, PyG: STREAMGUARD_LITE_MODELS=0), as before the lite ones")
    args = parser.parse_args(argv)
    if args.library_models:
        LIBRARY_MODELS["STREAMGUARD_LITE_MODELS"] = "0"
    if args.make_tiny_project:
        sys.path.insert(0, str(Path(__file__).parent))
        from load_scan import make_tiny_project

        project = make_tiny_project(args.make_tiny_project.resolve(), "fusion", int(os.environ.get("OMP_NUM_THREADS", "1")))
    elif args.project_dir:
        project = args.project_dir.resolve()
    else:
        parser.error("give --project-dir or --make-tiny-project")
    tracks = args.tracks or trained_tracks(project)
    if not tracks:
        raise SystemExit(f"no trained track in {project}/data/06_models")
    index = project / INDEX
    results: dict[str, dict] = {track: {"first": [], "after": [], "imports": {}} for track in tracks}
    with tempfile.TemporaryDirectory(prefix="scan-startup-") as directory:
        workdir = Path(directory)
        source = workdir / "one.c"
        source.write_text(args.function.read_text(encoding="utf-8") if args.function else DEFAULT_FUNCTION, encoding="utf-8")
        saved_index = index.read_bytes() if index.exists() else None
        try:
            for repeat in range(args.repeats):  # pairs: first scan (no index: Kedro), then after the first run
                for track in tracks if repeat % 2 == 0 else list(reversed(tracks)):
                    forget_track(index, track)
                    results[track]["first"].append(timed_scan(source, project, track, workdir))
                    results[track]["after"].append(timed_scan(source, project, track, workdir))
                    log(f"{track}: first scan {results[track]['first'][-1]['wall']:.2f}s, "
                        f"after the first run {results[track]['after'][-1]['wall']:.2f}s")
            if not args.no_importtime:
                for track in tracks:
                    results[track]["imports"] = import_breakdown(timed_scan(source, project, track, workdir, True)["stderr"])
        finally:
            if saved_index is not None and not index.exists():
                index.write_bytes(saved_index)
    print(f"streamguard scan start-up, one file with one function, project {project}")
    models = "library models (STREAMGUARD_LITE_MODELS=0)" if args.library_models else "plain-torch models"
    print(f"- {load_note()}; OMP_NUM_THREADS={scan_env()['OMP_NUM_THREADS']}; {models}")
    print(f"- {args.repeats} pair(s) per track; command to first result, seconds: median (min-max)")
    print("| track | first scan (Kedro) | after the first run | saved per pair | load | score | lines |")
    print("|---|---|---|---|---|---|---|")
    figures: dict[str, dict] = {}
    for track in tracks:
        first = [run["wall"] for run in results[track]["first"]]
        after = [run["wall"] for run in results[track]["after"]]
        saved = statistics.median(a - b for a, b in zip(first, after))
        summaries = [run["summary"] for run in results[track]["after"]]
        load = statistics.median(s["load_seconds"] for s in summaries)
        score = statistics.median(s["seconds"] for s in summaries)
        lines = statistics.median((s.get("line_scores") or {}).get("seconds", 0.0) for s in summaries)
        print(f"| {track} | {statistics.median(first):.2f} ({min(first):.2f}-{max(first):.2f}) | "
              f"{statistics.median(after):.2f} ({min(after):.2f}-{max(after):.2f}) | {saved:.2f} | {load:.2f} | {score:.2f} | {lines:.2f} |")
        figures[track] = {"first_scan_seconds": first, "after_first_run_seconds": after, "saved_median_seconds": saved,
                          "load_seconds": load, "score_seconds": score, "line_seconds": lines}
    if not args.no_importtime:
        print("\nimport breakdown (own import time per package under -X importtime, seconds; inflated by it):")
        shown = [p for p in (*PACKAGES, "other") if any(results[t]["imports"].get(p, 0) >= 0.005 for t in tracks)]
        print("| package | " + " | ".join(tracks) + " |")
        print("|---|" + "---|" * len(tracks))
        for package in sorted(shown, key=lambda p: -max(results[t]["imports"].get(p, 0.0) for t in tracks)):
            print(f"| {package} | " + " | ".join(f"{results[t]['imports'].get(package, 0.0):.2f}" for t in tracks) + " |")
        print("| total | " + " | ".join(f"{sum(results[t]['imports'].values()):.2f}" for t in tracks) + " |")
        for track in tracks:
            figures[track]["imports"] = results[track]["imports"]
    if args.json_out:
        args.json_out.write_text(json.dumps({"load": load_note(), "tracks": figures}, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
