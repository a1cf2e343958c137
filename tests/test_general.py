"""General distillation: tiny encoders with the MiniLM vocabulary, on the packaged movie reviews and local files."""

import copy
import itertools
import json
import shutil

import pytest
import torch
from transformers import AutoModel, AutoModelForSequenceClassification, BertModel

from bertlite.distillation.config import DistillationConfig
from bertlite.cli.distill import DistillArguments
from bertlite.errors import BertliteError
from bertlite.distillation.corpus import chunk_texts, text_stream, unlabeled_corpus
from bertlite.cli.distill import GeneralArguments
from bertlite.distillation.general import build_general_student, run_general_distillation
from bertlite.distillation.losses import hidden_state_loss
from bertlite.distillation.trainer import DistillationTrainer

from conftest import tiny_config

HELD_OUT = ["a quietly devastating film about grief and the people who carry it .",
            "the jokes land , the pacing never does .",
            "an overlong , tedious exercise in style over substance ."]


@pytest.fixture(scope="module")
def tokenizer():
    from bertlite.loading import load_tokenizer

    return load_tokenizer("minilm")


@pytest.fixture
def teacher_dir(tmp_path, tokenizer):
    """A tiny pre-trained-looking encoder (random, 4 layers) that reads the MiniLM vocabulary, saved like a Hub model."""
    torch.manual_seed(0)
    # A larger init spread than BERT's 0.02 makes the layers differ clearly, so there is something to imitate.
    teacher = BertModel(tiny_config(vocab_size=len(tokenizer), max_position_embeddings=64, initializer_range=0.2),
                        add_pooling_layer=False)
    path = tmp_path / "teacher"
    teacher.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def config(out, **overrides):
    values = dict(output_dir=str(out), max_steps=30, per_device_train_batch_size=16, learning_rate=3e-3, logging_steps=5,
                  report_to="none", use_cpu=True, seed=0, disable_tqdm=True, save_strategy="no", save_on_interrupt=False,
                  embedding_weight=1.0, hidden_weight=1.0, attention_weight=1.0)
    values.update(overrides)
    return DistillationConfig(**values)


def held_out_hidden_loss(student, teacher, tokenizer):
    """Mean hidden-state MSE over the uniformly mapped layers, on texts the run never saw."""
    batch = tokenizer(HELD_OUT, padding=True, return_tensors="pt")
    with torch.no_grad():
        s = student.eval()(**batch, output_hidden_states=True).hidden_states
        t = teacher.eval()(**batch, output_hidden_states=True).hidden_states
    ratio = (len(t) - 1) // (len(s) - 1)
    return torch.stack([hidden_state_loss(s[i], t[i * ratio], batch["attention_mask"]) for i in range(1, len(s))]).mean().item()


def test_general_distillation_learns_without_labels_and_saves_a_normal_model(tmp_path, teacher_dir, tokenizer):
    teacher = AutoModel.from_pretrained(teacher_dir)
    # Same width (hidden states compare directly), other FFN size: a randomly initialised student.
    args = DistillArguments(teacher=str(teacher_dir), student_layers=2, student_intermediate_size=48, max_length=32)
    initial, _ = build_general_student(args, teacher)
    out = tmp_path / "general"
    logged = []
    metrics = run_general_distillation(args, GeneralArguments(general=True, corpus="rotten_tomatoes", corpus_max_texts=400),
                                       config(out, logit_weight=1.0, hard_label_weight=0.5), log=logged.append)
    assert any("logit and hard-label losses are off" in line for line in logged)
    assert metrics["general_distillation"]["steps"] == 30 and metrics["student"]["layers"] == 2
    assert metrics["general_distillation"]["last_logged_loss"] < 0.8 * metrics["general_distillation"]["first_logged_loss"]

    # A plain BertModel checkpoint in safetensors, with the tokenizer and the compression record.
    assert (out / "model.safetensors").is_file() and not list(out.glob("*.bin"))
    assert json.loads((out / "config.json").read_text())["architectures"] == ["BertModel"]
    record = json.loads((out / "compression_config.json").read_text())
    assert [s["method"] for s in record["steps"]] == ["general_distillation"]
    student = AutoModel.from_pretrained(out)
    after, before = held_out_hidden_loss(student, teacher, tokenizer), held_out_hidden_loss(initial, teacher, tokenizer)
    assert after < 0.7 * before

    # Task distillation starts from it: a sequence classifier with the same encoder and a fresh head.
    classifier = AutoModelForSequenceClassification.from_pretrained(out, num_labels=2).eval()
    batch = tokenizer(HELD_OUT, padding=True, return_tensors="pt")
    with torch.no_grad():
        assert torch.allclose(classifier.bert(**batch).last_hidden_state, student.eval()(**batch).last_hidden_state, atol=1e-6)
        assert classifier(**batch).logits.shape == (3, 2)


