"""The transfer set: unlabeled sentences added to distillation, learned from the teacher's soft targets only."""

import json

import pytest

from bertlite.data import UNLABELLED
from bertlite.cli import main
from bertlite.errors import BertliteError
from bertlite.distillation.transfer import MAX_WORDS, MIN_WORDS, sentences_of, transfer_sentences, with_transfer_set

DOCUMENTS = [
    "I loved every minute of this strange little film.<br /><br />The ending, though, felt rushed and far too neat. Bad.",
    "What a waste of a talented cast and a good idea! Avoid it unless you enjoy watching paint dry slowly.",
    "Short. Really short. The director clearly knew what he wanted from every single scene in this movie?",
    "Far too short. Says nothing.",
]


@pytest.fixture()
def corpus(tmp_path):
    path = tmp_path / "reviews.txt"
    path.write_text("\n".join(DOCUMENTS) + "\n")
    return str(path)


def test_sentences_are_split_filtered_by_length_and_cleaned():
    found = sentences_of(DOCUMENTS[0])
    assert found == ["I loved every minute of this strange little film.", "The ending, though, felt rushed and far too neat."]
    assert sentences_of(DOCUMENTS[3]) == []
    assert all(MIN_WORDS <= len(s.split()) <= MAX_WORDS for d in DOCUMENTS for s in sentences_of(d))


def test_one_sentence_per_text_seeded_and_held_out_sentences_never_used(corpus):
    first = transfer_sentences(corpus, 3, seed=1, log=lambda *_: None)
    assert first == transfer_sentences(corpus, 3, seed=1, log=lambda *_: None)
    assert len(first) == 3 and len(set(first)) == 3
    per_document = [[s for s in first if s in sentences_of(d)] for d in DOCUMENTS[:3]]
    assert all(len(found) == 1 for found in per_document)  # one per text, every usable text used
    held_out = set(sentences_of(DOCUMENTS[0]))
    notes = []
    kept = transfer_sentences(corpus, 3, seed=1, exclude=held_out, log=notes.append)
    assert not held_out & set(kept) and len(kept) == 2 and "fewer than the 3" in notes[0]
    with pytest.raises(BertliteError, match="no sentence"):
        transfer_sentences(corpus, 2, exclude={s for d in DOCUMENTS for s in sentences_of(d)}, log=lambda *_: None)


def test_packaged_imdb_sentences_come_from_its_training_split():
    from bertlite.data import load_packaged_reviews

    sentences = transfer_sentences("imdb", 40, seed=0, log=lambda *_: None)
    assert len(sentences) == 40
    training = " ".join(text.replace("<br />", " ") for text in load_packaged_reviews("imdb")[0]["train"]["text"])
    assert all(s in training for s in sentences)  # never a validation/test review's sentence


def test_transfer_examples_are_appended_with_untrusted_labels(corpus):
    from bertlite.data import load_task, tokenize
    from bertlite.loading import load_tokenizer

    tokenizer = load_tokenizer("minilm")
    dsd, _ = load_task("rotten_tomatoes", max_train_examples=8)
    train = tokenize(dsd, tokenizer, 64)["train"]
    combined, record = with_transfer_set(train, corpus, 3, tokenizer, max_length=64, seed=0, log=lambda *_: None)
    assert len(combined) == 11 and combined.column_names == train.column_names
    assert combined["label"][:8] == train["label"] and set(combined["label"][8:]) == {UNLABELLED}
    sentences = transfer_sentences(corpus, 3, seed=0, log=lambda *_: None)
    assert combined["input_ids"][8] == tokenizer(sentences[0], truncation=True, max_length=64)["input_ids"]
    assert record == {"source": corpus, "examples": 3, "seed": 0, "one_sentence_per_text": True,
                      "sentence_words": [MIN_WORDS, MAX_WORDS]}


def test_distill_with_a_transfer_set_records_it(tmp_path, corpus, capsys):
    out = tmp_path / "run"
    argv = ["distill", "--output_dir", str(out), "--student_layers", "1", "--max_train_examples", "32", "--max_eval_examples",
            "16", "--teacher_epochs", "1", "--num_train_epochs", "1", "--per_device_train_batch_size", "16", "--max_length", "32",
            "--no_measure_latency", "--disable_tqdm", "true", "--transfer_data", corpus, "--transfer_examples", "3"]
    assert main(argv) == 0
    assert "32 labelled + 3 unlabeled sentences" in capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["training_examples"] == {"labelled": 32, "soft_targets_only": 3}
    step = json.loads((out / "compression_config.json").read_text())["steps"][0]["params"]
    assert step["transfer_set"]["examples"] == 3 and step["transfer_set"]["source"] == corpus


def test_a_missing_transfer_file_is_a_clear_error_before_any_work(tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["distill", "--transfer_data", str(tmp_path / "nope.txt"), "--output_dir", str(out)]) == 1
    assert "no such file" in capsys.readouterr().err
    assert not out.exists()
