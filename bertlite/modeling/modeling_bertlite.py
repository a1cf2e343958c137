"""Bertlite models: BERT in which every layer keeps its own number of attention heads and its own FFN width.

Built from transformers' BERT modules. Only the constructors differ (they take per-layer sizes from
`BertliteConfig`); every forward pass is BERT's own, so the attention backends (eager, SDPA, ...),
`output_attentions`/`output_hidden_states` and the task heads behave exactly as in BERT.

Why the attention classes need their own constructors: `BertSelfAttention` derives the head size as
`hidden_size / num_attention_heads`. After pruning, a layer has fewer heads of the *same* width, so
`heads * head_size != hidden_size`; here the head size comes from the config and the head count from the layer.

This file is self-contained on purpose (it imports only torch and transformers): it is copied next to the weights of
every saved bertlite model so that `trust_remote_code=True` can load it without bertlite installed.
"""

import warnings

from torch import nn
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.models.bert.modeling_bert import (
    BertAttention,
    BertEmbeddings,
    BertEncoder,
    BertForMaskedLM,
    BertForMultipleChoice,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertIntermediate,
    BertLayer,
    BertModel,
    BertOnlyMLMHead,
    BertOutput,
    BertPooler,
    BertPreTrainedModel,
    BertSelfAttention,
    BertSelfOutput,
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
    """BERT self-attention with `num_heads` heads of `config.attention_head_size` each; 0 heads is allowed."""

    def __init__(self, config: BertliteConfig, num_heads: int, layer_idx: int | None = None):
        nn.Module.__init__(self)
        self.config = config  # shared with the model, so set_attn_implementation() reaches every layer
        self.num_attention_heads = num_heads
        self.attention_head_size = config.attention_head_size
        self.all_head_size = num_heads * config.attention_head_size
        self.scaling = config.attention_head_size**-0.5
        self.query = _linear(config.hidden_size, self.all_head_size)
        self.key = _linear(config.hidden_size, self.all_head_size)
        self.value = _linear(config.hidden_size, self.all_head_size)
        self.dropout = nn.Dropout(config.attention_probs_dropout_prob)
        self.is_decoder = False
        self.is_causal = False
        self.layer_idx = layer_idx

    def forward(self, hidden_states, attention_mask=None, cache=None, **kwargs):
        if self.num_attention_heads == 0:
            # A layer whose heads were all removed: the context has width 0, so the output projection adds only
            # its bias -- exactly what the unpruned layer computes with every head gated to 0.
            batch, length = hidden_states.shape[:2]
            return hidden_states.new_zeros(batch, length, 0), hidden_states.new_zeros(batch, 0, length, length)
        return super().forward(hidden_states, attention_mask=attention_mask, cache=cache, **kwargs)


class BertliteSelfOutput(BertSelfOutput):
    """BERT's attention output projection, reading `num_heads * head_size` features instead of `hidden_size`."""

    def __init__(self, config: BertliteConfig, num_heads: int):
        nn.Module.__init__(self)
        self.dense = _linear(num_heads * config.attention_head_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)


class BertliteAttention(BertAttention):
    def __init__(self, config: BertliteConfig, num_heads: int, layer_idx: int | None = None):
        nn.Module.__init__(self)
        self.is_cross_attention = False
        self.self = BertliteSelfAttention(config, num_heads, layer_idx=layer_idx)
        self.output = BertliteSelfOutput(config, num_heads)


class BertliteIntermediate(BertIntermediate):
    def __init__(self, config: BertliteConfig, size: int):
        nn.Module.__init__(self)
        self.dense = _linear(config.hidden_size, size)
        self.intermediate_act_fn = ACT2FN[config.hidden_act] if isinstance(config.hidden_act, str) else config.hidden_act


class BertliteOutput(BertOutput):
    def __init__(self, config: BertliteConfig, size: int):
        nn.Module.__init__(self)
        self.dense = _linear(size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)


class BertliteLayer(BertLayer):
    """One encoder layer with the head count and FFN width that the config lists for `layer_idx`."""

    def __init__(self, config: BertliteConfig, layer_idx: int):
        GradientCheckpointingLayer.__init__(self)
        self.chunk_size_feed_forward = config.chunk_size_feed_forward
        self.seq_len_dim = 1
        self.attention = BertliteAttention(config, config.layer_num_attention_heads[layer_idx], layer_idx=layer_idx)
        self.is_decoder = False
        self.add_cross_attention = False
        self.intermediate = BertliteIntermediate(config, config.layer_intermediate_sizes[layer_idx])
        self.output = BertliteOutput(config, config.layer_intermediate_sizes[layer_idx])


class BertliteEncoder(BertEncoder):
    def __init__(self, config: BertliteConfig):
        nn.Module.__init__(self)
        self.config = config
        self.layer = nn.ModuleList([BertliteLayer(config, layer_idx=i) for i in range(config.num_hidden_layers)])


class BertlitePreTrainedModel(BertPreTrainedModel):
    config: BertliteConfig
    config_class = BertliteConfig
    base_model_prefix = "bert"
    _no_split_modules = ["BertEmbeddings", "BertliteLayer"]


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
    "BertliteLayer",
    "BertliteModel",
    "BertlitePreTrainedModel",
]
