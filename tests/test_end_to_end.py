"""`bertlite distill` on the packaged MiniLM teacher and movie-review data, shortened to fit the test budget."""

import json

import torch
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from bertlite.cli import main
from bertlite.record import CompressionConfig

QUICK = ["--max_train_examples", "96", "--max_eval_examples", "48", "--teacher_epochs", "1", "--num_train_epochs", "1",
         "--per_device_train_batch_size", "16", "--max_length", "64", "--logging_steps", "2", "--disable_tqdm", "true"]


def test_distill_end_to_end_then_rerun_reuses_teacher(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["distill", "--output_dir", str(out), "--student_layers", "2", *QUICK]) == 0
    log = capsys.readouterr().out
    assert "fine-tuning it first" in log

    for name in ("model.safetensors", "config.json", "tokenizer.json", "metrics.json", "compression_config.json"):
        assert (out / name).is_file(), name
    for folder in (out, out / "teacher"):  # safetensors only in the deliverables, no pickles
        assert not list(folder.glob("*.bin")) and not list(folder.glob("*.pt")), folder
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["student"]["layers"] == 2 and metrics["teacher"]["layers"] == 6
    assert metrics["student"]["parameters"] < metrics["teacher"]["parameters"]
    assert 0.0 <= metrics["student"]["test_accuracy"] <= 1.0
    assert metrics["student"]["latency_ms_b8"] > 0 and metrics["student"]["speedup_b8"] > 1.0
    record = CompressionConfig.from_pretrained(str(out))
    assert record.methods == ["distillation"] and record.steps[0].params["student_init"] == {"from_teacher_layers": [0, 3]}

    # The saved student is a plain Transformers model: it reloads and gives the same logits.
    model = AutoModelForSequenceClassification.from_pretrained(out).eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    enc = tokenizer(["a gripping, beautifully acted film"], return_tensors="pt")
    assert "[UNK]" not in tokenizer.convert_ids_to_tokens(enc["input_ids"][0])
    state = load_file(str(out / "model.safetensors"))
    assert torch.equal(state["classifier.weight"], model.classifier.weight)

    # Re-running the same command reuses the fine-tuned teacher and the finished checkpoints.
    assert main(["distill", "--output_dir", str(out), "--student_layers", "2", "--no_measure_latency", *QUICK]) == 0
    log = capsys.readouterr().out
    assert "Reusing the fine-tuned teacher" in log and "Resuming the distillation" in log
