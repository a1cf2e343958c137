"""Bad task data gives one clear line naming the file and column, through load_task and through the real CLI."""

import json
import os
import re
import subprocess
import sys

import pytest
import torch

from bertlite.data import glue_splits, load_files, load_task
from bertlite.errors import BertliteError
from bertlite.distillation.losses import UNLABELLED, hard_label_loss

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write(path, text):
    path.write_text(text)
    return str(path)


def reviews(labels):
    return "text,label\n" + "".join(f"review number {i},{label}\n" for i, label in enumerate(labels))


# (file name, content, what the one line must say)
BAD_FILES = {
    "minus_one": ("signs.csv", reviews([-1, 1] * 10), r"signs\.csv.*column 'label'.*-1 \(10 row\(s\)\).*0\.\.N-1"),
    "empty": ("empty.csv", "", r"empty\.csv' is empty: expected a header line \(text,label\)"),
    "header_only": ("header.csv", "text,label\n", r"header\.csv' has no examples"),
    "no_label_column": ("nolabel.csv", "text,sentiment\na,1\nb,0\n", r"nolabel\.csv' has no column\(s\) \['label'\].*--label_column"),
    "no_text_column": ("notext.csv", "sentence,label\na,1\nb,0\n", r"notext\.csv' has no column\(s\) \['text'\].*--text_column"),
    "missing_label": ("gap.csv", reviews([1, 0, "", 1, 0]), r"gap\.csv'.*column 'label' has no label in 1 row\(s\).*data row 3"),
    "mixed_labels": ("mixed.csv", reviews(["positive", "negative", 1, 0]), r"mixed\.csv.*mixes label names and numbers"),
    "one_class": ("same.csv", reviews([0] * 6), r"same\.csv.*only the label 0.*at least two classes"),
    "empty_json": ("empty.jsonl", "\n", r"empty\.jsonl' is empty: expected one JSON object per example"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_file_is_one_clear_error(tmp_path, case):
    name, content, message = BAD_FILES[case]
    with pytest.raises(BertliteError, match=message) as caught:
        load_task(write(tmp_path / name, content))
    assert "\n" not in str(caught.value)


def test_string_labels_map_to_ids_in_sorted_order(tmp_path):
    # "positive" comes first in the file; the ids must not depend on that.
    rows = ["positive", "negative", "neutral"] * 10
    train = write(tmp_path / "train.csv", "text,label\n" + "".join(f"{label} {i},{label}\n" for i, label in enumerate(rows)))
    valid = write(tmp_path / "valid.csv", "text,label\npositive v,positive\npositive w,positive\n")
    dsd, info = load_files(train, valid)
    assert info.label_names == ["negative", "neutral", "positive"] and info.num_labels == 3 and not info.is_regression
    for split in dsd:
        for text, label in zip(dsd[split]["text"], dsd[split]["label"]):
            assert info.label_names[label] == text.split()[0]
    assert set(dsd["validation"]["label"]) == {2}  # a split holding one name keeps the task-wide id


def test_numeric_labels_in_json_strings_and_integral_floats_are_class_ids(tmp_path):
    path = tmp_path / "ids.jsonl"
    path.write_text("".join(json.dumps({"text": f"t {i}", "label": str(i % 3)}) + "\n" for i in range(30)))
    dsd, info = load_task(str(path))
    assert info.num_labels == 3 and info.label_names == [] and set(dsd["train"]["label"]) == {0, 1, 2}
    dsd, info = load_task(write(tmp_path / "floats.csv", reviews([1.0, 0.0] * 10)))
    assert info.num_labels == 2 and not info.is_regression and set(dsd["train"]["label"]) == {0, 1}


def test_regression_file_gets_non_empty_validation_and_test(tmp_path):
    # Each score is its own value: a split stratified by value would put every example into train.
    dsd, info = load_task(write(tmp_path / "scores.csv", reviews([round(i * 0.17, 2) for i in range(40)])))
    assert info.is_regression and info.num_labels == 1
    assert (len(dsd["train"]), len(dsd["validation"]), len(dsd["test"])) == (32, 4, 4)


def test_glue_classification_labels_must_be_class_ids():
    from datasets import Dataset, DatasetDict

    def part(labels):
        return Dataset.from_dict({"sentence": [f"s {i}" for i in range(len(labels))], "label": labels, "idx": list(range(len(labels)))})

    good = DatasetDict(train=part([0, 1] * 20), validation=part([1, 0, 1]))
    assert set(glue_splits("sst2", good)["test"]["label"]) == {0, 1}
    with pytest.raises(BertliteError, match=r"nyu-mll/glue/sst2 \(validation\): 1 label\(s\) 0\.5 are not class ids 0\.\.1"):
        glue_splits("sst2", DatasetDict(train=part([0.0, 1.0] * 20), validation=part([1.0, 0.5, 0.0])))


def test_hard_label_loss_rejects_out_of_range_labels_but_ignores_unlabelled():
    logits = torch.tensor([[2.0, -1.0], [0.5, 0.5], [-1.0, 3.0]])
    for bad, shown in (([1, -1, 0], r"\[-1\]"), ([0, 2, 1], r"\[2\]")):
        with pytest.raises(BertliteError, match=shown + r" are not class ids 0\.\.1"):
            hard_label_loss(logits, torch.tensor(bad))
    # The unlabelled example contributes nothing; the sum is still divided by the batch size.
    loss = hard_label_loss(logits, torch.tensor([0, UNLABELLED, 1]))
    expected = torch.nn.functional.cross_entropy(logits[[0, 2]], torch.tensor([0, 1]), reduction="sum") / 3
    assert loss.item() == pytest.approx(expected.item())
    # A regression head (one output) takes any score.
    assert hard_label_loss(torch.tensor([[0.5], [2.0]]), torch.tensor([-1.5, 2.0])).item() == pytest.approx(4.0 / 2)


@pytest.mark.parametrize("case", ["minus_one"] + [pytest.param(c, marks=pytest.mark.slow)  # about 15 s each
                                  for c in ("empty", "header_only", "no_label_column", "missing_label")])
def test_cli_reports_bad_data_in_one_line(tmp_path, case):
    name, content, message = BAD_FILES[case]
    path = write(tmp_path / name, content)
    env = dict(os.environ, PYTHONPATH=ROOT, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    result = subprocess.run([sys.executable, "-m", "bertlite", "distill", "--task", path, "--output_dir", str(tmp_path / "out")],
                            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert len(lines) == 1 and lines[0].startswith("bertlite distill: error:"), result.stderr
    assert re.search(message, lines[0])
    assert not os.path.exists(tmp_path / "out" / "model.safetensors")


@pytest.fixture
def two_label_teacher(tmp_path):
    """A saved 2-label sequence classifier with its tokenizer: a teacher already fine-tuned on a binary task."""
    from transformers import BertTokenizerFast

    from conftest import tiny_model

    folder = tmp_path / "binary-teacher"
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(100)]) + "\n")
    tiny_model(vocab_size=105).save_pretrained(folder)
    BertTokenizerFast(vocab_file=str(vocab)).save_pretrained(folder)
    return str(folder)


SCORES = reviews([round(0.1 + i * 0.37 % 4, 2) for i in range(20)])
SCORES_MESSAGE = r"fine-tuned for 2 labels, but the task has scores \(a regression task: its labels are non-integer numbers\)"


def test_float_labels_with_a_two_label_teacher_is_one_clear_error(tmp_path, two_label_teacher):
    from bertlite import finetuned_teacher

    with pytest.raises(BertliteError, match=SCORES_MESSAGE):
        finetuned_teacher(two_label_teacher, write(tmp_path / "scores.csv", SCORES), str(tmp_path / "out"), log=lambda *_: None)


@pytest.mark.slow
def test_cli_float_labels_with_a_two_label_teacher(tmp_path, two_label_teacher):
    env = dict(os.environ, PYTHONPATH=ROOT, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    result = subprocess.run([sys.executable, "-m", "bertlite", "distill", "--task", write(tmp_path / "scores.csv", SCORES),
                             "--teacher", two_label_teacher, "--output_dir", str(tmp_path / "out")],
                            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert len(lines) == 1 and re.search(SCORES_MESSAGE, lines[0]), result.stderr
