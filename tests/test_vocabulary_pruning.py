"""Vocabulary pruning: tiny BERTs over the packaged MiniLM tokenizer's real 30,522-token uncased vocabulary."""

import copy
import json
import os

import pytest
import torch

from bertlite import BertliteError
from bertlite.pruning.vocabulary import prune_vocabulary, prune_vocabulary_folder, pruned_token_share, unk_share

VOCAB = 30522
HIDDEN = 32
TRAIN = ["the movie was good", "a terrible film, really bad!", "I loved the actors and the story."]
KEPT_TEXTS = ["the story was really good!", "a bad film and terrible actors"]  # only tokens of TRAIN


@pytest.fixture(scope="module")
def tokenizer():
    from bertlite.loading import load_tokenizer

    return load_tokenizer("minilm")


def small_bert(cls_name="BertForSequenceClassification", seed=0):
    import transformers
    from transformers import BertConfig

    config = BertConfig(vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=64, num_labels=2)
    torch.manual_seed(seed)
    return getattr(transformers, cls_name)(config).eval()


def pruned_copy(tokenizer, **kwargs):
    original = small_bert()
    model, new_tokenizer, report = prune_vocabulary(copy.deepcopy(original), tokenizer, TRAIN, **kwargs)
    return original, model, new_tokenizer, report


@torch.no_grad()
def logits(model, tokenizer, texts):
    return model(**tokenizer(texts, padding=True, return_tensors="pt")).logits


def test_kept_tokens_keep_their_order_and_the_logits(tokenizer):
    original, model, small, report = pruned_copy(tokenizer)
    train_ids = {i for ids in tokenizer(TRAIN, add_special_tokens=False)["input_ids"] for i in ids}
    kept_old_ids = tokenizer.convert_tokens_to_ids(small.convert_ids_to_tokens(list(range(len(small)))))
    assert kept_old_ids == sorted(train_ids | set(tokenizer.all_special_ids))  # original order, specials included
    assert report.kept_size == len(small) == model.config.vocab_size == model.get_input_embeddings().num_embeddings
    assert report.from_texts == len(train_ids) and report.original_size == VOCAB
    assert model.config.pad_token_id == small.pad_token_id == 0
    # the same tokens, renumbered; and the same logits
    old_ids = tokenizer(KEPT_TEXTS)["input_ids"]
    new_ids = small(KEPT_TEXTS)["input_ids"]
    assert [[kept_old_ids[i] for i in ids] for ids in new_ids] == old_ids
    torch.testing.assert_close(logits(model, small, KEPT_TEXTS), logits(original, tokenizer, KEPT_TEXTS),
                               atol=1e-5, rtol=0)


def test_a_removed_token_becomes_unk(tokenizer):
    original, model, small, _ = pruned_copy(tokenizer)
    text = "the zebra was good"
    old_ids = tokenizer(text)["input_ids"]
    zebra = tokenizer.convert_tokens_to_ids("zebra")
    assert zebra in old_ids
    new_ids = small(text)["input_ids"]
    assert small.convert_ids_to_tokens(new_ids) == ["[CLS]", "the", "[UNK]", "was", "good", "[SEP]"]
    with_unk = torch.tensor([[tokenizer.unk_token_id if i == zebra else i for i in old_ids]])
    with torch.no_grad():
        expected = original(input_ids=with_unk).logits
        got = model(input_ids=torch.tensor([new_ids])).logits
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    assert unk_share(tokenizer, small, [text]) == pytest.approx(1 / 4)
    assert unk_share(tokenizer, small, KEPT_TEXTS) == 0.0
    assert pruned_token_share(tokenizer, small, [text]) == pytest.approx(1 / 4)


def test_a_word_that_lost_its_token_is_re_split_from_kept_pieces(tokenizer):
    _, model, small, _ = pruned_copy(tokenizer, extra_texts=["zebras"])  # keeps "zebra" and "##s", not "movies"
    assert tokenizer.tokenize("good movies") == ["good", "movies"]
    assert small.tokenize("good movies") == ["good", "movie", "##s"]
    assert unk_share(tokenizer, small, ["good movies"]) == 0.0
    assert pruned_token_share(tokenizer, small, ["good movies"]) == pytest.approx(1 / 2)


