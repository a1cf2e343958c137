"""Masks: exact sparsity, zeros that survive training, permanent masks that load in plain transformers."""

import json
import os

import pytest
import torch
from sparse_utils import random_batch, sgd_train_fn, tiny_bert
from transformers import AutoModelForSequenceClassification

from bertlite import BertliteError
from bertlite.pruning.unstructured import copy_model, find_targets, prune_weights, remove_masks, sparsity_schedule
from bertlite.pruning.unstructured.masking import effective_weight

BATCH = random_batch()
PER_SAMPLE = [{k: v[i:i + 1] for k, v in BATCH.items()} for i in range(len(BATCH["labels"]))]


def _pruned_counts(model):
    return {name: int((effective_weight(m) == 0).sum()) for name, m in find_targets(model).items()}


@pytest.mark.parametrize("method", ["magnitude", "obd", "synflow", "lth"])
@pytest.mark.parametrize("scope", ["global", "layer"])
def test_requested_sparsity_is_reached_exactly(method, scope):
    model = tiny_bert()
    sparsity = 0.73
    report = prune_weights(model, method, sparsity, scope=scope, iterations=2 if method == "lth" else None,
                           data=PER_SAMPLE, train_fn=sgd_train_fn(BATCH, steps=1), on_collapse="ignore")
    counts = _pruned_counts(model)
    sizes = {name: m.weight.numel() for name, m in find_targets(model).items()}
    if scope == "global":
        assert sum(counts.values()) == round(sparsity * sum(sizes.values()))
    else:
        assert counts == {name: round(sparsity * n) for name, n in sizes.items()}
    assert report.pruned_params == sum(counts.values())
    assert {layer.name: layer.pruned for layer in report.layers} == counts


def test_embeddings_and_classifier_are_excluded_unless_asked():
    model = tiny_bert()
    default = set(find_targets(model))
    assert not any("embeddings" in name or "pooler" in name or name == "classifier" for name in default)
    assert len(default) == 2 * 6  # q, k, v, attention output, intermediate, output of each layer
    everything = set(find_targets(model, include_embeddings=True, include_classifier=True))
    assert everything - default == {"bert.embeddings.word_embeddings", "bert.embeddings.position_embeddings",
                                    "bert.embeddings.token_type_embeddings", "bert.pooler.dense", "classifier"}
    prune_weights(model, "magnitude", 0.5, include_embeddings=True, include_classifier=True)
    assert (model.bert.embeddings.word_embeddings.weight == 0).float().mean() > 0
    assert (model.classifier.weight == 0).float().mean() > 0


def test_pruned_weights_stay_zero_through_training():
    model = tiny_bert()
    prune_weights(model, "magnitude", 0.6)
    targets = find_targets(model)
    masks = {name: m.weight_mask.clone() for name, m in targets.items()}
    before = {name: effective_weight(m).clone() for name, m in targets.items()}
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    for _ in range(3):
        model(**BATCH).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    with torch.no_grad():
        model(**BATCH)  # the pre-hook recomputes module.weight, the tensor the forward pass uses
    for name, module in targets.items():
        after = effective_weight(module)
        assert torch.all(module.weight[masks[name] == 0] == 0), name
        assert torch.equal(module.weight, after)
        assert not torch.equal(after[masks[name] == 1], before[name][masks[name] == 1]), f"{name} did not train"


def test_masks_made_permanent_load_in_plain_transformers(tmp_path):
    model = tiny_bert()
    prune_weights(model, "synflow", 0.8, iterations=10)
    with torch.no_grad():
        masked_logits = model(**{k: v for k, v in BATCH.items() if k != "labels"}).logits
    counts = _pruned_counts(model)
    remove_masks(model)
    assert not any(n.endswith(("_orig", "_mask")) for n in model.state_dict())
    model.save_pretrained(tmp_path)
    from safetensors.torch import load_file

    saved = load_file(os.path.join(tmp_path, "model.safetensors"))
    assert not any(k.endswith(("_orig", "_mask")) for k in saved)
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        reloaded_logits = reloaded(**{k: v for k, v in BATCH.items() if k != "labels"}).logits
    assert torch.allclose(masked_logits, reloaded_logits, atol=1e-6)
    assert _pruned_counts(reloaded) == counts


def test_layer_collapse_is_an_error_by_default():
    model = tiny_bert()
    with torch.no_grad():  # make one layer's weights the smallest of the model: global magnitude empties it first
        model.bert.encoder.layer[1].attention.self.key.weight.mul_(1e-4)
    untouched = {name: p.clone() for name, p in model.named_parameters()}
    with pytest.raises(BertliteError, match="layer collapse.*layer.1.attention.self.key"):
        prune_weights(model, "magnitude", 0.2)
    assert all(torch.equal(p, untouched[name]) for name, p in model.named_parameters())  # nothing was masked
    with pytest.warns(UserWarning, match="layer collapse"):
        report = prune_weights(model, "magnitude", 0.2, on_collapse="warn")
    assert report.collapsed == ["bert.encoder.layer.1.attention.self.key"]
    assert "<- collapsed" in report.table()


def test_report_json_and_bad_input(tmp_path):
    model = tiny_bert()
    report = prune_weights(model, "magnitude", 0.5, scope="layer")
    data = json.load(open(report.save(tmp_path)))
    assert data["method"] == "magnitude" and data["scope"] == "layer"
    assert len(data["layers"]) == len(find_targets(model))
    assert all(abs(layer["sparsity"] - 0.5) < 1e-9 for layer in data["layers"])
    assert data["model_params"] == sum(p.numel() for p in model.parameters())
    for bad in (dict(method="random"), dict(sparsity=1.0), dict(sparsity=-0.1), dict(scope="row")):
        with pytest.raises(BertliteError):
            prune_weights(tiny_bert(), **{"method": "magnitude", "sparsity": 0.5, **bad})
    with pytest.raises(BertliteError, match="train_fn"):
        prune_weights(tiny_bert(), "lth", 0.5)
    with pytest.raises(BertliteError, match="data"):
        prune_weights(tiny_bert(), "obd", 0.5)


def test_exponential_schedule():
    steps = sparsity_schedule(0.9, 4)
    assert steps[-1] == 0.9 and steps == sorted(steps)
    remaining = [1 - s for s in [0.0, *steps]]
    ratios = [b / a for a, b in zip(remaining, remaining[1:])]
    assert max(ratios) - min(ratios) < 1e-12  # the same fraction of the remaining weights goes every step


def test_copy_model_after_training_keeps_masks_and_is_independent():
    model = tiny_bert()
    prune_weights(model, "magnitude", 0.5)
    model(**BATCH).loss.backward()  # leaves each masked `weight` as a non-leaf tensor
    clone = copy_model(model)
    inputs = {k: v for k, v in BATCH.items() if k != "labels"}
    with torch.no_grad():
        assert torch.equal(model(**inputs).logits, clone(**inputs).logits)
        clone.bert.encoder.layer[0].intermediate.dense.weight_orig.add_(1.0)
    weight = effective_weight(clone.bert.encoder.layer[0].intermediate.dense)
    mask = clone.bert.encoder.layer[0].intermediate.dense.weight_mask
    assert torch.all(weight[mask == 0] == 0)  # the copy carries its own masks
    assert not torch.equal(weight, effective_weight(model.bert.encoder.layer[0].intermediate.dense))
