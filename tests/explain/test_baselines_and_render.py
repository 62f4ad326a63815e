"""The lexical heuristic, the exact random-order baselines, and the shaded-source artefacts."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import numpy as np
import pytest

from streamguard.explain import lexical_line_scores, random_expected_ifa, random_topk_probability, rank_lines

FLAWED = """int copy(char *src, int n)
{
    char buf[16];
    int total = 0;
    strcpy(buf, src);
    total = n;
    return total;
}"""


def test_lexical_heuristic_puts_the_risky_call_first() -> None:
    scores = lexical_line_scores(FLAWED)
    assert rank_lines(scores)[0] == 5
    assert np.isnan(lexical_line_scores("int f(void)\n\n{ return 0; }")[1])  # blank line: no evidence
    freed = lexical_line_scores("void g(char *p)\n{\n    int a = 1;\n    free(p);\n    p[a] = 0;\n}")
    assert set(rank_lines(freed)[:2]) == {4, 5}


@pytest.mark.parametrize(("n", "f"), [(5, 1), (6, 2), (7, 3)])
def test_random_baselines_match_enumerating_every_order(n: int, f: int) -> None:
    flawed = set(range(f))
    orders = list(itertools.permutations(range(n)))
    firsts = [next(i for i, line in enumerate(order) if line in flawed) for order in orders]
    for k in (1, 3, 10):
        assert random_topk_probability(n, f, k) == pytest.approx(np.mean([first < k for first in firsts]))
    assert random_expected_ifa(n, f) == pytest.approx(np.mean(firsts))


def test_html_shades_the_top_line_darkest_and_marks_flaws(tmp_path: Path) -> None:
    from streamguard.explain.render import function_html, write_html, write_png

    scores = [np.nan, 0.0, 0.1, -0.2, 0.9, 0.3, 0.0, np.nan]
    fragment = function_html(FLAWED, scores, "copy", flawed={5})
    alphas = [float(a) for a in re.findall(r"rgba\(220, 50, 47, ([0-9.]+)\)", fragment)]
    assert len(alphas) == 8 and alphas.index(max(alphas)) == 4 and alphas[3] == 0.0  # negative: unshaded
    assert fragment.count("flaw") == 1 and "strcpy(buf, src);" in fragment
    page = write_html(tmp_path / "lines.html", [fragment])
    assert page.read_text().startswith("<!doctype html>")
    png = write_png(tmp_path / "lines.png", FLAWED, scores, "copy", flawed={5})
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_shaded_functions_artefact_is_logged_to_mlflow(planted_models, planted_test, tmp_path: Path) -> None:
    import mlflow

    from streamguard.explain.render import shaded_functions_artefact
    from streamguard.serving.scorer import EnsembleScorer

    scorer = EnsembleScorer("gnn", [planted_models["gnn"]], 0.5)
    vulnerable = planted_test[planted_test["target"] == 1].head(2)
    functions = [(f"planted_{i}", code) for i, code in enumerate(vulnerable["func"])]
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        # An explicit experiment: another test may have left a (then missing) active experiment id behind.
        experiment_id = mlflow.create_experiment("shading", artifact_location=(tmp_path / "mlruns").as_uri())
        with mlflow.start_run(experiment_id=experiment_id) as run:
            written = shaded_functions_artefact(scorer, functions, tmp_path / "out", flawed=[{line} for line in vulnerable["planted_line"]])
        logged = {Path(a.path).name for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "line_scores")}
    finally:
        mlflow.set_tracking_uri("")
    assert logged == {path.name for path in written.values()} == {"line_scores.html", "line_scores_0.png", "line_scores_1.png"}
    html = written["html"].read_text()
    assert html.count("&#9664; flaw") == 2 and "P(vulnerable)" in html
