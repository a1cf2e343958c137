"""What a saved bertlite model folder holds: its files, config, compression record and weight shapes.

Push, load and the model card all look at a folder through `ModelFolder`, so "which files travel to the Hub" and
"what does this folder contain" are decided in one place. Reading weight shapes parses the safetensors header only
(no tensor is loaded), so a card for a large model costs milliseconds.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import struct
from dataclasses import dataclass, field
from functools import cached_property

from ..record import CONFIG_NAME as COMPRESSION_CONFIG_NAME
from ..record import CompressionConfig
from ..errors import BertliteError, check_path

CARD_NAME = "README.md"
# What a model folder holds, by name: only these travel to the Hub (anything else, say a credentials.json the user
# keeps beside the model, stays local unless `--include` names it). Top-level only: checkpoint-*/ and runs/ stay local.
UPLOAD_PATTERNS = (
    "*.safetensors", "*.safetensors.index.json",  # weights
    "config.json", "generation_config.json",
    # tokenizer files written by save_pretrained
    "tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "merges.txt", "special_tokens_map.json",
    "added_tokens.json", "spiece.model", "sentencepiece.bpe.model", "tokenizer.model", "chat_template.jinja",
    "compression_config.json", "metrics.json", "training_summary.json",  # bertlite's records
    "report.json", "report.md",  # a `bertlite benchmark` report the card embeds (its plot travels as an image it shows)
    CARD_NAME,
)
# Images travel when the card shows them (its text names the file).
IMAGE_PATTERNS = ("*.png", "*.jpg", "*.jpeg", "*.gif", "*.svg", "*.webp")
# What a download may fetch: the upload list, plus modeling code of models pushed by other tools (run only with
# trust_remote_code) and the files of older bertlite pushes.
DOWNLOAD_PATTERNS = (*UPLOAD_PATTERNS, "*.json", "*.txt", "*.model", "*.py")
# Pickle files execute code when loaded: bertlite never uploads or downloads them.
PICKLE_PATTERNS = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl", "*.pickle")
# Files that only a training run needs; harmless but useless to a model user.
LOCAL_ONLY_FILES = ("trainer_state.json", "training_args.json", "optimizer.json", "scheduler.json", "rng_state.json")
WEIGHT_PATTERNS = ("*.safetensors", "*.safetensors.index.json", *PICKLE_PATTERNS)

QUANTIZATION_BOOKKEEPING = ("scale", "scales", "zero_point", "zero_points")  # tensor name endings
_LAYER_QUERY = re.compile(r"(?:^|\.)layer\.(\d+)\.attention\.self\.query\.(?:weight|weight_int8|qweight)$")
_LAYER_FFN = re.compile(r"(?:^|\.)layer\.(\d+)\.intermediate\.dense\.(?:weight|weight_int8|qweight)$")


def matches(name: str, patterns) -> bool:
    return any(fnmatch.fnmatch(name, p) for p in patterns)


def read_safetensors_header(path: str) -> dict:
    """The JSON header of a .safetensors file: {tensor name: {"dtype", "shape", "data_offsets"}, "__metadata__"}."""
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) != 8:
            raise BertliteError(f"{path} is not a safetensors file (too short).")
        (length,) = struct.unpack("<Q", raw)
        if length > 100_000_000:
            raise BertliteError(f"{path} is not a safetensors file (header length {length}).")
        try:
            return json.loads(f.read(length))
        except json.JSONDecodeError as err:
            raise BertliteError(f"{path} is not a valid safetensors file: {err}") from err


@dataclass
class LayerShape:
    index: int
    heads: int | None
    head_dim: int | None
    ffn: int | None


@dataclass
class ModelFolder:
    path: str
    files: list[str] = field(default_factory=list)  # top-level regular files, sorted

    @classmethod
    def inspect(cls, path: str) -> "ModelFolder":
        path = check_path(path, "the model folder")
        if not os.path.isdir(path):
            raise BertliteError(f"The model folder {path!r} does not exist." if not os.path.exists(path) else f"{path!r} is not a folder.")
        from ..loading import check_complete

        check_complete(path)  # an interrupted write loads as nothing
        files = sorted(f for f in os.listdir(path) if os.path.isfile(os.path.join(path, f)))
        return cls(path=path, files=files)

    def has(self, name: str) -> bool:
        return name in self.files

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    def read_json(self, name: str) -> dict | None:
        if not self.has(name):
            return None
        try:
            with open(self.file(name)) as f:
                return json.load(f)
        except json.JSONDecodeError as err:
            raise BertliteError(f"{self.file(name)} is not valid JSON: {err}") from err

    @cached_property
    def config(self) -> dict:
        return self.read_json("config.json") or {}

    @cached_property
    def compression(self) -> CompressionConfig | None:
        return CompressionConfig.from_pretrained(self.path) if self.has(COMPRESSION_CONFIG_NAME) else None

    @property
    def made_by_bertlite(self) -> bool:
        return self.compression is not None

    @property
    def methods(self) -> list[str]:
        return self.compression.methods if self.compression else []

    @property
    def model_type(self) -> str | None:
        return self.config.get("model_type")

    @property
    def architecture(self) -> str | None:
        archs = self.config.get("architectures") or []
        return archs[0] if archs else None

    def require_bertlite(self, where: str | None = None) -> CompressionConfig:
        if self.compression is None:
            raise BertliteError(
                f"{where or self.path!r} was not made by bertlite: it has no {COMPRESSION_CONFIG_NAME}. "
                "Load a plain Transformers model with `AutoModel...from_pretrained`, or run a bertlite command "
                "(distill, prune, quantize) to produce a compressed model."
            )
        return self.compression

    # ----- weights -----
    @property
    def safetensors_files(self) -> list[str]:
        return [f for f in self.files if f.endswith(".safetensors")]

    @property
    def pickle_files(self) -> list[str]:
        return [f for f in self.files if matches(f, PICKLE_PATTERNS)]

    @cached_property
    def tensors(self) -> dict[str, dict]:
        """{name: {"dtype", "shape"}} over all safetensors files."""
        out = {}
        for name in self.safetensors_files:
            header = read_safetensors_header(self.file(name))
            out.update({k: v for k, v in header.items() if k != "__metadata__"})
        return out

    @property
    def num_parameters(self) -> int:
        """Weights counted once: an int8 weight's scales and zero points are not parameters of the model, so an int8
        folder has as many parameters as the fp32 model it came from."""
        total = 0
        for name, info in self.tensors.items():
            if name.rsplit(".", 1)[-1].endswith(QUANTIZATION_BOOKKEEPING):
                continue
            n = 1
            for d in info["shape"]:
                n *= d
            total += n
        return total

    @property
    def weight_dtypes(self) -> list[str]:
        return sorted({info["dtype"] for info in self.tensors.values()})

    @property
    def weights_size_mb(self) -> float:
        return sum(os.path.getsize(self.file(f)) for f in self.safetensors_files) / 1e6

    def layer_shapes(self) -> list[LayerShape]:
        """Per encoder layer: attention heads, head size and FFN width, read from the weight shapes.

        Pruned layers differ from each other, so the config's single `num_attention_heads` is not enough. The head
        size is the unpruned one (hidden_size / num_attention_heads) because pruning removes whole heads.
        """
        hidden, heads = self.config.get("hidden_size"), self.config.get("num_attention_heads")
        head_dim = self.config.get("attention_head_size") or (hidden // heads if hidden and heads else None)
        query, ffn = {}, {}
        for name, info in self.tensors.items():
            if m := _LAYER_QUERY.search(name):
                query[int(m.group(1))] = info["shape"][0]
            elif m := _LAYER_FFN.search(name):
                ffn[int(m.group(1))] = info["shape"][0]
        layers = []
        for i in sorted(set(query) | set(ffn)):
            width = query.get(i)
            layers.append(LayerShape(index=i, heads=(width // head_dim) if width is not None and head_dim else None,
                                     head_dim=head_dim, ffn=ffn.get(i)))
        if not layers and self.config.get("num_hidden_layers"):
            # Weights with other names (a format bertlite does not parse): fall back on the config.
            layers = [LayerShape(i, heads, head_dim, self.config.get("intermediate_size"))
                      for i in range(self.config["num_hidden_layers"])]
        return layers

    # ----- what travels -----
    @property
    def code_files(self) -> list[str]:
        """Modeling code the model itself names (config.json / tokenizer_config.json `auto_map`, e.g. a pruned model's
        modeling_bertlite.py): the only *.py files that travel."""
        names = []
        for config in (self.config, self.read_json("tokenizer_config.json") or {}):
            auto_map = config.get("auto_map") or {}
            for ref in auto_map.values():
                for item in ref if isinstance(ref, (list, tuple)) else [ref]:
                    if isinstance(item, str) and "." in item:
                        names.append(item.split("--")[-1].rsplit(".", 1)[0] + ".py")
        return sorted({n for n in names if self.has(n)})

    def upload_plan(self, extra_patterns=(), *, include=(), card_text: str = "") -> tuple[list[str], list[str]]:
        """(files to upload, files left local). Uploads what a model folder holds (UPLOAD_PATTERNS, the formats'
        `extra_patterns`, the model's own code, images the card shows) and what the user named in `include`; never
        pickles or training state. Refuses a folder whose only weights are pickles."""
        if not self.safetensors_files:
            if self.pickle_files:
                raise BertliteError(
                    f"{self.path!r} holds only pickle weights ({', '.join(self.pickle_files)}), which run code when "
                    "loaded; bertlite uploads safetensors only. Re-save the model with "
                    "`model.save_pretrained(folder)` (safetensors is the default) and push again."
                )
            raise BertliteError(f"{self.path!r} holds no weights (*.safetensors).")
        known = (*UPLOAD_PATTERNS, *extra_patterns, *self.code_files)
        upload, local = [], []
        for name in self.files:
            wanted = (matches(name, known) or matches(name, include)
                      or (matches(name, IMAGE_PATTERNS) and name in card_text))
            keep = wanted and not matches(name, PICKLE_PATTERNS) and name not in LOCAL_ONLY_FILES
            (upload if keep else local).append(name)
        return upload, local
