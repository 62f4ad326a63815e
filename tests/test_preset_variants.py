"""The notebook's own fusion presets sit beside the changelog's, with the spec's values (issue 16, items 5 and 9)."""

from __future__ import annotations

from pathlib import Path

import yaml
from omegaconf import OmegaConf

from streamguard.config.presets import apply_preset

CONF = Path(__file__).resolve().parents[1] / "conf" / "base" / "parameters_fusion.yml"


def _resolved(name: str) -> dict:
    conf = yaml.safe_load(CONF.read_text())
    merged = apply_preset("fusion", OmegaConf.create(conf["_fusion_defaults"]), OmegaConf.create(conf["fusion_presets"]), name, "fusion_balanced")
    return OmegaConf.to_container(merged)


def test_notebook_variants_carry_the_notebook_values():
    balanced = _resolved("fusion_balanced_notebook")
    assert balanced["preset"] == "fusion_balanced_notebook"
    assert (balanced["hidden_dim"], balanced["dropout"]) == (512, 0.25)
    assert {k: balanced["training"][k] for k in ("epochs", "batch_size", "lr", "scheduler", "warmup_ratio", "amp_dtype", "ema", "loss")} == {
        "epochs": 8, "batch_size": 32, "lr": 2.0e-4, "scheduler": "linear", "warmup_ratio": 0.05, "amp_dtype": "fp16",
        "ema": False, "loss": "ce",
    }
    recall = _resolved("fusion_high_recall_notebook")
    assert (recall["hidden_dim"], recall["dropout"]) == (512, 0.3)
    assert {k: recall["training"][k] for k in ("epochs", "batch_size", "lr", "scheduler", "warmup_ratio", "loss", "focal_gamma", "class_weighting")} == {
        "epochs": 10, "batch_size": 28, "lr": 2.0e-4, "scheduler": "linear", "warmup_ratio": 0.05, "loss": "focal",
        "focal_gamma": 2.0, "class_weighting": "none",
    }


def test_changelog_versions_differ_from_the_notebook_ones():
    balanced = _resolved("fusion_balanced")
    assert balanced["training"]["scheduler"] == "cosine" and balanced["training"]["warmup_ratio"] == 0.1
    assert balanced["hidden_dim"] == 256


def test_high_recall_description_lists_everything_it_changes():
    conf = yaml.safe_load(CONF.read_text())
    preset = conf["fusion_presets"]["fusion_high_recall"]
    description = preset["description"].lower()
    changed = {key: value for key, value in preset.items() if key != "description"}
    for key, value in {**{k: v for k, v in changed.items() if k != "training"}, **changed["training"]}.items():
        words = {"focal_gamma": "gamma", "loss": "focal", "class_weighting": "class weights", "epochs": "epochs", "dropout": "dropout"}
        assert words[key] in description and str(value).replace("balanced", "balanced") in description, (key, value)
