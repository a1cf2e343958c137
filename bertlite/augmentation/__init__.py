"""TinyBERT-style data augmentation: word replacement from a masked LM or from nearest neighbours in the
teacher's input-embedding space, saved as a dataset that task distillation trains on (soft targets only)."""

from .augmenter import AugmentationStats, WordAugmenter
from .candidates import EmbeddingNeighbours, MaskedLMCandidates
from .dataset import augment_dataset, load_augmented, with_augmented
from .job import run_augmentation

__all__ = ["AugmentationStats", "EmbeddingNeighbours", "MaskedLMCandidates", "WordAugmenter",
           "augment_dataset", "load_augmented", "run_augmentation", "with_augmented"]
