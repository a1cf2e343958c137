"""GradualPruningCallback with a plain transformers.Trainer: masks grow on schedule, surgery at the end is exact."""

from __future__ import annotations

import json

import pytest
import torch
from datasets import Dataset
from structured_fixtures import HEADS, LAYERS, tiny_classifier, tiny_inputs
from transformers import Trainer, TrainingArguments

from bertlite.errors import BertliteError
from bertlite.modeling import BertliteForSequenceClassification
from bertlite.pruning.structured.callback import MASKS_FILE, GradualPruningCallback


def tiny_dataset(n: int = 48) -> Dataset:
    generator = torch.Generator().manual_seed(3)
    ids = torch.randint(5, 100, (n, 8), generator=generator)
    labels = (ids[:, 0] % 3).tolist()  # learnable from the first token
    return Dataset.from_dict({"input_ids": ids.tolist(), "attention_mask": [[1] * 8] * n, "labels": labels})


def trainer_for(model, callback, output_dir, max_steps=8, **extra):
    settings = dict(output_dir=str(output_dir), max_steps=max_steps, per_device_train_batch_size=6, learning_rate=1e-3,
                    report_to=[], logging_strategy="no", use_cpu=True, disable_tqdm=True, save_strategy="no", seed=0)
    args = TrainingArguments(**{**settings, **extra})
    return Trainer(model=model, args=args, train_dataset=tiny_dataset(), callbacks=[callback])


@pytest.mark.parametrize("criterion, scope", [("taylor", "global"), ("magnitude", "layer")])
def test_gradual_pruning_reaches_the_target_and_surgery_matches_the_masked_model(tmp_path, criterion, scope):
    model = tiny_classifier().train()
    callback = GradualPruningCallback(heads=0.5, ffn=0.5, criterion=criterion, scope=scope, start=0.0, end=0.75, pruning_events=3)
    trainer = trainer_for(model, callback, tmp_path)
    trainer.train()

    heads_removed = [h["heads_removed"] for h in callback.history]
    assert [h["step"] for h in callback.history] == callback.event_steps == [1, 4, 6]
    assert heads_removed == sorted(heads_removed) and heads_removed[-1] == LAYERS * HEADS // 2
    assert callback.history[-1]["ffn_removed"] == LAYERS * 64 // 2
    assert all(len(v) < HEADS for v in callback.gates.masked_heads().values())  # guard: no layer emptied

    inputs = tiny_inputs()
    trainer.model.eval()
    with torch.no_grad():
        masked = trainer.model(**inputs).logits
    pruned = callback.finalize(trainer.model)
    assert isinstance(pruned, BertliteForSequenceClassification)
    assert sum(pruned.config.layer_num_attention_heads) == LAYERS * HEADS // 2
    assert sum(pruned.config.layer_intermediate_sizes) == LAYERS * 64 // 2
    with torch.no_grad():
        torch.testing.assert_close(pruned.eval()(**inputs).logits, masked, atol=1e-5, rtol=0)


def test_masks_are_checkpointed_and_restored_on_resume(tmp_path):
    first = GradualPruningCallback(heads=0.5, start=0.0, end=1.0, pruning_events=4)
    trainer_for(tiny_classifier().train(), first, tmp_path, save_strategy="steps", save_steps=4).train()
    saved = json.loads((tmp_path / "checkpoint-4" / MASKS_FILE).read_text())
    assert [h["step"] for h in saved["history"]] == [1, 3]

    second = GradualPruningCallback(heads=0.5, start=0.0, end=1.0, pruning_events=4)
    trainer = trainer_for(tiny_classifier().train(), second, tmp_path)
    trainer.train(resume_from_checkpoint=str(tmp_path / "checkpoint-4"))
    assert [h["step"] for h in second.history] == [1, 3, 6, 8]
    final = second.gates.masked_heads()
    assert all(set(saved["heads"][str(layer)]) <= set(final[layer]) for layer in range(LAYERS))


def test_callback_rejects_bad_settings():
    with pytest.raises(BertliteError, match="heads and/or ffn"):
        GradualPruningCallback()
    with pytest.raises(BertliteError, match=">= 0"):
        GradualPruningCallback(heads=-1)
    with pytest.raises(BertliteError, match="start <= end"):
        GradualPruningCallback(heads=0.5, start=0.8, end=0.2)
    with pytest.raises(BertliteError, match="before training"):
        GradualPruningCallback(heads=0.5).finalize(tiny_classifier())


def test_schedule_is_cubic_and_ends_at_the_target():
    callback = GradualPruningCallback(heads=0.5, start=0.1, end=0.5, pruning_events=5)
    callback.event_steps = callback.schedule(100)
    assert callback.event_steps == [10, 20, 30, 40, 50]
    shares = [callback.fraction_at(i) for i in range(5)]
    assert shares[-1] == 1.0 and shares == sorted(shares)
    assert shares[0] > 0.2 * 2  # cubic: most of the pruning happens early
