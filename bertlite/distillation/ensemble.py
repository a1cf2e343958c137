"""Several fine-tuned teachers behind one model interface, so the distillation trainer (and anything that calls a
model for logits) can learn from their average.

An ensemble of independently fine-tuned teachers is more accurate and better calibrated than any member, which is the
setting where a student distilled from soft targets beats one trained on the labels (Hinton et al. 2015). Logits are
averaged; hidden states and attention maps come from the first member only (the "anchor", normally the teacher the
student's layers were copied from): the internals of separately fine-tuned models live in different feature spaces,
so their average would be a target no single network produces.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import BertliteError


class TeacherEnsemble(nn.Module):
    """`members[0]` is the anchor (its config, hidden states and attentions); logits are the mean over members."""

    def __init__(self, members):
        super().__init__()
        members = list(members)
        if not members:
            raise BertliteError("A teacher ensemble needs at least one teacher.")
        anchor = members[0].config
        for i, m in enumerate(members[1:], start=2):
            if m.config.num_labels != anchor.num_labels:
                raise BertliteError(f"Teacher {i} of the ensemble predicts {m.config.num_labels} labels, the first teacher "
                                    f"{anchor.num_labels}: every teacher must be fine-tuned on the same task.")
            if m.config.vocab_size != anchor.vocab_size:
                raise BertliteError(f"Teacher {i} of the ensemble has a {m.config.vocab_size}-token vocabulary, the first "
                                    f"teacher {anchor.vocab_size}: all teachers must share one tokenizer.")
        self.members = nn.ModuleList(members)

    @property
    def config(self):
        return self.members[0].config

    @property
    def anchor(self):
        return self.members[0]

    def set_attn_implementation(self, implementation: str) -> None:
        # Only the anchor's attention maps are ever asked for; the others keep their faster kernels.
        self.anchor.set_attn_implementation(implementation)

    def forward(self, output_hidden_states: bool = False, output_attentions: bool = False, **inputs):
        inputs.pop("labels", None)  # the ensemble is a teacher: it reports logits, never a loss
        out = self.anchor(**inputs, output_hidden_states=output_hidden_states, output_attentions=output_attentions)
        if len(self.members) > 1:
            logits = [out.logits] + [m(**inputs).logits for m in self.members[1:]]
            out.logits = torch.stack(logits).mean(0)
        return out

    def __len__(self) -> int:
        return len(self.members)
