"""PNG plots for the reporting folder and MLflow: threshold sweeps, PR curves, confusion matrices, training curves.

Figures are drawn on matplotlib's Agg canvas without pyplot, so nothing needs a display, no global pyplot state
(or open-figure registry) is touched, and a notebook's interactive backend is left alone. matplotlib is imported
inside the functions because it costs about half a second and most callers never plot.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from streamguard.evaluation.metrics import validate_split

__all__ = [
    "threshold_sweep_figure",
    "pr_curves_figure",
    "confusion_matrix_figure",
    "training_curves_figure",
    "plot_threshold_sweep",
    "plot_pr_curves",
    "plot_confusion_matrix",
    "plot_training_curves",
    "training_curves_figures",
]

_FIGSIZE = (7.0, 4.5)
_DPI = 100


def _new_figure(figsize: tuple[float, float] = _FIGSIZE) -> Any:
    """A Figure bound to an Agg canvas (no pyplot, no display needed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=figsize, dpi=_DPI, layout="constrained")  # keeps colorbars and axis labels inside
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Any, path: str | os.PathLike) -> Path:
    """Write the PNG (creating parent folders) and release the figure's artists."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        figure.savefig(target, format="png")
    finally:
        figure.clear()  # the figure was never registered with pyplot, so clearing it is all "closing" needs
    return target


def _saving(build: Any) -> Any:
    """``plot_x(*args, path, title="")``: build the figure with ``build(*args, title=...)``, write it as PNG."""

    def plot(*args: Any, title: str = "") -> Path:
        *inputs, path = args
        return _save(build(*inputs, title=title), path)

    plot.__name__ = "plot_" + build.__name__.removesuffix("_figure")
    plot.__doc__ = f"Write :func:`{build.__name__}` as a PNG at ``path`` (parent folders are created); returns the path."
    return plot


def _colour(index: int) -> Any:
    from matplotlib import colormaps

    palette = colormaps["tab10"]
    return palette(index % palette.N)


def threshold_sweep_figure(sweeps: Mapping[str, Sequence[Mapping[str, float]]], title: str = "") -> Any:
    """F1 (solid), precision (dashed) and recall (dash-dot) against threshold, one colour per label.

    The first threshold with the highest F1 is marked, matching how ``compute_metrics`` picks it.
    """
    if not sweeps:
        raise ValueError("plot_threshold_sweep needs at least one sweep (got an empty mapping)")
    from matplotlib.lines import Line2D

    figure = _new_figure((9.0, 4.5))
    axes = figure.add_subplot()
    colour_keys = []
    for index, (label, rows) in enumerate(sweeps.items()):
        if not rows:
            raise ValueError(f"plot_threshold_sweep: the sweep for {label!r} has no rows")
        missing = {"threshold", "f1", "precision", "recall"} - set(rows[0])
        if missing:
            raise ValueError(f"plot_threshold_sweep: the sweep for {label!r} lacks {sorted(missing)}")
        thresholds = np.array([row["threshold"] for row in rows], dtype=np.float64)
        f1 = np.array([row["f1"] for row in rows], dtype=np.float64)
        colour = _colour(index)
        best = int(np.argmax(f1))
        axes.plot(thresholds, f1, "-", color=colour, linewidth=2)
        axes.plot(thresholds, [row["precision"] for row in rows], "--", color=colour, linewidth=1, alpha=0.8)
        axes.plot(thresholds, [row["recall"] for row in rows], "-.", color=colour, linewidth=1, alpha=0.8)
        axes.plot([thresholds[best]], [f1[best]], "o", color=colour, markersize=8, markeredgecolor="black")
        axes.axvline(thresholds[best], color=colour, linestyle=":", linewidth=1)
        colour_keys.append(
            Line2D([], [], color=colour, linewidth=2, marker="o", markeredgecolor="black",
                   label=f"{label}: {f1[best]:.3f} @ {thresholds[best]:.2f}")
        )
    axes.set_xlabel("threshold on P(vulnerable)")
    axes.set_ylabel("score")
    axes.set_ylim(0.0, 1.02)
    axes.grid(True, alpha=0.3)
    # One key beside the plot instead of 3 entries per curve over it (with five models that legend
    # covered the curves): colour = model (with its best F1 @ threshold), line style = metric.
    styles = [Line2D([], [], color="0.25", linestyle=style, linewidth=width, label=name)
              for style, width, name in (("-", 2, "F1"), ("--", 1, "precision"), ("-.", 1, "recall"))]
    axes.legend(handles=colour_keys + styles, title="best F1 @ threshold", fontsize="small", title_fontsize="small",
                loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    axes.set_title(title or "Threshold sweep")
    return figure


def pr_curves_figure(curves: Mapping[str, tuple[Any, Any]], title: str = "") -> Any:
    """Precision-recall curves with average precision in the legend; the positive rate is the chance line."""
    from sklearn.metrics import average_precision_score, precision_recall_curve

    if not curves:
        raise ValueError("plot_pr_curves needs at least one (labels, probs) pair (got an empty mapping)")
    checked = {label: validate_split(labels, probs, str(label)) for label, (labels, probs) in curves.items()}
    figure = _new_figure()
    axes = figure.add_subplot()
    positive_rates = {label: float(labels.mean()) for label, (labels, _) in checked.items()}
    shared_rate = len({round(rate, 6) for rate in positive_rates.values()}) == 1
    for index, (label, (labels, probs)) in enumerate(checked.items()):
        precision, recall, _ = precision_recall_curve(labels, probs)
        average_precision = average_precision_score(labels, probs)
        colour = _colour(index)
        axes.step(recall, precision, where="post", color=colour, linewidth=2, label=f"{label} (AP {average_precision:.3f})")
        if not shared_rate:
            axes.axhline(positive_rates[label], color=colour, linestyle=":", linewidth=1,
                         label=f"{label} chance ({positive_rates[label]:.3f})")
    if shared_rate:
        rate = next(iter(positive_rates.values()))
        axes.axhline(rate, color="grey", linestyle=":", linewidth=1, label=f"chance (positive rate {rate:.3f})")
    axes.set_xlabel("recall (vulnerable)")
    axes.set_ylabel("precision (vulnerable)")
    axes.set_xlim(0.0, 1.0)
    axes.set_ylim(0.0, 1.02)
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize="small", loc="best")
    axes.set_title(title or "Precision-recall")
    return figure


def confusion_matrix_figure(cm: Mapping[str, int], title: str = "") -> Any:
    """2x2 heatmap with counts and shares of all rows; rows are actual safe/vulnerable, columns predicted."""
    missing = [key for key in ("tn", "fp", "fn", "tp") if key not in cm]
    if missing:
        raise ValueError(f"plot_confusion_matrix needs tn, fp, fn and tp; missing {missing}")
    matrix = np.array([[cm["tn"], cm["fp"]], [cm["fn"], cm["tp"]]], dtype=np.int64)
    if (matrix < 0).any():
        raise ValueError(f"plot_confusion_matrix: counts must be non-negative, got {dict(cm)}")
    total = int(matrix.sum())
    figure = _new_figure((5.2, 4.4))
    axes = figure.add_subplot()
    image = axes.imshow(matrix, cmap="Blues", vmin=0, vmax=max(int(matrix.max()), 1))
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
    names = ["safe (0)", "vulnerable (1)"]
    axes.set_xticks([0, 1], labels=names)
    axes.set_yticks([0, 1], labels=names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("actual")
    cells = (("TN", "FP"), ("FN", "TP"))
    for row in range(2):
        for column in range(2):
            count = int(matrix[row, column])
            share = f"{count / total:.1%}" if total else "n/a"
            dark = matrix.max() > 0 and count > matrix.max() / 2
            axes.text(column, row, f"{cells[row][column]}\n{count}\n{share}", ha="center", va="center",
                      color="white" if dark else "black", fontsize=11)
    axes.set_title(title or f"Confusion matrix (n={total})")
    return figure


def training_curves_figure(history: Sequence[Mapping[str, Any]], title: str = "") -> Any:
    """Per-epoch train_loss and valid_loss (left axis), valid_f1 and valid_roc_auc (right axis), best epoch marked.

    Records may lack any of these keys (an epoch without validation, an older history); missing or non-numeric
    values are simply not drawn. The x value is the record's ``epoch`` when present, else its 1-based position.
    """
    if not history:
        raise ValueError("plot_training_curves needs at least one epoch record (got an empty history)")
    series: dict[str, tuple[list[float], list[float]]] = {
        "train_loss": ([], []), "valid_loss": ([], []), "valid_f1": ([], []), "valid_roc_auc": ([], []),
    }
    for position, record in enumerate(history, start=1):
        epoch = _number(record.get("epoch"))
        x = epoch if epoch is not None else float(position)
        for key, (xs, ys) in series.items():
            value = _number(record.get(key))
            if value is not None:
                xs.append(x)
                ys.append(value)
    if not any(xs for xs, _ in series.values()):
        raise ValueError("plot_training_curves: no record has train_loss, valid_loss or valid_f1")
    figure = _new_figure()
    loss_axes = figure.add_subplot()
    f1_axes = loss_axes.twinx()
    styles = {"train_loss": (loss_axes, _colour(0), "-"), "valid_loss": (loss_axes, _colour(1), "-"),
              "valid_f1": (f1_axes, _colour(2), "--"), "valid_roc_auc": (f1_axes, _colour(3), "--")}
    lines = []
    for key, (xs, ys) in series.items():
        if xs:
            axes, colour, style = styles[key]
            lines += axes.plot(xs, ys, style, marker="o", color=colour, label=key.replace("_", " "))
    best_epoch = _number(history[-1].get("best_epoch"))
    if best_epoch is not None:
        lines.append(loss_axes.axvline(best_epoch, color="grey", linestyle=":", label=f"best epoch ({best_epoch:g})"))
    from matplotlib.ticker import MaxNLocator

    loss_axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    loss_axes.set_xlabel("epoch")
    loss_axes.set_ylabel("loss")
    f1_axes.set_ylabel("valid F1 at 0.5 / ROC-AUC")
    f1_axes.set_ylim(0.0, 1.02)
    loss_axes.grid(True, alpha=0.3)
    loss_axes.legend(lines, [line.get_label() for line in lines], fontsize="small", loc="best")
    loss_axes.set_title(title or "Training curves")
    return figure


def _number(value: Any) -> float | None:
    """A finite float, or None for missing, boolean, non-numeric or NaN values."""
    if value is None or isinstance(value, (bool, np.bool_)):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


plot_threshold_sweep = _saving(threshold_sweep_figure)
plot_pr_curves = _saving(pr_curves_figure)
plot_confusion_matrix = _saving(confusion_matrix_figure)
plot_training_curves = _saving(training_curves_figure)


def training_curves_figures(history: Sequence[Mapping[str, Any]], track: str, seed: int) -> dict[str, Any]:
    """``{"training_curves": Figure}`` of one seed's history, for a FiguresDataset (PNG + MLflow artifact)."""
    return {"training_curves": training_curves_figure(history, title=f"{track} seed {seed}: training curves")}
