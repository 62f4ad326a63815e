"""The main job's wall time: the default ``kedro run`` under several runner / thread settings, idle and busy.

    python benchmarks/main_job.py                                   # every setting, idle machine
    python benchmarks/main_job.py --competitor --settings auto,dask  # beside one CPU-bound process
    python benchmarks/main_job.py --quick                            # smoke run (tiny models)

Each setting runs the ``__default__`` pipeline (what ``bash scripts/run.sh`` runs) in a fresh copy of
the project's conf, in this process through a ``KedroSession`` so a hook can time every node:

* ``torch_default``: the sequential runner with ``cpu_threads=0`` (torch's one thread per core);
* ``auto``: the sequential runner with ``cpu_threads=auto`` (the project default);
* ``dask``: ``streamguard.runners.DaskRunner``, a LocalCluster of 2 worker processes with one thread
  each, so independent seeds and tracks train side by side.

``--rerun`` runs each setting a second time in the same project: every seed is finished, so this
is what re-running a finished main job costs (the reuse check). ``--competitor`` starts one CPU-bound process (a busy loop) for the whole measurement, as another
job on a shared machine would. The report gives per setting the total, the seconds per stage (data,
baseline, transformer, gnn, fusion, ensemble; node times summed, so parallel stages can add up to
more than the total) and the final report's test ROC-AUC per ensemble, and the ratio of every total
to the first setting's, all measured in the same invocation.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import quality  # noqa: E402  (project copies, NodeTimer, stages)

SETTINGS = ("torch_default", "auto", "dask")
STAGES = ("data_processing", "baseline", "transformer", "gnn", "fusion", "ensemble")


def local_parameters(setting: str, quick: bool) -> str:
    threads = {"torch_default": 0, "auto": "auto", "dask": 1}[setting]
    return f"cpu_threads: {threads}\n" + ("seeds: [0, 1]\n" + quality.QUICK_LOCAL if quick else "")


def runner_for(setting: str) -> Any:
    if setting != "dask":
        return None
    import functools

    from streamguard.runners import DaskRunner

    # What scripts/run.sh passes; built in the project once it is bootstrapped (quality.run_project), as `kedro run` does.
    return functools.partial(DaskRunner, n_workers=2, threads_per_worker=1, dashboard_address=None, warm_start=True)


def run_setting(setting: str, workdir: Path, quick: bool, runtime_params: dict[str, Any], rerun: bool = False) -> dict[str, Any]:
    """One default ``kedro run`` in a fresh project copy (``rerun``: a second one in the same copy, which
    reuses every finished seed): total, per-stage node seconds, ensemble ROC-AUCs."""
    project = workdir / setting
    if not rerun:
        shutil.rmtree(project, ignore_errors=True)
        project.mkdir(parents=True)
        quality.make_project_copy(project, local_parameters(setting, quick))
    total, node_seconds, _ = quality.run_project(project, runtime_params, runner=runner_for(setting))
    stages = {stage: 0.0 for stage in STAGES} | quality.stage_seconds(node_seconds)
    roc_auc = {}
    for track in ("transformer", "gnn", "fusion"):
        path = project / "data" / "08_reporting" / track / "ensemble_metrics.json"
        if path.exists():
            roc_auc[track] = json.loads(path.read_text())["test"]["roc_auc"]
    baseline = project / "data" / "08_reporting" / "baseline" / "seed_0" / "metrics.json"
    if baseline.exists():
        roc_auc["baseline"] = json.loads(baseline.read_text())["test"]["roc_auc"]
    return {"setting": setting + (" (re-run)" if rerun else ""), "total_s": total, "stages": stages, "nodes": len(node_seconds), "roc_auc": roc_auc,
            "load_after": quality._load_average(), "project": str(project)}


def compare_ensembles(project: Path, reference: Path) -> dict[str, dict[str, float]]:
    """Per track, test ROC-AUC of ``project``'s seed ensemble minus ``reference``'s on the same test rows,
    with the paired-bootstrap 95 % interval (``streamguard.evaluation.scoring.paired_bootstrap_auc_delta``):
    whether a change to the main job moved its quality beyond test-sampling noise."""
    import pandas as pd

    from streamguard.evaluation.scoring import paired_bootstrap_auc_delta

    deltas = {}
    for track in ("transformer", "gnn", "fusion", "stacked"):
        paths = [root / "data" / "07_model_output" / track / "ensemble_test_logits.parquet" for root in (project, reference)]
        if not all(path.exists() for path in paths):
            continue
        new, old = (pd.read_parquet(path).set_index("idx").sort_index() for path in paths)
        if not new.index.equals(old.index) or not (new["label"] == old["label"]).all():
            raise SystemExit(f"{track}: the two projects' test rows differ; compare runs on the same data")
        deltas[track] = paired_bootstrap_auc_delta(new["label"].to_numpy(), old["prob"].to_numpy(), new["prob"].to_numpy())
    return deltas


def report(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    first = results[0]["total_s"]
    lines = [
        f"# StreamGuard main job: default `kedro run`{' (quick)' if args.quick else ''}"
        f"{' beside one CPU-bound process' if args.competitor else ''}",
        "",
        f"- Command: `python benchmarks/main_job.py {' '.join(sys.argv[1:])}`; machine: {platform.machine()}, "
        f"{os.cpu_count()} CPU cores, Python {platform.python_version()}, torch {quality._torch_version()}; "
        f"load average before: {args.load_before}",
        "",
        "| setting | total | ratio to first | " + " | ".join(STAGES) + " | nodes | test ROC-AUC (ensembles; baseline) |",
        "|---|---|---|" + "---|" * len(STAGES) + "---|---|",
    ]
    for result in results:
        timed = result["nodes"] > 0  # the Dask runner's nodes run in its workers, out of this process's hooks
        stages = " | ".join(f"{result['stages'].get(stage, 0.0):.0f} s" if timed else "–" for stage in STAGES)
        aucs = ", ".join(f"{track} {value:.3f}" for track, value in result["roc_auc"].items())
        lines.append(f"| `{result['setting']}` | {result['total_s']:.0f} s ({result['total_s'] / 60:.1f} min) | "
                     f"{result['total_s'] / first:.2f} | {stages} | {result['nodes'] if timed else '– (in workers)'} | {aucs} |")
    lines += ["", "Stage columns sum the node times of that stage; with the Dask runner nodes overlap, so they can "
              "add up to more than the total. Ratios are within this invocation (same machine, same load)."]
    for result in results[1:]:
        lines.append(f"ratio main job {result['setting']}/{results[0]['setting']}: {result['total_s'] / first:.2f}")
    if args.compare_with is not None:
        lines += ["", f"Test ROC-AUC against `{args.compare_with}` (same test rows; this run minus that one, paired bootstrap 95 % interval):", ""]
        for result in results:
            deltas = compare_ensembles(Path(result["project"]), args.compare_with)
            lines.append(f"- `{result['setting']}`: " + ", ".join(
                f"{track} {d['delta']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]" for track, d in deltas.items()))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> str:
    from streamguard.runtime.offline import enforce_offline

    enforce_offline()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--settings", default=",".join(SETTINGS), help=f"comma-separated, in order, of {', '.join(SETTINGS)}")
    parser.add_argument("--competitor", action="store_true", help="one CPU-bound process runs beside every setting")
    parser.add_argument("--quick", action="store_true", help="tiny models, 2 seeds, small generated data: a smoke run")
    parser.add_argument("--rerun", action="store_true", help="after each setting, run it again in the same project "
                        "(every seed finished: what re-running a finished main job costs)")
    parser.add_argument("--compare-with", type=Path, default=None, help="a finished project copy (e.g. an earlier "
                        "version's run): each ensemble's test ROC-AUC difference to it, paired bootstrap")
    parser.add_argument("--workdir", type=Path, default=None, help="project copies (default: a temp folder, removed)")
    parser.add_argument("--out", type=Path, default=None, help="Markdown report (default benchmarks/results/main_job[_busy].md)")
    args = parser.parse_args(argv)
    settings = [name for name in args.settings.split(",") if name]
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown or not settings:
        parser.error(f"unknown setting(s) {unknown}; known: {', '.join(SETTINGS)}")
    if args.out is None:
        suffix = ("_quick" if args.quick else "") + ("_busy" if args.competitor else "")
        args.out = quality.PROJECT_ROOT / "benchmarks" / "results" / f"main_job{suffix}.md"
    args.load_before = quality._load_average()
    runtime_params = quality.dotted_params([f"data_processing.generator.n_{split}={n}" for split, n in
                                            zip(("train", "valid", "test"), quality.QUICK_SIZES)]) if args.quick else {}
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="streamguard-main-job-"))
    competitor = None
    if args.competitor:
        competitor = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    results = []
    try:
        for setting in settings:
            print(f"[main_job] {setting}: kedro run ...", flush=True)
            results.append(run_setting(setting, workdir, args.quick, runtime_params))
            print(f"[main_job] {setting}: {results[-1]['total_s']:.0f} s", flush=True)
            if args.rerun:
                results.append(run_setting(setting, workdir, args.quick, runtime_params, rerun=True))
                print(f"[main_job] {setting} re-run: {results[-1]['total_s']:.0f} s", flush=True)
    finally:
        if competitor is not None:
            competitor.kill()
            competitor.wait()
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    text = quality.write_report(report(results, args), args.out)
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return text


if __name__ == "__main__":
    main()