def held_out_relation_loss(student, teacher, tokenizer):
    """MiniLMv2's relation loss (queries, keys, values) of the last layers on texts the run never saw."""
    from bertlite.distillation.losses import relation_loss
    from bertlite.distillation.relations import PROJECTIONS, capture_projections, self_attention_module

    batch = tokenizer(HELD_OUT, padding=True, return_tensors="pt")
    states = []
    for model in (student.eval(), teacher.eval()):
        with torch.no_grad(), capture_projections(self_attention_module(model, model.config.num_hidden_layers)) as qkv:
            model(**batch)
        states.append(qkv)
    heads = teacher.config.num_attention_heads
    return sum(relation_loss(states[0][p], states[1][p], batch["attention_mask"], heads).item() for p in PROJECTIONS)


def test_general_distillation_by_relations_alone_into_a_narrower_student(tmp_path, teacher_dir, tokenizer):
    # MiniLMv2: only the last layer's query/key/value relations, a student half as wide with other head counts, no
    # projections, no eager attention.
    teacher = AutoModel.from_pretrained(teacher_dir)
    args = DistillArguments(teacher=str(teacher_dir), student_layers=2, student_hidden_size=16, student_heads=2,
                            student_intermediate_size=32, max_length=32)
    initial, _ = build_general_student(args, teacher)
    out = tmp_path / "relations"
    run_general_distillation(args, GeneralArguments(general=True, corpus="rotten_tomatoes", corpus_max_texts=400),
                             config(out, embedding_weight=0.0, hidden_weight=0.0, attention_weight=0.0, relation_weight=1.0),
                             log=lambda *_: None)
    student = AutoModel.from_pretrained(out)
    assert student.config.hidden_size == 16
    after, before = held_out_relation_loss(student, teacher, tokenizer), held_out_relation_loss(initial, teacher, tokenizer)
    assert after < 0.7 * before
    [step] = json.loads((out / "compression_config.json").read_text())["steps"]
    assert step["params"]["relation_weight"] == 1.0 and step["params"]["hidden_weight"] == 0.0


def test_general_distillation_resumes_from_its_checkpoint(tmp_path, teacher_dir):
    args = DistillArguments(teacher=str(teacher_dir), student_layers=2, max_length=32)
    general = GeneralArguments(general=True, corpus="rotten_tomatoes", corpus_max_texts=100)
    out = tmp_path / "g"
    run_general_distillation(args, general, config(out, max_steps=4, save_strategy="steps", save_steps=2), log=lambda *_: None)
    shutil.rmtree(out / "checkpoints" / "checkpoint-4")  # as if killed after checkpoint-2
    logged = []
    metrics = run_general_distillation(args, general, config(out, max_steps=4, save_strategy="steps", save_steps=2), log=logged.append)
    assert any("Resuming general distillation from" in line and "checkpoint-2" in line for line in logged)
    assert metrics["general_distillation"]["steps"] == 4
    # Another step count is another recipe: it does not resume (bertlite.jobs re-run rules, tests/test_rerun_rules.py).
    with pytest.raises(BertliteError, match="max_steps 4 -> 6"):
        run_general_distillation(args, general, config(out, max_steps=6, save_strategy="steps", save_steps=2), log=lambda *_: None)


def test_general_distillation_needs_max_steps_and_an_intermediate_loss(tmp_path, teacher_dir):
    args = DistillArguments(teacher=str(teacher_dir), student_layers=2)
    with pytest.raises(BertliteError, match="--max_steps"):
        run_general_distillation(args, GeneralArguments(general=True), config(tmp_path, max_steps=-1), log=lambda *_: None)
    with pytest.raises(BertliteError, match="intermediate loss"):
        run_general_distillation(args, GeneralArguments(general=True),
                                 config(tmp_path, embedding_weight=0.0, hidden_weight=0.0, attention_weight=0.0), log=lambda *_: None)


