"""The embedded data set: deterministic, valid C, balanced families, learnable but not trivially."""


import numpy as np
import pytest
import tree_sitter
import tree_sitter_c
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from streamguard.data.generator import FAMILIES, generate_dataset, generate_functions
from streamguard.data.loading import validate_records

# Identifiers, numbers, string/char literals, multi-char operators, then any other symbol.
CODE_TOKEN = (
    r"""[A-Za-z_]\w*|\d+|"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'"""
    r"""|->|\+\+|--|<=|>=|==|!=|&&|\|\||[-+*/%&|^<>]=|<<|>>|[^\s\w]"""
)
COLUMNS = ["idx", "func", "target", "project", "cwe", "family", "clean_target"]


@pytest.fixture(scope="module")
def sample() -> list[dict]:
    return generate_functions(500, seed=11, label_noise=0.0)


def test_same_arguments_same_rows_and_seed_matters():
    assert generate_functions(40, seed=3) == generate_functions(40, seed=3)
    assert generate_functions(40, seed=3) != generate_functions(40, seed=4)


def test_dataset_splits_columns_and_unique_ids():
    splits = generate_dataset(30, 10, 12, seed=1)
    assert [len(splits[name]) for name in ("train", "valid", "test")] == [30, 10, 12]
    all_ids = np.concatenate([frame["idx"].to_numpy() for frame in splits.values()])
    assert len(set(all_ids)) == len(all_ids) == 52
    for frame in splits.values():
        assert list(frame.columns) == COLUMNS
        assert str(frame["idx"].dtype) == str(frame["target"].dtype) == "int64"
        assert set(frame["project"]) == {"synthetic"}
    # Growing a later split leaves the earlier ones unchanged.
    assert generate_dataset(30, 20, 5, seed=1)["train"].equals(splits["train"])


def test_generated_rows_pass_the_loader_validation():
    frame = generate_dataset(40, 0, 0, seed=2)["train"]
    accepted, rejects = validate_records(enumerate(frame.to_dict("records"), start=1), "train")
    assert rejects.empty and list(accepted["idx"]) == list(frame["idx"])


def test_families_and_labels(sample):
    by_family = {(row["family"], row["clean_target"]) for row in sample}
    assert {family.name for family in FAMILIES} == {name for name, _ in by_family}
    assert len(by_family) == 2 * len(FAMILIES)  # every family has vulnerable and fixed rows
    cwe_of = {family.name: family.cwe for family in FAMILIES}
    assert all(row["cwe"] == cwe_of[row["family"]] for row in sample)
    expected_cwes = {"CWE-787", "CWE-125", "CWE-416", "CWE-415", "CWE-476", "CWE-190", "CWE-134", "CWE-252"}
    assert expected_cwes <= set(cwe_of.values())
    assert all(row["target"] == row["clean_target"] for row in sample)
    assert 0.38 < np.mean([row["clean_target"] for row in sample]) < 0.52


def test_label_noise_flips_about_the_requested_share():
    rows = generate_functions(600, seed=5, label_noise=0.2, vulnerable_ratio=0.3)
    flipped = np.mean([row["target"] != row["clean_target"] for row in rows])
    assert 0.14 < flipped < 0.26
    assert 0.22 < np.mean([row["clean_target"] for row in rows]) < 0.38
    assert [row["idx"] for row in generate_functions(3, seed=5, start_idx=100)] == [100, 101, 102]


def test_functions_are_valid_c(sample):
    parser = tree_sitter.Parser(tree_sitter.Language(tree_sitter_c.language()))

    def has_syntax_error(code: str) -> bool:
        stack = [parser.parse(code.encode()).root_node]
        while stack:
            node = stack.pop()
            if node.is_error or node.is_missing:
                return True
            stack.extend(node.children)
        return False

    failures = [row["func"] for row in sample if has_syntax_error(row["func"])]
    assert len(failures) <= 0.01 * len(sample), failures[:1]


def test_lengths_vary_between_short_and_long(sample):
    lines = np.array([row["func"].count("\n") for row in sample])
    assert lines.min() >= 6 and lines.max() <= 90
    assert (lines < 15).any() and (lines > 40).any()


def test_no_single_token_solves_the_task(sample):
    """Presence of any one token predicts the label barely better than the majority class."""
    labels = np.array([row["clean_target"] for row in sample])
    present = CountVectorizer(token_pattern=CODE_TOKEN, lowercase=False, binary=True).fit_transform(
        [row["func"] for row in sample]
    ).toarray().astype(bool)
    agreement = (present == labels[:, None]).mean(axis=0)
    best_single_token = np.maximum(agreement, 1 - agreement).max()
    majority = max(labels.mean(), 1 - labels.mean())
    assert best_single_token < majority + 0.1


def test_bag_of_ngrams_learns_something_but_not_everything():
    splits = generate_dataset(1200, 0, 400, seed=5, label_noise=0.0)
    train, test = splits["train"], splits["test"]
    vectorizer = TfidfVectorizer(
        token_pattern=CODE_TOKEN, lowercase=False, ngram_range=(1, 2), min_df=2, sublinear_tf=True
    )
    model = LogisticRegression(C=10.0, max_iter=2000).fit(vectorizer.fit_transform(train["func"]), train["target"])
    accuracy = (model.predict(vectorizer.transform(test["func"])) == test["target"]).mean()
    majority = max(test["target"].mean(), 1 - test["target"].mean())
    assert majority + 0.03 < accuracy < 0.97
