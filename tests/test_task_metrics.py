"""Each task scored by its own metric through the real commands, on tiny models and small local files of each kind
(sentence pairs, 3 labels, regression): metrics.json, the teacher fine-tune's checkpoint selection, pruning and
quantization on a regression task, and the card's model-index."""

import json
import random

import numpy as np
import pytest
import torch
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score

from bertlite.cli import main

WORDS = [f"w{i}" for i in range(40)]


def _tokenizer_folder(folder):
    from transformers import BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS
    tokenizer = BertTokenizerFast(vocab={t: i for i, t in enumerate(tokens)})
    assert tokenizer.tokenize("w0 w39") == ["w0", "w39"]  # the words are known, not [UNK]
    tokenizer.save_pretrained(folder)
    return folder


def _config(num_labels=2):
    from transformers import BertConfig

    return BertConfig(vocab_size=len(WORDS) + 5, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                      intermediate_size=64, max_position_embeddings=64, num_labels=num_labels,
                      hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                      initializer_range=0.2)  # outputs that differ between examples from the start


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    """A tiny pre-trained BERT encoder without a task head: `bertlite distill` fine-tunes it as the teacher."""
    from transformers import BertModel

    folder = _tokenizer_folder(tmp_path_factory.mktemp("encoder"))
    torch.manual_seed(0)
    BertModel(_config()).save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def regressor(tmp_path_factory):
    """A tiny sequence classifier with one output (a regression head), as a model fine-tuned on scores."""
    from transformers import BertForSequenceClassification

    folder = _tokenizer_folder(tmp_path_factory.mktemp("regressor"))
    torch.manual_seed(0)
    config = _config(num_labels=1)
    config.problem_type = "regression"
    BertForSequenceClassification(config).save_pretrained(folder)
    return str(folder)


def _sentence(rng, cue=None):
    words = rng.choices(WORDS[4:], k=rng.randint(4, 8))
    if cue is not None:
        words.insert(rng.randrange(len(words) + 1), cue)
    return " ".join(words)


def write_task(folder, kind: str, n: int = 60) -> str:
    """A local task file: label = which cue word the text holds (pairs: whether both sentences hold the same cue);
    regression: the score is the number of cue words."""
    rng = random.Random(0)
    rows = []
    for i in range(n):
        if kind == "pairs":
            a, b = rng.choice(WORDS[:2]), rng.choice(WORDS[:2])
            rows.append({"text": _sentence(rng, a), "text_pair": _sentence(rng, b), "label": int(a == b)})
        elif kind == "three":
            label = i % 3
            rows.append({"text": _sentence(rng, WORDS[label]), "label": ["bad", "neutral", "good"][label]})
        else:
            k = i % 4
            text = " ".join([_sentence(rng)] + [WORDS[0]] * k)
            rows.append({"text": text, "label": round(k + 0.25 * rng.random(), 3)})
    if kind == "three":  # JSON lines; the others CSV
        path = folder / "three.jsonl"
        path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    else:
        import csv

        path = folder / f"{kind}.csv"
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return str(path)


QUICK = ["--student_layers", "1", "--max_steps", "3", "--per_device_train_batch_size", "8", "--max_length", "32",
         "--teacher_epochs", "2", "--teacher_learning_rate", "5e-3", "--measure_latency", "false", "--disable_tqdm", "true", "--logging_steps", "1"]


def _predictions(folder, dsd, split):
    from bertlite.evaluation import predict
    from bertlite.loading import load_model, load_tokenizer

    model = load_model(folder, head="classifier", require_head=True).eval()
    return predict(model, load_tokenizer(folder), dsd[split], 64, 32, False).numpy()


