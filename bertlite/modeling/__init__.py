"""The `bertlite` model type: BERT whose layers each keep their own number of attention heads and FFN neurons
(what structured pruning leaves). Shared by pruning (which builds these models), quantization and the loaders
(which rebuild them).

Importing this package registers the type with transformers' Auto classes, the plain way (`AutoConfig.register`,
`AutoModel....register`), so `AutoModelForSequenceClassification.from_pretrained(pruned_folder)` works afterwards.
`save_pretrained` also copies configuration_bertlite.py and modeling_bertlite.py into every saved folder, so
`trust_remote_code=True` loads a pruned folder without bertlite installed. `import bertlite` alone does not import
this package (it would import torch): bertlite's loaders do, and so can a user (`import bertlite.modeling`).
"""

from .configuration_bertlite import BertliteConfig
from .modeling_bertlite import (
    BertliteForMaskedLM,
    BertliteForMultipleChoice,
    BertliteForQuestionAnswering,
    BertliteForSequenceClassification,
    BertliteForTokenClassification,
    BertliteModel,
)
from .registration import AUTO_CLASSES, register_auto_classes

register_auto_classes()


def register() -> None:
    """Idempotent: the import above already registered; kept as the explicit call for callers that want one."""
    register_auto_classes()


__all__ = ["AUTO_CLASSES", "BertliteConfig", "BertliteForMaskedLM", "BertliteForMultipleChoice", "BertliteForQuestionAnswering",
           "BertliteForSequenceClassification", "BertliteForTokenClassification", "BertliteModel", "register"]