def test_trainer_rejects_logit_losses_for_a_base_encoder(tmp_path):
    torch.manual_seed(0)
    teacher = BertModel(tiny_config())
    with pytest.raises(BertliteError, match="base encoder"):
        DistillationTrainer(model=copy.deepcopy(teacher), teacher_model=teacher, args=config(tmp_path, logit_weight=1.0))


def test_corpus_chunks_long_texts_and_reads_local_files(tmp_path, tokenizer):
    long_text = " ".join(["the film is long and slow but the ending is worth the wait"] * 20)
    ids = tokenizer(long_text, add_special_tokens=False)["input_ids"]
    out = chunk_texts({"text": [long_text, "", "short one"]}, tokenizer, max_length=32)
    assert all(len(seq) <= 32 and seq[0] == tokenizer.cls_token_id and seq[-1] == tokenizer.sep_token_id for seq in out["input_ids"])
    pieces = [seq[1:-1] for seq in out["input_ids"]]
    joined = list(itertools.chain.from_iterable(pieces[:-1]))
    assert joined == ids[: len(joined)] and len(ids) - len(joined) < 8 + 30  # only a short tail may be dropped
    assert pieces[-1] == tokenizer("short one", add_special_tokens=False)["input_ids"]

    csv = tmp_path / "corpus.csv"
    csv.write_text("id,body\n1,first review text\n2,second review text\n")
    assert [row["text"] for row in text_stream(str(csv), text_column="body")] == ["first review text", "second review text"]
    with pytest.raises(BertliteError, match="no column 'text'"):
        list(text_stream(str(csv)))
    with pytest.raises(BertliteError, match="No corpus file"):
        text_stream(str(tmp_path / "missing*.txt"))
    corpus = unlabeled_corpus(tokenizer, str(csv), text_column="body", max_length=16, shuffle_buffer=0)
    assert [len(row["input_ids"]) for row in corpus] == [5, 5]


def test_packaged_corpus_holds_only_training_texts():
    from bertlite.data import load_task

    test_texts = set(load_task("rotten_tomatoes")[0]["test"]["text"])
    seen = [row["text"] for row in itertools.islice(iter(text_stream("rotten_tomatoes")), 2000)]
    assert len(seen) == 2000 and not test_texts & set(seen)


def test_hub_corpus_offline_is_a_clear_error():
    with pytest.raises(BertliteError, match="cannot be reached|offline"):
        text_stream("someone/some-corpus")


def test_distill_general_command(tmp_path, teacher_dir, capsys):
    from bertlite.cli import main

    out = tmp_path / "cli"
    assert main(["distill", "--general", "--output_dir", str(out), "--teacher", str(teacher_dir)]) == 1
    assert "--max_steps" in capsys.readouterr().err and not out.exists()  # refused before any work
    assert main(["distill", "--general", "--teacher", str(teacher_dir), "--student_layers", "2", "--max_steps", "2",
                 "--corpus", "rotten_tomatoes", "--corpus_max_texts", "40", "--max_length", "32", "--output_dir", str(out),
                 "--per_device_train_batch_size", "4", "--disable_tqdm", "true", "--use_cpu", "true"]) == 0
    assert f"--student {out}" in capsys.readouterr().out
    assert AutoModel.from_pretrained(out).config.num_hidden_layers == 2
    assert json.loads((out / "metrics.json").read_text())["general_distillation"]["steps"] == 2