@pytest.mark.parametrize("kind", ["pairs", "three", "regression"])
def test_distill_reports_the_task_metrics(tmp_path, encoder, kind):
    from bertlite.data import load_task

    task = write_task(tmp_path, kind)
    pair = ["--text_pair_column", "text_pair"] if kind == "pairs" else []
    out = tmp_path / "out"
    assert main(["distill", "--task", task, "--teacher", encoder, "--output_dir", str(out), *pair, *QUICK]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    dsd, _ = load_task(task, text_pair_column="text_pair" if pair else None)
    gold = np.array(dsd["test"]["label"])

    for side, folder in (("student", out), ("teacher", out / "teacher")):
        scores = _predictions(str(folder), dsd, "test")
        if kind == "regression":
            assert metrics["main_metric"] == "pearsonr" and "test_accuracy" not in metrics[side]
            assert metrics[side]["test_pearsonr"] == pytest.approx(pearsonr(scores[:, 0], gold)[0], abs=1e-4)
            assert metrics[side]["test_spearmanr"] == pytest.approx(spearmanr(scores[:, 0], gold)[0], abs=1e-4)
        else:  # a local classification file: accuracy and macro-F1
            assert metrics["main_metric"] == "accuracy"
            predicted = scores.argmax(-1)
            assert metrics[side]["test_accuracy"] == pytest.approx(accuracy_score(gold, predicted))
            assert metrics[side]["test_f1"] == pytest.approx(f1_score(gold, predicted, average="macro", zero_division=0.0))
    main_metric = metrics["main_metric"]
    assert f"validation_{main_metric}" in metrics["student"]
    # The fine-tuned teacher's kept epoch and its validation scores are in the teacher section.
    fine_tune = metrics["teacher"]["fine_tune"]
    history = [h[main_metric] for h in fine_tune["validation_history"]]
    assert len(history) == 2 and fine_tune["selection_metric"] == main_metric
    assert metrics["teacher"][f"validation_{main_metric}"] == max(history) == fine_tune["validation"][main_metric]

    if kind == "regression":  # the card's model-index names the Hub's metric types
        from bertlite.hub.card import build_model_card

        card = build_model_card(str(out))
        types = {r.metric_type for r in card.data.eval_results}
        assert types == {"pearsonr", "spearmanr"}
        assert "epoch with the best validation pearson correlation was kept" in card.text


@pytest.mark.parametrize("learning_rate", [1e-1, 3e-1])
def test_teacher_keeps_the_best_validation_epoch(tmp_path, encoder, learning_rate):
    """A learning rate far too high makes later epochs worse than an earlier one (at 0.3, often constant outputs
    whose correlation is undefined): the kept model is the best epoch's, and its validation score (re-measured on
    the saved model) is the maximum of the logged ones, not the last. Seeds are tried until one such run occurs
    (the numbers depend on the machine's kernels)."""
    from bertlite import finetuned_teacher
    from bertlite.data import load_task
    from bertlite.distillation.teacher import read_marker
    from bertlite.metrics import evaluate_model, metric_spec
    from bertlite.loading import load_model, load_tokenizer

    task = write_task(tmp_path, "regression", n=80)
    runs = []
    for seed in range(1, 6):
        folder = finetuned_teacher(encoder, task, str(tmp_path / f"teacher-{seed}"), epochs=4, learning_rate=learning_rate,
                                   batch_size=8, max_length=32, seed=seed, log=lambda *_: None)
        recorded = read_marker(folder)
        history = [h["pearsonr"] for h in recorded["validation_history"]]
        defined = [v for v in history if v is not None]  # None: constant outputs, an undefined correlation
        runs.append(history)
        if defined and (history[-1] is None or history[-1] < max(defined)):
            break
    else:
        pytest.fail(f"no run with a worse last epoch to test the selection on: {runs}")
    assert len(history) == 4
    assert recorded["validation"]["pearsonr"] == max(defined)
    assert recorded["chosen_epoch"] == history.index(max(defined)) + 1 < 4
    dsd, info = load_task(task)
    model = load_model(folder, head="classifier", require_head=True)
    again = evaluate_model(model, load_tokenizer(folder), dsd["validation"], metric_spec(info), max_length=32)
    assert again["pearsonr"] == pytest.approx(max(defined), abs=1e-5)


def _stage_scores(folder, key):
    from bertlite.record import CompressionConfig

    return CompressionConfig.from_pretrained(folder).metrics[key]


def _check_pearson(folder, task, value):
    from bertlite.data import load_task

    dsd, _ = load_task(task)
    scores = _predictions(folder, dsd, "test")[:, 0]
    assert value == pytest.approx(pearsonr(scores, np.array(dsd["test"]["label"]))[0], abs=1e-4)


def test_structured_and_weight_pruning_work_on_a_regression_task(tmp_path, regressor):
    task = write_task(tmp_path, "regression")
    quick = ["--task", task, "--recover", "--recovery_steps", "2", "--batch_size", "8", "--max_length", "32"]
    structured = tmp_path / "structured"
    assert main(["prune", "--model", regressor, "--heads", "2", "--ffn", "0.25", "--output_dir", str(structured), *quick]) == 0
    values = _stage_scores(str(structured), "structured_pruning")
    assert values["metric"] == "pearsonr" and "accuracy_before" not in values
    assert {"pearsonr_before", "pearsonr_pruned", "pearsonr_recovered", "spearmanr_recovered"} <= set(values)
    _check_pearson(str(structured), task, values["pearsonr_recovered"])

    weights = tmp_path / "magnitude"
    assert main(["prune", "--model", regressor, "--method", "magnitude", "--sparsity", "0.5", "--output_dir", str(weights),
                 *quick]) == 0
    values = _stage_scores(str(weights), "weight_pruning")
    assert values["metric"] == "pearsonr" and {"pearsonr_before", "pearsonr_pruned", "pearsonr_recovered"} <= set(values)
    _check_pearson(str(weights), task, values["pearsonr_recovered"])


def test_quantize_checks_a_regression_model_by_its_correlations(tmp_path, regressor):
    from bertlite.data import load_task
    from bertlite.quantization import quantize_folder

    task = write_task(tmp_path, "regression")
    out, report = quantize_folder(regressor, str(tmp_path / "int8"), task=task)
    assert report.metric == "pearsonr" and report.label_agreement is None and report.fp32_accuracy is None
    dsd, _ = load_task(task)
    gold = np.array(dsd["test"]["label"])
    fp32 = _predictions(regressor, dsd, "test")[:, 0]
    assert report.fp32_metrics["pearsonr"] == pytest.approx(pearsonr(fp32, gold)[0], abs=1e-5)
    assert report.fp32_metrics["spearmanr"] == pytest.approx(spearmanr(fp32, gold)[0], abs=1e-5)
    assert report.accuracy_drop_points == pytest.approx(100 * (report.fp32_metrics["pearsonr"] - report.int8_metrics["pearsonr"]))
    assert "pearsonr fp32" in report.summary()


def test_card_model_index_uses_hub_metric_names(tmp_path):
    """Older metrics.json names (pearson) and mnli's second split are read under the Hub's names."""
    from bertlite.hub.metrics import ModelMetrics

    parsed = ModelMetrics.parse({"test_pearson": 0.8, "validation_spearman": 0.7, "test_mismatched_accuracy": 0.6,
                                 "matthews_correlation": 0.5}, "test", None)
    assert parsed.quality == {("pearsonr", "test"): 0.8, ("spearmanr", "validation"): 0.7,
                              ("accuracy", "test_mismatched"): 0.6, ("matthews_correlation", "test"): 0.5}


def test_bench_teacher_stores_every_cell_and_shows_test_only_for_the_chosen_setting(tmp_path, encoder):
    """scripts/bench_teacher.py on a tiny encoder and a local task: each cell is scored on both splits once, when it is
    trained; a report from the stored cells alone (another folder, --merge, nothing trained) chooses the same setting by
    validation and shows the test score of that setting only, equal to the kept model's own test accuracy."""
    import importlib.util
    import os

    from bertlite.data import load_task

    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts", "bench_teacher.py")
    spec = importlib.util.spec_from_file_location("bench_teacher", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)

    task = write_task(tmp_path, "pairs")
    grid = ["--model", encoder, "--task", task, "--epochs", "1", "--learning-rates", "1e-3,5e-3", "--seeds", "0",
            "--max-length", "32"]
    trained = bench.main([*grid, "--output-dir", str(tmp_path / "a")])
    assert not trained["final"] and not any("test" in c for c in trained["cells"])  # no --final: test withheld
    first = bench.main([*grid, "--output-dir", str(tmp_path / "a"), "--final"])  # reuses the cells, trains nothing
    cells = json.loads((tmp_path / "a" / "cells.json").read_text())
    assert len(cells) == 2 and all("test" in c and "validation" in c for c in cells.values())
    assert all(os.path.commonpath([str(tmp_path / "a"), str(tmp_path / "a" / k)]) == str(tmp_path / "a") for k in cells)

    best = max(first["cells"], key=lambda c: c["validation"]["accuracy"])
    assert first["chosen"]["learning_rate"] == best["learning_rate"]
    assert [c["learning_rate"] for c in first["cells"] if "test" in c] == [best["learning_rate"]]
    dsd, _ = load_task(task)
    folder = bench.cell_dir(bench.parse_args([*grid, "--output-dir", str(tmp_path / "a")]), 1.0, best["learning_rate"], 0)
    predicted = _predictions(folder, dsd, "test").argmax(-1)
    assert best["test"]["test_accuracy"] == pytest.approx(accuracy_score(np.array(dsd["test"]["label"]), predicted))

    again = bench.main([*grid, "--output-dir", str(tmp_path / "b"), "--merge", str(tmp_path / "a" / "cells.json"), "--report-only",
                        "--final"])
    assert again["chosen"] == first["chosen"] and again["cells"] == first["cells"]
    assert sorted(os.listdir(tmp_path / "b")) == ["results.json"]  # nothing was trained there
    assert first["final"] and again["final"]
    # A grid with a cell not yet run (seed 1): the leader is provisional and its test score stays hidden.
    partial = bench.main([*grid[:-4], "--seeds", "0,1", "--max-length", "32", "--output-dir", str(tmp_path / "c"),
                          "--merge", str(tmp_path / "a" / "cells.json"), "--report-only", "--final"])
    assert not partial["final"] and not any("test" in c for c in partial["cells"])
