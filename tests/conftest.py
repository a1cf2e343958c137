import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach the Hub
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(min(2, os.cpu_count() or 1))


def tiny_config(**overrides):
    from transformers import BertConfig

    values = dict(vocab_size=120, hidden_size=32, num_hidden_layers=4, num_attention_heads=4, intermediate_size=64,
                  max_position_embeddings=64, num_labels=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    values.update(overrides)
    return BertConfig(**values)


def tiny_model(seed=0, **overrides):
    from transformers import BertForSequenceClassification

    torch.manual_seed(seed)
    return BertForSequenceClassification(tiny_config(**overrides)).eval()


@pytest.fixture
def tiny_teacher():
    return tiny_model(seed=0)


def tiny_dataset(n=32, seq_len=12, vocab=120, num_labels=2, seed=0):
    """Token-id examples for the trainer: label = whether token 5 appears, so there is something to learn."""
    from datasets import Dataset

    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(6, vocab, (n, seq_len), generator=g)
    ids[: n // 2, 3] = 5
    lengths = torch.randint(seq_len // 2, seq_len + 1, (n,), generator=g)
    rows = {"input_ids": [], "attention_mask": [], "labels": []}
    for i in range(n):
        k = int(lengths[i])
        rows["input_ids"].append([1] + ids[i, : k - 2].tolist() + [2])
        rows["attention_mask"].append([1] * k)
        rows["labels"].append(int(5 in ids[i, : k - 2].tolist()) % num_labels)
    return Dataset.from_dict(rows)


def save_tiny_classifier(folder, num_hidden_layers=2, seed=0):
    """Save a tiny 2-label BERT classifier with the packaged MiniLM tokenizer into `folder` (a model folder as
    commands read and write them: safetensors, config.json, tokenizer files); returns the folder."""
    from transformers import BertConfig, BertForSequenceClassification

    from bertlite.loading import load_tokenizer

    tokenizer = load_tokenizer("minilm")
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=num_hidden_layers,
                        num_attention_heads=4, intermediate_size=64, max_position_embeddings=128, num_labels=2)
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
