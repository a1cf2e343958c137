"""Task data: the packaged movie reviews with a fixed stratified split, local files, offline errors."""

import collections

import pytest

from bertlite.data import load_task, stratified_split
from bertlite.errors import BertliteError


def test_stratified_split_is_fixed_disjoint_and_balanced():
    labels = [0] * 60 + [1] * 40
    a = stratified_split(labels)
    b = stratified_split(labels)
    assert all((x == y).all() for x, y in zip(a, b))
    everything = sorted(i for part in a for i in part.tolist())
    assert everything == list(range(100))
    for part, size in zip(a, (80, 10, 10)):
        assert len(part) == size
        counts = collections.Counter(labels[i] for i in part.tolist())
        assert counts[0] / len(part) == pytest.approx(0.6)


def test_rotten_tomatoes_split_sizes_and_balance():
    dsd, info = load_task("rotten_tomatoes")
    assert (len(dsd["train"]), len(dsd["validation"]), len(dsd["test"])) == (6824, 852, 854)
    assert collections.Counter(dsd["test"]["label"]) == {0: 427, 1: 427}
    assert not set(dsd["test"]["text"]) & set(dsd["train"]["text"][:2000])
    assert info.num_labels == 2 and "not comparable with GLUE" in info.split_note
    small, _ = load_task("rotten_tomatoes", max_train_examples=50)
    assert len(set(small["train"]["label"])) == 2  # a prefix still holds both labels


def test_hub_task_offline_gives_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BertliteError, match="rotten_tomatoes, imdb"):
        load_task("sst2")


def test_local_csv_pairs_and_errors(tmp_path):
    path = tmp_path / "pairs.csv"
    rows = ["premise,hypothesis,gold"] + [f"sentence {i},other {i},{i % 3}" for i in range(60)]
    path.write_text("\n".join(rows) + "\n")
    dsd, info = load_task(str(path), text_column="premise", text_pair_column="hypothesis", label_column="gold")
    assert info.is_pair and info.num_labels == 3
    assert sum(len(dsd[s]) for s in dsd) == 60 and set(dsd["train"].column_names) == {"text", "text_pair", "label"}
    with pytest.raises(BertliteError, match="no column"):
        load_task(str(path), text_column="sentence")
    with pytest.raises(BertliteError, match="does not exist"):
        load_task(str(tmp_path / "missing.csv"))


def test_holdout_moves_a_fixed_balanced_draw_out_of_train():
    """The holdout split is a third evaluation split: disjoint from every other split, balanced, the same draw on
    every call, and taken from train only (validation and test unchanged)."""
    full, _ = load_task("rotten_tomatoes")
    dsd, _ = load_task("rotten_tomatoes", holdout_examples=1706)
    again, _ = load_task("rotten_tomatoes", holdout_examples=1706)
    assert (len(dsd["train"]), len(dsd["holdout"])) == (6824 - 1706, 1706)
    assert dsd["holdout"]["text"] == again["holdout"]["text"]
    assert collections.Counter(dsd["holdout"]["label"]) == {0: 853, 1: 853}
    held = set(dsd["holdout"]["text"])
    assert held <= set(full["train"]["text"]) and not held & set(dsd["train"]["text"])
    assert sorted(held | set(dsd["train"]["text"])) == sorted(set(full["train"]["text"]))
    assert dsd["validation"]["text"] == full["validation"]["text"] and dsd["test"]["text"] == full["test"]["text"]
    sliced, _ = load_task("rotten_tomatoes", holdout_examples=1706, max_eval_examples=10)
    assert len(sliced["holdout"]) == 10 and sliced["holdout"]["text"] == dsd["holdout"]["text"][:10]
    with pytest.raises(BertliteError, match="Cannot hold out 6824 of 6824"):
        load_task("rotten_tomatoes", holdout_examples=6824)


def _texts(dsd):
    return {split: list(ds["text"]) for split, ds in dsd.items()}


def test_missing_splits_are_carved_from_train_as_the_packaged_splits_are():
    from datasets import Dataset, DatasetDict

    from bertlite.data import carve_missing_splits

    n = 1005  # 0.9 * n = 904.5: the regression cut rounds as every other split does
    scores = [round(0.37 * i % 5, 3) + 0.25 for i in range(n)]  # non-integer scores: a regression task
    train = Dataset.from_dict({"text": [f"pair {i}" for i in range(n)], "label": scores})
    test = Dataset.from_dict({"text": ["held 1", "held 2"], "label": [1.5, 2.5]})
    dsd = carve_missing_splits(DatasetDict(train=train, test=test), is_regression=True)
    texts = _texts(dsd)
    assert list(dsd) == ["train", "validation", "test"] and texts["test"] == ["held 1", "held 2"]
    assert not set(texts["train"]) & set(texts["validation"])
    assert sorted(texts["train"] + texts["validation"]) == sorted(train["text"])
    assert len(dsd["validation"]) == n - round(0.9 * n)
    assert _texts(carve_missing_splits(DatasetDict(train=train, test=test), is_regression=True)) == texts  # fixed

    # Classes: stratified; with neither validation nor test, 80/10/10 (a Hub dataset with only a train split).
    labels = [0] * 300 + [1] * 100 + [2] * 100
    alone = carve_missing_splits(DatasetDict(train=Dataset.from_dict({"text": [f"s {i}" for i in range(500)], "label": labels})),
                                 is_regression=False)
    assert [len(alone[s]) for s in ("train", "validation", "test")] == [400, 50, 50]
    for split in ("validation", "test"):
        assert collections.Counter(alone[split]["label"]) == {0: 30, 1: 10, 2: 10}
    assert len(set().union(*map(set, _texts(alone).values()))) == 500


def test_glue_validation_is_the_test_and_validation_comes_from_train():
    from datasets import Dataset, DatasetDict

    from bertlite.data import glue_splits

    def part(prefix, labels):
        return Dataset.from_dict({"sentence": [f"{prefix} {i}" for i in range(len(labels))], "label": labels,
                                  "idx": list(range(len(labels)))})

    raw = DatasetDict(train=part("train", [0] * 70 + [1] * 30), validation=part("dev", [1, 0, 1]))
    dsd = glue_splits("sst2", raw)
    assert _texts(dsd)["test"] == ["dev 0", "dev 1", "dev 2"]
    assert collections.Counter(dsd["validation"]["label"]) == {0: 7, 1: 3}
    assert not set(dsd["validation"]["text"]) & set(dsd["train"]["text"]) and len(dsd["train"]) == 90
    stsb = glue_splits("stsb", DatasetDict(train=Dataset.from_dict({"sentence1": [f"a {i}" for i in range(101)],
                                                                      "sentence2": [f"b {i}" for i in range(101)],
                                                                      "label": [i / 20 for i in range(101)], "idx": list(range(101))}),
                                           validation=Dataset.from_dict({"sentence1": ["x"], "sentence2": ["y"], "label": [2.5], "idx": [0]})))
    assert (len(stsb["train"]), len(stsb["validation"]), len(stsb["test"])) == (91, 10, 1)
