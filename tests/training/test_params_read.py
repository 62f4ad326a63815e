"""Every parameter in a track's conf/base file is read by that track's training code (an unread key fails).

A key counts as read when the track's code looks it up: top-level keys through the params mapping,
``training`` keys as attributes of the TrainConfig the loop runs with (or looked up in the ``training``
mapping directly), ``graphs`` keys as attributes
of the GraphConfig the graph builder runs with. Building the config, hashing it, storing it in the
checkpoint or validating it does not count. Knobs that only matter when a switch is on (``ema_decay``
with ``ema``, ``focal_gamma`` with the focal loss, ``prefetch_factor`` with workers, fusion's padding
with a live transformer branch) are read in a second run with those switches on.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import pytest
import yaml

from streamguard.data.generator import generate_dataset
from streamguard.graphs.schema import GraphConfig
from streamguard.training.config import TrainConfig

CONF = Path(__file__).resolve().parents[2] / "conf" / "base"
# Read only when a step is non-finite (tests/training/test_loop.py makes a NaN and checks it).
ONLY_ON_FAILURE = {"max_nonfinite_steps"}
SWITCHED_ON = {
    "ema": True, "loss": "focal", "class_weighting": "balanced", "weighted_sampler": True,
    "num_workers": 1, "prefetch_factor": 2, "persistent_workers": True, "encoder_lr": 1.0e-4,
    "lr": "auto", "lr_finder_iterations": 20, "lr_finder_cache_dir": None,
}
TINY = {
    "transformer": {"max_length": 64, "vocab_size": 300},
    "gnn": {"hidden_dim": 8, "num_layers": 2},
    "fusion": {"hidden_dim": 8},
}


def _conf(track: str) -> dict:
    return yaml.safe_load((CONF / f"parameters_{track}.yml").read_text())


def _defaults(track: str) -> dict:
    return _conf(track)[f"_{track}_defaults"]


def _leaf_keys(block: dict, prefix: str = "") -> set[str]:
    keys = set()
    for key, value in block.items():
        name = f"{prefix}{key}"
        keys |= _leaf_keys(value, f"{name}.") if isinstance(value, dict) else {name}
    return keys


class RecordingParams(dict):
    """A params dict that remembers the keys looked up (iteration, as when hashing or storing it, does not count)."""

    def __init__(self, values: dict, reads: set[str], prefix: str = "") -> None:
        super().__init__(values)
        self._reads, self._prefix = reads, prefix

    def __getitem__(self, key):
        self._reads.add(self._prefix + key)
        return super().__getitem__(key)

    def get(self, key, default=None):
        self._reads.add(self._prefix + key)
        return super().get(key, default)


@pytest.fixture
def field_reads(monkeypatch):
    """``{"training": set, "graphs": set}``: TrainConfig / GraphConfig fields read outside their own bookkeeping."""
    reads = {"training": set(), "graphs": set()}
    quiet = [0]

    def record(cls, kind, bookkeeping):
        fields = set(cls.field_names()) if hasattr(cls, "field_names") else set(cls.__dataclass_fields__)
        original = cls.__getattribute__

        def getattribute(self, name):
            if not quiet[0] and name in fields:
                reads[kind].add(name)
            return original(self, name)

        monkeypatch.setattr(cls, "__getattribute__", getattribute)
        for method in bookkeeping:
            function = cls.__dict__[method]
            is_classmethod = isinstance(function, classmethod)
            raw = function.__func__ if is_classmethod else function

            @functools.wraps(raw)
            def silent(*args, _raw=raw, **kwargs):
                quiet[0] += 1
                try:
                    return _raw(*args, **kwargs)
                finally:
                    quiet[0] -= 1

            monkeypatch.setattr(cls, method, classmethod(silent) if is_classmethod else silent)

    record(TrainConfig, "training", [m for m in ("validate", "to_dict", "__post_init__", "__eq__", "__repr__") if m in TrainConfig.__dict__])
    record(GraphConfig, "graphs", [m for m in ("__post_init__", "to_dict", "__eq__", "__repr__") if m in GraphConfig.__dict__])
    import dataclasses

    original_replace = dataclasses.replace

    def quiet_replace(*args, **kwargs):
        quiet[0] += 1
        try:
            return original_replace(*args, **kwargs)
        finally:
            quiet[0] -= 1

    monkeypatch.setattr(dataclasses, "replace", quiet_replace)
    return reads


@pytest.fixture(scope="module")
def frames():
    return generate_dataset(64, 32, 0, seed=5)


@pytest.fixture(scope="module")
def graphs(frames):
    from streamguard.tracks.gnn import build_split_graphs

    return {split: build_split_graphs(frames[split], _conf("gnn")["graphs"])[0] for split in ("train", "valid")}


def _params(track: str, reads: set[str], switched_on: bool, **top) -> RecordingParams:
    params = copy.deepcopy(_defaults(track))
    params.update(TINY[track])
    params.update(top)
    params["training"].update({"epochs": 1, "batch_size": 16, "progress": False})
    if switched_on:
        params["training"].update(SWITCHED_ON)
    params["training"] = RecordingParams(params["training"], reads, "training.")  # code that looks a key up directly
    return RecordingParams(params, reads)


def _train(track: str, params, frames, graphs, branch_checkpoints=None):
    if track == "transformer":
        from streamguard.tracks.transformer import train_transformer

        return train_transformer(frames["train"], frames["valid"], params, seed=0)[0]
    if track == "gnn":
        from streamguard.tracks.gnn import train_gnn

        graph_params = RecordingParams(_conf("gnn")["graphs"], set())
        return train_gnn(graphs["train"], frames["train"], graphs["valid"], frames["valid"], params, graph_params, seed=0)[0]
    from streamguard.tracks.fusion import train_fusion

    return train_fusion(
        branch_checkpoints["transformer"], branch_checkpoints["gnn"],
        {"train": frames["train"], "valid": frames["valid"]}, graphs, params, seed=0,
    )[0]


@pytest.fixture(scope="module")
def branch_checkpoints(frames, graphs):
    return {track: _train(track, _params(track, set(), False), frames, graphs) for track in ("transformer", "gnn")}


def _assert_all_read(track: str, top_reads: set[str], field_reads: dict) -> None:
    defaults = _defaults(track)
    expected_top = {key for key in defaults if key != "training"}
    assert expected_top - top_reads == set(), f"{track}: parameters never read by the track"
    expected_training = set(defaults["training"]) - ONLY_ON_FAILURE
    direct = {key.removeprefix("training.") for key in top_reads if key.startswith("training.")}
    unread = expected_training - field_reads["training"] - direct
    assert unread == set(), f"{track}.training: parameters never read by the training loop"


@pytest.mark.parametrize("track", ["transformer", "gnn", "fusion"])
def test_every_conf_base_parameter_is_read(track, frames, graphs, branch_checkpoints, field_reads):
    top_reads: set[str] = set()
    extra = {"freeze_transformer": False, "freeze_gnn": False, "lexical_branch": True} if track == "fusion" else {}
    _train(track, _params(track, top_reads, False), frames, graphs, branch_checkpoints)
    _train(track, _params(track, top_reads, True, **extra), frames, graphs, branch_checkpoints)
    _assert_all_read(track, top_reads, field_reads)


def test_graph_parameters_are_read(frames, field_reads):
    from streamguard.tracks.gnn import build_split_graphs

    conf = _conf("gnn")["graphs"]
    build_split_graphs(frames["valid"], conf)
    build_split_graphs(frames["valid"], {**conf, "max_nodes": 8})  # oversize functions: the policy decides
    assert set(conf) - field_reads["graphs"] == set(), "graphs: parameters never read by the graph builder"


def test_the_recorder_notices_an_unread_key(field_reads):
    """The check itself: a TrainConfig that is only built and stored reads nothing."""
    config = TrainConfig.from_dict({"epochs": 1, "ema_decay": 0.9})
    config.to_dict()
    assert field_reads["training"] == set()
    assert config.epochs == 1 and field_reads["training"] == {"epochs"}