def test_min_count_keep_tokens_and_extra_texts(tokenizer):
    _, _, small, report = pruned_copy(tokenizer, min_count=2, keep_tokens=["zebra"], extra_texts=["a good film"])
    vocab = small.get_vocab()
    assert "the" in vocab and "film" in vocab and "good" in vocab  # seen twice (with the extra text)
    assert "movie" not in vocab and "story" not in vocab  # seen once
    assert "zebra" in vocab and "[MASK]" in vocab
    assert report.min_count == 2
    with pytest.raises(BertliteError, match="keep_tokens"):
        prune_vocabulary(small_bert(), tokenizer, TRAIN, keep_tokens=["not-a-real-token-xyz"])


def test_tied_mlm_decoder_is_pruned_with_its_bias(tokenizer, tmp_path):
    from transformers import AutoModelForMaskedLM

    original = small_bert("BertForMaskedLM")
    with torch.no_grad():
        original.cls.predictions.bias.normal_()  # a non-zero bias, so that a wrong row would show
    model, small, _ = prune_vocabulary(copy.deepcopy(original), tokenizer, TRAIN)
    decoder = model.get_output_embeddings()
    assert decoder.weight is model.get_input_embeddings().weight and decoder.out_features == len(small)
    kept = tokenizer.convert_tokens_to_ids(small.convert_ids_to_tokens(list(range(len(small)))))
    expected = logits(original, tokenizer, KEPT_TEXTS)[..., kept]
    torch.testing.assert_close(logits(model, small, KEPT_TEXTS), expected, atol=1e-5, rtol=0)
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForMaskedLM.from_pretrained(tmp_path).eval()
    assert reloaded.get_output_embeddings().weight is reloaded.get_input_embeddings().weight
    torch.testing.assert_close(logits(reloaded, small, KEPT_TEXTS), expected, atol=1e-5, rtol=0)


def test_bad_input_is_refused(tokenizer, tmp_path):
    from bertlite import quantize_model

    with pytest.raises(BertliteError, match="list of texts"):
        prune_vocabulary(small_bert(), tokenizer, "the movie was good")
    with pytest.raises(BertliteError, match="No texts"):
        prune_vocabulary(small_bert(), tokenizer, [])
    with pytest.raises(BertliteError, match="int8"):
        prune_vocabulary(quantize_model(small_bert()), tokenizer, TRAIN)
    odd = small_bert()
    odd.register_buffer("token_prior", torch.zeros(VOCAB))  # sized by the vocabulary, unknown to the pruner
    with pytest.raises(BertliteError, match="token_prior"):
        prune_vocabulary(odd, tokenizer, TRAIN)
    assert odd.get_input_embeddings().num_embeddings == VOCAB  # refused before any change
    model = small_bert()
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    with pytest.raises(BertliteError, match="must differ"):
        prune_vocabulary_folder(str(tmp_path), str(tmp_path), TRAIN)


@pytest.fixture
def pruned_folder(tokenizer, tmp_path):
    original = small_bert()
    source, target = tmp_path / "fp32", tmp_path / "vocab"
    original.save_pretrained(source)
    tokenizer.save_pretrained(source)
    out, report = prune_vocabulary_folder(str(source), str(target), TRAIN, texts_source="unit-test train",
                                          test_texts=["the zebra was good"])
    return original, source, target, report


def assert_tokenizer_files_agree(folder, small):
    """tokenizer.json read by the tokenizers library alone (no Transformers rebuilding [CLS]/[SEP] for us), and
    vocab.txt alone, give the ids the loaded tokenizer gives."""
    import shutil

    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    texts = KEPT_TEXTS + ["the zebra was good"]
    expected = small(texts)["input_ids"]
    raw = Tokenizer.from_file(str(folder / "tokenizer.json"))
    state = json.loads((folder / "tokenizer.json").read_text())
    if state.get("padding"):
        assert state["padding"]["pad_id"] == small.pad_token_id
    raw.no_padding()
    raw.no_truncation()
    assert [e.ids for e in raw.encode_batch(texts)] == expected
    assert {t["content"]: t["id"] for t in state["added_tokens"]} == {
        t: small.convert_tokens_to_ids(t) for t in ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]}
    vocab_only = folder.parent / "vocab-only"
    vocab_only.mkdir()
    for name in ("vocab.txt", "tokenizer_config.json"):
        shutil.copy(folder / name, vocab_only / name)
    assert AutoTokenizer.from_pretrained(vocab_only)(texts)["input_ids"] == expected
    shutil.rmtree(vocab_only)


