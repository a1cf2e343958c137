"""Pruning defaults, defined once: `bertlite prune`'s flags and the Python functions of both families read them here.

Kept free of heavy imports, so that the CLI can build its argument parser from it cheaply.
"""

# Recovery training (and the retraining rounds of iterative magnitude pruning / the Lottery Ticket method).
EPOCHS = 2.0
LEARNING_RATE = 5e-5
WARMUP = 0.1  # a float below 1 is a share of the training steps (transformers v5)
WEIGHT_DECAY = 0.01
BATCH_SIZE = 32
MAX_LENGTH = 128
SEED = 42
LOGGING_STEPS = 50

# Examples whose gradients score importance: structured pruning's taylor/fisher criteria score in batches; Optimal
# Brain Damage takes one gradient per OBD_BATCH_SIZE examples (1 = per-sample empirical Fisher), so it uses fewer.
IMPORTANCE_EXAMPLES = 1024
OBD_EXAMPLES = 256
OBD_BATCH_SIZE = 1
