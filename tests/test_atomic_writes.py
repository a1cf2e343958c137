"""Every command writes its result atomically (issue 16, item 4): a crash while writing leaves the old complete folder,
and a crash while the new files are moved into place leaves one that every loader refuses with a clear message.
Crashes are simulated by making the library writer (safetensors' save_file) or os.replace fail mid-write."""

import os

import pytest
import safetensors.torch
import torch
import transformers.modeling_utils

from bertlite.errors import BertliteError
from bertlite.hub import load_compressed
from bertlite.jobs import save_model_folder
from bertlite.loading import INCOMPLETE_FILE, load_model
from bertlite.quantization import load_quantized, quantize_folder
from conftest import save_tiny_classifier


class Crash(Exception):
    pass


def _crash(*args, **kwargs):
    raise Crash("simulated crash while writing the weights")


def _files(folder) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _logits(model):
    with torch.no_grad():
        return model(input_ids=torch.tensor([[101, 2023, 2003, 1037, 3231, 102]])).logits


def test_crash_while_writing_a_model_leaves_the_old_folder(tmp_path, monkeypatch):
    folder = save_tiny_classifier(tmp_path / "model", num_hidden_layers=2)
    before, old_logits = _files(folder), _logits(load_model(str(folder)))
    monkeypatch.setattr(transformers.modeling_utils, "safe_save_file", _crash)
    with pytest.raises(Crash):
        save_model_folder(str(folder), load_model(str(save_tiny_classifier(tmp_path / "other", 1, seed=3))))
    assert _files(folder) == before  # no staging folder left, no file replaced
    assert torch.equal(_logits(load_model(str(folder))), old_logits)


def test_crash_while_moving_files_into_place_is_refused_by_every_loader(tmp_path, monkeypatch):
    folder = str(save_tiny_classifier(tmp_path / "model"))
    new = load_model(str(save_tiny_classifier(tmp_path / "other", 1, seed=3)))
    real_replace, moved = os.replace, []

    def replace_then_crash(src, dst):  # the second file moved is the last one: the process dies there
        if len(moved) == 1:
            raise Crash("simulated crash between two renames")
        moved.append(dst)
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace_then_crash)
    with pytest.raises(Crash):
        save_model_folder(folder, new)
    monkeypatch.setattr(os, "replace", real_replace)
    assert os.path.exists(os.path.join(folder, INCOMPLETE_FILE))
    for load in (load_model, load_compressed, load_quantized):
        with pytest.raises(BertliteError, match="interrupted"):
            load(folder)
    save_model_folder(folder, new)  # running the command again completes the folder
    assert not os.path.exists(os.path.join(folder, INCOMPLETE_FILE))
    assert load_model(folder).config.num_hidden_layers == 1


def test_quantize_interrupted_while_rewriting_an_int8_folder_keeps_the_old_one(tmp_path, monkeypatch):
    """Issue 16: a killed `bertlite quantize` over an existing int8 folder left one that loaded as another model."""
    three = save_tiny_classifier(tmp_path / "three", num_hidden_layers=3)
    one = save_tiny_classifier(tmp_path / "one", num_hidden_layers=1, seed=4)
    out = tmp_path / "int8"
    quantize_folder(str(three), str(out))
    before = _files(out)
    old_logits = _logits(load_quantized(str(out)))
    monkeypatch.setattr(safetensors.torch, "save_file", _crash)
    with pytest.raises(Crash):
        quantize_folder(str(one), str(out))
    monkeypatch.undo()
    assert _files(out) == before
    model = load_quantized(str(out))
    assert model.config.num_hidden_layers == 3 and torch.equal(_logits(model), old_logits)
    # Completed, the rewrite replaces the int8 model whole.
    quantize_folder(str(one), str(out))
    assert load_quantized(str(out)).config.num_hidden_layers == 1


def test_prune_writes_atomically_and_removes_the_old_models_files(tmp_path, monkeypatch):
    """Both prune pipelines write through save_model_folder; a pruned fp32 model written over an int8 folder does not
    keep the int8 marker beside it (it would load as the old int8 model)."""
    from bertlite.cli import main

    model = save_tiny_classifier(tmp_path / "model", num_hidden_layers=2)
    out = tmp_path / "pruned"
    quantize_folder(str(model), str(out))
    (out / "notes.txt").write_text("mine\n")
    before = _files(out)
    argv = ["prune", "--model", str(model), "--method", "magnitude", "--sparsity", "0.5", "--output_dir", str(out),
            "--no_evaluate"]
    monkeypatch.setattr(transformers.modeling_utils, "safe_save_file", _crash)
    with pytest.raises(Crash):
        main(argv)
    monkeypatch.undo()
    assert _files(out) == before
    assert main(argv) == 0
    assert not (out / "quantization_config.json").exists() and not (out / "int8_model.safetensors").exists()
    assert (out / "notes.txt").read_text() == "mine\n"
    pruned = load_model(str(out))
    assert pruned.bert.encoder.layer[0].attention.self.query.weight.eq(0).float().mean() > 0.3

    structured = tmp_path / "structured"
    monkeypatch.setattr(transformers.modeling_utils, "safe_save_file", _crash)
    with pytest.raises(Crash):
        main(["prune", "--model", str(model), "--heads", "0.5", "--criterion", "magnitude", "--output_dir", str(structured),
              "--no_evaluate", "--max_train_examples", "8", "--max_eval_examples", "8"])
    assert not structured.exists() or not any(structured.iterdir())  # nothing half-written
