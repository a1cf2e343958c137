"""Word-replacement augmentation on the packaged MiniLM tokenizer and embeddings (and a tiny masked LM)."""

import copy
import json

import numpy as np
import pytest
import torch

from bertlite.augmentation import EmbeddingNeighbours, MaskedLMCandidates, WordAugmenter, augment_dataset, load_augmented, with_augmented
from bertlite.augmentation.dataset import RECORD_FILE
from bertlite.data import UNLABELLED
from bertlite.augmentation.words import STOP_WORDS, split_words
from bertlite.cli import main
from bertlite.errors import BertliteError

REVIEWS = [
    "a gripping , beautifully acted film with a terrible ending .",
    "the plot is dull and the dialogue is unbelievably clumsy .",
    "funny , warm and surprisingly moving ; the cast is wonderful .",
    "not a good movie , but the soundtrack is [UNK] great .",
]


@pytest.fixture(scope="module")
def tokenizer():
    from bertlite.loading import load_tokenizer

    return load_tokenizer("minilm")


@pytest.fixture(scope="module")
def neighbours(tokenizer):
    from transformers import AutoModel

    from bertlite.loading import resolve_model_name

    return EmbeddingNeighbours.from_model(AutoModel.from_pretrained(resolve_model_name("minilm")), tokenizer, top_k=15)


def piece_ids(tokenizer, word):
    return tuple(tokenizer(word, add_special_tokens=False)["input_ids"])


def single_piece_words(tokenizer, neighbours, n, seed=0):
    """n replaceable words that are one vocabulary token each."""
    rng = np.random.default_rng(seed)
    ids = rng.choice(neighbours.candidate_ids.numpy(), size=n, replace=False)
    return tokenizer.convert_ids_to_tokens(ids.tolist())


# ----- candidates ---------------------------------------------------------------------------------------------------
def test_neighbours_are_close_in_embedding_space_and_are_whole_words(tokenizer, neighbours):
    rng = torch.Generator().manual_seed(0)
    random_ids = neighbours.candidate_ids[torch.randint(len(neighbours.candidate_ids), (500,), generator=rng)]
    for word, min_cos in (("movie", 0.3), ("terrible", 0.3), ("funny", 0.3), ("actor", 0.3), ("unbelievably", 0.18)):
        ids = piece_ids(tokenizer, word)
        vector = neighbours.word_vector(ids)
        cands = neighbours.candidates([ids])[0]
        assert len(cands) == 15
        cos = neighbours.unit[torch.tensor(cands)] @ vector
        random_cos = neighbours.unit[random_ids] @ vector
        assert cos.min() >= min_cos, word
        assert cos.mean() > random_cos.mean() + 0.15 and cos.min() > random_cos.quantile(0.95), word
        assert torch.all(cos[:-1] >= cos[1:] - 1e-6)  # most similar first
        tokens = tokenizer.convert_ids_to_tokens(cands.tolist())
        assert not set(cands.tolist()) & set(tokenizer.all_special_ids) and not set(cands.tolist()) & set(ids)
        assert all(t.isalpha() and not t.startswith("##") and t not in STOP_WORDS for t in tokens), tokens
    assert "film" in tokenizer.convert_ids_to_tokens(neighbours.candidates([piece_ids(tokenizer, "movie")])[0].tolist())
    assert "awful" in tokenizer.convert_ids_to_tokens(neighbours.candidates([piece_ids(tokenizer, "terrible")])[0].tolist())


def test_words_group_pieces_and_skip_stop_words_punctuation_and_special(tokenizer):
    tokens = tokenizer.convert_ids_to_tokens(tokenizer("the film is unbelievably good , [UNK] !", add_special_tokens=False)["input_ids"])
    words = split_words(tokens, set(tokenizer.all_special_tokens))
    spelled = ["".join(t.removeprefix("##") for t in tokens[w.start:w.end]) for w in words]
    assert spelled == ["the", "film", "is", "unbelievably", "good", ",", "[UNK]", "!"]
    assert [w.replaceable for w in words] == [False, True, False, True, True, False, False, False]


def test_mlm_candidates_are_the_models_top_k_and_independent_of_batching(tokenizer, neighbours):
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(0)
    mlm = BertForMaskedLM(BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                     intermediate_size=64, max_position_embeddings=64)).eval()
    texts = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in REVIEWS]
    requests = [(ids, pos) for ids in texts for pos in (1, 3)]
    one = MaskedLMCandidates(mlm, tokenizer, neighbours.allowed, top_k=5, batch_size=1).candidates(requests)
    many = MaskedLMCandidates(mlm, tokenizer, neighbours.allowed, top_k=5, batch_size=64).candidates(requests)
    assert all(np.array_equal(a, b) for a, b in zip(one, many))  # padding in a batch changes nothing
    ids, pos = requests[0]
    masked = [tokenizer.cls_token_id, *ids, tokenizer.sep_token_id]
    masked[pos + 1] = tokenizer.mask_token_id
    with torch.no_grad():
        logits = mlm(input_ids=torch.tensor([masked])).logits[0, pos + 1]
    allowed = neighbours.allowed.clone()
    allowed[ids[pos]] = False
    chosen = torch.tensor(one[0])
    assert allowed[chosen].all()
    others = allowed.clone()
    others[chosen] = False
    assert logits[chosen].min() >= logits[others].max()  # exactly the top 5 allowed tokens


