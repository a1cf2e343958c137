"""Publishing compressed models on the Hugging Face Hub and loading them back.

    bertlite.hub.push_compressed("out/", "org/minilm-rt-distilled")   # weights, tokenizer, configs, model card
    model = bertlite.load_compressed("org/minilm-rt-distilled")       # right classes for each compression step

Importing this package is cheap: torch, transformers and huggingface_hub are imported when first used.
"""

from __future__ import annotations

from .formats import ModelFormat, register_format, registered_formats
from .load import download_compressed, load_compressed
from .methods import MethodNote, register_method
from .push import PushResult, push_compressed, push_if_requested

# The name other commands look for when they offer a push at the end of their run.
push_to_hub = push_compressed

__all__ = [
    "ModelCardCallback", "ModelFormat", "MethodNote", "PushResult", "build_model_card",
    "download_compressed", "load_compressed", "push_compressed", "push_if_requested", "push_to_hub",
    "register_format", "register_method", "registered_formats", "render_model_card",
]


def __getattr__(name):
    # ModelCardCallback subclasses transformers.TrainerCallback, and the card needs huggingface_hub: import lazily.
    if name == "ModelCardCallback":
        from .callback import ModelCardCallback

        return ModelCardCallback
    if name in ("build_model_card", "render_model_card"):
        from . import card

        return getattr(card, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
