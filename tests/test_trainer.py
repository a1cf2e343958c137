"""DistillationTrainer: real short runs on tiny models."""

import copy
import os
import signal
import warnings

import pytest
import torch
from transformers import TrainerCallback

from bertlite.distillation.config import DistillationConfig
from bertlite.errors import BertliteError
from bertlite.distillation.student import build_student
from bertlite.distillation.trainer import DistillationTrainer

from conftest import tiny_dataset, tiny_model
from helpers_trainer import make_trainer, pad_collate


def test_config_validates():
    with pytest.raises(BertliteError, match="temperature"):
        DistillationConfig(output_dir="x", temperature=-1)
    with pytest.raises(BertliteError, match="hidden_loss"):
        DistillationConfig(output_dir="x", hidden_loss="l1")
    with pytest.raises(BertliteError, match="Invalid layer map"):
        DistillationConfig(output_dir="x", layer_map="diagonal")
    with pytest.raises(BertliteError, match="hub_strategy 'every_save' is not supported"):
        DistillationConfig(output_dir="x", push_to_hub=True, hub_model_id="alice/student", hub_strategy="every_save")
    with pytest.raises(BertliteError, match="nothing would be learned"):
        DistillationConfig(output_dir="x", logit_weight=0, hard_label_weight=0, embedding_weight=0, hidden_weight=0)
    if not torch.accelerator.is_available():  # what a user without a GPU gets instead of DeepSpeed's batch assertion
        with pytest.raises(BertliteError, match="DeepSpeed on a machine without a GPU needs use_cpu=True"):
            DistillationConfig(output_dir="x", deepspeed={"zero_optimization": {"stage": 2}})


def test_loss_is_zero_when_student_equals_teacher(tmp_path):
    teacher = tiny_model()
    trainer = make_trainer(tmp_path, student=copy.deepcopy(teacher), teacher=teacher, hard_label_weight=0.0,
                           embedding_weight=1.0, hidden_weight=1.0, attention_weight=1.0, layer_map="first")
    batch = pad_collate([tiny_dataset()[i] for i in range(4)])
    trainer.model.train()
    loss = trainer.compute_loss(trainer.model, batch)
    assert loss.item() == pytest.approx(0.0, abs=1e-5)


def test_short_run_trains_student_logs_every_component_and_freezes_teacher(tmp_path):
    # Every component on (the defaults include the gold labels at weight 1); use_cpu left off, as users leave it.
    trainer = make_trainer(tmp_path, use_cpu=False)
    student_before = {k: v.clone() for k, v in trainer.student.state_dict().items()}
    teacher_before = {k: v.clone() for k, v in trainer.teacher.state_dict().items()}
    projection_before = {k: v.clone() for k, v in trainer.projections.state_dict().items()}
    assert set(trainer.projections.keys()) == {"0", "1", "2"}  # student is narrower (16 vs 32): embeddings, layers 1-2
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.train()
    if not torch.accelerator.is_available():  # a CPU run pins nothing, so it warns about nothing
        assert not [w for w in caught if "pin_memory" in str(w.message)]
    changed = [k for k, v in trainer.student.state_dict().items() if not torch.equal(v, student_before[k])]
    assert "classifier.weight" in changed and len(changed) > len(student_before) // 2
    assert all(torch.equal(v, teacher_before[k]) for k, v in trainer.teacher.state_dict().items())
    assert not any(p.requires_grad for p in trainer.teacher.parameters())
    # Projections are optimised with the student...
    assert any(not torch.equal(v, projection_before[k]) for k, v in trainer.projections.state_dict().items())
    logged = trainer.state.log_history[0]
    for name in ("loss_logits", "loss_hard", "loss_embeddings", "loss_hidden", "loss_attention"):
        assert name in logged and logged[name] >= 0
    # ...and left out of the saved student, a plain model folder with bertlite's record and no pickles.
    trainer.save_model(str(tmp_path / "student"))
    from safetensors.torch import load_file

    saved = load_file(str(tmp_path / "student" / "model.safetensors"))
    assert saved.keys() == trainer.student.state_dict().keys()
    assert sorted(os.listdir(tmp_path / "student")) == ["compression_config.json", "config.json", "model.safetensors"]


