"""Which inputs does the stacked model need? Stacking variants on a finished run's logits.

    python benchmarks/stacking_variants.py --project /work/bench_devign_full \\
        --out benchmarks/results/stacking_variants_devign_full.json

Reads the baseline's and every track's ensemble valid/test logits from a project folder (for
example a ``quality.py --keep`` run), plus any ``--extra NAME=FOLDER:TRACK`` (the seed ensemble of
``TRACK``'s per-seed logits in another run on the same rows, e.g. an ablation variant:
``--extra gnn_ast=/work/abl/edges_ast_only:gnn``), fits the same meta-model as the pipeline's ``stacked`` node
(``streamguard.evaluation.stacking.stack_tracks``: fitted on valid with cross-fitting, test never used) for
each subset of inputs, and prints test ROC-AUC, accuracy at 0.5, the paired-bootstrap interval of
the ROC-AUC difference to the baseline and the meta-model's coefficients.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

VARIANTS = (
    ("baseline", "gnn"),
    ("baseline", "transformer"),
    ("baseline", "fusion"),
    ("baseline", "transformer", "gnn"),
    ("baseline", "transformer", "gnn", "fusion"),
    ("transformer", "gnn", "fusion"),
)


def main() -> None:
    import pandas as pd

    from streamguard.evaluation.stacking import stack_tracks

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--project", type=Path, required=True, help="project folder holding data/07_model_output")
    parser.add_argument("--out", type=Path, required=True, help="JSON file for the results")
    parser.add_argument("--extra", action="append", default=[], metavar="NAME=FOLDER:TRACK",
                        help="another run's seed ensemble of TRACK as input NAME (repeatable); variants with every "
                             "extra added to the best inputs, and each extra beside the baseline, are fitted too")
    args = parser.parse_args()
    outputs = args.project / "data" / "07_model_output"
    extras = dict(_parse_extra(item) for item in args.extra)
    extra_logits = {name: _seed_ensemble(folder, track) for name, (folder, track) in extras.items()}

    def logits(track: str, split: str) -> pd.DataFrame:
        if track in extra_logits:
            return extra_logits[track][split]
        name = f"baseline/seed_0/{split}_logits.parquet" if track == "baseline" else f"{track}/ensemble_{split}_logits.parquet"
        return pd.read_parquet(outputs / name)

    variants = list(VARIANTS)
    for name in extra_logits:
        variants += [("baseline", name), ("baseline", "fusion", name), ("baseline", "transformer", "gnn", "fusion", name)]
    if len(extra_logits) > 1:
        variants.append(("baseline", "transformer", "gnn", "fusion", *extra_logits))
    results = {}
    print("| stacked inputs | test ROC-AUC | test acc @0.5 | ROC-AUC − baseline [95 % CI] | coefficients |\n|---|---|---|---|---|")
    for inputs in variants:
        metrics, _, _ = stack_tracks({t: logits(t, "valid") for t in inputs}, {t: logits(t, "test") for t in inputs})
        vs = metrics.get("vs_baseline")
        results["+".join(inputs)] = {
            "test_roc_auc": metrics["test"]["roc_auc"],
            "test_accuracy_at_0_5": metrics["test"]["accuracy_at_0_5"],
            "test_f1": metrics["test"]["f1"],
            "vs_baseline": vs,
            "coefficients": metrics["coefficients"],
        }
        interval = f"{vs['delta']:+.3f} [{vs['low']:+.3f}, {vs['high']:+.3f}]" if vs else "(no baseline input)"
        weights = ", ".join(f"{name} {value:+.2f}" for name, value in metrics["coefficients"].items())
        print(f"| {' + '.join(inputs)} | {metrics['test']['roc_auc']:.3f} | {100 * metrics['test']['accuracy_at_0_5']:.2f} | {interval} | {weights} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


def _parse_extra(item: str) -> tuple[str, tuple[Path, str]]:
    name, _, rest = item.partition("=")
    folder, _, track = rest.rpartition(":")
    if not name or not folder or track not in ("transformer", "gnn", "fusion"):
        raise SystemExit(f"--extra {item!r}: expected NAME=FOLDER:TRACK with TRACK transformer, gnn or fusion")
    return name, (Path(folder), track)


def _seed_ensemble(folder: Path, track: str) -> dict:
    """{"valid": frame, "test": frame}: the averaged logits of every seed of ``track`` under ``folder``."""
    import pandas as pd

    from streamguard.evaluation.ensemble import ensemble_track

    seeds = sorted(int(path.name.removeprefix("seed_")) for path in (folder / "data/07_model_output" / track).glob("seed_*"))
    if not seeds:
        raise SystemExit(f"{folder}: no {track} seed logits under data/07_model_output/{track}")
    per_seed = {seed: {split: pd.read_parquet(folder / f"data/07_model_output/{track}/seed_{seed}/{split}_logits.parquet")
                       for split in ("valid", "test")} for seed in seeds}
    _, valid, test = ensemble_track(track, per_seed)
    return {"valid": valid, "test": test}


if __name__ == "__main__":
    main()
