"""The lexical baseline: C chosen on valid only, test scored at the valid-chosen threshold."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from streamguard.tracks.baseline import CODE_TOKEN_PATTERN, fit_baseline, tokenize_code
from streamguard.evaluation.scoring import metrics_from_logits
from streamguard.pipelines.common import score

LOGITS_COLUMNS = ["idx", "label", "logit_0", "logit_1", "prob"]
SMALL_GRID = {"c_grid": [0.01, 1.0, 100.0], "min_df": 1}


def _split(n: int, seed: int, start: int, noise: float = 0.25) -> pd.DataFrame:
    """C-like functions whose label shows in tokens (memcpy without a bound check), with label noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        vulnerable = bool(rng.random() < 0.5)
        name = f"f{rng.integers(0, 50)}"
        size = int(rng.integers(1, 300))
        if vulnerable:
            body = f"memcpy(dst, src, len); dst[len] = {size};"
        else:
            body = f"if (len >= {size}) return -1; memcpy(dst, src, len);"
        filler = " ".join(f"x{rng.integers(0, 40)} += {rng.integers(0, 9)};" for _ in range(int(rng.integers(1, 5))))
        label = int(vulnerable) if rng.random() > noise else int(not vulnerable)
        rows.append({"idx": start + i, "func": f"int {name}(char *dst, char *src, size_t len) {{ {filler} {body} }}", "target": label})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def splits():
    return _split(200, 0, 0), _split(80, 1, 1000), _split(80, 2, 2000)


def test_tokens_keep_identifiers_numbers_and_punctuation():
    tokens = tokenize_code("if (p->len >= 0x1F && buf[i] != 'a') n += 2.5f;")
    assert tokens == [
        "if", "(", "p", "->", "len", ">=", "0x1F", "&&", "buf", "[", "i", "]", "!=", "'", "a", "'", ")",
        "n", "+=", "2.5f", ";",
    ]
    import re

    assert re.compile(CODE_TOKEN_PATTERN).groups == 0  # scikit-learn would keep only a captured group


def test_parameters_file_uses_the_module_token_pattern():
    from pathlib import Path

    import yaml

    conf = Path(__file__).resolve().parents[1] / "conf" / "base" / "parameters_baseline.yml"
    assert yaml.safe_load(conf.read_text())["baseline"]["token_pattern"] == CODE_TOKEN_PATTERN


def test_logits_tables_have_the_shared_shape_and_info_is_small(splits):
    train, valid, test = splits
    valid_logits, test_logits, info = fit_baseline(train, valid, test, SMALL_GRID)
    for frame, split in ((valid_logits, valid), (test_logits, test)):
        assert list(frame.columns) == LOGITS_COLUMNS
        assert frame["idx"].tolist() == split["idx"].tolist()
        assert frame["label"].tolist() == split["target"].tolist()
        assert np.allclose(frame["logit_0"], 0.0)
        assert np.allclose(frame["prob"], 1 / (1 + np.exp(-frame["logit_1"])))
    assert info["C"] in SMALL_GRID["c_grid"]
    assert info["select_by"] == "roc_auc"
    assert info["vocabulary_size"] > 0
    assert [row["C"] for row in info["c_grid"]] == SMALL_GRID["c_grid"]
    assert 0 < len(info["top_vulnerable_ngrams"]) <= 10 and 0 < len(info["top_safe_ngrams"]) <= 10
    # The label signal is learnable: the baseline is well above chance on the held-out split.
    assert roc_auc_score(test_logits["label"], test_logits["prob"]) > 0.65


@pytest.mark.parametrize("select_by", ["roc_auc", "log_loss"])
def test_c_is_the_best_on_valid_and_test_labels_play_no_part(splits, select_by):
    train, valid, test = splits
    params = {**SMALL_GRID, "select_by": select_by}
    valid_logits, test_logits, info = fit_baseline(train, valid, test, params)
    scores = [row[f"valid_{select_by}"] for row in info["c_grid"]]
    best = int(np.argmax(scores)) if select_by == "roc_auc" else int(np.argmin(scores))
    assert info["C"] == SMALL_GRID["c_grid"][best]
    assert info["valid_score"] == scores[best]
    assert info["c_at_grid_edge"] == (best in (0, len(scores) - 1))
    # The chosen C's valid score is what the returned valid logits give.
    if select_by == "roc_auc":
        assert roc_auc_score(valid["target"], valid_logits["prob"]) == pytest.approx(scores[best], abs=1e-6)

    # Flipping every test label changes nothing that was chosen or predicted.
    flipped = test.assign(target=1 - test["target"])
    valid_again, test_again, info_again = fit_baseline(train, valid, flipped, params)
    assert info_again["C"] == info["C"] and info_again["c_grid"] == info["c_grid"]
    pd.testing.assert_frame_equal(valid_again, valid_logits)
    np.testing.assert_array_equal(test_again["logit_1"], test_logits["logit_1"])


