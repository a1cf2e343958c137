"""`BertliteConfig`: a BERT configuration in which every layer has its own number of attention heads and FFN width.

Structured pruning removes different heads and neurons in different layers, which a plain `BertConfig` cannot
describe. This config keeps BERT's fields (with `num_attention_heads` and `intermediate_size` still holding the
sizes of the unpruned model) and adds the per-layer sizes.

This file is self-contained on purpose (it imports only from transformers): it is copied next to the weights of
every saved bertlite model, so that `trust_remote_code=True` loads the model where bertlite is not installed.
"""

from transformers import BertConfig

# Which class each Auto class should build for a bertlite folder loaded with trust_remote_code=True. Written into
# config.json so that every Auto class works, not only the one the model happened to be saved with.
BERTLITE_AUTO_MAP = {
    "AutoConfig": "configuration_bertlite.BertliteConfig",
    "AutoModel": "modeling_bertlite.BertliteModel",
    "AutoModelForSequenceClassification": "modeling_bertlite.BertliteForSequenceClassification",
    "AutoModelForTokenClassification": "modeling_bertlite.BertliteForTokenClassification",
    "AutoModelForQuestionAnswering": "modeling_bertlite.BertliteForQuestionAnswering",
    "AutoModelForMaskedLM": "modeling_bertlite.BertliteForMaskedLM",
    "AutoModelForMultipleChoice": "modeling_bertlite.BertliteForMultipleChoice",
}


class BertliteConfig(BertConfig):
    r"""
    BERT configuration with per-layer attention heads and FFN sizes (the result of structured pruning).

    Args (in addition to `BertConfig`'s):
        layer_num_attention_heads (`list[int]`, *optional*):
            Attention heads kept in each layer (0 removes the layer's attention block). Defaults to
            `num_attention_heads` for every layer.
        layer_intermediate_sizes (`list[int]`, *optional*):
            FFN width of each layer (0 removes the layer's FFN block). Defaults to `intermediate_size` for every layer.
        attention_head_size (`int`, *optional*):
            Width of one attention head. Pruning removes whole heads, so it stays that of the unpruned model;
            defaults to `hidden_size // num_attention_heads`.
    """

    model_type = "bertlite"

    layer_num_attention_heads: list[int] | None = None
    layer_intermediate_sizes: list[int] | None = None
    attention_head_size: int | None = None

    def __post_init__(self, **kwargs):
        if self.attention_head_size is None:
            self.attention_head_size = self.hidden_size // self.num_attention_heads
        if self.layer_num_attention_heads is None:
            self.layer_num_attention_heads = [self.num_attention_heads] * self.num_hidden_layers
        if self.layer_intermediate_sizes is None:
            self.layer_intermediate_sizes = [self.intermediate_size] * self.num_hidden_layers
        self.layer_num_attention_heads = [int(h) for h in self.layer_num_attention_heads]
        self.layer_intermediate_sizes = [int(n) for n in self.layer_intermediate_sizes]
        auto_map = kwargs.pop("auto_map", None)
        super().__post_init__(**kwargs)
        self.auto_map = {**BERTLITE_AUTO_MAP, **(auto_map or {})}
        self._check_layer_sizes()

    def _check_layer_sizes(self):
        layers = self.num_hidden_layers
        if len(self.layer_num_attention_heads) != layers or len(self.layer_intermediate_sizes) != layers:
            raise ValueError(
                f"layer_num_attention_heads ({len(self.layer_num_attention_heads)} entries) and layer_intermediate_sizes "
                f"({len(self.layer_intermediate_sizes)} entries) must both have num_hidden_layers={layers} entries."
            )
        if any(h < 0 for h in self.layer_num_attention_heads) or any(n < 0 for n in self.layer_intermediate_sizes):
            raise ValueError("Per-layer head counts and FFN sizes must be >= 0.")
        if self.attention_head_size <= 0:
            raise ValueError(f"attention_head_size must be > 0, got {self.attention_head_size}.")
        if self.is_decoder or self.add_cross_attention:
            raise ValueError("BertliteConfig describes encoders only (is_decoder and add_cross_attention must be False).")

    @property
    def total_attention_heads(self) -> int:
        return sum(self.layer_num_attention_heads)

    @property
    def total_intermediate_size(self) -> int:
        return sum(self.layer_intermediate_sizes)


__all__ = ["BertliteConfig", "BERTLITE_AUTO_MAP"]
