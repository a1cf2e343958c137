"""`compression_config.json`: the record of how a model was compressed. It travels with the weights.

Every bertlite command that changes a model appends one step (method + parameters) and may add metrics, so a
folder that went through distill -> prune -> quantize carries its whole history, which the model card renders.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

from . import __version__
from .errors import BertliteError

CONFIG_NAME = "compression_config.json"


@dataclass
class CompressionStep:
    method: str  # "distillation", "structured_pruning", "weight_pruning", "quantization", ...
    params: dict = field(default_factory=dict)
    date: str = field(default_factory=lambda: datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    bertlite_version: str = __version__


@dataclass
class CompressionConfig:
    base_model: str | None = None  # the original (teacher) model, as a Hub id where there is one
    task: str | None = None
    dataset: str | None = None
    split_note: str | None = None
    steps: list[CompressionStep] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)  # e.g. {"teacher": {...}, "student": {...}}

    def add_step(self, method: str, **params) -> CompressionStep:
        step = CompressionStep(method=method, params=_jsonable(params))
        self.steps.append(step)
        return step

    @property
    def methods(self) -> list[str]:
        return [s.method for s in self.steps]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "CompressionConfig":
        values = dict(values)
        values["steps"] = [CompressionStep(**s) for s in values.get("steps", [])]
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in values.items() if k in known})

    def save_pretrained(self, folder: str) -> str:
        """Write the record atomically, secrets redacted: a record inherited from an older folder (prune or quantize
        of it) must not carry a token forward."""
        from .hub.metrics import write_json_redacted

        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, CONFIG_NAME)
        write_json_redacted(path, self.to_dict())
        return path

    @classmethod
    def from_pretrained(cls, folder: str) -> "CompressionConfig":
        path = os.path.join(folder, CONFIG_NAME)
        if not os.path.isfile(path):
            raise BertliteError(f"{folder!r} has no {CONFIG_NAME}: it was not made by bertlite.")
        from .hub.metrics import redact_secrets

        with open(path) as f:
            # Redacted on reading too: the card rendered from a record an older bertlite wrote shows no secret.
            return cls.from_dict(redact_secrets(json.load(f)))

    @classmethod
    def load_or_new(cls, folder: str | None, **defaults) -> "CompressionConfig":
        """The folder's history when it has one (so steps accumulate), else a fresh record."""
        if folder and os.path.isfile(os.path.join(folder, CONFIG_NAME)):
            return cls.from_pretrained(folder)
        return cls(**defaults)


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
