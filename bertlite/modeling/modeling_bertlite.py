"""Bertlite models: BERT in which every layer keeps its own number of attention heads and its own FFN width.

Built by transformers' own BERT constructors: `BertliteEncoder` builds BERT's encoder from the config and then gives
every layer its pruned sizes by swapping its Linear layers for narrower ones (`_resize_layer`). Everything else --
attention scaling, causality flags, layer indices, the attention backends (eager, SDPA, ...),
`output_attentions`/`output_hidden_states`, the task heads -- is BERT's own, so upstream changes flow in.

What pruning changes: a layer has fewer heads of the *same* width, so `heads * head_size != hidden_size`; the head
width comes from the config (that of the unpruned model) and the head count from the layer.

This file is self-contained on purpose (it imports only torch and transformers): it is copied next to the weights of
every saved bertlite model so that `trust_remote_code=True` can load it without bertlite installed.
"""

import warnings

from torch import nn
from transformers.models.bert.modeling_bert import (
    BertEmbeddings,
    BertEncoder,
    BertForMaskedLM,
    BertForMultipleChoice,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertLayer,
    BertModel,
    BertOnlyMLMHead,
    BertPooler,
    BertPreTrainedModel,
    BertSelfAttention,
)

from .configuration_bertlite import BertliteConfig


def _linear(in_features: int, out_features: int) -> nn.Linear:
    """nn.Linear that may have a zero dimension (a fully removed block) without torch's init warning."""
    if in_features * out_features:
        return nn.Linear(in_features, out_features)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Initializing zero-element tensors is a no-op")
        return nn.Linear(in_features, out_features)


class BertliteSelfAttention(BertSelfAttention):
    """BERT's self-attention (built by BERT's constructor); only a layer without heads needs its own forward."""

    def forward(self, hidden_states, attention_mask=None, cache=None, **kwargs):
        if self.num_attention_heads == 0:
            # A layer whose heads were all removed: the context has width 0, so the output projection adds only
            # its bias -- exactly what the unpruned layer computes with every head gated to 0.
            batch, length = hidden_states.shape[:2]
            return hidden_states.new_zeros(batch, length, 0), hidden_states.new_zeros(batch, 0, length, length)
        return super().forward(hidden_states, attention_mask=attention_mask, cache=cache, **kwargs)


def _resize_layer(layer: BertLayer, config: BertliteConfig, layer_idx: int) -> None:
    """Give a layer built by BERT's constructor the head count and FFN width that the config lists for `layer_idx`."""
    heads, ffn = config.layer_num_attention_heads[layer_idx], config.layer_intermediate_sizes[layer_idx]
    attention = BertliteSelfAttention(config, is_causal=layer.attention.self.is_causal, layer_idx=layer_idx)
    if attention.attention_head_size != config.attention_head_size:  # a head width set explicitly in the config
        attention.attention_head_size = config.attention_head_size
        attention.scaling = config.attention_head_size**-0.5
    attention.num_attention_heads = heads
    attention.all_head_size = width = heads * config.attention_head_size
    for name in ("query", "key", "value"):
        setattr(attention, name, _linear(config.hidden_size, width))
    layer.attention.self = attention
    layer.attention.output.dense = _linear(width, config.hidden_size)
    layer.intermediate.dense = _linear(config.hidden_size, ffn)
    layer.output.dense = _linear(ffn, config.hidden_size)


class BertliteEncoder(BertEncoder):
    """BERT's encoder with every layer resized to its pruned shape."""

    def __init__(self, config: BertliteConfig):
        super().__init__(config)
        for i, layer in enumerate(self.layer):
            _resize_layer(layer, config, i)


class BertlitePreTrainedModel(BertPreTrainedModel):
    config: BertliteConfig
    config_class = BertliteConfig
    base_model_prefix = "bert"
    _no_split_modules = ["BertEmbeddings", "BertLayer"]


# The task models below repeat their BERT parent's constructor with the backbone swapped for BertliteModel; forward,
# loss and weight tying are inherited unchanged.


class BertliteModel(BertlitePreTrainedModel, BertModel):
    def __init__(self, config: BertliteConfig, add_pooling_layer: bool = True):
        BertlitePreTrainedModel.__init__(self, config)
        self.config = config
        self.gradient_checkpointing = False
        self.embeddings = BertEmbeddings(config)
        self.encoder = BertliteEncoder(config)
        self.pooler = BertPooler(config) if add_pooling_layer else None
        self.post_init()


def _classifier_dropout(config: BertliteConfig) -> nn.Dropout:
    return nn.Dropout(config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob)


class BertliteForSequenceClassification(BertlitePreTrainedModel, BertForSequenceClassification):
    def __init__(self, config: BertliteConfig):
        BertlitePreTrainedModel.__init__(self, config)
        self.num_labels = config.num_labels
        self.config = config
        self.bert = BertliteModel(config)
        self.dropout = _classifier_dropout(config)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()


class BertliteForTokenClassification(BertlitePreTrainedModel, BertForTokenClassification):
    def __init__(self, config: BertliteConfig):
        BertlitePreTrainedModel.__init__(self, config)
        self.num_labels = config.num_labels
        self.bert = BertliteModel(config, add_pooling_layer=False)
        self.dropout = _classifier_dropout(config)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()


class BertliteForQuestionAnswering(BertlitePreTrainedModel, BertForQuestionAnswering):
    def __init__(self, config: BertliteConfig):
        BertlitePreTrainedModel.__init__(self, config)
        self.num_labels = config.num_labels
        self.bert = BertliteModel(config, add_pooling_layer=False)
        self.qa_outputs = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()


class BertliteForMultipleChoice(BertlitePreTrainedModel, BertForMultipleChoice):
    def __init__(self, config: BertliteConfig):
        BertlitePreTrainedModel.__init__(self, config)
        self.bert = BertliteModel(config)
        self.dropout = _classifier_dropout(config)
        self.classifier = nn.Linear(config.hidden_size, 1)
        self.post_init()


class BertliteForMaskedLM(BertlitePreTrainedModel, BertForMaskedLM):
    def __init__(self, config: BertliteConfig):
        BertlitePreTrainedModel.__init__(self, config)
        self.bert = BertliteModel(config, add_pooling_layer=False)
        self.cls = BertOnlyMLMHead(config)
        self.post_init()


__all__ = [
    "BertliteForMaskedLM",
    "BertliteForMultipleChoice",
    "BertliteForQuestionAnswering",
    "BertliteForSequenceClassification",
    "BertliteForTokenClassification",
    "BertliteModel",
    "BertlitePreTrainedModel",
]
