"""Pruning: `structured` removes attention heads and FFN neurons (smaller matrices, lower latency);
`unstructured` zeroes individual weights (magnitude, Lottery Ticket, OBD, SynFlow); `recovery` is the short
distillation from the unpruned model that both use to win back accuracy."""