def test_two_stage_logs_intermediate_then_prediction(tmp_path):
    trainer = make_trainer(tmp_path, two_stage=True, stage_one_fraction=0.5, max_steps=6)
    trainer.train()
    history = [h for h in trainer.state.log_history if "loss" in h]
    first, last = history[0], history[-1]
    assert "loss_hidden" in first and "loss_logits" not in first and first["stage"] == 1.0
    assert "loss_logits" in last and "loss_hidden" not in last and last["stage"] == 2.0


def test_resume_from_checkpoint_continues_exactly(tmp_path):
    full = make_trainer(tmp_path / "full")
    full.train()
    final = {k: v.clone() for k, v in full.student.state_dict().items()}

    first = make_trainer(tmp_path / "part", save_strategy="steps", save_steps=3, max_steps=6)
    # Simulate a run that died after step 3: train to 3 via a stop flag.

    class StopAt3(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 3:
                control.should_training_stop = True

    first.add_callback(StopAt3())
    first.train()
    checkpoint = tmp_path / "part" / "checkpoint-3"
    from safetensors.torch import load_file

    # A checkpoint holds the container (student and projections), which Trainer's own resume restores.
    assert {"projections.1.weight", "student.classifier.weight"} <= load_file(str(checkpoint / "model.safetensors")).keys()

    resumed = make_trainer(tmp_path / "part", save_strategy="steps", save_steps=3, max_steps=6)
    resumed.train(resume_from_checkpoint=True)
    assert resumed.state.global_step == 6
    for k, v in resumed.student.state_dict().items():
        assert torch.allclose(v, final[k], atol=1e-4), k
    for k, v in resumed.projections.state_dict().items():
        assert torch.allclose(v, full.projections.state_dict()[k], atol=1e-4), k


def test_interrupt_saves_checkpoint_and_stops(tmp_path):
    trainer = make_trainer(tmp_path, save_on_interrupt=True, max_steps=20)
    before = signal.getsignal(signal.SIGINT)  # default_int_handler, or SIG_IGN when tests run in the background

    class SendSigint(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == 2:
                os.kill(os.getpid(), signal.SIGINT)

    trainer.add_callback(SendSigint())
    trainer.train()
    assert trainer.interrupted
    assert trainer.state.global_step == 3  # the step in flight finished, then training stopped
    assert (tmp_path / "checkpoint-3" / "model.safetensors").is_file()
    # The handler was removed: whatever Ctrl-C did before training is back.
    assert signal.getsignal(signal.SIGINT) == before


def test_trainer_rejects_vocabulary_mismatch(tmp_path):
    with pytest.raises(BertliteError, match="vocabulary"):
        make_trainer(tmp_path, student=tiny_model(vocab_size=99))


def test_trainer_rejects_plain_training_arguments(tmp_path):
    from transformers import TrainingArguments

    with pytest.raises(BertliteError, match="DistillationConfig"):
        DistillationTrainer(model=tiny_model(), teacher_model=tiny_model(), args=TrainingArguments(output_dir=str(tmp_path)))


@pytest.mark.parametrize("unlabelled", ["no label column", "labels -100"])
def test_unlabelled_batches_use_soft_targets_only(tmp_path, unlabelled):
    data = tiny_dataset()
    data = data.remove_columns(["labels"]) if unlabelled == "no label column" else data.map(lambda e: {"labels": -100})
    trainer = make_trainer(tmp_path, dataset=data, max_steps=2)
    trainer.train()
    logged = trainer.state.log_history[0]
    assert "loss_logits" in logged and "loss_hard" not in logged
    # The logged total is the weighted sum of the logged components: the gold labels added nothing.
    weights = {"logits": trainer.args.logit_weight, "embeddings": trainer.args.embedding_weight,
               "hidden": trainer.args.hidden_weight, "attention": trainer.args.attention_weight}
    parts = sum(logged[f"loss_{name}"] * weight for name, weight in weights.items())
    assert logged["loss"] == pytest.approx(parts, rel=1e-3)


def test_quantization_aware_distillation_trains_fake_quantized_student_and_saves_plain_weights(tmp_path):
    from bertlite.quantization import FakeQuantLinear, quantize_model

    trainer = make_trainer(tmp_path, quantization_aware=True, max_steps=3)
    fake = [n for n, m in trainer.student.named_modules() if isinstance(m, FakeQuantLinear)]
    encoder_linears = [n for n, m in trainer.student.named_modules() if isinstance(m, torch.nn.Linear) and ".encoder." in n]
    assert set(encoder_linears) <= set(fake) and "classifier" not in fake  # the task head stays fp32
    before = trainer.student.bert.encoder.layer[0].attention.self.query.weight.detach().clone()
    trainer.train()
    assert not torch.equal(before, trainer.student.bert.encoder.layer[0].attention.self.query.weight)
    trainer.save_model(str(tmp_path / "student"))
    from transformers import AutoModelForSequenceClassification

    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "student").eval()
    ids = torch.randint(6, 100, (2, 9))
    # The QAT forward is the int8 model's forward: converting the reloaded plain weights reproduces it.
    with torch.no_grad():
        qat_logits = trainer.student.eval()(input_ids=ids).logits
        int8_logits = quantize_model(reloaded)(input_ids=ids).logits
    assert torch.allclose(qat_logits, int8_logits, atol=1e-4)


def test_cli_default_batches_group_lengths_and_pad_less(tmp_path):
    """`bertlite distill` batches sentences of similar length (what keeps the default run within its time): every
    example still comes once per epoch, with far fewer padded positions than random batches."""
    from bertlite.cli.distill import DistillTrainingArguments

    dataset = tiny_dataset(n=64, seq_len=40)
    teacher = tiny_model(seed=0)

    def epoch_tokens(**strategy):
        args = DistillTrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none", eval_strategy="no",
                                        save_strategy="no", per_device_train_batch_size=8, save_on_interrupt=False, **strategy)
        trainer = DistillationTrainer(model=build_student(teacher, num_layers=2), teacher_model=teacher, args=args,
                                      train_dataset=dataset, data_collator=pad_collate)
        batches = list(trainer.get_train_dataloader())
        return sum(b["input_ids"].numel() for b in batches), sum(int(b["attention_mask"].sum()) for b in batches), args

    padded, real, args = epoch_tokens()
    assert args.train_sampling_strategy == "group_by_length"
    padded_random, real_random, _ = epoch_tokens(train_sampling_strategy="random")
    assert real == real_random == sum(len(x) for x in dataset["input_ids"])
    assert padded < 0.9 * padded_random


