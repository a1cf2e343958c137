"""The one job runner (bertlite.jobs): output folder checks, resume from the newest complete checkpoint, atomic
result folders."""

import os

import pytest
import torch
from helpers_trainer import make_trainer

from bertlite.errors import BertliteError
from bertlite.jobs import last_complete_checkpoint, prepare_output_dir, run_training, save_model_folder
from bertlite.record import CONFIG_NAME, METRICS_FILE, CompressionConfig
from conftest import tiny_model


def test_output_dir_that_is_a_file_is_refused_before_any_work(tmp_path):
    file = tmp_path / "out"
    file.write_text("not a folder")
    with pytest.raises(BertliteError, match="is a file"):
        prepare_output_dir(str(file))
    with pytest.raises(BertliteError, match="Cannot write"):
        prepare_output_dir(str(file / "below"))  # a folder cannot be made under a file
    assert prepare_output_dir(str(tmp_path / "new" / "deeper")) and (tmp_path / "new" / "deeper").is_dir()


def test_resume_skips_a_half_written_checkpoint(tmp_path):
    """A crash while checkpoint-4 was written (no trainer_state.json) must not block resuming from checkpoint-2."""
    trainer = make_trainer(tmp_path, max_steps=4, save_strategy="steps", save_steps=2, save_total_limit=None)
    run_training(trainer, log=lambda *_: None)
    (tmp_path / "checkpoint-4" / "trainer_state.json").unlink()
    (tmp_path / "checkpoint-4" / "optimizer.pt").write_bytes(b"half")
    logged = []
    assert last_complete_checkpoint(str(tmp_path), logged.append) == str(tmp_path / "checkpoint-2")
    assert (tmp_path / "incomplete-checkpoint-4").is_dir() and not (tmp_path / "checkpoint-4").exists()
    assert "not completely written" in logged[0]
    resumed = make_trainer(tmp_path, max_steps=4, save_strategy="steps", save_steps=2, save_total_limit=None)
    run_training(resumed, log=logged.append)
    assert any("Resuming the training from" in line and "checkpoint-2" in line for line in logged)
    assert resumed.state.global_step == 4


def test_fresh_starts_over(tmp_path):
    run_training(make_trainer(tmp_path, max_steps=2, save_strategy="steps", save_steps=2), log=lambda *_: None)
    logged = []
    run_training(make_trainer(tmp_path, max_steps=2, save_strategy="steps", save_steps=2), fresh=True, log=logged.append)
    assert not any("Resuming" in line for line in logged)


def test_result_folder_is_written_whole_or_not_at_all(tmp_path):
    model = tiny_model()
    record = CompressionConfig(base_model="tiny")
    record.add_step("distillation", temperature=2.0)
    out = tmp_path / "out"
    save_model_folder(str(out), model, record=record, metrics=lambda staged: {"size_mb": os.path.getsize(os.path.join(staged, "model.safetensors")) / 1e6})
    assert {"model.safetensors", "config.json", CONFIG_NAME, METRICS_FILE} <= set(os.listdir(out))
    assert CompressionConfig.from_pretrained(str(out)).metrics["size_mb"] > 0
    before = {name: (out / name).read_bytes() for name in os.listdir(out)}

    class Broken(torch.nn.Module):
        def save_pretrained(self, folder):
            (open(os.path.join(folder, "model.safetensors"), "wb")).write(b"partial")
            raise OSError("disk full")

    with pytest.raises(OSError):
        save_model_folder(str(out), Broken(), record=CompressionConfig(base_model="other"))
    assert {name: (out / name).read_bytes() for name in os.listdir(out)} == before  # untouched, no staging left
