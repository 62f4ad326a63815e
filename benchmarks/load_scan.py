"""Load test for ``streamguard scan``: a generated tree of many C functions, scanned by the real console
script against a trained project; prints peak RSS and functions/s.

    python benchmarks/load_scan.py --project-dir path/to/trained/project            # 20,000 functions
    python benchmarks/load_scan.py --project-dir P --functions 500 --track transformer
    python benchmarks/load_scan.py --make-tiny-project /tmp/sg-tiny --functions 500  # trains one first

What is measured:

* The scan runs as a subprocess (``python -m streamguard.console scan TREE --project-dir P --format
  json --output ...``), exactly what CI would run, model loading included.
* **Peak RSS** of that process: ``ru_maxrss`` of its own resource usage, from ``os.wait4`` (what
  ``resource.getrusage(RUSAGE_CHILDREN)`` reports, but for this child alone, so the training runs of
  ``--make-tiny-project`` do not count). Sampled RSS (every 0.2 s) is printed too when psutil is installed.
* **functions/s**, two ways: end to end (functions found / wall time of the subprocess: interpreter
  start, imports, model loading, walk, extraction, scoring, report) and the scan's own figure from
  the JSON summary (walk + extraction + scoring, after the models are loaded).

The tree: ``streamguard.data.generator.generate_functions`` (the project's generator, all 8 CWE
families, vulnerable and fixed variants), ``--per-file`` functions per .c file, 25 files per
directory, as benchmarks/speed.py writes its scan tree. Every function written must be found:
the script fails if the scan reports fewer, or any file problem.

``--make-tiny-project DIR`` builds a trained project first: a copy of this project's conf with one
seed and tiny model sizes, then ``kedro run`` of data_processing and the track's training pipeline(s)
(fusion needs transformer and gnn) and ``ensemble`` (the validation-chosen threshold). Minutes on
2 CPU cores; its scores mean nothing, the load does.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
FILES_PER_DIRECTORY = 25
TRACK_PIPELINES = {
    "transformer": ["transformer"],
    "gnn": ["gnn"],
    "fusion": ["transformer", "gnn", "fusion"],
}


def tiny_project_parameters() -> str:
    """One seed on a small generated sample, with quality.py's smoke-run model sizes."""
    benchmarks = str(Path(__file__).parent)
    if benchmarks not in sys.path:  # also when this file is imported, not run
        sys.path.insert(0, benchmarks)
    from quality import QUICK_LOCAL

    return "seeds: [0]\ndata_processing:\n  generator: {n_train: 240, n_valid: 80, n_test: 80, seed: 3}\n" + QUICK_LOCAL.lstrip("\n")


def log(message: str) -> None:
    print(f"[load_scan] {message}", file=sys.stderr, flush=True)


def write_tree(root: Path, codes: list[str], per_file: int) -> int:
    """The speed benchmark's tree layout (``FILES_PER_DIRECTORY`` files per directory); returns the file count."""
    benchmarks = str(Path(__file__).parent)
    if benchmarks not in sys.path:  # also when this file is imported, not run
        sys.path.insert(0, benchmarks)
    from speed import write_tree as write_speed_tree

    return write_speed_tree(root, codes, per_file, files_per_directory=FILES_PER_DIRECTORY)


def generate_tree(root: Path, functions: int, per_file: int, seed: int) -> int:
    from streamguard.data.generator import generate_functions

    started = time.perf_counter()
    codes = [row["func"] for row in generate_functions(functions, seed)]
    files = write_tree(root, codes, per_file)
    log(f"wrote {functions:,} functions in {files:,} files under {root} ({time.perf_counter() - started:.1f}s)")
    return files


def offline_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    from streamguard.runtime.offline import OFFLINE_ENV

    env = {**OFFLINE_ENV, **os.environ, **(extra or {})}
    return env


def make_tiny_project(directory: Path, track: str, threads: int) -> Path:
    """A trained, tiny copy of this project (conf only; the package is the installed one)."""
    if (directory / "conf").exists():
        log(f"{directory} already has conf/: reusing it (delete it to retrain)")
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copytree(REPO_ROOT / "conf", directory / "conf", ignore=shutil.ignore_patterns("local"))
    (directory / "conf" / "local").mkdir()
    (directory / "conf" / "local" / "parameters.yml").write_text(tiny_project_parameters())
    shutil.copy(REPO_ROOT / "pyproject.toml", directory / "pyproject.toml")
    (directory / "src").mkdir(exist_ok=True)  # Kedro's bootstrap checks it exists
    env = offline_env({"MLFLOW_TRACKING_URI": f"sqlite:///{directory / 'mlflow.db'}", "OMP_NUM_THREADS": str(threads)})
    for pipeline in ["data_processing", *TRACK_PIPELINES[track], "ensemble"]:
        started = time.perf_counter()
        log(f"training the tiny project: kedro run --pipeline {pipeline}")
        done = subprocess.run(
            [sys.executable, "-m", "kedro", "run", "--pipeline", pipeline], cwd=directory, env=env,
            capture_output=True, text=True,
        )
        if done.returncode != 0 and pipeline == "ensemble":
            log(f"ensemble failed (the scan then uses threshold 0.5): {done.stderr.strip().splitlines()[-1:]}")
            continue
        if done.returncode != 0:
            sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
            raise SystemExit(f"kedro run --pipeline {pipeline} failed in {directory} (exit {done.returncode})")
        log(f"  done in {time.perf_counter() - started:.1f}s")
    return directory


