"""scripts/bench_peers.py's statistics and bookkeeping (its training runs are measured by the script itself)."""

import importlib.util
import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def bench():
    path = os.path.join(ROOT, "scripts", "bench_peers.py")
    spec = importlib.util.spec_from_file_location("bench_peers", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def runs(rows):
    return [{"correct": {"holdout": "".join(str(v) for v in row)}} for row in rows]


def test_paired_interval_covers_the_sentence_draw(bench):
    """Two students that disagree on 10% of 1000 sentences, half each way: a mean difference of 0 whose 95%
    interval is about ±2·sqrt(0.1/1000) ≈ ±2 points wide however many identical seeds are added; one student right
    on every sentence the other gets wrong: a difference of +10 points with an interval around it that excludes 0."""
    rng = np.random.default_rng(1)
    base = rng.integers(0, 2, 1000)
    flip = np.zeros(1000, dtype=int)
    flip[:100] = 1
    other = np.where(flip == 1, 1 - base, base)
    text = bench.paired_interval(runs([base] * 5), runs([other] * 5), "holdout")
    low, high = (float(v) for v in text.strip(" []").split(","))
    assert low < 0 < high and 1.2 < -low < 3 and 1.2 < high < 3  # not the ±0 that the std over seeds shows
    better = np.where(flip == 1, 1, base)
    worse = np.where(flip == 1, 0, base)
    low, high = (float(v) for v in bench.paired_interval(runs([better] * 3), runs([worse] * 3), "holdout").strip(" []").split(","))
    assert 7 < low < 10 < high < 13
    assert bench.paired_interval(runs([base]), [{"correct": {}}], "holdout") == ""  # a run stored without sentences


def test_paired_table_cell_shows_seed_spread_and_interval(bench):
    rows = {"a": {0: {"acc": 0.80, **runs([[1, 1, 0, 1]])[0]}, 1: {"acc": 0.75, **runs([[1, 0, 0, 1]])[0]}},
            "sft": {0: {"acc": 0.70, **runs([[1, 0, 0, 1]])[0]}, 1: {"acc": 0.75, **runs([[1, 0, 0, 1]])[0]}}}
    cell = bench.paired(rows, "a", "sft", "holdout")
    assert cell.startswith("+5.00 ± 7.07 (+10.00 / +0.00) [")


def test_recorded_command_names_no_folder_of_this_machine(bench):
    from bench_command import recorded_command

    argv = ["--teacher", os.path.join(ROOT, "bench-out", "teacher"), f"--output-dir={os.path.join(ROOT, 'bench-out', 'peers')}",
            "--merge", "/elsewhere/results.json", "--candidate", "c:a=1,b=x y"]
    command = recorded_command("bench_peers.py", argv, prefix="OMP_NUM_THREADS=1")
    assert ROOT not in command
    assert command == ("OMP_NUM_THREADS=1 python scripts/bench_peers.py --teacher bench-out/teacher --output-dir=bench-out/peers "
                       "--merge /elsewhere/results.json --candidate 'c:a=1,b=x y'")


def test_candidate_spec_is_canonical_and_old_cache_files_are_rekeyed(bench, tmp_path):
    import json

    typed = bench.parse_candidate("c:temperature=4,logit_weight=0.0625,transfer_data=imdb")
    reordered = bench.parse_candidate("c:transfer_data=imdb,logit_weight=6.25e-2,temperature=4.0")
    assert typed[3] == reordered[3] == "logit_weight=0.0625,temperature=4.0,transfer_data=imdb"
    assert bench.parse_candidate("c:temperature=2")[3] != typed[3]
    # A cache written before keys were canonical: the spec as typed; read back under the canonical key.
    old_key = "c[temperature=4,logit_weight=0.0625,transfer_data=imdb]|d2|s0|960steps|train10"
    stored = {old_key: {"key": old_key, "recipe": "c", "spec": "temperature=4,logit_weight=0.0625,transfer_data=imdb", "depth": 2,
                        "seed": 0, "steps": 960, "data": "train10", "accuracy": {"test": 0.5}},
              "sft|d2|s0|960steps|train10": {"key": "sft|d2|s0|960steps|train10", "recipe": "sft", "spec": "", "depth": 2, "seed": 0,
                                              "steps": 960, "data": "train10", "accuracy": {"test": 0.6}}}
    path = tmp_path / "results.json"
    path.write_text(json.dumps(stored))
    results = bench.load_results(str(path))
    new_key = bench.cache_key("c", reordered[3], 2, 0, 960, "train10")
    assert set(results) == {new_key, "sft|d2|s0|960steps|train10"}
    assert results[new_key]["key"] == new_key and results[new_key]["accuracy"] == {"test": 0.5}


def test_augmentation_candidate_adds_soft_target_variants_of_the_training_split_only(bench):
    """augment_variants=N: N word-replacement variants of each training sentence after the labelled split, label
    -100 (soft targets only), made from the training split alone and the same for the same seed."""
    from datasets import Dataset, DatasetDict
    from transformers import BertConfig, BertForSequenceClassification

    from bertlite.data import tokenize
    from bertlite.loading import load_tokenizer

    assert bench.parse_candidate("a:max_steps=480,augment_variants=2")[2] == {"augment_variants": 2}
    with pytest.raises(SystemExit, match="max_steps"):  # its length must be known before anything is augmented
        bench.parse_candidate("a:augment_variants=2")
    with pytest.raises(SystemExit, match="whole number"):
        bench.parse_candidate("a:max_steps=480,augment_variants=two")

    tokenizer = load_tokenizer("minilm")
    teacher = BertForSequenceClassification(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1,
                                                       num_attention_heads=2, intermediate_size=64))
    train = ["a warm and funny film about a family", "the plot is dull and the acting is flat",
             "a smart , moving story with a lovely ending"]
    dsd = DatasetDict({"train": Dataset.from_dict({"text": train, "label": [1, 0, 1]}),
                       "holdout": Dataset.from_dict({"text": ["an awful , boring mess of a movie"], "label": [0]})})
    setup = {"teacher": teacher, "tokenizer": tokenizer, "dsd": dsd, "train": tokenize(dsd, tokenizer, 32)["train"]}
    data = bench.training_data(setup, 0, {"augment_variants": 2})
    # At most N variants a sentence (a variant that repeats one already made is dropped), none of the holdout's.
    assert 3 + 3 <= len(data) <= 3 + 6 and data["label"][:3] == [1, 0, 1] and set(data["label"][3:]) == {-100}
    variants = [tokenizer.decode(ids, skip_special_tokens=True) for ids in data["input_ids"][3:]]
    assert all(v not in train for v in variants)  # words were replaced
    # Each variant is a training sentence with some of its words replaced: it keeps several words of one of them.
    assert all(max(len(set(v.split()) & set(t.split())) for t in train) >= 3 for v in variants)
    assert bench.training_data(setup, 0, {"augment_variants": 2}) is data  # made once per (seed, N)


def test_defaults_key_matches_the_stored_runs_and_changes_when_relations_turn_on(bench, monkeypatch):
    # The README's distillation row reads the stored runs of today's defaults: their key must be today's spec.
    stored = bench.load_results(os.path.join(ROOT, "docs", "results", "peers-runs.json"))
    spec = bench.defaults_spec()
    assert any(key.startswith(f"defaults[{spec}]|d3|") for key in stored)
    assert "relation_weight" not in spec  # off by default: the stored runs keep their keys
    # A default that turned MiniLMv2's relations on would be a new recipe, never matched to those runs.
    original = bench.defaults_config
    monkeypatch.setattr(bench, "defaults_config", lambda *a: original(*a[:2], {**a[2], "relation_weight": 1.0}, a[3]))
    assert bench.defaults_spec() == spec + ",relation_weight=1.0"
