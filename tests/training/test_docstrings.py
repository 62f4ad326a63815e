"""Docstrings that describe behaviour say what the code does (issue 16, item 12)."""

from __future__ import annotations

import inspect

from streamguard.training import fit
from streamguard.training.config import SELECTION_METRICS, TrainConfig


def test_fit_says_the_best_epoch_comes_from_the_selection_metric():
    doc = inspect.getdoc(fit)
    first = doc.split("\n\n")[0]
    assert "selection_metric" in first and "ROC-AUC by default" in first
    assert "(by validation F1 at 0.5)" not in doc
    assert TrainConfig().selection_metric == "valid_roc_auc" == SELECTION_METRICS[0]
