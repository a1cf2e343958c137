"""Teacher ensembles: averaged logits, the anchor's internals, and `bertlite distill --teacher_ensemble/--extra_teachers`."""

import copy
import json

import pytest
import torch

from bertlite.cli import main
from bertlite.distillation.ensemble import TeacherEnsemble
from bertlite.errors import BertliteError
from bertlite.distillation.losses import soft_logits_loss

from conftest import tiny_dataset, tiny_model
from helpers_trainer import make_trainer, pad_collate


def _batch(n=4):
    batch = pad_collate([tiny_dataset()[i] for i in range(n)])
    batch.pop("labels")
    return batch


def test_logits_are_the_members_mean_and_internals_the_anchors():
    members = [tiny_model(seed=s) for s in (0, 1, 2)]
    for m in members:
        m.set_attn_implementation("eager")  # SDPA returns no attention maps
    ensemble = TeacherEnsemble(members).eval()
    batch = _batch()
    with torch.no_grad():
        out = ensemble(**batch, output_hidden_states=True, output_attentions=True)
        alone = [m(**batch, output_hidden_states=True, output_attentions=True) for m in members]
    torch.testing.assert_close(out.logits, (alone[0].logits + alone[1].logits + alone[2].logits) / 3)
    assert not torch.allclose(out.logits, alone[0].logits)  # the members really disagree
    for mine, anchor in zip(out.hidden_states + out.attentions, alone[0].hidden_states + alone[0].attentions):
        assert torch.equal(mine, anchor)
    assert ensemble.config is members[0].config and len(ensemble) == 3


def test_an_ensemble_of_one_is_the_model_itself():
    model = tiny_model(seed=3)
    batch = _batch()
    with torch.no_grad():
        assert torch.equal(TeacherEnsemble([model])(**batch).logits, model(**batch).logits)


def test_members_for_another_task_or_vocabulary_are_clear_errors():
    with pytest.raises(BertliteError, match="3 labels"):
        TeacherEnsemble([tiny_model(), tiny_model(num_labels=3)])
    with pytest.raises(BertliteError, match="share one tokenizer"):
        TeacherEnsemble([tiny_model(), tiny_model(vocab_size=130)])
    with pytest.raises(BertliteError, match="at least one"):
        TeacherEnsemble([])


def test_the_trainer_distils_from_the_averaged_logits(tmp_path):
    anchor, other = tiny_model(seed=0), tiny_model(seed=1)
    with torch.no_grad():
        other.classifier.bias.copy_(torch.tensor([3.0, -3.0]))  # random tiny models barely disagree; make this one opinionated
    batch = pad_collate([tiny_dataset()[i] for i in range(4)])
    only_logits = dict(logit_weight=1.0, hard_label_weight=0.0, embedding_weight=0.0, hidden_weight=1.0, attention_weight=1.0,
                       layer_map="first")

    # Two identical members teach exactly what one does: a student equal to them has nothing left to learn.
    same = make_trainer(tmp_path / "a", student=copy.deepcopy(anchor), teacher=TeacherEnsemble([anchor, copy.deepcopy(anchor)]),
                        **only_logits)
    same.model.train()
    assert same.compute_loss(same.model, batch).item() == pytest.approx(0.0, abs=1e-5)

    # With a second, different member the logit target moves to the average while hidden states and attention maps
    # still come from the anchor: the whole loss is the soft-logit loss against the mean.
    mixed = make_trainer(tmp_path / "b", student=copy.deepcopy(anchor), teacher=TeacherEnsemble([anchor, other]),
                         **only_logits)
    mixed.model.train()
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    with torch.no_grad():
        mean_logits = (anchor(**inputs).logits + other(**inputs).logits) / 2
        expected = soft_logits_loss(mixed.model(**inputs).logits, mean_logits, mixed.args.temperature)
    assert expected.item() > 1e-2
    assert mixed.compute_loss(mixed.model, batch).item() == pytest.approx(expected.item(), rel=1e-4)


def _distill_argv(out, *extra):
    return ["distill", "--output_dir", str(out), "--student_layers", "1", "--max_train_examples", "32", "--max_eval_examples",
            "16", "--teacher_epochs", "1", "--num_train_epochs", "1", "--per_device_train_batch_size", "16", "--max_length", "32",
            "--no_measure_latency", "--disable_tqdm", "true", *extra]


def test_distill_with_a_fine_tuned_ensemble_then_reuse_it_as_extra_teachers(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(_distill_argv(run, "--teacher_ensemble", "2")) == 0
    first = json.loads((run / "metrics.json").read_text())
    members = first["teacher"]["ensemble"]["members"]
    assert members == ["sentence-transformers/all-MiniLM-L6-v2 fine-tuned on rotten_tomatoes (seed 42)",
                       "sentence-transformers/all-MiniLM-L6-v2 fine-tuned on rotten_tomatoes (seed 43)"]
    assert len(first["teacher"]["ensemble"]["member_test_accuracy"]) == 2
    assert (run / "teacher" / "model.safetensors").is_file() and (run / "teacher-2" / "model.safetensors").is_file()
    step = json.loads((run / "compression_config.json").read_text())["steps"][0]["params"]
    assert step["teacher_ensemble"] == members  # names for the model card, never this machine's folders
    # The two teachers really differ (different seeds), so the ensemble is not one of them.
    from safetensors.torch import load_file

    a, b = load_file(str(run / "teacher" / "model.safetensors")), load_file(str(run / "teacher-2" / "model.safetensors"))
    assert not torch.equal(a["classifier.weight"], b["classifier.weight"])

    # The same two teachers given by hand make the same ensemble teacher.
    again = tmp_path / "again"
    assert main(_distill_argv(again, "--teacher", str(run / "teacher"), "--extra_teachers", str(run / "teacher-2"))) == 0
    second = json.loads((again / "metrics.json").read_text())
    assert second["teacher"]["test_accuracy"] == first["teacher"]["test_accuracy"]
    assert second["teacher"]["ensemble"]["member_test_accuracy"] == first["teacher"]["ensemble"]["member_test_accuracy"]
    assert "ensemble of 2 fine-tuned teachers" in capsys.readouterr().out


def test_ensemble_mistakes_are_clear_errors_before_any_training(tmp_path, capsys):
    plain = tmp_path / "plain"
    tiny_model().save_pretrained(plain)  # already a 2-label sequence classifier: nothing to fine-tune
    from bertlite.loading import load_tokenizer

    load_tokenizer("minilm").save_pretrained(plain)
    encoder_only = tmp_path / "encoder"
    from transformers import BertModel

    BertModel(tiny_model().config).save_pretrained(encoder_only)
    out = tmp_path / "o"
    assert main(_distill_argv(out, "--extra_teachers", str(encoder_only))) == 1
    assert "no 2-label classification head" in capsys.readouterr().err
    assert not (out / "teacher").exists()
    assert main(_distill_argv(out, "--teacher", str(plain), "--teacher_ensemble", "2")) == 1
    assert "--extra_teachers" in capsys.readouterr().err
    assert main(_distill_argv(out, "--teacher_ensemble", "0")) == 1
    assert "teacher_ensemble must be >= 1" in capsys.readouterr().err
