"""The servable MLflow model returns line scores when asked (params), off by default, in its signature."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def test_pyfunc_model_returns_lines_only_when_asked(planted_models, planted_test, tmp_path: Path) -> None:
    import mlflow.pyfunc

    from streamguard.serving.scorer import EnsembleScorer
    from streamguard.serving.model import save_servable_model

    save_servable_model(EnsembleScorer("transformer", [planted_models["transformer"]], 0.5), tmp_path / "model")
    model = mlflow.pyfunc.load_model(str(tmp_path / "model"))
    signature = model.metadata.signature
    assert {p.name: p.default for p in signature.params.params} == {"threshold": 0.5, "lines": 0, "line_method": ""}
    lines_column = next(c for c in signature.outputs.inputs if c.name == "lines")
    assert not lines_column.required

    vulnerable = planted_test[planted_test["target"] == 1].head(3)
    request = pd.DataFrame({"func": vulnerable["func"].tolist()})
    plain = model.predict(request)
    assert "lines" not in plain.columns
    with_lines = model.predict(request, params={"lines": 2, "line_method": "attention"})
    assert with_lines["probability"].tolist() == plain["probability"].tolist()
    for lines, planted in zip(with_lines["lines"], vulnerable["planted_line"]):
        assert len(lines) == 2 and lines[0]["line"] == planted and lines[0]["text"] == "planted_sink(s);"