def test_folder_reloads_with_plain_transformers(tokenizer, pruned_folder):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    original, source, target, report = pruned_folder
    assert report.unk_share == pytest.approx(0.25) and report.pruned_token_share == pytest.approx(0.25)
    model = AutoModelForSequenceClassification.from_pretrained(target).eval()
    small = AutoTokenizer.from_pretrained(target)
    assert model.dtype == torch.float32 and len(small) == report.kept_size == model.config.vocab_size
    torch.testing.assert_close(logits(model, small, KEPT_TEXTS), logits(original, tokenizer, KEPT_TEXTS),
                               atol=1e-5, rtol=0)
    with open(target / "vocab.txt", encoding="utf-8") as f:
        assert [line.rstrip("\n") for line in f] == small.convert_ids_to_tokens(list(range(len(small))))
    assert_tokenizer_files_agree(target, small)
    # the table shrank by the removed rows (fp32), nothing else changed size beyond the file header
    removed = (VOCAB - report.kept_size) * HIDDEN * 4
    shrink = os.path.getsize(source / "model.safetensors") - os.path.getsize(target / "model.safetensors")
    assert abs(shrink - removed) < 2048
    record = json.loads((target / "compression_config.json").read_text())
    step = record["steps"][-1]
    assert step["method"] == "vocabulary_pruning"
    assert step["params"]["kept_vocab_size"] == report.kept_size and step["params"]["original_vocab_size"] == VOCAB
    assert step["params"]["texts"] == "unit-test train" and step["params"]["unk_share_test"] == pytest.approx(0.25)
    assert [p.name for p in target.parent.iterdir() if p.name.startswith(".")] == []  # no scratch folder left


def test_rerun_replaces_the_folder(tokenizer, pruned_folder):
    from transformers import AutoTokenizer

    _, source, target, first = pruned_folder
    _, second = prune_vocabulary_folder(str(source), str(target), TRAIN + ["zebra"], texts_source="more")
    assert second.kept_size == first.kept_size + 1
    assert "zebra" in AutoTokenizer.from_pretrained(target).get_vocab()
    assert sorted(p.name for p in target.parent.iterdir()) == ["fp32", "vocab"]


def test_int8_of_the_pruned_folder_reloads_with_load_compressed(pruned_folder):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from bertlite import CompressionConfig, load_compressed, quantize_model
    from bertlite.quantization.serialization import save_quantized

    _, _, target, report = pruned_folder
    small = AutoTokenizer.from_pretrained(target)
    int8 = quantize_model(AutoModelForSequenceClassification.from_pretrained(target).eval(), quantize_embeddings=True)
    before = logits(int8, small, KEPT_TEXTS + ["the zebra was good"])
    out = target.parent / "int8"
    save_quantized(int8, str(out))
    small.save_pretrained(out)
    history = CompressionConfig.load_or_new(str(target))
    history.add_step("quantization", backend=int8.bertlite_quantization.config.backend)
    history.save_pretrained(str(out))
    reloaded, reloaded_tokenizer = load_compressed(str(out), return_tokenizer=True)
    assert reloaded.compression_config.methods[-2:] == ["vocabulary_pruning", "quantization"]
    assert len(reloaded_tokenizer) == report.kept_size
    torch.testing.assert_close(logits(reloaded, reloaded_tokenizer, KEPT_TEXTS + ["the zebra was good"]), before,
                               atol=1e-6, rtol=0)


def test_pipeline_runs_on_the_pruned_model(tokenizer):
    import transformers

    original, model, small, _ = pruned_copy(tokenizer)
    pruned_pipe = transformers.pipeline("text-classification", model=model, tokenizer=small, device="cpu")
    original_pipe = transformers.pipeline("text-classification", model=original, tokenizer=tokenizer, device="cpu")
    got, expected = pruned_pipe(KEPT_TEXTS, top_k=None), original_pipe(KEPT_TEXTS, top_k=None)
    for g, e in zip(got, expected):
        assert [x["label"] for x in g] == [x["label"] for x in e]
        assert [x["score"] for x in g] == pytest.approx([x["score"] for x in e], abs=1e-5)


