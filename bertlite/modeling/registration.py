"""Registering `model_type: "bertlite"` with transformers' Auto classes (called when bertlite.modeling is imported)."""

from __future__ import annotations

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForMaskedLM,
    AutoModelForMultipleChoice,
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
)

from .configuration_bertlite import BertliteConfig
from .modeling_bertlite import (
    BertliteForMaskedLM,
    BertliteForMultipleChoice,
    BertliteForQuestionAnswering,
    BertliteForSequenceClassification,
    BertliteForTokenClassification,
    BertliteModel,
)

AUTO_CLASSES = {
    AutoModel: BertliteModel,
    AutoModelForSequenceClassification: BertliteForSequenceClassification,
    AutoModelForTokenClassification: BertliteForTokenClassification,
    AutoModelForQuestionAnswering: BertliteForQuestionAnswering,
    AutoModelForMaskedLM: BertliteForMaskedLM,
    AutoModelForMultipleChoice: BertliteForMultipleChoice,
}


def register_auto_classes() -> None:
    """After this, `AutoModel*.from_pretrained(folder)` builds Bertlite models for bertlite folders. Marking the
    classes `register_for_auto_class` makes `save_pretrained` copy configuration_bertlite.py and modeling_bertlite.py
    into every saved folder, which is what lets `trust_remote_code=True` load it without bertlite."""
    AutoConfig.register(BertliteConfig.model_type, BertliteConfig, exist_ok=True)
    BertliteConfig.register_for_auto_class("AutoConfig")
    for auto_class, model_class in AUTO_CLASSES.items():
        auto_class.register(BertliteConfig, model_class, exist_ok=True)
        model_class.register_for_auto_class(auto_class.__name__)

