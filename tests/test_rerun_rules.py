"""Re-running a command in a folder it already wrote (issue 16, item 3): the same recipe resumes, another recipe
stops with one line naming what differs and the two ways out, a folder holding another model is never overwritten
without --fresh, and unrelated files are never touched. Task and general distillation and the teacher fine-tune
share the rule (bertlite.jobs.check_job / record_job)."""

import json

import pytest

from bertlite.cli import main, parse_command
from bertlite.errors import BertliteError
from bertlite.jobs import JOB_FILE, check_job, record_job, result_settings
from conftest import save_tiny_classifier

QUICK = ["--student_layers", "1", "--max_train_examples", "16", "--max_eval_examples", "16", "--num_train_epochs", "1",
         "--per_device_train_batch_size", "8", "--max_length", "32", "--no_measure_latency", "--disable_tqdm", "true"]


def _distill(teacher, out, *extra):
    return main(["distill", "--teacher", str(teacher), "--output_dir", str(out), *QUICK, *extra])


def _error_line(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]


def _files(folder) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_result_settings_leave_out_what_does_not_change_the_result():
    _, (args, config, _push, general) = parse_command("distill", ["--output_dir", "a", "--logging_steps", "3"])
    _, (args2, config2, _push2, general2) = parse_command("distill", ["--output_dir", "b", "--per_device_eval_batch_size", "7",
                                                                      "--no_measure_latency", "--fresh"])
    assert result_settings(args, config, general) == result_settings(args2, config2, general2)
    _, (args3, config3, _, general3) = parse_command("distill", ["--temperature", "3"])
    changed = result_settings(args3, config3, general3)
    assert changed["temperature"] == 3.0 and changed != result_settings(args, config, general)
    assert {"student_layers", "teacher", "task", "learning_rate", "num_train_epochs", "seed", "hidden_weight"} <= set(changed)


def test_changed_recipe_in_a_finished_folder_stops_with_one_line(tmp_path, capsys):
    teacher, out = save_tiny_classifier(tmp_path / "teacher"), tmp_path / "out"
    assert _distill(teacher, out) == 0
    capsys.readouterr()
    finished = _files(out)
    assert json.loads((out / JOB_FILE).read_text())["finished"] is True

    assert _distill(teacher, out, "--temperature", "3", "--hidden_weight", "0") == 1
    line = _error_line(capsys)
    assert "temperature 4.0 -> 3.0" in line and "hidden_weight 1.0 -> 0.0" in line
    assert "--fresh" in line and "--output_dir" in line
    assert _distill(teacher, out, "--student_layers", "2") == 1  # was an optimizer ValueError traceback
    assert "student_layers 1 -> 2" in _error_line(capsys)
    assert _files(out) == finished  # nothing resumed, nothing rewritten: the record still says temperature 4
    record = json.loads((out / "compression_config.json").read_text())
    assert record["steps"][0]["params"]["temperature"] == 4.0


@pytest.mark.slow
def test_settings_that_do_not_change_the_result_resume_and_fresh_starts_over(tmp_path, capsys):
    teacher, out = save_tiny_classifier(tmp_path / "teacher"), tmp_path / "out"
    assert _distill(teacher, out) == 0
    assert _distill(teacher, out, "--logging_steps", "1", "--per_device_eval_batch_size", "4") == 0
    assert "Resuming the distillation from" in capsys.readouterr().out
    assert _distill(teacher, out, "--temperature", "3", "--fresh") == 0
    assert "Resuming" not in capsys.readouterr().out
    record = json.loads((out / "compression_config.json").read_text())
    assert record["steps"][0]["params"]["temperature"] == 3.0
    assert json.loads((out / JOB_FILE).read_text())["settings"]["temperature"] == 3.0


def test_a_folder_holding_another_model_is_refused_unless_fresh(tmp_path, capsys):
    teacher = save_tiny_classifier(tmp_path / "teacher")
    out = save_tiny_classifier(tmp_path / "out", num_hidden_layers=3, seed=5)  # someone else's model
    (out / "notes.txt").write_text("my notes\n")
    before = _files(out)
    capsys.readouterr()
    assert _distill(teacher, out) == 1
    line = _error_line(capsys)
    assert "already holds a model" in line and "--fresh" in line
    assert _files(out) == before

    assert _distill(teacher, out, "--fresh") == 0
    assert (out / "notes.txt").read_text() == "my notes\n"  # unrelated files are never touched
    assert json.loads((out / "config.json").read_text())["num_hidden_layers"] == 1


def test_general_distillation_follows_the_same_rule(tmp_path, capsys):
    teacher, out = save_tiny_classifier(tmp_path / "teacher"), tmp_path / "general"
    argv = ["distill", "--general", "--teacher", str(teacher), "--output_dir", str(out), "--student_layers", "1",
            "--max_steps", "1", "--per_device_train_batch_size", "4", "--max_length", "32", "--corpus_max_texts", "16",
            "--disable_tqdm", "true", "--no_measure_latency"]
    assert main(argv) == 0
    capsys.readouterr()
    assert main([*argv, "--attention_weight", "1"]) == 1
    assert "attention_weight 0.0 -> 1.0" in _error_line(capsys)


def _tiny_encoder(folder):
    """A pre-trained-style encoder without a task head: the teacher fine-tune runs."""
    from transformers import BertConfig, BertModel

    from bertlite.loading import load_tokenizer

    tokenizer = load_tokenizer("minilm")
    BertModel(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                         intermediate_size=64, max_position_embeddings=64)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def test_teacher_fine_tune_is_reused_or_refused_by_the_same_rule(tmp_path):
    from bertlite.distillation.teacher import finetuned_teacher

    encoder, folder = _tiny_encoder(tmp_path / "encoder"), str(tmp_path / "teacher")
    settings = dict(epochs=1, batch_size=8, max_length=32, max_train_examples=24, log=lambda *_: None)  # 3 steps
    assert finetuned_teacher(encoder, "rotten_tomatoes", folder, **settings) == folder
    weights = (tmp_path / "teacher" / "model.safetensors").read_bytes()
    logged = []
    assert finetuned_teacher(encoder, "rotten_tomatoes", folder, **{**settings, "log": logged.append}) == folder
    assert any("Reusing the fine-tuned teacher" in line for line in logged)
    with pytest.raises(BertliteError, match=r"learning_rate 0.0001 -> 0.001.*--fresh"):
        finetuned_teacher(encoder, "rotten_tomatoes", folder, learning_rate=1e-3, **settings)
    assert (tmp_path / "teacher" / "model.safetensors").read_bytes() == weights
    finetuned_teacher(encoder, "rotten_tomatoes", folder, learning_rate=1e-3, fresh=True, **settings)
    assert json.loads((tmp_path / "teacher" / JOB_FILE).read_text())["settings"]["learning_rate"] == 1e-3
    assert (tmp_path / "teacher" / "model.safetensors").read_bytes() != weights


def test_check_job_writes_nothing_and_record_job_records(tmp_path):
    out = tmp_path / "new"
    assert check_job(str(out), {"a": 1}) is True and not out.exists()  # a failed start leaves no trace
    record_job(str(out), "a job", {"a": 1})
    assert check_job(str(out), {"a": 1}) is True
    with pytest.raises(BertliteError, match="a 1 -> 2"):
        check_job(str(out), {"a": 2})
    assert check_job(str(out), {"a": 2}, fresh=True) is False  # the caller starts over
