"""`bertlite prune --method ...` through `bertlite.pruning.unstructured.cli_run`, and recovery training with a real Trainer."""

import json
import os
import warnings

import pytest
import torch
from sparse_utils import tiny_bert
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from bertlite import BertliteError
from bertlite.record import CompressionConfig
from bertlite.data import load_task
from bertlite.cli.prune import PruneArguments
from bertlite.loading import load_tokenizer
from bertlite.pruning.unstructured import cli_run, find_targets, prune_weights
from bertlite.pruning.unstructured.masking import effective_weight
from bertlite.pruning.recovery import task_train_fn


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("minilm")


@pytest.fixture(scope="module")
def tiny_classifier(tmp_path_factory, tokenizer):
    """A tiny BERT classifier saved with MiniLM's tokenizer and a compression history of one earlier step."""
    folder = tmp_path_factory.mktemp("tiny")
    model = tiny_bert(vocab_size=tokenizer.vocab_size)
    model.config.max_position_embeddings = 64
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    record = CompressionConfig(base_model="tiny-teacher")
    record.add_step("distillation", temperature=2.0)
    record.save_pretrained(folder)
    return str(folder)


def _args(model, output_dir, **overrides):
    """The prune command's arguments, as `bertlite prune` parses them, for quick runs."""
    values = dict(model=model, output_dir=str(output_dir), method="magnitude", sparsity=0.5, scope="global",
                  iterations=None, rewind_step=0, include_embeddings=False, include_classifier=False, recover=False,
                  teacher=None, task=None, seed=0, epochs=1.0, learning_rate=5e-5, batch_size=8, max_length=32,
                  max_train_examples=64, max_eval_examples=32, evaluate=True, importance_examples=8,
                  trust_remote_code=False, recovery_steps=2)
    values.update(overrides)
    return PruneArguments(**values)


def test_recovery_training_with_trainer_keeps_pruned_weights_zero(tokenizer, tmp_path):
    model = tiny_bert(vocab_size=tokenizer.vocab_size)
    prune_weights(model, "magnitude", 0.7)
    targets = find_targets(model)
    masks = {n: m.weight_mask.clone() for n, m in targets.items()}
    before = {n: effective_weight(m).clone() for n, m in targets.items()}
    dsd, _ = load_task("rotten_tomatoes", max_train_examples=48)
    task_train_fn(tokenizer, dsd["train"], str(tmp_path), max_steps=3, batch_size=16, max_length=32,
                  learning_rate=1e-3)(model)
    for name, module in targets.items():
        after = effective_weight(module)
        assert torch.all(after[masks[name] == 0] == 0), name
        assert not torch.equal(after, before[name]), f"{name} was not trained"
    assert not os.path.exists(tmp_path / "recovery")  # no checkpoints with masked parametrisation, no empty folder


@pytest.mark.parametrize("method,extra", [("synflow", dict(iterations=5)),
                                          ("obd", dict(task="rotten_tomatoes", scope="layer", recover=True)),
                                          ("magnitude", dict(task="rotten_tomatoes", recover=True, teacher="given")),
                                          ("lth", dict(task="rotten_tomatoes", iterations=2, rewind_step=1))])
def test_cli_run_saves_plain_sparse_model_with_report_and_history(tiny_classifier, tmp_path, capsys, method, extra):
    out = tmp_path / "pruned"
    if extra.get("teacher") == "given":  # an explicit teacher (here: the unpruned model's folder)
        extra = {**extra, "teacher": tiny_classifier}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # few SynFlow iterations: warned about, on purpose here
        assert cli_run(_args(tiny_classifier, out, method=method, sparsity=0.6, **extra)) == 0
    printed = capsys.readouterr().out
    assert "all pruned layers" in printed and "bert.encoder.layer.1.output.dense" in printed  # the per-layer table

    model = AutoModelForSequenceClassification.from_pretrained(out)  # plain transformers, no bertlite hooks
    counts = {n: (int((m.weight == 0).sum()), m.weight.numel()) for n, m in find_targets(model).items()}
    if extra.get("scope") == "layer":
        assert all(c == round(0.6 * n) for c, n in counts.values())
    else:
        assert sum(c for c, _ in counts.values()) == round(0.6 * sum(n for _, n in counts.values()))
    assert model.classifier.weight.count_nonzero() == model.classifier.weight.numel()  # head left dense
    assert AutoTokenizer.from_pretrained(out).vocab_size == 30522

    report = json.load(open(out / "sparsity_report.json"))
    assert report["method"] == method and abs(report["sparsity"] - 0.6) < 1e-3
    assert {layer["name"]: layer["pruned"] for layer in report["layers"]} == {n: c for n, (c, _) in counts.items()}
    record = CompressionConfig.from_pretrained(str(out))
    recovered = extra.get("recover", False)
    assert record.methods == ["distillation", "weight_pruning"] + (["distillation"] if recovered else [])
    step = record.steps[1].params
    assert step["pruning_method"] == method and step["sparsity"] == 0.6 and step["scope"] == extra.get("scope", "global")
    if "task" in extra:
        assert {"accuracy_before", "accuracy_pruned"} <= set(record.metrics["weight_pruning"])
        assert ("accuracy_recovered" in record.metrics["weight_pruning"]) == recovered
    if method == "lth":
        assert step["rewind_step"] == 1 and step["iterations"] == 2
    if recovered:  # recovery distils from the unpruned model unless a teacher is given
        assert record.steps[-1].params["purpose"] == "recovery after weight pruning"
        recovery = record.steps[-1].params
        assert recovery["max_steps"] == 2 and "temperature" in recovery
        # the recovery settings structured pruning uses too (bertlite.pruning.recovery)
        assert (recovery["attention_weight"], recovery["weight_decay"], recovery["train_sampling_strategy"]) == (
            0.0, 0.01, "group_by_length")


def test_cli_run_explains_missing_task_and_bad_values(tiny_classifier, tmp_path):
    for method in ("lth", "obd"):
        with pytest.raises(BertliteError, match="--task"):
            cli_run(_args(tiny_classifier, tmp_path, method=method))
    with pytest.raises(BertliteError, match="--task"):
        cli_run(_args(tiny_classifier, tmp_path, recover=True))
    with pytest.raises(BertliteError, match="one-shot"):
        cli_run(_args(tiny_classifier, tmp_path, iterations=3))
    with pytest.raises(BertliteError, match="method"):
        cli_run(_args(tiny_classifier, tmp_path, method="random"))
    assert not os.path.exists(tmp_path / "model.safetensors")
