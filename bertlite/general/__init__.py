"""General distillation (TinyBERT stage 1) on streamed unlabeled text: `bertlite distill --general`."""

from .corpus import PACKAGED_CORPUS, chunk_texts, text_stream, unlabeled_corpus
from .job import GeneralArguments, build_general_student, run_general_distillation

__all__ = ["PACKAGED_CORPUS", "GeneralArguments", "build_general_student", "chunk_texts", "run_general_distillation",
           "text_stream", "unlabeled_corpus"]
