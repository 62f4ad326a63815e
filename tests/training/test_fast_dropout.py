"""The loop's CPU dropout: same layer as torch's (rate, scaling, gradient), seeded, and fully put back."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from streamguard.training.fast_dropout import ATTENTION_NAME, FastDropout, fast_dropout, fast_dropout_layers


@pytest.mark.parametrize("p", [0.1, 0.25, 0.5])
def test_drop_rate_scaling_and_gradient(p):
    torch.manual_seed(0)
    x = torch.rand(200_000) + 0.5  # never 0, so a zero means dropped
    x.requires_grad_(True)
    y = fast_dropout(x, p)
    dropped = y == 0
    assert abs(dropped.float().mean().item() - p) < 0.005
    kept = ~dropped
    torch.testing.assert_close(y[kept], x[kept] / (1 - p), rtol=1e-4, atol=0)
    y.sum().backward()
    torch.testing.assert_close(x.grad[kept], torch.full_like(x.grad[kept], 1 / (1 - p)), rtol=1e-4, atol=0)
    assert bool((x.grad[dropped] == 0).all())


def test_every_16_bit_slot_is_random():
    """Each int64 draw gives four masks: the last of the four must be as random as the others."""
    torch.manual_seed(1)
    y = fast_dropout(torch.ones(400_000), 0.5).view(-1, 4)
    rates = (y == 0).float().mean(dim=0)
    assert torch.all((rates - 0.5).abs() < 0.01), rates


def test_identity_when_off_and_seeded_when_on():
    x = torch.randn(3, 50, 7)
    assert fast_dropout(x, 0.3, training=False) is x
    assert fast_dropout(x, 0.0) is x
    assert torch.equal(fast_dropout(x, 1.0), torch.zeros_like(x))
    torch.manual_seed(5)
    first = fast_dropout(x, 0.3)
    torch.manual_seed(5)
    assert torch.equal(first, fast_dropout(x, 0.3))
    assert first.shape == x.shape


def _tiny_roberta_classifier(dropout: float):
    from transformers import RobertaConfig, RobertaModel

    from streamguard.models.transformer import TransformerClassifier

    config = RobertaConfig(
        vocab_size=60, max_position_embeddings=34, num_hidden_layers=2, hidden_size=16, num_attention_heads=2,
        intermediate_size=32, type_vocab_size=1, hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout,
    )
    torch.manual_seed(0)
    return TransformerClassifier(RobertaModel(config, add_pooling_layer=False), dropout=dropout)


def _token_batch():
    torch.manual_seed(3)
    mask = torch.ones(3, 20, dtype=torch.long)
    mask[1, 12:] = 0
    mask[2, 5:] = 0
    return {"input_ids": torch.randint(5, 60, (3, 20)), "attention_mask": mask}


def test_layers_swapped_inside_and_restored_after():
    model = _tiny_roberta_classifier(0.1)
    before = {name: type(module) for name, module in model.named_modules()}
    implementation = model.encoder.config._attn_implementation
    keys = list(model.state_dict())
    with fast_dropout_layers(model):
        dropouts = [module for module in model.modules() if isinstance(module, nn.Dropout)]
        assert dropouts and all(type(module) is FastDropout for module in dropouts)
        assert model.encoder.config._attn_implementation == ATTENTION_NAME
        assert list(model.state_dict()) == keys
    assert {name: type(module) for name, module in model.named_modules()} == before
    assert model.encoder.config._attn_implementation == implementation
    with fast_dropout_layers(model, device="cuda"):  # off a CPU: nothing changes
        assert all(type(module) is not FastDropout for module in model.modules())


def test_hugging_face_attention_matches_without_dropout_and_drops_with_it():
    """The registered attention function masks padding exactly as transformers' own attention does."""
    batch = _token_batch()
    model = _tiny_roberta_classifier(0.0).train()  # train mode, but nothing to drop: outputs must agree
    reference = model(batch)
    with fast_dropout_layers(model):
        torch.testing.assert_close(model(batch), reference, atol=1e-5, rtol=1e-5)

    model = _tiny_roberta_classifier(0.3).train()
    with fast_dropout_layers(model):
        torch.manual_seed(7)
        first = model(batch)
        torch.manual_seed(7)
        again = model(batch)
        torch.manual_seed(8)
        other = model(batch)
        model.eval()
        evaluated = model(batch)
    assert torch.equal(first, again) and not torch.allclose(first, other)
    model.eval()
    torch.testing.assert_close(model(batch), evaluated, atol=1e-6, rtol=1e-6)


def test_the_loop_trains_with_it_and_returns_plain_layers():
    from streamguard.training import TrainConfig, fit

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 2))

        def forward(self, batch):
            return self.body(batch["x"])

    generator = torch.Generator().manual_seed(0)
    features = torch.randn(64, 4, generator=generator)
    labels = (features[:, 0] > 0).long()
    rows = [{"x": features[i], "label": int(labels[i]), "idx": i} for i in range(64)]

    def collate(items):
        return {
            "x": torch.stack([item["x"] for item in items]),
            "labels": torch.tensor([item["label"] for item in items]),
            "idx": torch.tensor([item["idx"] for item in items]),
        }

    results = {}
    for fast in (True, False):
        torch.manual_seed(0)
        config = TrainConfig(epochs=3, batch_size=16, lr=1e-2, progress=False, fast_dropout=fast, collapse_check_from_epoch=0)
        results[fast] = fit(Net(), rows[:48], rows[48:], collate, config)
        assert type(results[fast].model.body[2]) is nn.Dropout
        assert results[fast].history[-1]["train_loss"] < results[fast].history[0]["train_loss"]
    # Different masks, so different weights: the switch really changes what runs.
    assert not torch.equal(results[True].model.body[0].weight, results[False].model.body[0].weight)