# ----- variants -----------------------------------------------------------------------------------------------------
def test_deterministic_under_seed_and_independent_of_chunking(tokenizer, neighbours):
    from datasets import Dataset

    data = Dataset.from_dict({"text": REVIEWS * 3, "label": [0, 1, 1, 0] * 3})
    first = augment_dataset(data, WordAugmenter(tokenizer, neighbours, num_variants=4, probability=0.4, seed=7), chunk_size=5)
    again = augment_dataset(data, WordAugmenter(tokenizer, neighbours, num_variants=4, probability=0.4, seed=7), chunk_size=256)
    other = augment_dataset(data, WordAugmenter(tokenizer, neighbours, num_variants=4, probability=0.4, seed=8), chunk_size=256)
    assert first.to_dict() == again.to_dict()
    assert first["text"] != other["text"]
    assert set(first["label"]) == {UNLABELLED}
    assert set(first["source_index"]) == set(range(len(data)))
    # Repeated texts at other rows get other variants: the generator is keyed by the row.
    assert first.filter(lambda r: r["source_index"] == 0)["text"] != first.filter(lambda r: r["source_index"] == 4)["text"]


@pytest.mark.parametrize("probability", [0.15, 0.5])
def test_replaces_the_requested_fraction_of_words(tokenizer, neighbours, probability):
    words = single_piece_words(tokenizer, neighbours, 400)
    # 40 words per text: a variant with no replacement at all (dropped as a duplicate of the original) is then rare
    # enough (0.85^40) not to bias the measured fraction.
    texts = [" ".join(words[i:i + 40]) for i in range(0, 400, 40)]
    augmenter = WordAugmenter(tokenizer, neighbours, num_variants=8, probability=probability, seed=0)
    variants = augmenter.augment(texts)
    changed = total = 0
    for text, kept in zip(texts, variants):
        original = tokenizer(text)["input_ids"]
        for (variant,) in kept:
            ids = tokenizer(variant)["input_ids"]
            assert len(ids) == len(original)  # single-piece words are replaced by single tokens
            changed += sum(a != b for a, b in zip(ids, original))
            total += len(original) - 2
    assert changed / total == pytest.approx(probability, abs=0.04)
    assert augmenter.stats.replaced_fraction == pytest.approx(probability, abs=0.03)


def test_never_changes_special_tokens_stop_words_or_punctuation_and_gives_valid_ids(tokenizer, neighbours):
    augmenter = WordAugmenter(tokenizer, neighbours, num_variants=6, probability=1.0, seed=0)
    special = set(tokenizer.all_special_ids)
    special_tokens = set(tokenizer.all_special_tokens)

    def words_of(ids):
        tokens = tokenizer.convert_ids_to_tokens(ids)
        return [(tokens[w.start:w.end], w.replaceable) for w in split_words(tokens, special_tokens)]

    for text, kept in zip(REVIEWS, augmenter.augment(REVIEWS)):
        original = tokenizer(text)["input_ids"]
        assert kept, text
        for (variant,) in kept:
            ids = tokenizer(variant)["input_ids"]
            assert all(0 <= i < len(tokenizer) for i in ids)
            assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
            assert [i for i in ids if i in special] == [i for i in original if i in special]  # e.g. [UNK] kept
            before, after = words_of(original), words_of(ids)
            assert len(before) == len(after)  # a word is replaced by exactly one whole word
            for (old, replaceable), (new, _) in zip(before, after):
                if replaceable:
                    assert old != new and len(new) == 1  # p = 1: every replaceable word, by one token
                else:
                    assert old == new  # stop words, punctuation, special tokens


def test_sentence_pairs_augment_each_side_and_stay_aligned(tokenizer, neighbours):
    from datasets import Dataset

    words = single_piece_words(tokenizer, neighbours, 80, seed=1)
    first = [" ".join(words[i:i + 5]) for i in range(0, 40, 5)]
    second = [" ".join(words[i:i + 5]) for i in range(40, 80, 5)]
    data = Dataset.from_dict({"text": first, "text_pair": second, "label": [0] * 8})
    augmented = augment_dataset(data, WordAugmenter(tokenizer, neighbours, num_variants=4, probability=0.5, seed=0))
    assert augmented.column_names == ["text", "text_pair", "label", "source_index", "variant"]
    sides_changed = [0, 0]
    for row in augmented:
        for side, (original, variant) in enumerate(((first, row["text"]), (second, row["text_pair"]))):
            a = tokenizer(original[row["source_index"]], add_special_tokens=False)["input_ids"]
            b = tokenizer(variant, add_special_tokens=False)["input_ids"]
            assert len(a) == len(b)  # each side keeps its own words' positions
            sides_changed[side] += sum(x != y for x, y in zip(a, b))
        pair = tokenizer(row["text"], row["text_pair"])
        assert pair["input_ids"].count(tokenizer.sep_token_id) == 2 and set(pair["token_type_ids"]) == {0, 1}
    assert all(n > 0 for n in sides_changed)


