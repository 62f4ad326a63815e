"""The ensemble pipeline's line report: the top-ranked test functions, each line shaded by its score."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd


def _run_line_report(checkpoint: dict, test: pd.DataFrame, functions: int) -> dict:
    from kedro.io import DataCatalog, MemoryDataset
    from kedro.runner import SequentialRunner

    from streamguard.pipelines.ensemble.pipeline import create_pipeline

    pipeline = create_pipeline(seeds=[0], tracks=["transformer"]).filter(node_names=["ensemble.line_report"])
    # The ensemble's ranking: vulnerable rows first (later rows higher), then the safe ones.
    probability = np.linspace(0.1, 0.4, len(test)) + 0.5 * test["target"].to_numpy()
    logits = pd.DataFrame({"idx": test["idx"], "label": test["target"], "logit_0": 0.0,
                           "logit_1": np.log(probability / (1 - probability)), "prob": probability})
    catalog = DataCatalog({
        "transformer.ensemble_metrics": MemoryDataset({"seeds_used": [0], "best_threshold_by_f1": 0.5}),
        "transformer.ensemble_test_logits": MemoryDataset(logits),
        "test_functions": MemoryDataset(test),
        "params:ensemble": MemoryDataset({"line_report": {"functions": functions, "method": "attention"}}),
        "transformer.seed_0.checkpoint_on_demand": MemoryDataset(lambda: checkpoint, copy_mode="assign"),
        "line_report_html": MemoryDataset(),
        "line_report_figures": MemoryDataset(copy_mode="assign"),
    })
    SequentialRunner().run(pipeline, catalog)
    return {"html": catalog.load("line_report_html"), "figures": catalog.load("line_report_figures"), "logits": logits}


def test_line_report_shades_the_planted_line_of_the_top_ranked_functions(planted_models, planted_test) -> None:
    test = planted_test.copy()
    result = _run_line_report(planted_models["transformer"], test, functions=3)
    top = result["logits"].sort_values("prob", ascending=False).head(3)
    headings = re.findall(r"<h3>test idx (\d+) \((vulnerable|safe) by label\)", result["html"])
    assert [int(idx) for idx, _ in headings] == top["idx"].tolist()  # highest-ranked first
    assert [label == "vulnerable" for _, label in headings] == [bool(t) for t in top["label"]]
    assert sorted(result["figures"]) == ["function_0", "function_1", "function_2"]

    # In a vulnerable planted function the darkest line is the planted one.
    tables = result["html"].split("<h3>")[1:]
    checked = 0
    for (idx, label), table in zip(headings, tables):
        if label != "vulnerable":
            continue
        checked += 1
        alphas = [float(a) for a in re.findall(r"rgba\(220, 50, 47, ([0-9.]+)\)", table)]
        planted = int(test.set_index("idx").loc[int(idx), "planted_line"])
        assert int(np.argmax(alphas)) + 1 == planted
    assert checked == 3


def test_line_report_can_be_switched_off(planted_models, planted_test) -> None:
    result = _run_line_report(planted_models["transformer"], planted_test, functions=0)
    assert result["figures"] == {} and "no line report" in result["html"]
