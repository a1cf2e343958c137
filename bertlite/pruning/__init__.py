"""Pruning: `structured` removes attention heads and FFN neurons (smaller matrices, lower latency);
`unstructured` zeroes individual weights (magnitude, Lottery Ticket, OBD, SynFlow); `recovery` is the short
training (distillation from the unpruned model, or fine-tuning) that both use to win back accuracy; `defaults`
holds the pruning defaults that the functions and `bertlite prune` share."""
