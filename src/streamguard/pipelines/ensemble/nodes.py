"""ensemble nodes: per-track seed ensembles and the final cross-track report."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

logger = logging.getLogger(__name__)


def ensemble(params: dict[str, Any], sweep: dict, *seed_logits: pd.DataFrame | None, track: str, seeds: list[int]):
    """Average the seeds' logits of one track; ``seed_logits`` is (valid, test) per seed in order."""
    from streamguard.ensemble import ensemble_track

    per_seed = {seed: {"valid": seed_logits[2 * i], "test": seed_logits[2 * i + 1]} for i, seed in enumerate(seeds)}
    return ensemble_track(track, per_seed, average=params["average"], sweep=sweep)


def final_report(*inputs: Any, tracks: list[str], seeds: list[int]):
    """Per-seed mean +- std vs ensemble for every track: CSV table, Markdown, and figures.

    ``inputs`` is, per track: the ensemble metrics, the ensemble test logits, then each seed's metrics.
    """
    from streamguard.report import report_figures, summary_markdown, summary_table

    per_seed, ensembles, test_logits = {}, {}, {}
    position = 0
    for track in tracks:
        ensembles[track], test_logits[track] = inputs[position], inputs[position + 1]
        per_seed[track] = list(inputs[position + 2 : position + 2 + len(seeds)])
        position += 2 + len(seeds)
    table = summary_table(per_seed, ensembles)
    markdown = summary_markdown(table)
    logger.info("Final metrics (valid-chosen threshold applied to test):\n%s", markdown)
    print("\nStreamGuard final metrics (threshold chosen on valid, applied to test)\n" + markdown)
    return table, markdown, report_figures(ensembles, test_logits)