def test_changing_valid_labels_can_change_c(splits):
    """C follows the validation split: a valid set whose labels disagree with train picks another C."""
    train, valid, test = splits
    _, _, info = fit_baseline(train, valid, test, SMALL_GRID)
    inverted = valid.assign(target=1 - valid["target"])
    _, _, inverted_info = fit_baseline(train, inverted, test, SMALL_GRID)
    assert [row["valid_roc_auc"] for row in inverted_info["c_grid"]] == pytest.approx(
        [1 - row["valid_roc_auc"] for row in info["c_grid"]], abs=1e-6
    )
    assert inverted_info["C"] != info["C"]


def test_deterministic(splits):
    train, valid, test = splits
    first = fit_baseline(train, valid, test, SMALL_GRID)
    second = fit_baseline(train, valid, test, SMALL_GRID)
    pd.testing.assert_frame_equal(first[0], second[0])
    pd.testing.assert_frame_equal(first[1], second[1])
    assert first[2]["C"] == second[2]["C"]


def test_score_node_applies_the_valid_chosen_threshold_to_test(splits):
    from streamguard.pipelines.baseline.nodes import fit

    train, valid, test = splits
    valid_logits, test_logits, summary = fit(train, valid, test, SMALL_GRID, seed=0)
    sweep = {"start": 0.3, "stop": 0.7, "step": 0.01}
    metrics = score(valid_logits, test_logits, summary, sweep)
    assert metrics["track"] == "baseline" and metrics["seed"] == 0
    assert metrics["baseline"]["C"] == summary["metrics_extra"]["baseline"]["C"]
    assert "best_epoch" not in metrics  # no training loop, no made-up epoch
    threshold = metrics["best_threshold_by_f1"]
    assert metrics["test"]["threshold"] == threshold
    # The threshold is the valid F1 maximiser, and test F1 is computed at it, not re-tuned on test.
    sweep_f1 = {row["threshold"]: row["f1"] for row in metrics["threshold_sweep"]}
    assert sweep_f1[threshold] == max(sweep_f1.values())
    expected = f1_score(test_logits["label"], (test_logits["prob"] >= threshold).astype(int))
    assert metrics["test"]["f1"] == pytest.approx(expected, abs=1e-6)
    # Same numbers as the shared metrics function on the same tables.
    direct = metrics_from_logits(valid_logits, test_logits, sweep)
    assert direct["test"] == metrics["test"]


def test_bad_inputs_are_rejected_with_a_message(splits):
    train, valid, test = splits
    with pytest.raises(ValueError, match="single class"):
        fit_baseline(train, valid.assign(target=0), test, SMALL_GRID)
    with pytest.raises(ValueError, match="select_by"):
        fit_baseline(train, valid, test, {"select_by": "accuracy"})
    with pytest.raises(ValueError, match="c_grid"):
        fit_baseline(train, valid, test, {"c_grid": [0.0, 1.0]})
    with pytest.raises(ValueError, match="unknown baseline parameters"):
        fit_baseline(train, valid, test, {"C": 1.0})


def test_report_shows_the_baseline_and_flags_tracks_that_do_not_beat_it():
    from streamguard.evaluation.report import baseline_verdicts, summary_markdown, summary_table

    def metrics(auc: float, f1: float) -> dict:
        return {"f1_at_best_threshold": f1, "best_threshold_by_f1": 0.5,
                "test": {"accuracy": 0.6, "precision": 0.6, "recall": 0.6, "f1": f1, "roc_auc": auc, "pr_auc": 0.6}}

    per_seed = {"transformer": [metrics(0.80, 0.70), metrics(0.82, 0.72)], "gnn": [metrics(0.60, 0.55), metrics(0.62, 0.57)]}
    ensembles = {"transformer": {**metrics(0.83, 0.73), "num_seeds_with_logits": 2},
                 "gnn": {**metrics(0.61, 0.66), "num_seeds_with_logits": 2}}
    baseline = metrics(0.70, 0.65)
    table = summary_table(per_seed, ensembles, baseline=baseline)
    assert table.iloc[0]["track"] == "baseline"
    ensemble_rows = table[table["model"] == "ensemble"].set_index("track")
    assert bool(ensemble_rows.loc["transformer", "beats_baseline_roc_auc"]) is True
    assert bool(ensemble_rows.loc["gnn", "beats_baseline_roc_auc"]) is False
    assert bool(ensemble_rows.loc["gnn", "beats_baseline_f1"]) is True
    markdown = summary_markdown(table)
    assert "| baseline | tf-idf + logreg |" in markdown and "beats baseline" in markdown
    assert "**NO**" in markdown
    verdicts = baseline_verdicts(table)
    assert any(v.startswith("transformer (ensemble) beats the lexical baseline") for v in verdicts)
    assert any("gnn (ensemble) does NOT beat the lexical baseline" in v and "ROC-AUC (0.610 vs 0.700)" in v and "it does beat it on F1" in v for v in verdicts)

    # Without a baseline the table and Markdown keep their previous shape.
    plain = summary_table(per_seed, ensembles)
    assert "baseline" not in set(plain["track"]) and "beats baseline" not in summary_markdown(plain)
