"""`bertlite benchmark` (report.md / report.json / pareto.png, --from a compress run), the model card of a folder whose
history has earlier measurements (prune -> quantize), the card embedding the benchmark, and `push --dry_run`."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import struct

import pytest
import torch

from bertlite.benchmark import Report, benchmark_models, pareto_front
from bertlite.cli import main
from conftest import save_tiny_classifier

FAST = ["--rounds", "1", "--repeats", "1", "--threads", "1"]
ROW_KEYS = {"label", "path", "role", "int8", "test_accuracy", "test_f1", "validation_accuracy", "validation_f1",
            "parameters", "size_mb", "latency_ms_b1", "latency_ms_b8", "throughput_b1", "throughput_b8",
            "test_accuracy_of_first", "test_f1_of_first", "validation_accuracy_of_first", "validation_f1_of_first",
            "parameters_of_first", "smaller", "speedup_b1", "speedup_b8"}


def write_reviews_csv(path, n=60, seed=0):
    """A small local task: short reviews labelled by their first word's sentiment."""
    rng = random.Random(seed)
    good, bad = ["great", "wonderful", "moving", "brilliant"], ["boring", "awful", "dull", "terrible"]
    lines = ["text,label"]
    for i in range(n):
        label = i % 2
        lines.append(f"{rng.choice(good if label else bad)} film with {rng.choice(good + bad)} acting,{label}")
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("benchmark")
    csv = write_reviews_csv(root / "reviews.csv")
    teacher = save_tiny_classifier(str(root / "teacher"), num_hidden_layers=2, seed=0)
    student = save_tiny_classifier(str(root / "student"), num_hidden_layers=1, seed=1)
    return root, csv, teacher, student


