"""The plots: each writes a real PNG (creating folders) and rejects empty input with a clear message."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from streamguard.evaluation.metrics import threshold_sweep
from streamguard.evaluation.figures import plot_confusion_matrix, plot_pr_curves, plot_threshold_sweep, plot_training_curves

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
RNG = np.random.default_rng(0)
LABELS = RNG.integers(0, 2, 60)
PROBS = np.clip(0.35 * LABELS + RNG.random(60) * 0.65, 0.0, 1.0)


def assert_png(path: Path, returned: Path) -> None:
    assert returned == path and isinstance(returned, Path)
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > 5_000  # axes, lines and text, not a blank canvas


def test_threshold_sweep_plot(tmp_path: Path):
    sweeps = {
        "transformer seed 0": threshold_sweep(LABELS, PROBS),
        "ensemble": threshold_sweep(LABELS, np.sqrt(PROBS)),
    }
    path = tmp_path / "new" / "folder" / "sweep.png"
    assert_png(path, plot_threshold_sweep(sweeps, path, title="valid sweep"))


def test_threshold_sweep_keys_sit_beside_the_curves_not_over_them():
    """Five models used to make one 15-entry legend over the plot; now one key entry per model plus
    one per line style, outside the plotting area."""
    from streamguard.evaluation.figures import threshold_sweep_figure

    labels = ["baseline", "transformer", "gnn", "fusion", "ensemble"]
    sweeps = {label: threshold_sweep(LABELS, PROBS ** (1 + i / 4)) for i, label in enumerate(labels)}
    figure = threshold_sweep_figure(sweeps)
    axes = figure.axes[0]
    legends = [artist for artist in axes.get_children() if type(artist).__name__ == "Legend"]
    entries = sorted(len(legend.get_texts()) for legend in legends)
    assert entries == [len(labels) + 3]
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    plot_area = axes.get_window_extent(renderer)
    for legend in legends:
        assert legend.get_window_extent(renderer).x0 >= plot_area.x1  # right of the curves
        assert legend.get_window_extent(renderer).x1 <= figure.bbox.x1 + 1  # and still inside the image


def test_pr_curves_plot(tmp_path: Path):
    other_labels = np.array([0, 1, 1, 0, 1])
    curves = {"gnn seed 0": (LABELS, PROBS), "tiny": (other_labels, [0.2, 0.9, 0.6, 0.4, 0.3])}
    path = tmp_path / "pr.png"
    assert_png(path, plot_pr_curves(curves, str(path)))  # str paths work too; two positive rates -> two chance lines
    shared = tmp_path / "pr_shared.png"
    assert_png(shared, plot_pr_curves({"a": (LABELS, PROBS), "b": (LABELS, PROBS**2)}, shared, title="test"))


def test_confusion_matrix_plot(tmp_path: Path):
    path = tmp_path / "cm" / "confusion.png"
    assert_png(path, plot_confusion_matrix({"tn": 30, "fp": 7, "fn": 5, "tp": 18}, path, title="test @ 0.43"))
    empty = tmp_path / "cm" / "zeros.png"
    assert_png(empty, plot_confusion_matrix({"tn": 0, "fp": 0, "fn": 0, "tp": 0}, empty))


def test_training_curves_plot_tolerates_missing_keys(tmp_path: Path):
    history = [
        {"epoch": 1, "train_loss": 0.69, "valid_loss": 0.68, "valid_f1": 0.40},
        {"epoch": 2, "train_loss": 0.60, "valid_f1": 0.55},  # no valid loss
        {"epoch": 3, "train_loss": float("nan"), "valid_loss": 0.61, "valid_f1": 0.58, "lr": 1e-5},
        {"train_loss": 0.50},  # no epoch: its position is used
    ]
    path = tmp_path / "curves.png"
    assert_png(path, plot_training_curves(history, path, title="transformer seed 0"))
    only_loss = tmp_path / "only_loss.png"
    assert_png(only_loss, plot_training_curves([{"train_loss": 0.7}, {"train_loss": 0.6}], only_loss))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda p: plot_threshold_sweep({}, p), "at least one sweep"),
        (lambda p: plot_threshold_sweep({"gnn": []}, p), "'gnn' has no rows"),
        (lambda p: plot_pr_curves({}, p), r"at least one \(labels, probs\)"),
        (lambda p: plot_pr_curves({"gnn": ([], [])}, p), "gnn split is empty"),
        (lambda p: plot_confusion_matrix({}, p), "missing"),
        (lambda p: plot_confusion_matrix({"tn": 1, "fp": 1, "fn": 1}, p), r"missing \['tp'\]"),
        (lambda p: plot_training_curves([], p), "empty history"),
        (lambda p: plot_training_curves([{"epoch": 1}], p), "no record has train_loss"),
    ],
)
def test_empty_inputs_are_rejected(tmp_path: Path, call, message):
    path = tmp_path / "never.png"
    with pytest.raises(ValueError, match=message):
        call(path)
    assert not path.exists()