def test_general_distillation_from_the_teacher_fine_tuned_on_a_task(tmp_path, teacher_dir, capsys):
    """--teacher_task: the teacher is fine-tuned first, and the student starts from (and imitates) its encoder."""
    from bertlite.cli import main

    out = tmp_path / "general"
    command = ["distill", "--general", "--teacher", str(teacher_dir), "--teacher_task", "rotten_tomatoes",
               "--max_train_examples", "64", "--teacher_epochs", "1", "--teacher_learning_rate", "0.01", "--student_layers", "2",
               "--max_steps", "2", "--learning_rate", "0", "--corpus", "rotten_tomatoes", "--corpus_max_texts", "40",
               "--max_length", "32", "--per_device_train_batch_size", "4", "--output_dir", str(out),
               "--disable_tqdm", "true", "--use_cpu", "true"]
    assert main([c for c in command if c != "--general"]) == 1  # task distillation takes --task, not --teacher_task
    assert "add --general" in capsys.readouterr().err and not out.exists()
    assert main(command) == 0
    assert f"bertlite distill --teacher {out / 'teacher'} --student {out}" in capsys.readouterr().out

    fine_tuned = AutoModelForSequenceClassification.from_pretrained(out / "teacher")
    assert fine_tuned.config.num_labels == 2
    embedding = "embeddings.LayerNorm.weight"  # dense: every step of the fine-tune moves it
    original = AutoModel.from_pretrained(teacher_dir).state_dict()[embedding]
    tuned = fine_tuned.bert.state_dict()[embedding]
    assert not torch.allclose(tuned, original)  # the fine-tune moved the encoder ...
    assert torch.equal(AutoModel.from_pretrained(out).state_dict()[embedding], tuned)  # ... and the student (lr 0) is it
    step = json.loads((out / "compression_config.json").read_text())["steps"][-1]
    assert step["params"]["teacher"].endswith("fine-tuned on rotten_tomatoes")
    from bertlite.hub import render_model_card

    card = render_model_card(str(out), "alice/general-2L")  # what `bertlite push` would upload for it
    assert "General distillation (intermediate layers, unlabeled text)" in card and "TinyBERT" in card
    assert "fine-tuned on rotten_tomatoes" in card and "without a task head" in card

    assert main(command + ["--fresh"]) == 0  # a second run reuses the finished fine-tune
    assert "Reusing the fine-tuned teacher" in capsys.readouterr().out


@pytest.mark.slow
def test_tinybert_recipe_end_to_end_on_packaged_minilm(tmp_path, capsys):
    """The three commands of the docs, shortened: augment, general distillation, task distillation from both."""
    from bertlite.cli import main

    aug, general, task = tmp_path / "aug", tmp_path / "general", tmp_path / "task"
    assert main(["augment", "--output_dir", str(aug), "--max_examples", "32", "--num_variants", "2"]) == 0
    assert main(["distill", "--general", "--teacher_task", "rotten_tomatoes", "--max_train_examples", "32", "--teacher_epochs", "1",
                 "--student_layers", "2", "--max_steps", "3", "--per_device_train_batch_size", "4",
                 "--max_length", "32", "--corpus_max_texts", "40", "--attention_weight", "1", "--output_dir", str(general),
                 "--disable_tqdm", "true"]) == 0
    assert main(["distill", "--teacher", str(general / "teacher"), "--student", str(general), "--augmented", str(aug),
                 "--output_dir", str(task), "--max_train_examples", "32", "--max_eval_examples", "32", "--num_train_epochs", "1",
                 "--per_device_train_batch_size", "16", "--max_length", "32", "--no_measure_latency", "--disable_tqdm", "true"]) == 0
    printed = capsys.readouterr().out
    assert "original + " in printed and "already has a 2-label classification head: used as is" in printed
    step = json.loads((task / "compression_config.json").read_text())["steps"][-1]
    assert step["params"]["augmentation"]["num_variants"] == 2 and step["params"]["student_init"] == {"from": str(general), "head_from_teacher": ["pooler", "classifier"]}
    assert AutoModelForSequenceClassification.from_pretrained(task).config.num_hidden_layers == 2


def test_a_student_that_starts_random_is_told_to_distil_generally_first(teacher_dir):
    from bertlite.distillation.job import make_student

    teacher = AutoModelForSequenceClassification.from_pretrained(teacher_dir, num_labels=2)
    logged = []
    narrow = DistillArguments(teacher=str(teacher_dir), student_layers=2, student_hidden_size=16, student_heads=2)
    make_student(narrow, teacher, 0, logged.append)
    assert any("starts from random weights" in line and "--general" in line and "--hidden_weight 0" in line for line in logged)
    logged.clear()
    make_student(DistillArguments(teacher=str(teacher_dir), student_layers=2), teacher, 0, logged.append)  # teacher layers
    assert not logged