def test_rewritten_tokenizer_json_is_consistent_on_its_own(tokenizer):
    """The tokenizer.json state as written, read by the tokenizers library alone (as Transformers 4 or another
    runtime would): [CLS]/[SEP] from the post-processor, [PAD] from the padding settings, added-token ids."""
    from tokenizers import Tokenizer

    from bertlite.loading import packaged_minilm_path
    from bertlite.pruning.vocabulary import pruned_tokenizer_state

    _, _, small, _ = pruned_copy(tokenizer)
    kept = tokenizer.convert_tokens_to_ids(small.convert_ids_to_tokens(list(range(len(small)))))
    packaged = json.loads((packaged_minilm_path() / "tokenizer.json").read_text())  # with its padding settings
    state = pruned_tokenizer_state(packaged, kept)
    raw = Tokenizer.from_str(json.dumps(state))
    raw.enable_padding(pad_id=state["padding"]["pad_id"], pad_token="[PAD]", length=16)
    raw.no_truncation()
    expected = small(KEPT_TEXTS, padding="max_length", max_length=16)["input_ids"]
    assert [e.ids for e in raw.encode_batch(KEPT_TEXTS)] == expected
    assert state["padding"]["pad_id"] == small.pad_token_id
    assert {t["content"]: t["id"] for t in state["added_tokens"]} == {
        t: small.convert_tokens_to_ids(t) for t in ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]}


def test_structured_then_vocabulary_then_int8_chain_serves_in_a_pipeline(tokenizer, tmp_path):
    """The compress order: heads/FFN pruned (model_type "bertlite"), vocabulary pruned, quantized by
    `quantize_folder`, loaded back by `load_compressed` and served by a Transformers pipeline."""
    import transformers

    from bertlite import CompressionConfig, load_compressed, prune_structured
    from bertlite.quantization.folder import quantize_folder

    structured = prune_structured(small_bert(), heads=0.5, ffn=0.5, criterion="magnitude", progress=False).model
    structured.save_pretrained(tmp_path / "structured")
    tokenizer.save_pretrained(tmp_path / "structured")
    CompressionConfig().save_pretrained(str(tmp_path / "structured"))
    vocab_dir, report = prune_vocabulary_folder(str(tmp_path / "structured"), str(tmp_path / "vocab"), TRAIN)
    fp32, small = load_compressed(vocab_dir, return_tokenizer=True)
    assert type(fp32).__name__ == "BertliteForSequenceClassification" and len(small) == report.kept_size
    torch.testing.assert_close(logits(fp32, small, KEPT_TEXTS), logits(structured, tokenizer, KEPT_TEXTS),
                               atol=1e-5, rtol=0)
    int8_dir, _ = quantize_folder(vocab_dir, str(tmp_path / "int8"), quantize_embeddings=True)
    int8, int8_tokenizer = load_compressed(int8_dir, return_tokenizer=True)
    assert int8.compression_config.methods[-2:] == ["vocabulary_pruning", "quantization"]
    pipe = transformers.pipeline("text-classification", model=int8, tokenizer=int8_tokenizer, device="cpu")
    scores = pipe(KEPT_TEXTS + ["the zebra was good"], top_k=None)
    expected = logits(int8, int8_tokenizer, KEPT_TEXTS + ["the zebra was good"]).softmax(-1)
    for got, probs in zip(scores, expected):
        assert {x["label"]: x["score"] for x in got} == pytest.approx(
            {int8.config.id2label[i]: float(p) for i, p in enumerate(probs)}, abs=1e-5)


def test_added_tokens_are_kept_after_the_wordpiece_vocabulary(tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from bertlite.loading import load_tokenizer

    extended = load_tokenizer("minilm")
    extended.add_tokens(["<movie_title>"])
    extended.add_special_tokens({"additional_special_tokens": ["[ENT]"]})
    original = small_bert()
    original.resize_token_embeddings(len(extended), mean_resizing=False)
    original.save_pretrained(tmp_path / "fp32")
    extended.save_pretrained(tmp_path / "fp32")
    _, report = prune_vocabulary_folder(str(tmp_path / "fp32"), str(tmp_path / "vocab"), TRAIN)
    small = AutoTokenizer.from_pretrained(tmp_path / "vocab")
    assert small.convert_tokens_to_ids(["<movie_title>", "[ENT]"]) == [report.kept_size - 2, report.kept_size - 1]
    text = ["[ENT] the <movie_title> was good"]
    assert small.convert_ids_to_tokens(small(text)["input_ids"][0]) == extended.convert_ids_to_tokens(
        extended(text)["input_ids"][0])
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "vocab").eval()
    torch.testing.assert_close(logits(model, small, text), logits(original, extended, text), atol=1e-5, rtol=0)
