"""The lexical baseline: TF-IDF over code tokens + logistic regression, C chosen on validation.

Why it exists: on Devign-style data a bag of tokens already scores well above chance, so a deep
model only earns its cost if it beats this. Plain scikit-learn, no Kedro, no torch; deterministic.

* Tokens keep identifiers (``memcpy``, ``buf_len``), numbers (``0x7f``, ``64``) and punctuation
  (``->``, ``[``, ``==``, ``;``), case-sensitive, as unigrams and bigrams (``memcpy (``, ``len -``).
* ``C`` is picked from a grid by a validation-split score (ROC-AUC by default, threshold-free, or
  log-loss); the model fitted on train at that ``C`` scores valid and test. Test never takes part
  in any choice; the decision threshold is chosen later on valid by the shared metrics module.
* Logits follow every track's table (``idx, label, logit_0, logit_1, prob``) with
  ``logit_0 = 0`` and ``logit_1`` the logistic-regression margin, so ``prob`` is its
  ``predict_proba`` and the table ensembles like any other.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from streamguard.evaluation.scoring import logits_frame

logger = logging.getLogger(__name__)

__all__ = [
    "CODE_TOKEN_PATTERN",
    "DEFAULT_BASELINE_PARAMS",
    "LexicalScorer",
    "cross_fitted_margins",
    "fit_baseline",
    "make_vectorizer",
    "tokenize_code",
]

# Identifiers, numbers (hex, decimal, float, with integer suffixes), C's multi-character operators,
# then any other single non-space character (punctuation). Non-capturing groups only: scikit-learn
# would keep just the captured group otherwise.
CODE_TOKEN_PATTERN = (
    r"[A-Za-z_]\w*"
    r"|0[xX][0-9a-fA-F]+[uUlL]*|\d+(?:\.\d*)?(?:[eE][-+]?\d+)?[uUlLfF]*"
    r"|->|\+\+|--|<<=?|>>=?|[<>=!]=|&&|\|\||[-+*/%&|^]="
    r"|[^\sA-Za-z0-9_]"
)

DEFAULT_BASELINE_PARAMS: dict[str, Any] = {
    "token_pattern": CODE_TOKEN_PATTERN,
    "ngram_range": [1, 2],
    "lowercase": False,
    "min_df": 2,
    "max_df": 1.0,
    "max_features": 200000,
    "sublinear_tf": True,
    "c_grid": [0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0],
    "select_by": "roc_auc",  # roc_auc (higher is better) | log_loss (lower is better), on valid
    "class_weight": None,  # null | balanced
    "max_iter": 1000,
    "random_state": 0,
    "top_ngrams": 10,  # how many most vulnerable / most safe n-grams to report
}

_SELECT_BY = ("roc_auc", "log_loss")


def _params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    merged = {**DEFAULT_BASELINE_PARAMS, **dict(params or {})}
    unknown = sorted(set(merged) - set(DEFAULT_BASELINE_PARAMS) - {"description"})
    if unknown:
        raise ValueError(f"unknown baseline parameters {unknown}; known: {sorted(DEFAULT_BASELINE_PARAMS)}")
    if merged["select_by"] not in _SELECT_BY:
        raise ValueError(f"baseline.select_by must be one of {_SELECT_BY}, got {merged['select_by']!r}")
    grid = [float(c) for c in merged["c_grid"]]
    if not grid or any(not math.isfinite(c) or c <= 0 for c in grid):
        raise ValueError(f"baseline.c_grid must be a non-empty list of positive numbers, got {merged['c_grid']!r}")
    merged["c_grid"] = sorted(set(grid))  # increasing: ties go to the smallest C (strongest regularisation)
    return merged


def make_vectorizer(params: Mapping[str, Any] | None = None):
    """The TF-IDF vectorizer over code tokens (unigrams + bigrams by default)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    p = _params(params)
    return TfidfVectorizer(
        token_pattern=p["token_pattern"],
        ngram_range=tuple(int(n) for n in p["ngram_range"]),
        lowercase=bool(p["lowercase"]),
        min_df=p["min_df"],
        max_df=p["max_df"],
        max_features=None if p["max_features"] is None else int(p["max_features"]),
        sublinear_tf=bool(p["sublinear_tf"]),
        dtype=np.float64,
    )


def tokenize_code(code: str, params: Mapping[str, Any] | None = None) -> list[str]:
    """The unigram tokens the vectorizer sees (for inspection and tests)."""
    import re

    return re.findall(_params(params)["token_pattern"], code)


def _check_frame(frame: pd.DataFrame, split: str) -> None:
    missing = [column for column in ("idx", "func", "target") if column not in frame.columns]
    if missing:
        raise ValueError(f"baseline: {split} split lacks columns {missing}")
    if frame.empty:
        raise ValueError(f"baseline: {split} split is empty")