class RssSampler:
    """RSS of a running process every ``interval`` seconds (psutil), as a cross-check of ru_maxrss."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        self.peak_bytes = 0
        self.samples = 0
        self._stop = threading.Event()
        try:
            import psutil

            self._process = psutil.Process(pid)
        except Exception:  # psutil missing, or the process already gone
            self._process = None
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)

    def _run(self, interval: float) -> None:
        while not self._stop.is_set() and self._process is not None:
            try:
                self.peak_bytes = max(self.peak_bytes, self._process.memory_info().rss)
                self.samples += 1
            except Exception:
                return
            self._stop.wait(interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=2)


def run_scan(tree: Path, project: Path, track: str, output: Path, batch_size: int | None, threads: int) -> dict:
    command = [
        sys.executable, "-m", "streamguard.console", "scan", str(tree), "--project-dir", str(project), "--track", track,
        "--format", "json", "--output", str(output), "--no-progress",
    ]
    if batch_size is not None:
        command += ["--batch-size", str(batch_size)]
    env = offline_env({"OMP_NUM_THREADS": str(threads)})
    if (project / "mlflow.db").exists():
        env.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{project / 'mlflow.db'}")
    log("running: " + " ".join(command))
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, env=env, stdout=out, stderr=err, text=True)
        with RssSampler(process.pid) as sampler:
            # wait4: this child's own rusage, not the max over every child this script ever ran (training).
            _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    kilobytes = 1024 if sys.platform == "darwin" else 1  # ru_maxrss: KiB on Linux, bytes on macOS
    return {
        "exit_code": process.returncode,
        "stdout": stdout,
        "stderr": stderr,
        "wall_seconds": wall,
        "peak_rss_mb": usage.ru_maxrss / kilobytes / 1024,
        "sampled_peak_rss_mb": sampler.peak_bytes / 2**20 if sampler.samples else None,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--project-dir", type=Path, help="a trained StreamGuard project (checkpoints under data/06_models)")
    parser.add_argument("--make-tiny-project", type=Path, metavar="DIR", help="train a tiny project in DIR first and scan with it")
    parser.add_argument("--functions", type=int, default=20_000, help="functions in the tree (default: 20,000)")
    parser.add_argument("--per-file", type=int, default=20, help="functions per .c file (default: 20)")
    parser.add_argument("--track", choices=sorted(TRACK_PIPELINES), default="fusion", help="scan --track (default: fusion)")
    parser.add_argument("--batch-size", type=int, help="scan --batch-size (default: the scan's own)")
    parser.add_argument("--seed", type=int, default=11, help="generator seed")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")), help="OMP_NUM_THREADS for the scan")
    parser.add_argument("--tree-dir", type=Path, help="write the tree here and keep it (default: a temporary directory)")
    parser.add_argument("--json-out", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    if args.functions < 1 or args.per_file < 1:
        parser.error("--functions and --per-file must be positive")
    if (args.project_dir is None) == (args.make_tiny_project is None):
        parser.error("give exactly one of --project-dir (trained) or --make-tiny-project DIR")

    sys.path.insert(0, str(REPO_ROOT / "src"))  # when run from a checkout without an install
    project = args.project_dir or make_tiny_project(args.make_tiny_project.resolve(), args.track, args.threads)
    project = project.resolve()
    if not (project / "conf").is_dir():
        raise SystemExit(f"{project} is not a StreamGuard project (no conf/)")

    with tempfile.TemporaryDirectory(prefix="streamguard-load-scan-") as temporary:
        tree = args.tree_dir.resolve() if args.tree_dir else Path(temporary) / "tree"
        if tree.exists() and any(tree.iterdir()):
            raise SystemExit(f"--tree-dir {tree} is not empty")
        files = generate_tree(tree, args.functions, args.per_file, args.seed)
        output = Path(temporary) / "scan.json"
        measured = run_scan(tree, project, args.track, output, args.batch_size, args.threads)
        if measured["exit_code"] not in (0, 1):
            sys.stderr.write(measured["stderr"][-4000:])
            raise SystemExit(f"streamguard scan exited {measured['exit_code']}")
        report = json.loads(output.read_text())

    summary = report["summary"]
    found = summary["functions"]
    results = {
        "functions_written": args.functions,
        "functions_found": found,
        "files": files,
        "files_scanned": summary["files_scanned"],
        "file_problems": len(report["problems"]),
        "track": args.track,
        "scorer": summary["description"],
        "threads": args.threads,
        "exit_code": measured["exit_code"],
        "over_threshold": summary["over_threshold"],
        "wall_seconds": round(measured["wall_seconds"], 2),
        "cpu_seconds": round(measured["cpu_seconds"], 2),
        "end_to_end_functions_per_second": round(found / measured["wall_seconds"], 1),
        "scan_seconds": summary["seconds"],
        "scan_functions_per_second": summary["functions_per_second"],
        "peak_rss_mb": round(measured["peak_rss_mb"], 1),
        "sampled_peak_rss_mb": None if measured["sampled_peak_rss_mb"] is None else round(measured["sampled_peak_rss_mb"], 1),
    }
    width = max(len(key) for key in results)
    print(f"streamguard scan load test: {args.functions:,} generated functions, track {args.track}, project {project}")
    for key, value in results.items():
        print(f"  {key:<{width}}  {value:,}" if isinstance(value, (int, float)) and not isinstance(value, bool) else f"  {key:<{width}}  {value}")
    print(
        f"peak RSS {results['peak_rss_mb']:,.0f} MB; {results['end_to_end_functions_per_second']:,.1f} functions/s end to end, "
        f"{results['scan_functions_per_second']:,.1f} functions/s after model loading"
    )
    if args.json_out:
        args.json_out.write_text(json.dumps(results, indent=2) + "\n")
    if found != args.functions or results["file_problems"]:
        log(f"MISMATCH: wrote {args.functions} functions, the scan found {found} with {results['file_problems']} file problem(s)")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