def test_bad_settings_are_clear_errors(tokenizer, neighbours):
    with pytest.raises(BertliteError, match="probability"):
        WordAugmenter(tokenizer, neighbours, probability=0.0)
    with pytest.raises(BertliteError, match="num_variants"):
        WordAugmenter(tokenizer, neighbours, num_variants=0)


# ----- the command and its consumer ---------------------------------------------------------------------------------
def test_augment_command_writes_a_dataset_that_distillation_adds_to_training(tmp_path, tokenizer, capsys):
    out = tmp_path / "aug"
    argv = ["augment", "--output_dir", str(out), "--max_examples", "24", "--num_variants", "3", "--seed", "3"]
    assert main(argv) == 0
    assert "examples/s" in capsys.readouterr().out
    data, record = load_augmented(str(out))
    assert record["examples"] == 24 and record["augmented_examples"] == len(data) and 24 < len(data) <= 72
    assert record["seed"] == 3 and record["num_variants"] == 3 and record["examples_per_second"] > 0
    assert json.loads((out / RECORD_FILE).read_text()) == record
    assert main(argv) == 1 and "--overwrite" in capsys.readouterr().err  # never silently replaced

    from bertlite.data import load_task, tokenize

    dsd, _ = load_task("rotten_tomatoes", max_train_examples=10)
    train = tokenize(dsd, tokenizer, 64)["train"]
    combined, summary = with_augmented(train, str(out), tokenizer, max_length=64, task="rotten_tomatoes",
                                       max_train_examples=10, log=lambda *_: None)
    only_kept = data.filter(lambda r: r["source_index"] < 10)  # variants of examples outside the run are left out
    assert len(combined) == 10 + len(only_kept) and summary["augmented_examples"] == len(only_kept)
    assert combined.column_names == train.column_names
    assert combined["label"][:10] == train["label"] and set(combined["label"][10:]) == {UNLABELLED}
    assert combined["input_ids"][10] == tokenizer(only_kept["text"][0], truncation=True, max_length=64)["input_ids"]


def test_distill_rejects_a_missing_augmented_folder_before_any_work(tmp_path, capsys):
    assert main(["distill", "--augmented", str(tmp_path / "nope"), "--output_dir", str(tmp_path / "o")]) == 1
    assert "bertlite augment" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_augment_command_with_a_masked_lm(tmp_path, tokenizer, neighbours, capsys):
    """--mlm: single-piece words get the MLM's in-context candidates, words of several pieces embedding neighbours."""
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(0)
    mlm = BertForMaskedLM(BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                     intermediate_size=64, max_position_embeddings=64))
    mlm.save_pretrained(tmp_path / "mlm")
    tokenizer.save_pretrained(tmp_path / "mlm")
    candidates = MaskedLMCandidates(mlm, tokenizer, neighbours.allowed, top_k=15)
    augmenter = WordAugmenter(tokenizer, neighbours, candidates, num_variants=3, probability=1.0, seed=0)
    text = "the soundtrack is unbelievably loud"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    sides = augmenter._prepare([text])
    by_span = dict(zip(sides[0].spans, sides[0].candidates))
    soundtrack = ids.index(tokenizer.convert_tokens_to_ids("soundtrack"))
    assert np.array_equal(by_span[(soundtrack, soundtrack + 1)], candidates.candidates([(ids, soundtrack)])[0])
    multi = next(span for span in by_span if span[1] - span[0] > 1)  # "unbelievably"
    assert np.array_equal(by_span[multi], neighbours.candidates([tuple(ids[multi[0]:multi[1]])])[0])

    out = tmp_path / "aug"
    assert main(["augment", "--mlm", str(tmp_path / "mlm"), "--output_dir", str(out), "--max_examples", "8",
                 "--num_variants", "2", "--batch_size", "16"]) == 0
    assert "masked LM" in capsys.readouterr().out
    data, record = load_augmented(str(out))
    assert record["mlm"] == str(tmp_path / "mlm") and len(data) > 8

    other = copy.deepcopy(tokenizer)  # an MLM whose vocabulary has one more token than the teacher's
    other.add_tokens(["zzzunseenword"])
    other.save_pretrained(tmp_path / "other")
    mlm.save_pretrained(tmp_path / "other")
    assert main(["augment", "--mlm", str(tmp_path / "other"), "--output_dir", str(tmp_path / "x"), "--max_examples", "4"]) == 1
    assert "another vocabulary" in capsys.readouterr().err