def read_png_size(path) -> tuple[int, int]:
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def plain_accuracy(folder, csv, split="test") -> float:
    """Accuracy computed with plain transformers, independently of bertlite's evaluation code."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from bertlite.data import load_task

    dsd, _ = load_task(csv)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    tok = AutoTokenizer.from_pretrained(folder)
    with torch.no_grad():
        enc = tok(list(dsd[split]["text"]), padding=True, truncation=True, max_length=128, return_tensors="pt")
        predicted = model(**enc).logits.argmax(-1)
    return float((predicted == torch.tensor(dsd[split]["label"])).float().mean())


def test_benchmark_of_two_models_writes_report_json_md_and_png(workdir, capsys):
    root, csv, teacher, student = workdir
    out = root / "report"
    assert main(["benchmark", teacher, student, "--task", csv, "--output_dir", str(out), *FAST]) == 0
    printed = capsys.readouterr().out
    assert "1 thread(s)" in printed and "OMP_WAIT_POLICY" in printed
    assert sorted(os.listdir(out)) == ["pareto.png", "report.json", "report.md"]

    report = json.loads((out / "report.json").read_text())
    first, second = report["models"]
    assert [first["label"], second["label"]] == ["teacher", "student"]
    assert ROW_KEYS <= set(first) and ROW_KEYS <= set(second)
    assert report["setup"]["threads"] == 1 and report["setup"]["seq_len"] == 128 and report["main"] == "test_accuracy"
    # Ratios are to the first model.
    assert first["speedup_b8"] == first["smaller"] == first["test_accuracy_of_first"] == first["parameters_of_first"] == 1.0
    for batch in (1, 8):
        assert second[f"speedup_b{batch}"] == pytest.approx(first[f"latency_ms_b{batch}"] / second[f"latency_ms_b{batch}"], rel=2e-3)
        assert second[f"throughput_b{batch}"] == pytest.approx(1000 * batch / second[f"latency_ms_b{batch}"], rel=2e-3)
    assert second["smaller"] == pytest.approx(first["size_mb"] / second["size_mb"], rel=1e-2)
    assert second["parameters_of_first"] == pytest.approx(second["parameters"] / first["parameters"], abs=1e-4)
    # The figures are the folders' own: parameters and weight bytes from the files, accuracy as plain transformers has it.
    from bertlite.hub.folder import ModelFolder

    for row, folder in ((first, teacher), (second, student)):
        assert row["parameters"] == ModelFolder.inspect(folder).num_parameters
        assert row["size_mb"] == pytest.approx(os.path.getsize(os.path.join(folder, "model.safetensors")) / 1e6, abs=0.01)
        assert row["test_accuracy"] == pytest.approx(plain_accuracy(folder, csv))
    assert first["parameters"] > second["parameters"]

    md = (out / "report.md").read_text()
    assert "| teacher |" in md and "| student |" in md and "Faster b8" in md and "![" in md and "(pareto.png)" in md
    width, height = read_png_size(out / "pareto.png")
    assert width > 300 and height > 200
    from matplotlib.image import imread

    assert imread(str(out / "pareto.png")).shape[:2] == (height, width)  # decodes as an image
    assert Report.read(str(out)).rows == report["models"]  # report.json reads back to the same rows
    assert not any("here" in row for row in report["models"])  # written beside, not into, the models


def test_pareto_front_keeps_the_undominated_models():
    points = [(10.0, 0.90), (5.0, 0.85), (6.0, 0.80), (2.0, 0.70), (12.0, 0.89)]
    assert pareto_front(points) == [3, 1, 0]  # by latency; (6, .80) and (12, .89) are beaten


def make_int8(source, out):
    from bertlite.quantization import quantize_folder

    quantize_folder(source, str(out))
    return str(out)


def test_from_reads_a_compress_run_layout_and_the_card_embeds_the_report(workdir, tmp_path):
    root, csv, teacher, student = workdir
    run = tmp_path / "run"
    stages = run / "stages"
    shutil.copytree(teacher, stages / "01-teacher")
    (stages / "02-augmentation").mkdir()  # a stage that writes data, not a model: not benchmarked
    from transformers import BertConfig, BertModel  # a general-distillation encoder (no task head): not benchmarked

    BertModel(BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32)).save_pretrained(stages / "02-general_distillation")
    (stages / "02-augmentation" / "augmented.jsonl").write_text("{}\n")
    shutil.copytree(student, stages / "03-distillation")
    make_int8(str(stages / "03-distillation"), stages / "04-int8")
    shutil.copytree(stages / "04-int8", run / "final")
    # compress's shrink-and-fine-tune baseline: its steps in sub-folders, the int8 one measured (marked, never "here").
    shutil.copytree(student, stages / "05-baseline" / "finetuned")
    shutil.copytree(stages / "04-int8", stages / "05-baseline" / "int8")

    assert main(["benchmark", "--from", str(run), "--task", csv, *FAST]) == 0
    shutil.move(str(run), str(tmp_path / "moved"))  # the card finds the folder's own row after a move too
    run = tmp_path / "moved"
    report = json.loads((run / "final" / "report.json").read_text())
    # Without markers (a layout made by hand) each model is named by its folder; final/, a copy of 04-int8, is
    # measured once, in that stage's place.
    assert [r.get("here", False) for r in report["models"]] == [False, False, True, False]
    assert [r["label"] for r in report["models"]] == ["01-teacher", "03-distillation", "04-int8",
                                                      "shrink and fine-tune, same shape"]
    assert [r["role"] for r in report["models"]] == ["model"] * 3 + ["baseline"]
    assert [r["int8"] for r in report["models"]] == [False, False, True, True]
    int8_row = report["models"][-2]
    assert int8_row["size_mb"] < report["models"][1]["size_mb"] and int8_row["smaller"] > 1
    assert int8_row["parameters"] == report["models"][1]["parameters"]  # scales and zero points are not parameters
    assert (run / "final" / "pareto.png").is_file() and (run / "final" / "report.md").is_file()

    from bertlite.hub.card import build_model_card

    card = build_model_card(str(run / "final"))
    text = card.text
    assert "## Benchmark" in text and "(pareto.png)" in text and "| 01-teacher |" in text
    # The results table is the final folder's own row of the report, against the first model.
    assert f"| {int8_row['test_accuracy']:.4f} |" in _results_row(text, "Accuracy (test split")
    assert f"{int8_row['speedup_b8']:.2f}×" in _results_row(text, "CPU speedup (batch 8")
    assert card.data.eval_results[0].metric_value == pytest.approx(int8_row["test_accuracy"])

    # The plot and the report travel with the model: the dry run lists them among the uploads.
    assert main(["push", str(run / "final"), "--dry_run"]) == 0
    assert (run / "final" / "README.md").read_text() == str(card)


def test_from_names_models_by_their_markers_and_finds_the_given_teacher(workdir, tmp_path):
    """A run whose teacher already had its head has no fine-tune stage: the teacher is the one the run was given
    (its markers' settings); a final model that is not a copy of the last stage gets a row of its own."""
    from bertlite.benchmark import STAGE_MARKER, compress_run_models

    root, csv, teacher, student = workdir
    run = tmp_path / "run"
    shutil.copytree(student, run / "stages" / "01-distillation")
    settings = {"teacher": teacher, "task": str(csv)}
    (run / "stages" / "01-distillation" / STAGE_MARKER).write_text(
        json.dumps({"stage": "distillation", "settings": settings, "label": "task distillation"}))
    assert compress_run_models(str(run)) == [("teacher", teacher), ("task distillation", str(run / "stages" / "01-distillation"))]
    shutil.copytree(teacher, run / "final")  # not the distilled student's weights
    assert compress_run_models(str(run))[-1] == ("final", str(run / "final"))


def test_from_finds_the_fine_tuned_teacher_of_a_run_whose_early_markers_have_no_label(workdir, tmp_path):
    """An older bertlite wrote markers without labels; a re-run that changed only later stages keeps them. The
    fine-tuned teacher is still the teacher, not a student row, and the given teacher is not looked up instead."""
    from bertlite.benchmark import STAGE_MARKER, compress_run_models

    root, csv, teacher, student = workdir
    run = tmp_path / "run"
    shutil.copytree(teacher, run / "stages" / "01-teacher_finetune")
    shutil.copytree(student, run / "stages" / "02-distillation")
    (run / "stages" / "01-teacher_finetune" / STAGE_MARKER).write_text(
        json.dumps({"stage": "teacher_finetune", "settings": {"teacher": "minilm", "task": str(csv)}}))
    (run / "stages" / "02-distillation" / STAGE_MARKER).write_text(json.dumps(
        {"stage": "distillation", "settings": {"teacher": "minilm", "task": str(csv)}, "label": "task distillation"}))
    assert compress_run_models(str(run)) == [("teacher", str(run / "stages" / "01-teacher_finetune")),
                                             ("task distillation", str(run / "stages" / "02-distillation"))]


def test_benchmark_errors_are_one_line(workdir, tmp_path, capsys):
    root, csv, teacher, _ = workdir
    assert main(["benchmark", "--from", str(tmp_path), "--task", csv]) == 1
    assert "is not a compress run" in capsys.readouterr().err
    from transformers import BertModel

    from bertlite.loading import load_tokenizer

    encoder = tmp_path / "encoder"
    BertModel.from_pretrained(teacher).save_pretrained(encoder)
    load_tokenizer(teacher).save_pretrained(encoder)
    assert main(["benchmark", teacher, str(encoder), "--task", csv, *FAST]) == 1
    err = capsys.readouterr().err
    assert "is not a sequence classifier (BertModel)" in err and "Traceback" not in err
    with pytest.raises(Exception, match="same label"):
        benchmark_models([("a", teacher), ("a", teacher)], csv)


def _results_row(card_text: str, label: str) -> str:
    results = card_text.split("## Results", 1)[1].split("## ", 1)[0]
    return next(line for line in results.splitlines() if line.startswith(f"| {label}"))


def _compressed_cell(card_text: str, label: str) -> str:
    return _results_row(card_text, label).strip("|").split("|")[2].strip()


def distilled_folder(root, csv):
    """What `bertlite distill` leaves: a student folder whose record holds its own (and the teacher's) measurements."""
    from bertlite.jobs import save_model_folder
    from bertlite.loading import load_model, load_tokenizer
    from bertlite.record import CompressionConfig

    folder = save_tiny_classifier(str(root / "distilled"), num_hidden_layers=2, seed=3)
    record = CompressionConfig(base_model="minilm", task="reviews", dataset="reviews.csv")
    record.add_step("distillation", num_train_epochs=1)
    metrics = {"teacher": {"test_accuracy": 0.9123, "parameters": 22713216, "size_mb": 90.9, "latency_ms_b8": 41.3},
               "student": {"test_accuracy": 0.8765, "parameters": 999138, "size_mb": 77.7, "latency_ms_b8": 20.0,
                           "speedup_b8": 2.07},
               "latency_setup": {"threads": 2, "seq_len": 128}, "command": "bertlite distill --task reviews.csv"}
    save_model_folder(folder, load_model(folder), load_tokenizer(folder), record, metrics)
    return folder


def test_card_of_a_prune_then_quantize_chain_describes_the_folder(workdir, tmp_path, capsys):
    """Distilled student -> structured pruning -> int8: the card's compressed column is the int8 folder's own
    measurement; the distilled student's figures appear only as belonging to step 1."""
    root, csv, teacher, _ = workdir
    distilled = distilled_folder(tmp_path, csv)
    pruned, int8 = str(tmp_path / "pruned"), str(tmp_path / "int8")
    assert main(["prune", "--model", distilled, "--task", csv, "--heads", "0.5", "--ffn", "0.5", "--criterion",
                 "magnitude", "--output_dir", pruned]) == 0
    assert main(["quantize", "--model", pruned, "--task", csv, "--output_dir", int8]) == 0
    capsys.readouterr()

    from bertlite.hub.card import build_model_card

    card = build_model_card(int8)
    own = benchmark_models([("teacher", teacher), ("int8", int8)], csv, rounds=1, repeats=1, log=lambda *a: None).rows[1]
    text = card.text
    assert _compressed_cell(text, "Accuracy (test split") == f"{own['test_accuracy']:.4f}"
    assert _compressed_cell(text, "Parameters") == f"{own['parameters']:,}"
    assert _compressed_cell(text, "Size of the weights (MB)") == f"{own['size_mb']:.1f}"
    assert card.data.eval_results[0].metric_value == pytest.approx(own["test_accuracy"])
    results = text.split("## Results", 1)[1].split("## ", 1)[0]
    table, notes = results.split("**Command that measured these numbers:**")
    # No latency was measured on this folder: the distilled student's 2.07x (and the latencies) are not in the table.
    assert "CPU speedup" not in table and "2.07" not in table and "0.8765" not in table and "77.7" not in table
    assert notes.startswith(" not recorded.")  # the command recorded was the distill run's
    earlier = next(line for line in notes.splitlines() if line.startswith("- Measured on the model of step 1"))
    assert "0.8765" in earlier and "77.7 MB" in earlier and "2.07× faster" in earlier and "not on the model in this folder" in earlier
    assert "CPU latency" not in table

    # Benchmarked into the folder, the card's columns become that run's: the folder's row and the first model.
    assert main(["benchmark", teacher, int8, "--task", csv, "--output_dir", int8, *FAST]) == 0
    row = json.loads(open(os.path.join(int8, "report.json")).read())["models"][1]
    text = build_model_card(int8).text
    assert _compressed_cell(text, "CPU speedup (batch 8") == f"{row['speedup_b8']:.2f}×"
    assert _compressed_cell(text, "Accuracy (test split") == f"{row['test_accuracy']:.4f}"


def test_push_dry_run_writes_the_card_lists_files_and_uploads_nothing(workdir, tmp_path, capsys, monkeypatch):
    root, csv, _, student = workdir
    folder = tmp_path / "model"
    make_int8(student, folder)
    (folder / "notes.txt").write_text("private notes")
    # No token and a Hub address where nothing listens: any network call would fail the command.
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    card_path = tmp_path / "card.md"
    assert main(["push", str(folder), "--repo_id", "org/tiny-int8", "--dry_run", "--card_path", str(card_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Dry run: nothing uploaded. A push to org/tiny-int8")
    files = re.search(r"files: (.*)", out)[1].split(", ")
    assert {"README.md", "config.json", "compression_config.json", "tokenizer.json"} <= set(files)
    assert any(f.endswith(".safetensors") for f in files) and "notes.txt" not in files
    assert "notes.txt" in re.search(r"skipped .*: (.*)", out)[1]
    card = card_path.read_text()
    assert "org/tiny-int8" in card and "bertlite.load_compressed(\"org/tiny-int8\")" in card
    assert not (folder / "README.md").exists()  # --card_path: the folder is left as it was
    # Without --card_path and without --repo_id the card goes where a push puts it, naming the folder.
    assert main(["push", str(folder), "--dry_run"]) == 0
    assert "bertlite.load_compressed(\"model\")" in (folder / "README.md").read_text()


ONNX_ALONE = r"""
import json, sys
import numpy as np
import onnxruntime
from tokenizers import Tokenizer

folder, texts = sys.argv[1], json.loads(sys.argv[2])
tokenizer = Tokenizer.from_file(folder + "/tokenizer.json")
tokenizer.enable_padding()
encoded = tokenizer.encode_batch(texts)
session = onnxruntime.InferenceSession(folder + "/model_int8.onnx", providers=["CPUExecutionProvider"])
feeds = {"input_ids": np.array([e.ids for e in encoded], dtype=np.int64),
         "attention_mask": np.array([e.attention_mask for e in encoded], dtype=np.int64),
         "token_type_ids": np.array([e.type_ids for e in encoded], dtype=np.int64)}
logits = session.run(None, {i.name: feeds[i.name] for i in session.get_inputs()})[0]
assert "torch" not in sys.modules and "bertlite" not in sys.modules
print(json.dumps(logits.tolist()))
"""


def test_quantize_export_onnx_runs_with_onnxruntime_alone_and_matches_the_pytorch_int8_model(workdir, tmp_path):
    import subprocess
    import sys

    from bertlite import load_compressed
    from bertlite.quantization.check import SAMPLE_SENTENCES
    from bertlite.record import CompressionConfig

    _, _, teacher, _ = workdir
    out = tmp_path / "int8"
    assert main(["quantize", "--model", teacher, "--output_dir", str(out), "--export", "onnx"]) == 0
    assert (out / "onnx" / "model_int8.onnx").is_file() and (out / "onnx" / "tokenizer.json").is_file()
    # The int8 folder's own size and files are unchanged by the export (it lives in a sub-folder).
    assert not any(name.endswith(".onnx") for name in os.listdir(out))
    check = CompressionConfig.from_pretrained(str(out)).metrics["quantization"]["onnx_export"]
    assert check["label_agreement"] >= 0.99 and not check["problems"]

    result = subprocess.run([sys.executable, "-c", ONNX_ALONE, str(out / "onnx"), json.dumps(SAMPLE_SENTENCES)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    onnx_logits = torch.tensor(json.loads(result.stdout))
    model, tokenizer = load_compressed(str(out), return_tokenizer=True)
    with torch.no_grad():
        torch_logits = model(**tokenizer(SAMPLE_SENTENCES, padding=True, return_tensors="pt")).logits
    assert (onnx_logits.argmax(-1) == torch_logits.argmax(-1)).float().mean() >= 0.99
    # Within what the export check measured on the same sentences (both int8: rounding differs, not the weights).
    assert (onnx_logits - torch_logits).abs().max() <= check["max_abs_logit_diff"] + 1e-4

    # The exported folder is benchmarked like any other: size is the .onnx file, its weights are inside the graph.
    _, csv, _, _ = workdir
    row = benchmark_models([("teacher", teacher), ("onnx", str(out / "onnx"))], csv, rounds=1, repeats=1,
                           log=lambda *a: None).rows[1]
    assert row["int8"] and row["parameters"] is None and row["latency_ms_b8"] > 0
    assert row["size_mb"] == pytest.approx(os.path.getsize(out / "onnx" / "model_int8.onnx") / 1e6, abs=0.01)
