"""Which inputs does the stacked model need? Stacking variants on a finished run's logits.

    python benchmarks/stacking_variants.py --project /work/bench_devign_full \\
        --out benchmarks/results/stacking_variants_devign_full.json

Reads the baseline's and every track's ensemble valid/test logits from a project folder (for
example a ``quality.py --keep`` run), fits the same meta-model as the pipeline's ``stacked`` node
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
    args = parser.parse_args()
    outputs = args.project / "data" / "07_model_output"

    def logits(track: str, split: str) -> pd.DataFrame:
        name = f"baseline/seed_0/{split}_logits.parquet" if track == "baseline" else f"{track}/ensemble_{split}_logits.parquet"
        return pd.read_parquet(outputs / name)

    results = {}
    print("| stacked inputs | test ROC-AUC | test acc @0.5 | ROC-AUC − baseline [95 % CI] | coefficients |\n|---|---|---|---|---|")
    for inputs in VARIANTS:
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


if __name__ == "__main__":
    main()
