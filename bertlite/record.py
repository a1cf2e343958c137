"""`compression_config.json`: the record of how a model was compressed. It travels with the weights.

Every bertlite command that changes a model appends one step (method + parameters) and may add metrics, so a
folder that went through distill -> prune -> quantize carries its whole history, which the model card renders.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

from .errors import BertliteError

# The package version, recorded in every step and card. Kept here (a leaf module) so that nothing imports it
# back through the package __init__.
VERSION = "0.1.0"
CONFIG_NAME = "compression_config.json"
METRICS_FILE = "metrics.json"  # what the command measured on the model in the folder (read by the model card)


# ----- secrets never leave this machine -----
REDACTED = "***"
# Hugging Face tokens wherever they appear (a command line, an environment value pasted into a setting...).
_HF_TOKEN = re.compile(r"(?<![A-Za-z0-9])hf_[A-Za-z0-9]+")
# An option or key is secret when one of its words ends with one of these: hub_token, api-key, password, apikey.
# Word by word, so that --max_tokens or --tokenizer keep their (harmless) values in the reproducible command.
_SECRET_WORD = re.compile(r"(token|password|passwd|secret|key)$", re.IGNORECASE)
_QUOTED_OR_WORD = r"'[^']*'|\"[^\"]*\"|\S+"
# `--name=value`, or `--name value` where the value does not itself look like an option.
_OPTION_VALUE = re.compile(r"(?<![\w-])(?P<opt>--?(?P<name>[A-Za-z][\w-]*))"
                           rf"(?:(?P<eq>=)(?P<v1>{_QUOTED_OR_WORD})|(?P<sp>\s+)(?P<v2>(?!-)(?:{_QUOTED_OR_WORD})))")
# `NAME=value` as in an environment assignment (`HF_TOKEN=... bertlite push`).
_ASSIGNMENT = re.compile(rf"(?<![\w.-])(?P<name>[A-Za-z_]\w*)=(?P<value>{_QUOTED_OR_WORD})")


def is_secret_name(name: str) -> bool:
    """Whether an option or JSON key names a secret (`--hub_token`, `api-key`, `PASSWORD`)."""
    return any(_SECRET_WORD.search(word) for word in re.split(r"[-_.\s]+", name.lstrip("-")) if word)


def _redact_text(text: str) -> str:
    def option(m: re.Match) -> str:
        if not is_secret_name(m["name"]):
            return m[0]
        return f"{m['opt']}={REDACTED}" if m["eq"] else f"{m['opt']}{m['sp']}{REDACTED}"

    def assignment(m: re.Match) -> str:
        return f"{m['name']}={REDACTED}" if is_secret_name(m["name"]) else m[0]

    return _HF_TOKEN.sub(REDACTED, _ASSIGNMENT.sub(assignment, _OPTION_VALUE.sub(option, text)))


def redact_secrets(value):
    """`value` with every secret replaced by "***": the values of secret options in command lines
    (`--hub_token X`, `--token=X`, `--api_key X`...), anything shaped like a Hugging Face token (`hf_...`), and the
    values of secret-named keys in dicts. Works on strings and on JSON-like records (dicts, lists), so every writer of
    a command line, an environment value, metrics.json or compression_config.json goes through this one function."""
    if isinstance(value, str):
        return _redact_text(value)
    if isinstance(value, dict):
        return {k: (REDACTED if isinstance(k, str) and is_secret_name(k) and v not in (None, "") else redact_secrets(v))
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_secrets(v) for v in value]
    return value


def write_text(path: str, content: str | bytes) -> str:
    """Write a file atomically: into a temporary file beside it, then renamed into place, so a reader (or a crash)
    sees the old file or the new one, never half of one."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content if isinstance(content, bytes) else content.encode("utf-8"))
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def write_json(path: str, value) -> str:
    """Write JSON atomically with every secret redacted: every record bertlite writes (metrics.json,
    compression_config.json, markers) goes through here."""
    return write_text(path, json.dumps(redact_secrets(value), indent=2))


def save_metrics(folder: str, metrics: dict) -> str:
    return write_json(os.path.join(folder, METRICS_FILE), metrics)


# Top-level metrics keys that describe one measuring run of the student (set aside with its figures).
RUN_KEYS = ("latency_setup", "speedup", "seeds", "command")


@dataclass
class CompressionStep:
    method: str  # "distillation", "structured_pruning", "weight_pruning", "quantization", ...
    params: dict = field(default_factory=dict)
    date: str = field(default_factory=lambda: datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    bertlite_version: str = VERSION


@dataclass
class CompressionConfig:
    base_model: str | None = None  # the original (teacher) model, as a Hub id where there is one
    task: str | None = None
    dataset: str | None = None
    split_note: str | None = None
    steps: list[CompressionStep] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)  # e.g. {"teacher": {...}, "student": {...}}

    def add_step(self, method: str, **params) -> CompressionStep:
        """Record a step. Every step changes the weights, so what was measured on the model before it (the
        "student" figures, and the latencies paired with them) is set aside under metrics["earlier"]: the model
        card then never shows another model's numbers as this one's. The command records its own measurements
        of the new model afterwards (`measured`)."""
        self._set_aside_measurements()
        step = CompressionStep(method=method, params=_jsonable(params))
        self.steps.append(step)
        return step

    def _set_aside_measurements(self) -> None:
        student = self.metrics.get("student") or self.metrics.get("compressed")
        if not student:
            return
        self.metrics.pop("compressed", None)
        teacher = self.metrics.get("teacher") or {}
        # Latencies are only comparable within one run: the teacher's go with the student's they were measured with.
        paired = {k: teacher.pop(k) for k in list(teacher) if k.startswith(("latency_ms", "speedup"))}
        entry = {"after_step": len(self.steps), "method": self.steps[-1].method if self.steps else None,
                 "student": self.metrics.pop("student"), "teacher": paired}
        for key in RUN_KEYS:
            if key in self.metrics:
                entry[key] = self.metrics.pop(key)
        self.metrics.setdefault("earlier", []).append(entry)

    def measured(self, **values) -> None:
        """Record figures measured on the model this step wrote (e.g. test_accuracy=0.81): the card's column."""
        self.metrics.setdefault("student", {}).update({k: v for k, v in values.items() if v is not None})

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
        return write_json(os.path.join(folder, CONFIG_NAME), self.to_dict())

    @classmethod
    def from_pretrained(cls, folder: str) -> "CompressionConfig":
        path = os.path.join(folder, CONFIG_NAME)
        if not os.path.isfile(path):
            raise BertliteError(f"{folder!r} has no {CONFIG_NAME}: it was not made by bertlite.")
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
