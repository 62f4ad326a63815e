"""A function's source with each line shaded by its score, as HTML (for reports, MLflow) or PNG.

Scores are scaled by the function's largest positive score: the darkest line is the one the model
blames most; lines with no evidence (NaN) or negative scores stay unshaded. Flawed lines known
from labels (a benchmark) get a marker in the margin, so a reader can see whether the shading hits.
"""

from __future__ import annotations

import html
from collections.abc import Collection, Sequence
from typing import Any
from pathlib import Path

import numpy as np

from streamguard.explain.lines import LineIndex

SHADE_RGB = (220, 50, 47)


def _intensities(scores: Sequence[float]) -> np.ndarray:
    values = np.asarray(scores, dtype=float)
    positive = np.where(np.isnan(values), 0.0, np.clip(values, 0.0, None))
    top = positive.max() if positive.size else 0.0
    return positive / top if top > 0 else positive


def function_html(code: str, scores: Sequence[float], title: str = "", flawed: Collection[int] = (), first_line: int = 1) -> str:
    """One function as an HTML fragment: a table of numbered lines, background = score."""
    index = LineIndex.of(code)
    shades = _intensities(scores)
    rows = []
    for number, text in enumerate(index.lines(), start=1):
        alpha = float(shades[number - 1]) if number - 1 < len(shades) else 0.0
        raw = scores[number - 1] if number - 1 < len(scores) else float("nan")
        label = "" if np.isnan(raw) else f"{raw:+.3f}"
        marker = "&#9664; flaw" if number in flawed else ""
        rows.append(
            f'<tr style="background: rgba{(*SHADE_RGB, round(alpha * 0.85, 3))}">'
            f'<td class="n">{number + first_line - 1}</td><td class="s">{label}</td>'
            f"<td><pre>{html.escape(text.expandtabs(4))}</pre></td><td class=\"f\">{marker}</td></tr>"
        )
    heading = f"<h3>{html.escape(title)}</h3>" if title else ""
    return f'{heading}<table class="sg-lines">{"".join(rows)}</table>'


def html_page(fragments: Sequence[str], title: str = "StreamGuard: which lines?") -> str:
    style = (
        "body{font-family:sans-serif} table.sg-lines{border-collapse:collapse;margin-bottom:1.5em}"
        "td{padding:0 .5em;vertical-align:top} td.n,td.s{color:#666;text-align:right;font-family:monospace}"
        "td.f{color:#b00;font-weight:bold} pre{margin:0}"
    )
    return (
        f"<!doctype html><html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body><h2>{html.escape(title)}</h2>{''.join(fragments)}</body></html>\n"
    )


def write_html(path: str | Path, fragments: Sequence[str], title: str = "StreamGuard: which lines?") -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html_page(fragments, title), encoding="utf-8")
    return path


def png_figure(code: str, scores: Sequence[float], title: str = "", flawed: Collection[int] = ()):
    """The same view as a matplotlib Figure (headless, not registered with pyplot), for reports that embed images."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    lines = LineIndex.of(code).lines()
    shades = _intensities(scores)
    height = 0.22 * (len(lines) + 2)
    width = min(16.0, 2.0 + 0.09 * max((len(text.expandtabs(4)) for text in lines), default=40))
    figure = Figure(figsize=(width, height))
    axes = figure.subplots()
    axes.set_xlim(0, 1)
    axes.set_ylim(len(lines), -1)
    axes.axis("off")
    for number, text in enumerate(lines, start=1):
        y = number - 1
        axes.add_patch(Rectangle((0, y - 0.5), 1, 1, color=[c / 255 for c in SHADE_RGB], alpha=float(shades[y]) * 0.85, lw=0))
        mark = "  <- flaw" if number in flawed else ""
        axes.text(0.005, y, f"{number:>4}  {text.expandtabs(4)}{mark}", family="monospace", fontsize=8, va="center")
    if title:
        axes.set_title(title, fontsize=9, loc="left")
    return figure


def write_png(path: str | Path, code: str, scores: Sequence[float], title: str = "", flawed: Collection[int] = ()) -> Path:
    """:func:`png_figure` saved as a PNG."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    png_figure(code, scores, title, flawed).savefig(path, dpi=110, bbox_inches="tight")
    return path


def line_report(
    scorer: Any,
    functions: Sequence[tuple[str, str]],
    method: str | None = None,
    flawed: Sequence[Collection[int]] | None = None,
) -> tuple[str, dict[str, Any]]:
    """For a few ``(title, code)`` functions, shaded by ``scorer.line_scores`` (an
    :class:`~streamguard.serving.scorer.EnsembleScorer`): one HTML page with all of them and one
    Figure each. What the ensemble pipeline's line report and the notebook show."""
    codes = [code for _, code in functions]
    scores = scorer.line_scores(codes, method=method)
    marks = list(flawed) if flawed is not None else [()] * len(codes)
    probabilities = scorer.score_codes(codes)
    fragments, figures = [], {}
    for position, ((title, code), line_scores) in enumerate(zip(functions, scores)):
        heading = f"{title}: P(vulnerable) {probabilities[position]:.3f}, {scorer.track} / {method or scorer.default_line_method}"
        fragments.append(function_html(code, line_scores, heading, marks[position]))
        figures[f"function_{position}"] = png_figure(code, line_scores, heading, marks[position])
    return html_page(fragments), figures


def shaded_functions_artefact(
    scorer: Any,
    functions: Sequence[tuple[str, str]],
    directory: str | Path,
    method: str | None = None,
    flawed: Sequence[Collection[int]] | None = None,
    log_to_mlflow: bool = True,
    name: str = "line_scores",
) -> dict[str, Path]:
    """For a few ``(title, code)`` functions: ``<name>.html`` (all of them) and one PNG each, shaded by
    ``scorer.line_scores`` (:func:`line_report` written to ``directory``); logged as MLflow artefacts
    under ``<name>/`` when a run is active (scripts and benchmarks; the pipeline saves through the catalog)."""
    directory = Path(directory)
    page, figures = line_report(scorer, functions, method, flawed)
    written = {}
    for position, ((title, _), figure) in enumerate(zip(functions, figures.values())):
        target = directory / f"{name}_{position}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(target, dpi=110, bbox_inches="tight")
        written[f"{title}.png"] = target
    written["html"] = directory / f"{name}.html"
    written["html"].write_text(page, encoding="utf-8")
    if log_to_mlflow:
        import mlflow

        if mlflow.active_run() is not None:
            for path in written.values():
                mlflow.log_artifact(str(path), artifact_path=name)
    return written