def _valid_score(select_by: str, labels: np.ndarray, probs: np.ndarray) -> float:
    from sklearn.metrics import log_loss, roc_auc_score

    if select_by == "roc_auc":
        return float(roc_auc_score(labels, probs))
    return float(log_loss(labels, np.clip(probs, 1e-12, 1 - 1e-12), labels=[0, 1]))


def _logits(model: Any, features: Any) -> np.ndarray:
    margin = model.decision_function(features).astype(np.float64)
    return np.stack([np.zeros_like(margin), margin], axis=1)


def fit_baseline(
    train: pd.DataFrame, valid: pd.DataFrame, test: pd.DataFrame, params: Mapping[str, Any] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Fit TF-IDF + logistic regression on ``train``; choose C on ``valid``; score valid and test.

    Returns ``(valid_logits, test_logits, info)``: the logits tables every track writes, and a small
    dict with the chosen ``C``, the selection criterion, the per-C validation scores, the vocabulary
    size and the most vulnerable / most safe n-grams of the chosen model.
    """
    p = _params(params)
    for split, frame in (("train", train), ("valid", valid), ("test", test)):
        _check_frame(frame, split)
    y_train = train["target"].astype(np.int64).to_numpy()
    y_valid = valid["target"].astype(np.int64).to_numpy()
    for split, labels in (("train", y_train), ("valid", y_valid)):
        if np.unique(labels).size < 2:
            raise ValueError(f"baseline: the {split} split has a single class; C cannot be chosen on it")

    started = time.perf_counter()
    vectorizer, best_model, selection = _select_c(train, valid, p)
    x_valid = vectorizer.transform(valid["func"].astype(str).tolist())
    x_test = vectorizer.transform(test["func"].astype(str).tolist())
    valid_logits = logits_frame(valid["idx"].to_numpy(), y_valid, _logits(best_model, x_valid))
    test_logits = logits_frame(
        test["idx"].to_numpy(), test["target"].astype(np.int64).to_numpy(), _logits(best_model, x_test)
    )
    info = {
        "model": "tfidf_logreg",
        **selection,
        "ngram_range": [int(n) for n in p["ngram_range"]],
        "num_train": int(len(train)),
        "fit_seconds": round(time.perf_counter() - started, 3),
        **_top_ngrams(vectorizer, best_model, int(p["top_ngrams"])),
    }
    return valid_logits, test_logits, info


def _select_c(train: pd.DataFrame, valid: pd.DataFrame, p: Mapping[str, Any]) -> tuple[Any, Any, dict[str, Any]]:
    """Vectorizer fitted on train and the logistic regression whose C scores best on valid."""
    from sklearn.linear_model import LogisticRegression

    y_train = train["target"].astype(np.int64).to_numpy()
    y_valid = valid["target"].astype(np.int64).to_numpy()
    vectorizer = make_vectorizer(p)
    x_train = vectorizer.fit_transform(train["func"].astype(str).tolist())
    x_valid = vectorizer.transform(valid["func"].astype(str).tolist())
    vocabulary_size = len(vectorizer.vocabulary_)
    if vocabulary_size == 0:
        raise ValueError("baseline: the vocabulary is empty (min_df too high for the train split?)")

    higher_is_better = p["select_by"] == "roc_auc"
    grid_rows, best_model, best_c, best_score = [], None, None, None
    for c in p["c_grid"]:
        model = LogisticRegression(
            C=c,
            solver="liblinear",
            max_iter=int(p["max_iter"]),
            class_weight=p["class_weight"],
            random_state=int(p["random_state"]),
        )
        model.fit(x_train, y_train)
        valid_probs = model.predict_proba(x_valid)[:, 1]
        row = {
            "C": c,
            "valid_roc_auc": round(_valid_score("roc_auc", y_valid, valid_probs), 6),
            "valid_log_loss": round(_valid_score("log_loss", y_valid, valid_probs), 6),
        }
        grid_rows.append(row)
        score = row[f"valid_{p['select_by']}"]
        better = best_score is None or (score > best_score if higher_is_better else score < best_score)
        if better:  # strict: ties keep the smaller C
            best_model, best_c, best_score = model, c, score
        logger.info("baseline C=%g: valid ROC-AUC %.4f, log-loss %.4f", c, row["valid_roc_auc"], row["valid_log_loss"])
    logger.info("baseline: chose C=%g by valid %s (%.4f), vocabulary %d", best_c, p["select_by"], best_score, vocabulary_size)
    at_edge = len(p["c_grid"]) > 1 and best_c in (p["c_grid"][0], p["c_grid"][-1])
    if at_edge:
        logger.warning(
            "baseline: the chosen C=%g is at the edge of c_grid %s; the best C may lie beyond it (widen baseline.c_grid)",
            best_c, p["c_grid"],
        )

    selection = {
        "C": best_c,
        "select_by": p["select_by"],
        "valid_score": best_score,
        "c_at_grid_edge": bool(at_edge),
        "c_grid": grid_rows,
        "vocabulary_size": int(vocabulary_size),
    }
    return vectorizer, best_model, selection


def _top_ngrams(vectorizer: Any, model: Any, count: int) -> dict[str, list[str]]:
    if count <= 0:
        return {}
    names = vectorizer.get_feature_names_out()
    weights = model.coef_[0]
    order = np.argsort(weights, kind="stable")
    return {
        "top_vulnerable_ngrams": [str(names[i]) for i in order[::-1][:count]],
        "top_safe_ngrams": [str(names[i]) for i in order[:count]],
    }



class LexicalScorer:
    """The fitted TF-IDF + logistic-regression model as plain arrays: log-odds for any code text.

    Stored inside other tracks' checkpoints (fusion's lexical branch), which are loaded with
    ``torch.load(weights_only=True)``: so it exports a vocabulary, idf and coefficients, never a pickle.
    """

    def __init__(self, vectorizer: Any, coef: np.ndarray, intercept: float, c: float | None = None) -> None:
        self.vectorizer, self.coef, self.intercept = vectorizer, np.asarray(coef, dtype=np.float64), float(intercept)
        self.c = c  # the regularisation chosen on valid (cross-fitting refits at it)

    @classmethod
    def fit(cls, train: pd.DataFrame, valid: pd.DataFrame, params: Mapping[str, Any] | None = None) -> LexicalScorer:
        """The baseline's own model: vectorizer on train, C chosen on valid."""
        vectorizer, model, selection = _select_c(train, valid, _params(params))
        return cls(vectorizer, model.coef_[0], model.intercept_[0], c=float(selection["C"]))

    def log_odds(self, texts: Sequence[str]) -> np.ndarray:
        """The logistic regression's margin per text (float64, shape [n])."""
        return np.asarray(self.vectorizer.transform([str(t) for t in texts]) @ self.coef + self.intercept, dtype=np.float64)

    def export(self) -> dict[str, Any]:
        import torch

        v = self.vectorizer
        return {
            "vocabulary": {str(term): int(i) for term, i in v.vocabulary_.items()},
            "idf": torch.from_numpy(np.asarray(v.idf_, dtype=np.float64)),
            "coef": torch.from_numpy(self.coef),
            "intercept": self.intercept,
            "C": self.c,
            "vectorizer": {"token_pattern": v.token_pattern, "ngram_range": list(v.ngram_range),
                           "lowercase": bool(v.lowercase), "sublinear_tf": bool(v.sublinear_tf)},
        }

    @classmethod
    def from_export(cls, exported: Mapping[str, Any]) -> LexicalScorer:
        from sklearn.feature_extraction.text import TfidfVectorizer

        settings = exported["vectorizer"]
        vectorizer = TfidfVectorizer(
            token_pattern=settings["token_pattern"], ngram_range=tuple(settings["ngram_range"]),
            lowercase=settings["lowercase"], sublinear_tf=settings["sublinear_tf"], vocabulary=dict(exported["vocabulary"]),
            dtype=np.float64,
        )
        vectorizer.idf_ = np.asarray(exported["idf"], dtype=np.float64)  # also fixes the vocabulary
        return cls(vectorizer, np.asarray(exported["coef"], dtype=np.float64), float(exported["intercept"]), exported.get("C"))


def cross_fitted_margins(
    train: pd.DataFrame, c: float, params: Mapping[str, Any] | None = None, folds: int = 5, seed: int = 0
) -> np.ndarray:
    """Out-of-fold log-odds for every train row: each fold is scored by a vectorizer + model fitted on the others.

    Why: a model fed the baseline's score on its own training rows would learn to trust an
    overfitted number; out-of-fold scores are as noisy on train as they will be on new code.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline

    p = _params(params)
    labels = train["target"].astype(np.int64).to_numpy()
    if folds < 2:
        raise ValueError(f"cross-fitting needs at least 2 folds, got {folds}")
    model = make_pipeline(
        make_vectorizer(p),
        LogisticRegression(C=float(c), solver="liblinear", max_iter=int(p["max_iter"]), class_weight=p["class_weight"],
                           random_state=int(p["random_state"])),
    )
    splitter = StratifiedKFold(n_splits=int(folds), shuffle=True, random_state=int(seed))
    texts = train["func"].astype(str).tolist()
    return np.asarray(cross_val_predict(model, texts, labels, cv=splitter, method="decision_function"), dtype=np.float64)