def test_gradient_accumulation_gives_the_update_of_one_big_batch(tmp_path):
    """compute_loss returns a per-batch mean, so Trainer must divide it by the accumulation steps (the student's
    forward takes **kwargs, which alone would make Trainer skip that): 2 x 4 examples == 1 x 8 with plain SGD."""
    def trained(**config):
        teacher = tiny_model(seed=0, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
        # Batch means only (soft logits, labels): per-token means over uneven lengths do not split into halves.
        trainer = make_trainer(tmp_path / str(len(config)), teacher=teacher, max_steps=1, optim="sgd", learning_rate=0.5,
                               embedding_weight=0.0, hidden_weight=0.0, attention_weight=0.0, **config)
        trainer.train()
        return trainer.student.state_dict()

    big = trained(per_device_train_batch_size=8)
    accumulated = trained(per_device_train_batch_size=4, gradient_accumulation_steps=2)
    for name, value in big.items():
        torch.testing.assert_close(accumulated[name], value, atol=1e-5, rtol=1e-4, msg=name)


def test_layer_loss_sum_is_the_mean_times_the_mapped_layers(tmp_path):
    teacher = tiny_model(seed=0)
    batch = pad_collate([tiny_dataset()[i] for i in range(4)])
    losses = {}
    for reduction in ("mean", "sum"):
        student = build_student(teacher, num_layers=2, hidden_size=16, num_attention_heads=2, intermediate_size=32, seed=1)
        torch.manual_seed(0)  # the same projections for both reductions
        trainer = make_trainer(tmp_path / reduction, student=student, teacher=teacher, logit_weight=0.0, hard_label_weight=0.0,
                               embedding_weight=0.0, attention_weight=0.0, layer_loss_reduction=reduction)
        trainer.model.train()  # the tiny config has no dropout, so both passes see the same student outputs
        losses[reduction] = trainer.compute_loss(trainer.model, batch).item()
    assert len(trainer.layer_pairs) == 2 and losses["mean"] > 0
    assert losses["sum"] == pytest.approx(2 * losses["mean"], rel=1e-5)


def test_relation_loss_zero_for_the_teacher_itself_and_trained_under_sdpa(tmp_path):
    teacher = tiny_model(seed=0)
    batch = pad_collate([tiny_dataset()[i] for i in range(4)])
    same = make_trainer(tmp_path / "same", student=copy.deepcopy(teacher), teacher=teacher, logit_weight=0.0,
                        hard_label_weight=0.0, embedding_weight=0.0, hidden_weight=0.0, attention_weight=0.0,
                        relation_weight=1.0, layer_map="first")
    same.model.train()
    assert same.compute_loss(same.model, batch).item() == pytest.approx(0.0, abs=1e-6)
    # A narrower student with other head counts (16 wide, 2 heads; the teacher 32 wide): relation heads are the
    # teacher's by default, the attention stays SDPA, and the relation loss alone moves the student's last layer.
    student = build_student(teacher, num_layers=2, hidden_size=16, num_attention_heads=2, intermediate_size=32, seed=1)
    trainer = make_trainer(tmp_path / "narrow", student=student, teacher=teacher, logit_weight=0.0, hard_label_weight=0.0,
                           embedding_weight=0.0, hidden_weight=0.0, attention_weight=0.0, relation_weight=1.0)
    assert trainer.relation_heads == teacher.config.num_attention_heads
    assert trainer.student.config._attn_implementation != "eager" and len(trainer.projections) == 0
    last = trainer.student.bert.encoder.layer[-1].attention.self.query.weight.clone()
    trainer.train()
    assert trainer.state.log_history[0]["loss_relation"] > 0
    assert not torch.equal(trainer.student.bert.encoder.layer[-1].attention.self.query.weight, last)
    assert {"relation_weight": 1.0, "relation_heads": 0}.items() <= trainer.compression_record().steps[0].params.items()


def test_relation_heads_chosen_to_divide_both_widths_or_refused_in_one_line(tmp_path):
    # A student 18 wide (3 heads of 6, as after head pruning) and the teacher 32 wide with 4 heads: the teacher's
    # count does not divide 18, so the largest smaller count dividing both (2) is used; a count set by hand is checked.
    teacher = tiny_model(seed=0)
    odd = build_student(teacher, num_layers=2, hidden_size=18, num_attention_heads=3, intermediate_size=32, seed=1)
    trainer = make_trainer(tmp_path / "auto", student=odd, teacher=teacher, relation_weight=1.0)
    assert trainer.relation_heads == 2
    trainer.model.train()
    assert trainer.compute_loss(trainer.model, pad_collate([tiny_dataset()[i] for i in range(4)])).item() > 0
    with pytest.raises(BertliteError, match="relation_heads 3 does not divide the student's attention width 16"):
        make_trainer(tmp_path / "heads", relation_weight=1.0, relation_heads=3)


def test_relation_loss_rejects_a_negative_weight_and_reentrant_checkpoints(tmp_path):
    with pytest.raises(BertliteError, match="relation_weight must be >= 0"):
        DistillationConfig(output_dir="x", relation_weight=-1)
    # What the hooks see inside a reentrant checkpoint carries no gradient: refused in one line, not a silent no-op.
    trainer = make_trainer(tmp_path / "ckpt", relation_weight=1.0, activation_checkpointing=True,
                           activation_checkpointing_kwargs={"use_reentrant": True})
    with pytest.raises(BertliteError, match="non-reentrant"):
        trainer.train()
    trainer = make_trainer(tmp_path / "ckpt2", relation_weight=1.0, activation_checkpointing=True,
                           activation_checkpointing_kwargs={"use_reentrant": False}, max_steps=2)
    trainer.train()
    assert trainer.state.log_history[0]["loss_relation"] > 0
