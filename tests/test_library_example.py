"""The README's "As a library" example, run as written on a tiny teacher, gives a folder every bertlite command
and loader accepts: load_compressed, `bertlite prune` (structured, local CSV task), `bertlite quantize` and
`bertlite push` (loopback Hub server); the pushed card names the teacher and the losses."""

import json
import os
import re
import sys

import pytest
import torch

from bertlite.cli import main

from conftest import save_tiny_classifier

sys.path.insert(0, os.path.dirname(__file__))
from hub_server import HubServer  # noqa: E402

ROOT = os.path.join(os.path.dirname(__file__), "..")
TOKEN = "hf_alice_secret_token_0123456789"
WORDS = ["a gripping film", "dull and long", "beautifully acted", "a waste of time", "warm and funny", "flat, lifeless"]


def readme_library_example() -> str:
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    return text.split("## As a library", 1)[1].split("```python", 1)[1].split("```", 1)[0]


def write_csv(path, n=24):
    rows = ["text,label"] + [f'"{WORDS[i % len(WORDS)]} {i}",{i % 2}' for i in range(n)]
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture
def trained_student(tmp_path, monkeypatch):
    """Runs the README block in a folder holding `my-finetuned-bert` (a tiny 6-layer classifier), with `train` and
    `tokenizer` defined as the example assumes. Returns the trainer and the student folder."""
    from bertlite.loading import load_tokenizer

    save_tiny_classifier(tmp_path / "my-finetuned-bert", num_hidden_layers=6)
    tokenizer = load_tokenizer(str(tmp_path / "my-finetuned-bert"))
    texts = [WORDS[i % len(WORDS)] + f" {i}" for i in range(16)]
    train = [{**tokenizer(t), "labels": i % 2} for i, t in enumerate(texts)]
    monkeypatch.chdir(tmp_path)
    namespace = {"train": train, "tokenizer": tokenizer}
    exec(compile(readme_library_example(), "README.md", "exec"), namespace)  # noqa: S102 - our own README
    return namespace["trainer"], tmp_path / "student"


def test_readme_library_example_gives_a_folder_every_command_accepts(trained_student, tmp_path, monkeypatch, capsys):
    from huggingface_hub import constants

    from bertlite import load_compressed

    trainer, folder = trained_student
    # Trainer's checkpoints aside (Trainer's default save strategy), a plain student folder: no training_args.bin.
    assert sorted(n for n in os.listdir(folder) if not n.startswith("checkpoint-")) == [
        "compression_config.json", "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]
    record = json.loads((folder / "compression_config.json").read_text())
    step = record["steps"][0]
    assert step["method"] == "distillation" and step["params"]["teacher"] == "my-finetuned-bert"  # a name, not a path
    assert step["params"]["student_shape"]["layers"] == 4 and step["params"]["learning_rate"] == 2e-4
    assert str(tmp_path) not in (folder / "compression_config.json").read_text()

    model = load_compressed(str(folder))
    assert model.compression_config.methods == ["distillation"]
    ids = torch.tensor([[101, 2023, 2003, 102]])
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(input_ids=ids).logits, trainer.student.eval()(input_ids=ids).logits,
                                   atol=1e-5, rtol=0)

    task = write_csv(tmp_path / "reviews.csv")
    assert main(["prune", "--model", str(folder), "--task", str(task), "--heads", "0.5", "--criterion", "magnitude",
                 "--batch_size", "8", "--output_dir", str(tmp_path / "pruned")]) == 0
    pruned = json.loads((tmp_path / "pruned" / "compression_config.json").read_text())
    assert [s["method"] for s in pruned["steps"]] == ["distillation", "structured_pruning"]

    assert main(["quantize", "--model", str(folder), "--output-dir", str(tmp_path / "int8")]) == 0
    quantized = json.loads((tmp_path / "int8" / "compression_config.json").read_text())
    assert [s["method"] for s in quantized["steps"]] == ["distillation", "quantization"]

    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with HubServer(tokens={TOKEN: {"name": "alice"}}) as hub:
        monkeypatch.setattr(constants, "ENDPOINT", hub.url)
        monkeypatch.setenv("HF_TOKEN", TOKEN)
        assert main(["push", "--folder", str(folder), "--repo-id", "alice/readme-student"]) == 0
        files = hub.files("alice/readme-student")
    assert {"model.safetensors", "compression_config.json", "README.md"} <= set(files)
    assert not any(name.startswith("checkpoint-") or name.endswith(".bin") for name in files)
    card = files["README.md"].decode()
    assert "my-finetuned-bert" in card
    for loss in ("temperature", "logit_weight", "hard_label_weight", "hidden_weight"):
        assert re.search(loss, card), loss
    capsys.readouterr()


def test_trainer_push_to_hub_publishes_bertlite_card(trained_student, monkeypatch):
    """`trainer.push_to_hub()` (Trainer's own upload) publishes the student folder and bertlite's card, not Trainer's
    generic one."""
    from huggingface_hub import constants

    from bertlite.hub.card import is_bertlite_card

    trainer, folder = trained_student
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with HubServer(tokens={TOKEN: {"name": "alice"}}) as hub:
        monkeypatch.setattr(constants, "ENDPOINT", hub.url)
        trainer.args.hub_model_id, trainer.args.hub_token = "alice/from-trainer", TOKEN
        trainer.push_to_hub(tags=["sentiment"])
        files = hub.files("alice/from-trainer")
    card = files["README.md"].decode()
    assert is_bertlite_card(card) and "my-finetuned-bert" in card and "hidden_weight" in card and "sentiment" in card
    assert {"model.safetensors", "config.json", "compression_config.json"} <= set(files)
    assert not any(name.endswith(".bin") for name in files)
    # What was pushed is the plain student, not the container (no "student."/"projections." keys).
    assert files["model.safetensors"] == (folder / "model.safetensors").read_bytes()
